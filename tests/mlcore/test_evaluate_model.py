"""``evaluate_model --local``: staff say that a labelled folder holds this hospital's own images."""

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from mlcore.models import Evaluation
from mlcore.services import evaluation_create_external
from tests.mlcore.synthetic import write_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def hospital_folder(tmp_path):
    return write_dataset(tmp_path / "hospital", per_class=4, seed=3, sources=("ward-a",))


def evaluate(*arguments) -> str:
    out = io.StringIO()
    call_command("evaluate_model", *arguments, stdout=out)
    return out.getvalue()


def test_local_marks_the_evaluation_as_this_hospitals_images(make_version, hospital_folder):
    version = make_version()

    output = evaluate("--data", str(hospital_folder), "--local")

    evaluation = Evaluation.objects.get()
    assert (evaluation.version, evaluation.kind) == (version, Evaluation.Kind.LOCAL)
    assert evaluation.metrics["n"] == 8
    assert "(Local evaluation (this hospital's images)):" in output


def test_without_local_the_evaluation_is_external(make_version, hospital_folder):
    make_version()

    evaluate("--data", str(hospital_folder))

    assert Evaluation.objects.get().kind == Evaluation.Kind.EXTERNAL


def test_the_service_refuses_to_make_a_test_split_from_another_folder(make_version, hospital_folder):
    version = make_version()

    with pytest.raises(ValidationError, match="only training makes a held-out test split"):
        evaluation_create_external(version=version, data_dir=hospital_folder, kind=Evaluation.Kind.TEST_SPLIT)

    assert not Evaluation.objects.exists()


def test_a_missing_folder_is_a_clear_error(make_version, tmp_path):
    make_version()

    with pytest.raises(CommandError, match="does not exist"):
        evaluate("--data", str(tmp_path / "missing"), "--local")
