"""Training runs on a queue of its own: while a training worker trains, the inference worker diagnoses.

Two real Celery workers on one machine, as they would run on two hosts sharing the database and broker.
"""

import io
import re

import pytest
from django.core.management import call_command

from diagnosis.models import Patient, Scan
from diagnosis.services.scans import scan_create
from mlcore.management.commands.train_model import Command as TrainModel
from mlcore.management.commands.train_model import _arguments
from mlcore.models import ModelVersion
from tests.diagnosis.conftest import xray_upload
from tests.diagnosis.workers import Worker, purge_broker, wait_until
from tests.mlcore.synthetic import write_dataset

pytestmark = [pytest.mark.training, pytest.mark.django_db(transaction=True)]


def test_queued_arguments_reproduce_the_chosen_options():
    parser = TrainModel().create_parser("manage.py", "train_model")
    opts = vars(parser.parse_args(["--data", "/d", "--epochs", "3", "--vflip", "--name", "x y", "--queue"]))

    arguments = _arguments(parser, opts)

    assert arguments == ["--data", "/d", "--epochs", "3", "--vflip", "--name", "x y"]
    assert vars(parser.parse_args(arguments)) == opts | {"queue": False}


def test_queued_arguments_repeat_every_data_folder():
    parser = TrainModel().create_parser("manage.py", "train_model")
    given = ["--data", "/a", "--data", "/b", "--allow-unknown-patients", "--duplicate-distance", "-1"]
    opts = vars(parser.parse_args(given))

    assert _arguments(parser, opts) == given


def test_a_long_training_run_does_not_delay_diagnoses(tmp_path, make_version, doctor):
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
            name="queued-run",
            stdout=out,
        )
        assert "Queued on the 'training' queue" in out.getvalue()
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
        assert ModelVersion.objects.get(name="queued-run").status == ModelVersion.Status.TRAINING
    finally:
        inference.stop()
        trainer.stop()

    assert re.search(r"Task mlcore\.tasks\.train_model_version\[.+\] received", trainer.log())
    assert not re.search(r"Task mlcore\.tasks\.train_model_version\[", inference.log())
    assert not re.search(r"Scan \d+ done:", trainer.log())
