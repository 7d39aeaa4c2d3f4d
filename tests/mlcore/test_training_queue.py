"""Training runs on a queue of its own, as a typed run (a queued version row and its options), and a
training worker that dies leaves its version failed, not "training" for ever.

The worker tests run real Celery workers on one machine, as they would run on two hosts sharing the
database and broker.
"""

import datetime
import io
import json
import re
import time

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from diagnosis.models import Patient, Scan
from diagnosis.services.scans import scan_create
from mlcore.core.dataset import DEFAULT_CLASS_ALIASES
from mlcore.core.model import ModelConfig
from mlcore.core.pipeline import RunOptions
from mlcore.core.preprocessing import PreprocessingSpec
from mlcore.core.training import AugmentationConfig, TrainingConfig
from mlcore.models import ModelVersion
from mlcore.services import model_version_heartbeat, model_versions_fail_stale
from mlcore.tasks import fail_stale_training_versions, train_model_version
from tests.diagnosis.conftest import xray_upload
from tests.diagnosis.workers import Worker, purge_broker, wait_until
from tests.mlcore.synthetic import write_dataset

STALE = datetime.timedelta(seconds=settings.TRAINING_STALE_SECONDS)
QUEUE_TIMEOUT = datetime.timedelta(seconds=settings.TRAINING_QUEUE_TIMEOUT_SECONDS)


def tiny_options(**training) -> RunOptions:
    return RunOptions(
        model=ModelConfig(image_size=75, batchnorm_momentum=None),
        training=TrainingConfig(epochs=3, seed=9, augmentation=AugmentationConfig(vertical_flip=False), **training),
        preprocessing=PreprocessingSpec(image_size=75),
        class_aliases=DEFAULT_CLASS_ALIASES,
        gate_quantile=0.99,
    )


def test_run_options_cross_a_queue_as_json_and_come_back_equal():
    options = tiny_options(fine_tune_blocks=2)

    again = RunOptions.from_dict(json.loads(json.dumps(options.to_dict())))

    assert again == options


def test_options_a_worker_does_not_know_are_refused_not_dropped():
    data = tiny_options().to_dict()
    data["training"]["a_later_option"] = 2

    with pytest.raises(ValueError, match="TrainingConfig has no option a_later_option"):
        RunOptions.from_dict(data)


@pytest.fixture
def sent(monkeypatch):
    """The training tasks handed to the broker, as the keyword arguments they were sent with."""
    calls = []
    monkeypatch.setattr(train_model_version, "delay", lambda **arguments: calls.append(arguments))
    return calls


@pytest.mark.django_db
def test_queue_creates_a_queued_version_and_sends_its_id_and_typed_options(
    tmp_path, sent, django_capture_on_commit_callbacks
):
    data = write_dataset(tmp_path / "data", per_class=12, patients_per_class=6)
    out = io.StringIO()

    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "train_model",
            "--queue",
            "--clahe",
            data=str(data),
            image_size=75,
            epochs=3,
            members=2,
            name="later",
            stdout=out,
        )

    version = ModelVersion.objects.get(name="later")
    assert version.status == ModelVersion.Status.QUEUED
    assert version.heartbeat_at is None
    assert "Queued version later on the 'training' queue" in out.getvalue()
    assert len(sent) == 1
    arguments = json.loads(json.dumps(sent[0]))  # what the broker carries: JSON
    assert arguments["version_id"] == version.pk
    assert arguments["data_dir"] == str(data)
    options = RunOptions.from_dict(arguments["options"])
    assert options.training.epochs == 3
    assert options.members == 2
    assert options.training.augmentation.vertical_flip is False
    assert options.preprocessing.image_size == 75
    assert options.preprocessing.equalization == "clahe"
    assert version.hyperparameters["training"]["epochs"] == 3
    assert version.hyperparameters["members"] == 2
    assert version.preprocessing["equalization"] == "clahe"


@pytest.mark.django_db
def test_queue_refuses_bad_input_before_any_version_or_task_exists(tmp_path, sent):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("train_model", "--queue", data=str(tmp_path / "missing"), stdout=io.StringIO())

    assert not ModelVersion.objects.exists()
    assert sent == []


