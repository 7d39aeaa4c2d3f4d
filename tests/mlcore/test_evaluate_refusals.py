"""evaluate_model --refusals: the share of images the input gate refuses, per folder, stored for staff."""

import io

import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse
from PIL import Image
from sklearn.datasets import load_sample_images

from mlcore.models import Evaluation
from tests.mlcore.synthetic import lateral_like
from tests.mlcore.test_gate import ct_like, document

pytestmark = pytest.mark.django_db


@pytest.fixture
def images_to_refuse(tmp_path):
    rng = np.random.default_rng(0)
    for name, pictures in (
        ("CT", [ct_like(rng) for _ in range(3)]),
        ("DOCUMENT", [document() for _ in range(2)]),
    ):
        (tmp_path / name).mkdir()
        for n, picture in enumerate(pictures):
            Image.fromarray((picture * 255).astype(np.uint8)).save(tmp_path / name / f"{n}.png")
    (tmp_path / "PHOTO").mkdir()
    Image.fromarray(load_sample_images().images[0]).save(tmp_path / "PHOTO" / "0.jpg")
    return tmp_path


def test_every_folder_is_refused_and_the_figures_are_stored(make_gated_version, images_to_refuse, staff_client):
    version = make_gated_version()
    out = io.StringIO()

    call_command("evaluate_model", refusals=True, data=str(images_to_refuse), stdout=out)

    evaluation = Evaluation.objects.get(version=version, kind=Evaluation.Kind.OUT_OF_DISTRIBUTION)
    per_folder = evaluation.metrics["gate"]["per_class"]
    assert {name: part["refused"]["value"] for name, part in per_folder.items()} == {
        "CT": 1.0,
        "DOCUMENT": 1.0,
        "PHOTO": 1.0,
    }
    assert "CT: refused 1.000" in out.getvalue()
    page = staff_client.get(reverse("admin:mlcore_modelversion_change", args=[version.pk])).content.decode()
    assert "refused by the gate" in page
    assert "Calibration, indeterminate band and input gate" in page


def test_an_old_version_without_a_gate_says_so_and_refuses_only_by_colour(make_version, images_to_refuse):
    make_version()
    out = io.StringIO()

    call_command("evaluate_model", refusals=True, data=str(images_to_refuse), stdout=out)

    gate = Evaluation.objects.get(kind=Evaluation.Kind.OUT_OF_DISTRIBUTION).metrics["gate"]
    assert gate["per_class"]["CT"]["refused"]["value"] == 0.0
    assert gate["per_class"]["PHOTO"]["refused"]["value"] == 1.0  # colour needs no stored statistics
    assert "no stored out-of-distribution statistics" in out.getvalue()


def test_a_folder_without_sub_folders_is_refused_with_a_clear_message(make_gated_version, tmp_path):
    from django.core.management.base import CommandError

    make_gated_version()
    (tmp_path / "loose.png").write_bytes(b"not even an image")

    with pytest.raises(CommandError, match="put each kind of image in a folder of its own"):
        call_command("evaluate_model", refusals=True, data=str(tmp_path), stdout=io.StringIO())


def test_the_view_checks_own_refusals_are_reported_per_folder(make_gated_version, tmp_path, staff_client):
    version = make_gated_version(view_check=True)
    rng = np.random.default_rng(1)
    (tmp_path / "LATERAL").mkdir()
    for n in range(3):
        Image.fromarray((lateral_like(rng) * 255).astype(np.uint8)).save(tmp_path / "LATERAL" / f"{n}.png")
    out = io.StringIO()

    call_command("evaluate_model", refusals=True, data=str(tmp_path), stdout=out)

    gate = Evaluation.objects.get(version=version, kind=Evaluation.Kind.OUT_OF_DISTRIBUTION).metrics["gate"]
    assert gate["view_check_fitted"] is True
    assert gate["per_class"]["LATERAL"]["refused_by_view_check"]["value"] == 1.0
    assert "LATERAL: refused 1.000 [" in out.getvalue()
    assert "(view check alone 1.000" in out.getvalue()
    page = staff_client.get(reverse("admin:mlcore_modelversion_change", args=[version.pk])).content.decode()
    assert "by the view check alone" in page
