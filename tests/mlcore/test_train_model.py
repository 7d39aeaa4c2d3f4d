"""``manage.py train_model`` and ``evaluate_model`` end to end on small generated images (75x75)."""

import io
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from PIL import Image

from mlcore.core import training
from mlcore.core.dataset import PatientRule, discover_dataset, group_patients, split_dataset
from mlcore.core.provenance import split_membership
from mlcore.models import ActiveModelVersion, Evaluation, ModelVersion, Plot
from mlcore.selectors import model_version_active
from mlcore.services import model_version_activate
from tests.mlcore.conftest import train
from tests.mlcore.synthetic import write_dataset

pytestmark = [pytest.mark.training, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "data", per_class=24, patients_per_class=12)


@pytest.mark.xdist_group("stored-run")
def test_train_model_stores_an_evaluated_active_version(trained):
    output = trained

    version = ModelVersion.objects.get(name="tiny")
    assert version.status == ModelVersion.Status.SUCCEEDED
    assert model_version_active() == version
    assert "Version tiny: succeeded" in output
    assert "Test split:" in output

    metrics = version.metrics
    counts = np.array(metrics["confusion_matrix"]["counts"])
    test_count = version.dataset_summary["counts"]["test"]
    assert counts.sum() == test_count == metrics["n"]
    assert metrics["accuracy"] == pytest.approx(np.trace(counts) / counts.sum())
    assert metrics["sensitivity"]["count"] == counts[1, 1]
    assert metrics["specificity"]["count"] == counts[0, 0]
    assert set(metrics["per_source"]) == {"site-a", "site-b"}
    assert sum(part["n"] for part in metrics["per_source"].values()) == test_count
    assert 0.0 <= version.threshold <= 1.0
    assert "Youden" in version.threshold_rule

    assert version.model_summary["total_parameters"] > 20_000_000
    assert version.model_summary["input_shape"] == [75, 75, 3]
    assert len(version.history["loss"]) == len(version.history["val_loss"]) >= 1
    assert version.wall_time_seconds > 0
    assert version.images_per_second > 0
    assert version.hyperparameters["model"]["head"] == "gap"
    assert version.preprocessing == {
        "image_size": 75,
        "scaling": "unit",
        "intensity": "percentile",
        "letterbox": True,
    }
    assert sum(version.dataset_summary["counts"].values()) == 48
    assert Path(version.model_file.path).is_file()

    keys = set(version.plots.values_list("key", flat=True))
    assert {
        "history-accuracy",
        "history-loss",
        "samples-covid",
        "samples-normal",
        "train-test-examples",
        "test-roc",
        "test-confusion-counts",
        "test-confusion-percent",
        "test-calibration",
        "test-called-positive",
    } <= keys
    for plot in version.plots.all():
        with plot.image.open("rb") as handle:
            image = Image.open(handle)
            image.verify()
            assert image.format == "PNG"
    evaluation = version.evaluations.get()
    assert evaluation.kind == Evaluation.Kind.TEST_SPLIT
    assert evaluation.plots.count() == 5

    assert metrics["bootstrap"]["patients"] < metrics["n"]  # the manifest's patients, not its images
    audit = version.shortcut_audit
    assert audit["model_auc"] == metrics["auc"]
    assert audit["pixel_baseline"]["n_test"] == test_count
    assert audit["pixel_baseline"]["auc"] is not None
    assert audit["source_classifier"]["sources"] == ["site-a", "site-b"]
    assert "Shortcut audit (the same split, thumbnails only):" in output
    assert "Pixel-only baseline: COVID AUC" in output