@pytest.mark.django_db
def test_the_worker_marks_a_queued_version_failed_when_its_folder_is_not_there(tmp_path):
    version = ModelVersion.objects.create(name="q", status=ModelVersion.Status.QUEUED)

    with pytest.raises(ValueError, match="does not exist"):
        train_model_version(
            version_id=version.pk, data_dir=str(tmp_path / "not-on-this-host"), options=tiny_options().to_dict()
        )

    version.refresh_from_db()
    assert version.status == ModelVersion.Status.FAILED
    assert "does not exist" in version.error
    assert version.finished_at is not None


@pytest.mark.django_db
def test_a_version_no_longer_queued_is_not_trained_again(tmp_path):
    version = ModelVersion.objects.create(name="done", status=ModelVersion.Status.SUCCEEDED)

    train_model_version(version_id=version.pk, data_dir=str(tmp_path), options=tiny_options().to_dict())

    version.refresh_from_db()
    assert version.status == ModelVersion.Status.SUCCEEDED
    assert version.error == ""


def training_version(name: str, *, heartbeat_age: datetime.timedelta | None, created_age=datetime.timedelta(0)):
    now = timezone.now()
    version = ModelVersion.objects.create(
        name=name,
        status=ModelVersion.Status.TRAINING,
        heartbeat_at=None if heartbeat_age is None else now - heartbeat_age,
    )
    ModelVersion.objects.filter(pk=version.pk).update(created_at=now - created_age)
    return version


@pytest.mark.django_db
def test_a_version_whose_heartbeat_is_old_is_marked_failed_with_the_reason():
    old = training_version("dead", heartbeat_age=STALE + datetime.timedelta(minutes=1), created_age=STALE * 3)

    failed = model_versions_fail_stale()

    old.refresh_from_db()
    assert failed == [old]
    assert old.status == ModelVersion.Status.FAILED
    assert old.finished_at is not None
    assert "stopped giving signs of life" in old.error
    assert "probably died" in old.error


@pytest.mark.django_db
def test_a_version_with_a_fresh_heartbeat_keeps_training_however_old_it_is():
    alive = training_version("alive", heartbeat_age=datetime.timedelta(minutes=1), created_age=STALE * 10)

    assert model_versions_fail_stale() == []

    alive.refresh_from_db()
    assert alive.status == ModelVersion.Status.TRAINING
    assert alive.error == ""


@pytest.mark.django_db
def test_a_row_from_before_heartbeats_counts_from_its_creation():
    stuck = training_version("stuck", heartbeat_age=None, created_age=STALE * 2)
    new = training_version("new", heartbeat_age=None)

    assert model_versions_fail_stale() == [stuck]

    new.refresh_from_db()
    assert new.status == ModelVersion.Status.TRAINING


@pytest.mark.django_db
def test_only_versions_still_training_are_marked_or_beaten():
    long_ago = timezone.now() - min(STALE * 5, QUEUE_TIMEOUT - datetime.timedelta(minutes=1))
    queued = ModelVersion.objects.create(name="queued", status=ModelVersion.Status.QUEUED)
    done = ModelVersion.objects.create(name="done", status=ModelVersion.Status.SUCCEEDED, heartbeat_at=long_ago)
    ModelVersion.objects.update(created_at=long_ago)

    assert fail_stale_training_versions() == 0
    model_version_heartbeat(version=done)

    assert set(ModelVersion.objects.values_list("status", flat=True)) == {"queued", "succeeded"}
    assert ModelVersion.objects.get(pk=done.pk).heartbeat_at == long_ago
    assert queued.heartbeat_at is None


def aged_version(name: str, status: str, *, age: datetime.timedelta, heartbeat_age=None) -> ModelVersion:
    now = timezone.now()
    heartbeat = None if heartbeat_age is None else now - heartbeat_age
    version = ModelVersion.objects.create(name=name, status=status, heartbeat_at=heartbeat)
    ModelVersion.objects.filter(pk=version.pk).update(created_at=now - age)
    version.refresh_from_db()
    return version


@pytest.mark.django_db
def test_a_version_queued_longer_than_the_timeout_is_marked_failed_with_the_reason():
    lost = aged_version("lost", ModelVersion.Status.QUEUED, age=QUEUE_TIMEOUT + datetime.timedelta(minutes=1))

    assert fail_stale_training_versions() == 1

    lost.refresh_from_db()
    assert lost.status == ModelVersion.Status.FAILED
    assert lost.finished_at is not None
    assert f"No training worker took this version in the {QUEUE_TIMEOUT.total_seconds() / 60:.0f} minutes" in (
        lost.error
    )
    assert "task was probably lost" in lost.error


