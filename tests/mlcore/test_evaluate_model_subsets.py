"""``evaluate_model`` on a folder holding only some of the model's classes: what can be computed, and no more."""

import io

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command

from mlcore.models import Evaluation, ModelVersion
from tests.conftest import TINY
from tests.mlcore.synthetic import write_dataset

pytestmark = pytest.mark.django_db

THREE = ["COVID", "NORMAL", "OTHER_PNEUMONIA"]


@pytest.fixture
def three_class_version(db, tiny_three_class_model_bytes) -> ModelVersion:
    version = ModelVersion.objects.create(
        name="three-v1",
        status=ModelVersion.Status.SUCCEEDED,
        class_names=THREE,
        positive_class="COVID",
        threshold=0.0,  # every image is called COVID: a known answer from an untrained network
        preprocessing=TINY,
    )
    version.model_file.save("model.keras", ContentFile(tiny_three_class_model_bytes))
    return version


def evaluate(*arguments) -> str:
    out = io.StringIO()
    call_command("evaluate_model", *arguments, stdout=out)
    return out.getvalue()


def test_a_folder_of_other_pneumonia_only_gives_the_share_called_covid_and_no_auc(three_class_version, tmp_path):
    folder = write_dataset(
        tmp_path / "other", per_class=6, patients_per_class=3, folders={"OTHER_PNEUMONIA": "OTHER_PNEUMONIA"}
    )

    output = evaluate("--data", str(folder), "--version", "three-v1")

    metrics = Evaluation.objects.get().metrics
    assert metrics["n"] == 6
    assert metrics["auc"] is None
    assert metrics["sensitivity"]["value"] is None
    assert metrics["per_class"]["OTHER_PNEUMONIA"]["called_positive"]["value"] == 1.0
    assert metrics["bootstrap"]["patients"] == 3  # the manifest's patients, not the 6 images
    assert metrics["confusion_matrix"]["labels"] == ["NORMAL", "OTHER_PNEUMONIA", "COVID"]
    assert metrics["confusion_matrix"]["counts"][1] == [0, 0, 6]
    assert "images 6 (NORMAL 0, OTHER_PNEUMONIA 6, COVID 0)" in output
    assert "OTHER_PNEUMONIA called COVID: 1.000" in output
    assert "AUC n/a" in output


def test_a_two_class_folder_on_a_three_class_model_gets_covid_against_the_rest(three_class_version, tmp_path):
    folder = write_dataset(tmp_path / "two", per_class=4, patients_per_class=4)

    evaluate("--data", str(folder), "--version", "three-v1")

    metrics = Evaluation.objects.get().metrics
    assert metrics["class_counts"] == {"NORMAL": 4, "OTHER_PNEUMONIA": 0, "COVID": 4}
    assert metrics["auc"] is not None
    assert metrics["sensitivity"]["value"] == 1.0
    assert metrics["specificity"]["value"] == 0.0


def test_a_folder_of_a_class_the_model_does_not_know_is_refused(make_version, tmp_path):
    version = make_version()  # COVID / NORMAL
    folder = write_dataset(tmp_path / "mixed", per_class=2, folders={"COVID": "COVID", "OTHER_PNEUMONIA": "pneumonia"})

    with pytest.raises(
        CommandError,
        match=r"holds class OTHER_PNEUMONIA, which this model was not trained on \(its classes: COVID, NORMAL\)",
    ):
        evaluate("--data", str(folder), "--version", version.name)

    assert not Evaluation.objects.exists()


def test_a_two_class_model_on_a_folder_of_normal_images_only(make_version, tmp_path):
    make_version()
    folder = write_dataset(tmp_path / "normal", per_class=4, folders={"NORMAL": "normal"})

    evaluate("--data", str(folder))

    metrics = Evaluation.objects.get().metrics
    assert metrics["specificity"]["total"] == 4
    assert metrics["auc"] is None
    assert list(metrics["per_class"]) == ["NORMAL"]
