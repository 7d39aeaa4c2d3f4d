"""Where data enters training and evaluation: bad folders stop before any version row exists, and a folder
holding only some of a model's classes can still be evaluated."""

from __future__ import annotations

import pytest

from mlcore.core.dataset import DatasetError, PatientRule, parse_class_aliases
from mlcore.core.model import ModelConfig
from mlcore.core.pipeline import RunOptions, check_dataset, options_for_dataset
from mlcore.core.preprocessing import PreprocessingSpec
from mlcore.core.training import TrainingConfig
from mlcore.models import Evaluation, ModelVersion
from mlcore.services import evaluation_create_external, model_version_train
from tests.mlcore.synthetic import write_dataset

THREE = {"COVID": "COVID", "OTHER_PNEUMONIA": "pneumonia", "NORMAL": "normal"}


def options(**changes) -> RunOptions:
    return RunOptions(
        model=ModelConfig(image_size=75),
        training=TrainingConfig(epochs=1),
        preprocessing=PreprocessingSpec(image_size=75),
        **changes,
    )


def test_three_classes_give_the_network_three_outputs(tmp_path):
    data = write_dataset(tmp_path, per_class=12, patients_per_class=6, folders=THREE)
    dataset = check_dataset(data, options())
    assert dataset.class_names == ["COVID", "NORMAL", "OTHER_PNEUMONIA"]
    chosen = options_for_dataset(options(), dataset)
    assert chosen.model.num_classes == 3
    assert chosen.hyperparameters()["model"]["num_classes"] == 3
    assert chosen.hyperparameters()["patients"] == PatientRule().as_dict()


def test_several_folders_are_checked_as_one_dataset(tmp_path):
    first = write_dataset(tmp_path / "a", per_class=12, patients_per_class=6)
    second = write_dataset(
        tmp_path / "b", per_class=12, patients_per_class=6, folders={"OTHER_PNEUMONIA": "pneumonia"}
    )
    dataset = check_dataset([first, second], options())
    assert dataset.counts() == {"COVID": 12, "NORMAL": 12, "OTHER_PNEUMONIA": 12}


@pytest.mark.parametrize(
    ("folders", "changes", "manifest", "message"),
    [
        ({"COVID": "COVID"}, {}, True, r"Only 1 class \(COVID\)"),
        (None, {"positive_class": "OTHER_PNEUMONIA"}, True, "Positive class 'OTHER_PNEUMONIA' is not a class"),
        (None, {}, False, "have no patient id"),
    ],
)
def test_bad_input_is_refused_before_any_image_is_decoded(tmp_path, folders, changes, manifest, message):
    data = write_dataset(tmp_path, per_class=6, patients_per_class=3, folders=folders, manifest=manifest)
    with pytest.raises(DatasetError, match=message):
        check_dataset(data, options(**changes))


def test_a_class_with_too_few_patients_to_split_is_named(tmp_path):
    data = write_dataset(tmp_path, per_class=6, patients_per_class=3, folders=THREE)
    manifest = data / "manifest.csv"
    manifest.write_text(manifest.read_text().replace(",O002,", ",O001,"))  # two pneumonia patients left
    with pytest.raises(DatasetError, match="class OTHER_PNEUMONIA has too few patients"):
        check_dataset(data, options())


def test_unknown_patients_are_allowed_on_request(tmp_path):
    data = write_dataset(tmp_path, per_class=12, patients_per_class=6, manifest=False)
    dataset = check_dataset(data, options(patients=PatientRule(allow_unknown=True)))
    assert all(item.patient_id is None for item in dataset.items)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("folders", "changes", "message"),
    [
        ({"NORMAL": "NORMAL"}, {}, "Only 1 class"),
        (None, {"positive_class": "PNEUMONIA"}, "is not a class"),
        ({"COVID": "COVID", "NORMAL": "Lung_Opacity"}, {}, "Unknown class folder 'Lung_Opacity'"),
    ],
)
def test_the_service_stores_no_version_for_bad_input(tmp_path, folders, changes, message):
    data = write_dataset(tmp_path, per_class=12, patients_per_class=6, folders=folders)
    with pytest.raises(DatasetError, match=message):
        model_version_train(data_dir=[data], options=options(**changes), log=lambda line: None)
    assert not ModelVersion.objects.exists()


def test_an_unknown_class_in_a_mapping_is_refused():
    with pytest.raises(DatasetError, match="Unknown class 'CATS'"):
        parse_class_aliases("CATS=cats")


@pytest.mark.django_db
def test_a_folder_of_one_of_the_models_classes_is_evaluated(make_version, tmp_path):
    version = make_version()
    data = write_dataset(tmp_path, per_class=4, patients_per_class=4, folders={"NORMAL": "NORMAL"})

    evaluation = evaluation_create_external(version=version, data_dir=data, log=lambda line: None)

    assert evaluation.metrics["n"] == 4
    assert evaluation.dataset_summary["class_names"] == ["NORMAL"]


@pytest.mark.django_db
def test_a_folder_with_a_class_the_model_does_not_know_is_refused(make_version, tmp_path):
    version = make_version()  # COVID / NORMAL
    data = write_dataset(tmp_path, per_class=4, patients_per_class=4, folders=THREE)

    with pytest.raises(DatasetError, match="holds class OTHER_PNEUMONIA, which this model was not trained on"):
        evaluation_create_external(version=version, data_dir=data, log=lambda line: None)

    assert not Evaluation.objects.exists()