@pytest.mark.django_db
def test_a_version_queued_within_the_timeout_stays_queued():
    waiting = aged_version("waiting", ModelVersion.Status.QUEUED, age=QUEUE_TIMEOUT - datetime.timedelta(minutes=1))

    assert model_versions_fail_stale() == []

    waiting.refresh_from_db()
    assert (waiting.status, waiting.error) == (ModelVersion.Status.QUEUED, "")


@pytest.mark.django_db
def test_a_version_training_with_a_live_heartbeat_is_not_expired_by_the_queue_timeout():
    running = aged_version(
        "running", ModelVersion.Status.TRAINING, age=QUEUE_TIMEOUT * 3, heartbeat_age=datetime.timedelta(minutes=1)
    )

    assert model_versions_fail_stale() == []

    running.refresh_from_db()
    assert running.status == ModelVersion.Status.TRAINING


@pytest.mark.django_db
def test_a_worker_that_takes_a_version_the_sweep_failed_leaves_it_failed(tmp_path):
    lost = aged_version("lost", ModelVersion.Status.QUEUED, age=QUEUE_TIMEOUT * 2)
    model_versions_fail_stale()

    train_model_version(version_id=lost.pk, data_dir=str(tmp_path), options=tiny_options().to_dict())

    lost.refresh_from_db()
    assert lost.status == ModelVersion.Status.FAILED


def test_the_sweep_runs_periodically():
    schedule = settings.CELERY_BEAT_SCHEDULE["fail-stale-training-versions"]

    assert schedule["task"] == "mlcore.tasks.fail_stale_training_versions"
    assert schedule["schedule"] < settings.TRAINING_STALE_SECONDS


@pytest.mark.training
@pytest.mark.django_db(transaction=True)
def test_a_long_training_run_does_not_delay_diagnoses_and_a_killed_worker_fails_it(tmp_path, make_version, doctor):
    make_version()
    purge_broker()
    patient = Patient.objects.create(mrn="MRN-Q", full_name="Queue Test", created_by=doctor)
    data = write_dataset(tmp_path / "data", per_class=24, patients_per_class=12)
    inference = Worker(tmp_path / "inference.log")
    trainer = Worker(tmp_path / "training.log", queues="training")
    try:
        out = io.StringIO()
        call_command(
            "train_model",
            "--queue",
            data=str(data),
            image_size=75,
            epochs=40,
            patience=100,
            batch_size=16,
            members=1,
            name="queued-run",
            stdout=out,
        )
        assert "Queued version queued-run on the 'training' queue" in out.getvalue()
        wait_until(
            lambda: ModelVersion.objects.filter(name="queued-run", status=ModelVersion.Status.TRAINING).exists(),
            timeout=180,
            explain=lambda: trainer.log()[-3000:],
        )

        scan = scan_create(patient=patient, image=xray_upload(seed=5), uploaded_by=doctor)
        wait_until(
            lambda: Scan.objects.filter(pk=scan.pk, status=Scan.Status.DONE).exists(),
            timeout=180,
            explain=lambda: inference.log()[-3000:],
        )
        version = ModelVersion.objects.get(name="queued-run")
        assert version.status == ModelVersion.Status.TRAINING
        first_beat = version.heartbeat_at
        wait_until(
            lambda: ModelVersion.objects.get(pk=version.pk).heartbeat_at > first_beat + datetime.timedelta(seconds=2),
            timeout=180,
            explain=lambda: trainer.log()[-3000:],
        )
        trainer.kill()  # as the OOM killer or a lost machine would
        time.sleep(2)

        version.refresh_from_db()
        assert version.status == ModelVersion.Status.TRAINING  # nothing else tells the row its worker is gone
        assert model_versions_fail_stale(stale_after=datetime.timedelta(seconds=1)) == [version]
        version.refresh_from_db()
        assert version.status == ModelVersion.Status.FAILED
    finally:
        inference.stop()
        trainer.stop()

    assert re.search(r"Task mlcore\.tasks\.train_model_version\[.+\] received", trainer.log())
    assert not re.search(r"Task mlcore\.tasks\.train_model_version\[", inference.log())
    assert not re.search(r"Scan \d+ done:", trainer.log())
