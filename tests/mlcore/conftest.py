"""The shared training run: ``train_model`` trained once per test run, its rows and files handed to each test."""

import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.core import serializers
from django.core.management import call_command

from mlcore import services
from tests.mlcore.synthetic import write_dataset

FAST = {"image_size": 75, "epochs": 2, "batch_size": 16, "members": 1, "verbosity": 0}


def train(*folders, **options) -> str:
    """``train_model`` on one or more ``--data`` folders with the fast test settings; returns what it printed."""
    out = io.StringIO()
    data = [argument for folder in folders for argument in ("--data", str(folder))]
    call_command("train_model", *data, stdout=out, **(FAST | options))
    return out.getvalue()


def train_three_classes(root: Path, name: str) -> tuple[Path, Path]:
    """COVID and NORMAL in one folder, OTHER_PNEUMONIA (spelt "pneumonia") in another, the split drawn by
    its own seed (7), read by the mean of two networks; returns the folders."""
    first = write_dataset(root / "dev", per_class=18, patients_per_class=9, sources=("site-a",))
    second = write_dataset(
        root / "other", per_class=18, patients_per_class=9, folders={"OTHER_PNEUMONIA": "pneumonia"}, seed=1
    )
    train(first, second, name=name, split_seed=7, members=2)
    return first, second


@dataclass(frozen=True)
class StoredRun:
    output: str
    rows: str
    files: Path
    data: Path
    three_class_folders: tuple[Path, Path]
    epoch_beats: list[int]


@pytest.fixture(scope="session")  # not "module": pytest rebuilds those when another module's test runs between
def stored_run(django_db_setup, django_db_blocker, tmp_path_factory) -> StoredRun:
    """Two runs that many tests read (a minute each, most of it graph tracing): ``train_model --activate
    --name tiny --allow-unknown-patients`` on one folder, then version ``three`` of three classes from two
    folders. Their mlcore rows and stored files are put aside and the database emptied as a transactional
    test leaves it. ``epoch_beats``: the epochs after which the service beat tiny's heartbeat."""
    folder = tmp_path_factory.mktemp("stored-run")
    data = write_dataset(folder / "data", per_class=24, patients_per_class=12)
    # A real folder has a broken file or two, without a manifest row: the run skips and lists it.
    (data / "COVID" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    epoch_beats = []
    run_pipeline = services.train_from_folder

    def recording_beats(*arguments, on_epoch, **keywords):
        def beat(epoch, logs):
            epoch_beats.append(epoch)
            on_epoch(epoch, logs)

        return run_pipeline(*arguments, on_epoch=beat, **keywords)

    with django_db_blocker.unblock():
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(services, "train_from_folder", recording_beats)
            output = train(data, activate=True, name="tiny", allow_unknown_patients=True)
        three_class_folders = train_three_classes(folder / "three", "three")
        rows = serializers.serialize(
            "json",
            [row for model in apps.get_app_config("mlcore").get_models() for row in model.objects.order_by("pk")],
        )
        call_command("flush", interactive=False, verbosity=0)
    shutil.copytree(settings.MODEL_STORE_DIR, folder / "models")
    shutil.rmtree(settings.MODEL_STORE_DIR)
    return StoredRun(
        output=output,
        rows=rows,
        files=folder / "models",
        data=data,
        three_class_folders=three_class_folders,
        epoch_beats=epoch_beats,
    )


@pytest.fixture
def trained(stored_run, transactional_db) -> str:
    """The stored runs' rows and files as the runs left them; returns what tiny's command printed."""
    shutil.copytree(stored_run.files, settings.MODEL_STORE_DIR, dirs_exist_ok=True)
    for row in serializers.deserialize("json", stored_run.rows):
        row.save()
    return stored_run.output