@pytest.mark.xdist_group("stored-run")
def test_a_second_version_can_be_activated_and_only_one_is_active(trained, staff_client):
    second = ModelVersion.objects.get(name="three")
    assert model_version_active().name == "tiny"

    response = staff_client.post(
        reverse("admin:mlcore_modelversion_changelist"),
        {"action": "activate_selected", "_selected_action": [second.pk]},
        follow=True,
    )

    assert "Activated version three" in response.content.decode()
    assert model_version_active() == second
    assert ActiveModelVersion.objects.count() == 1

    page = staff_client.get(reverse("admin:mlcore_modelversion_change", args=[second.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    for plot in second.plots.all():
        assert reverse("mlcore:plot_image", args=[plot.pk]) in html
    assert "<th>precision</th>" in html
    assert "<th>COVID</th>" in html
    assert "site-a" in html

    image = staff_client.get(reverse("mlcore:plot_image", args=[second.plots.first().pk]))
    assert image.status_code == 200
    assert image["Content-Type"] == "image/png"
    assert b"".join(image.streaming_content).startswith(b"\x89PNG")


def stored_version(name: str) -> ModelVersion:
    """A succeeded version with a placeholder model file and one plot, without training."""
    from django.core.files.base import ContentFile

    version = ModelVersion.objects.create(name=name, status=ModelVersion.Status.SUCCEEDED, threshold=0.5)
    version.model_file.save("model.keras", ContentFile(b"not read by these tests"))
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="PNG")
    plot = Plot(version=version, key="test-roc", title="ROC curve")
    plot.image.save("test_roc.png", ContentFile(buffer.getvalue()))
    return version


def test_plot_images_are_for_staff_only(doctor_client):
    plot = stored_version("private").plots.get()

    response = doctor_client.get(reverse("mlcore:plot_image", args=[plot.pk]))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_ctrl_c_keeps_the_best_checkpoint_and_records_the_run_as_interrupted(dataset, monkeypatch):
    offer = training._BestWeights.offer

    def interrupt_after_first_epoch(self, epoch, logs):
        offer(self, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(training._BestWeights, "offer", interrupt_after_first_epoch)

    with pytest.raises(CommandError, match="interrupted"):
        train(dataset, name="stopped", epochs=3, activate=True)

    version = ModelVersion.objects.get(name="stopped")
    assert version.status == ModelVersion.Status.INTERRUPTED
    assert version.model_file
    assert Path(version.model_file.path).is_file()
    assert version.history["best_epoch"] == 0
    assert model_version_active() is None


@pytest.mark.xdist_group("stored-run")
def test_evaluate_model_stores_an_external_evaluation(trained, tmp_path):
    external = write_dataset(tmp_path / "external", per_class=6, seed=7, sources=("site-c",))
    out = io.StringIO()

    call_command("evaluate_model", data=str(external), stdout=out)

    evaluation = Evaluation.objects.get(kind=Evaluation.Kind.EXTERNAL)
    assert evaluation.version.name == "tiny"
    assert evaluation.metrics["n"] == 12
    assert np.array(evaluation.metrics["confusion_matrix"]["counts"]).sum() == 12
    assert evaluation.threshold == evaluation.version.threshold
    assert evaluation.plots.count() == 5
    text = out.getvalue()
    assert "AUC" in text
    assert "sensitivity" in text
    assert "[site-c]" in text


@pytest.mark.parametrize(
    ("prepare", "options", "message"),
    [
        (lambda root: root / "missing", {}, "does not exist"),
        (lambda root: _with_folder(root, "CATS"), {}, "Unknown class folder 'CATS'"),
        (lambda root: _empty_class(root), {}, "has no images"),
        (lambda root: write_dataset(root, per_class=2, patients_per_class=2), {}, "Too few images"),
        (lambda root: write_dataset(root), {"weights": "/nonexistent/weights.h5"}, "does not exist"),
        (lambda root: write_dataset(root), {"classes": "COVID"}, "CLASS=folder"),
        (lambda root: write_dataset(root), {"classes": "COVID=a;CATS=b"}, "Unknown class 'CATS'"),
        (lambda root: write_dataset(root, folders={"COVID": "COVID"}), {}, r"Only 1 class \(COVID\)"),
        (lambda root: write_dataset(root), {"positive_class": "OTHER_PNEUMONIA"}, "is not a class of this dataset"),
        (lambda root: write_dataset(root, manifest=False), {}, "no patient id.*--allow-unknown-patients"),
    ],
)
def test_bad_input_exits_with_a_clear_message_and_stores_nothing(tmp_path, prepare, options, message):
    data = prepare(tmp_path / "data")

    with pytest.raises(CommandError, match=message):
        train(data, activate=True, **options)

    assert not ModelVersion.objects.exists()
    assert model_version_active() is None


@pytest.mark.xdist_group("stored-run")
def test_three_classes_from_two_folders_train_one_version(trained, stored_run):
    first, second = stored_run.three_class_folders

    version = ModelVersion.objects.get(name="three")
    assert version.status == ModelVersion.Status.SUCCEEDED
    assert version.class_names == ["COVID", "NORMAL", "OTHER_PNEUMONIA"]
    assert version.hyperparameters["model"]["num_classes"] == 3
    assert version.hyperparameters["patients"]["duplicate_distance"] is not None
    summary = version.dataset_summary
    assert summary["roots"] == [str(first), str(second)]
    assert set(summary["per_folder"]) == {str(first), str(second)}
    assert summary["patients"]["unknown_patients"] == 0
    assert summary["patients"]["duplicate_groups_joined"] == 0


@pytest.mark.xdist_group("stored-run")
def test_an_ensemble_is_one_stored_model_whose_readings_are_its_networks_mean(trained, stored_run, staff_client):
    """Version ``three`` was trained with ``--members 2``: one file, read like any other, and the staff pages
    say what it is."""
    import keras

    from mlcore.core.model import ensemble_members
    from mlcore.core.predictor import Predictor
    from mlcore.core.preprocessing import PreprocessingSpec

    version = ModelVersion.objects.get(name="three")
    assert version.hyperparameters["members"] == 2
    assert version.model_summary["members"] == 2
    assert set(version.history["member"]) == {0, 1}
    assert len(version.history["member"]) == len(version.history["loss"])
    assert len(version.history["member_best_epochs"]) == 2
    model = keras.saving.load_model(version.model_file.path, compile=False)
    images = np.random.default_rng(3).random((4, 75, 75, 3), dtype=np.float32)
    networks = [np.asarray(member(images, training=False)) for member in ensemble_members(model)]
    assert len(networks) == 2
    assert not np.allclose(networks[0], networks[1])
    predictor = Predictor(
        version.model_file.path,
        class_names=version.class_names,
        positive_class=version.positive_class,
        threshold=version.threshold,
        preprocessing=PreprocessingSpec.from_stored(version.preprocessing),
    )
    raw = [readout.reading.raw_probability for readout in predictor.read(images)]
    np.testing.assert_allclose(raw, (networks[0][:, 0] + networks[1][:, 0]) / 2, rtol=1e-5, atol=1e-6)

    page = staff_client.get(reverse("admin:mlcore_modelversion_change", args=[version.pk])).content.decode()
    assert "<th>network</th><th>epoch</th>" in page
    assert "Best epoch of each network:" in page
    card = staff_client.get(reverse("admin:mlcore_modelversion_card", args=[version.pk])).content.decode()
    assert "InceptionV3, 75x75 px input, trained from scratch; the mean of 2 networks&#x27; probabilities" in card
    single = ModelVersion.objects.get(name="tiny")
    card = staff_client.get(reverse("admin:mlcore_modelversion_card", args=[single.pk])).content.decode()
    assert "InceptionV3, 75x75 px input, trained from scratch</td>" in card


@pytest.mark.xdist_group("stored-run")
def test_the_split_seed_draws_the_split_and_is_recorded(trained, stored_run):
    version = ModelVersion.objects.get(name="three")
    dataset = discover_dataset(list(stored_run.three_class_folders))
    labels = [item.label for item in dataset.items]
    patients = group_patients(dataset.items, rule=PatientRule()).keys

    def membership(seed: int) -> dict:
        split = split_dataset(labels, patients, seed=seed).as_dict()
        return split_membership([item.path for item in dataset.items], split, dataset.roots)

    assert version.provenance["seeds"] == {"training": 42, "split": 7, "networks": [42, 142]}
    assert version.hyperparameters["split_seed"] == 7
    assert version.provenance["data"]["splits"] == membership(7)
    assert membership(7) != membership(42)


def test_a_weights_file_that_does_not_fit_fails_the_version_and_keeps_the_active_one(dataset, tmp_path):
    import keras

    model_version_activate(version=stored_version("good"))

    wrong = tmp_path / "wrong.weights.h5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).save_weights(wrong)

    with pytest.raises(CommandError, match="does not fit InceptionV3"):
        train(dataset, activate=True, name="bad", weights=str(wrong))

    assert ModelVersion.objects.get(name="bad").status == ModelVersion.Status.FAILED
    assert model_version_active().name == "good"


@pytest.mark.xdist_group("stored-run")
def test_a_corrupt_image_is_skipped_and_listed(trained):
    skipped = ModelVersion.objects.get(name="tiny").dataset_summary["skipped"]
    assert [entry["path"] for entry in skipped] == ["COVID/broken.png"]
    assert skipped[0]["reason"]


def _with_folder(root, name):
    write_dataset(root)
    (root / name).mkdir()
    return root


def _empty_class(root):
    write_dataset(root)
    for path in (root / "NORMAL").iterdir():
        path.unlink()
    return root


def test_pretrained_weights_train_the_head_on_cached_features_then_fine_tune(dataset, tmp_path):
    from mlcore.core.model import ModelConfig, build_network

    weights = tmp_path / "inception-notop.weights.h5"
    build_network(ModelConfig(image_size=75)).base.save_weights(weights)

    output = train(dataset, name="pretrained", weights=str(weights), epochs=2, fine_tune_blocks=1, fine_tune_epochs=1)

    version = ModelVersion.objects.get(name="pretrained")
    assert version.status == ModelVersion.Status.SUCCEEDED, output
    assert version.history["phase"] == ["head", "head", "fine-tune"]
    assert set(version.history["phase_seconds"]) == {"feature_extraction", "head", "fine_tune"}
    assert version.preprocessing == {
        "image_size": 75,
        "scaling": "inception",
        "intensity": "percentile",
        "letterbox": True,
    }
    assert version.hyperparameters["model"]["head"] == "flatten"
    assert version.hyperparameters["training"]["fine_tune_blocks"] == 1


def test_a_version_that_did_not_succeed_cannot_be_activated(staff_client):
    active = stored_version("active")
    model_version_activate(version=active)
    failed = stored_version("broken")
    failed.status = ModelVersion.Status.FAILED
    failed.save()

    response = staff_client.post(
        reverse("admin:mlcore_modelversion_changelist"),
        {"action": "activate_selected", "_selected_action": [failed.pk]},
        follow=True,
    )

    assert "only a succeeded version with a model file can be activated" in response.content.decode()
    assert model_version_active() == active
    assert staff_client.get(reverse("admin:mlcore_modelversion_delete", args=[active.pk])).status_code != 200
