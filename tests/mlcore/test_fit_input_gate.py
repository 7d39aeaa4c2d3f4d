"""fit_input_gate: a stored version without an input gate (or with an older one) gets one, on its own split."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from mlcore.models import ModelVersion
from mlcore.selectors import model_version_reliability
from tests.mlcore.synthetic import write_dataset, write_refuse_examples

pytestmark = pytest.mark.django_db


def test_a_version_without_a_gate_gets_one_fitted_on_its_training_split(make_version, tmp_path):
    version = make_version()
    version.hyperparameters = {"training": {"seed": 3}, "validation_fraction": 0.2, "test_fraction": 0.2}
    version.save()
    data = write_dataset(tmp_path / "data", per_class=30, patients_per_class=15)
    assert model_version_reliability(version=version).gate is None
    out = io.StringIO()

    call_command("fit_input_gate", data=str(data), gate_quantile=0.95, stdout=out)

    version = ModelVersion.objects.get(pk=version.pk)
    gate = model_version_reliability(version=version).gate
    assert gate is not None
    assert gate.quantile == 0.95
    assert version.reliability["gate"]["quantile"] == 0.95
    assert version.reliability["gate"]["folds"] == 5  # the training split's patients, held out five ways
    assert 36 <= version.reliability["gate"]["calibration_images"] < 60  # training and validation, not test
    refused = version.metrics["gate"]["refused"]
    assert refused["total"] == sum(part["total"] for part in version.metrics["gate"]["per_class"].values()) > 0
    assert "input gate refused" in out.getvalue()
    assert gate.view is None
    assert "view check: Not fitted" in out.getvalue()


def test_examples_to_refuse_add_a_view_check_to_an_existing_version(make_version, tmp_path, staff_client):
    version = make_version()
    data = write_dataset(tmp_path / "data", per_class=30, patients_per_class=15)
    refuse = write_refuse_examples(tmp_path / "refuse", per_kind=10)
    out = io.StringIO()

    call_command("fit_input_gate", data=str(data), refuse_examples=str(refuse), stdout=out)

    version = ModelVersion.objects.get(pk=version.pk)
    gate = model_version_reliability(version=version).gate
    assert gate.view is not None
    assert version.reliability["gate"]["view_check"]["examples"] == {"FRONTAL": 40, "CT": 10, "LATERAL": 10}
    assert "view check: fitted on FRONTAL 40, CT 10, LATERAL 10" in out.getvalue()
    page = staff_client.get(reverse("admin:mlcore_modelversion_change", args=[version.pk])).content.decode()
    assert "fitted on FRONTAL 40, CT 10, LATERAL 10" in page
    assert "held-out images (5-fold out-of-fold training scores and the validation split)" in page


def test_a_folder_the_version_cannot_read_stops_with_a_clear_message(make_version, tmp_path):
    make_version()

    with pytest.raises(CommandError, match="does not exist"):
        call_command("fit_input_gate", data=str(tmp_path / "missing"), stdout=io.StringIO())
