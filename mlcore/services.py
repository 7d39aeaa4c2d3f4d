"""Writes for model versions: train and store one, activate one, store an external evaluation."""

from __future__ import annotations

import datetime
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from mlcore.core.dataset import PatientRule
from mlcore.core.evaluation import jsonable
from mlcore.core.model import WeightsError
from mlcore.core.pipeline import (
    MODEL_FILENAME,
    DataFolders,
    ExternalEvaluation,
    RunOptions,
    TrainingRun,
    check_dataset,
    evaluate_folder,
    evaluate_refusals,
    options_for_dataset,
    recorded_split,
    refit_gate,
    train_from_folder,
)
from mlcore.core.preprocessing import PreprocessingSpec
from mlcore.models import ActiveModelVersion, Evaluation, ModelVersion, Plot, TFLiteExport
from mlcore.selectors import model_version_reliability
from mlcore.signals import model_version_activated

GATE_FILENAME = "gate.npz"


def next_version_name() -> str:
    return f"v{ModelVersion.objects.count() + 1}-{timezone.now():%Y%m%d-%H%M%S}"


def model_version_create(
    *,
    data_dir: DataFolders,
    options: RunOptions,
    name: str | None = None,
    command: str = "",
    status: str = ModelVersion.Status.TRAINING,
) -> ModelVersion:
    """The row of a run about to train (or queued); bad input (folder, classes, weights file) is refused
    before it exists."""
    options = options_for_dataset(options, check_dataset(data_dir, options))
    weights = options.model.weights
    if weights not in ("imagenet", "none") and not Path(weights).expanduser().is_file():
        raise WeightsError(f"Weights file {weights} does not exist. Use --weights imagenet|none|PATH.")
    version = ModelVersion(
        name=name or next_version_name(),
        status=status,
        command=command,
        hyperparameters=jsonable(options.hyperparameters()),
        preprocessing=options.preprocessing.as_dict(),
        positive_class=options.positive_class,
        heartbeat_at=timezone.now() if status == ModelVersion.Status.TRAINING else None,
    )
    version.full_clean()
    version.save()
    return version


def model_version_train(
    *,
    data_dir: DataFolders,
    options: RunOptions,
    name: str | None = None,
    command: str = "",
    activate: bool = False,
    activated_by=None,
    log: Callable[[str], None] = print,
    verbose: int = 1,
) -> ModelVersion:
    """Train on a folder (or several, merged) and store everything as a new version; activate it only if
    it succeeded.

    Bad input (folders, classes, positive class, patients, weights file) is refused before any version row
    exists. A run that breaks later is stored as failed, and one stopped with Ctrl-C as interrupted with its
    best weights.
    """
    version = model_version_create(data_dir=data_dir, options=options, name=name, command=command)
    return _train(version, data_dir, options, activate=activate, activated_by=activated_by, log=log, verbose=verbose)


def model_version_queue(
    *,
    data_dir: DataFolders,
    options: RunOptions,
    name: str | None = None,
    command: str = "",
    activate: bool = False,
) -> ModelVersion:
    """A queued version row, and its run handed to a training worker (``celery worker -Q training``)
    as typed values: the row's id and the options as a dict, checked here and again there."""
    from mlcore.tasks import train_model_version

    version = model_version_create(
        data_dir=data_dir, options=options, name=name, command=command, status=ModelVersion.Status.QUEUED
    )
    arguments = {
        "version_id": version.pk,
        "data_dir": str(data_dir) if isinstance(data_dir, str | Path) else [str(folder) for folder in data_dir],
        "options": options.to_dict(),
        "activate": activate,
    }
    transaction.on_commit(lambda: train_model_version.delay(**arguments))
    return version


def model_version_train_queued(
    *,
    version: ModelVersion,
    data_dir: str | Path,
    options: RunOptions,
    activate: bool = False,
    log: Callable[[str], None] = print,
) -> ModelVersion:
    """Train a queued version on a training worker; a version no longer queued (already taken, or
    failed meanwhile) is left alone, so a task delivered twice trains once."""
    claimed = ModelVersion.objects.filter(pk=version.pk, status=ModelVersion.Status.QUEUED).update(
        status=ModelVersion.Status.TRAINING, heartbeat_at=timezone.now()
    )
    version.refresh_from_db()
    if not claimed:
        log(f"Version {version.name} is {version.get_status_display().lower()}, not queued: nothing to train.")
        return version
    return _train(version, data_dir, options, activate=activate, activated_by=None, log=log, verbose=0)


def _train(version, data_dir, options, *, activate, activated_by, log, verbose) -> ModelVersion:
    """Run the pipeline for a version row in TRAINING, beating its heartbeat on every log line and epoch."""

    def log_and_beat(message: str) -> None:
        log(message)
        model_version_heartbeat(version=version)

    work_dir = Path(tempfile.mkdtemp(prefix=f"covidxray-train-{version.pk}-"))
    try:
        run = train_from_folder(
            data_dir,
            options,
            work_dir,
            log=log_and_beat,
            verbose=verbose,
            on_epoch=lambda epoch, logs: model_version_heartbeat(version=version),
        )
        _store_run(version, run)
    except BaseException as error:
        _finish_failed(version, error)
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    if activate and version.status == ModelVersion.Status.SUCCEEDED:
        model_version_activate(version=version, activated_by=activated_by)
    return version


def _finish_failed(version: ModelVersion, error: BaseException) -> None:
    version.status = (
        ModelVersion.Status.INTERRUPTED if isinstance(error, KeyboardInterrupt) else ModelVersion.Status.FAILED
    )
    version.error = f"{type(error).__name__}: {error}"
    version.finished_at = timezone.now()
    version.save(update_fields=["status", "error", "finished_at"])


def model_version_heartbeat(*, version: ModelVersion) -> None:
    """The training process is alive; only a version still training takes the beat."""
    now = timezone.now()
    if ModelVersion.objects.filter(pk=version.pk, status=ModelVersion.Status.TRAINING).update(heartbeat_at=now):
        version.heartbeat_at = now  # the row is saved whole when the run is stored


def model_versions_fail_stale(
    *,
    stale_after: datetime.timedelta | None = None,
    queued_for: datetime.timedelta | None = None,
    now=None,
) -> list[ModelVersion]:
    """Mark failed the versions still "training" whose process gave no sign of life for ``stale_after``
    (a worker killed, a machine gone), and those "queued" longer than ``queued_for`` (their task lost):
    without this they would stay "training" or "queued" for ever.

    A row from before heartbeats counts from its creation time.
    """
    now = now or timezone.now()
    stale_after = stale_after or datetime.timedelta(seconds=settings.TRAINING_STALE_SECONDS)
    queued_for = queued_for or datetime.timedelta(seconds=settings.TRAINING_QUEUE_TIMEOUT_SECONDS)
    return _fail_silent_training(stale_after=stale_after, now=now) + _fail_long_queued(queued_for=queued_for, now=now)


def _fail_silent_training(*, stale_after: datetime.timedelta, now) -> list[ModelVersion]:
    limit = now - stale_after
    stale = ModelVersion.objects.filter(status=ModelVersion.Status.TRAINING).filter(
        Q(heartbeat_at__lt=limit) | Q(heartbeat_at__isnull=True, created_at__lt=limit)
    )
    failed = []
    for version in stale:
        last = version.heartbeat_at or version.created_at
        # Only if it did not beat meanwhile: the same heartbeat as read, still training.
        marked = ModelVersion.objects.filter(
            pk=version.pk, status=ModelVersion.Status.TRAINING, heartbeat_at=version.heartbeat_at
        ).update(
            status=ModelVersion.Status.FAILED,
            finished_at=now,
            error=(
                f"The training process stopped giving signs of life: last heartbeat {last:%Y-%m-%d %H:%M:%S %Z}, "
                f"none for {stale_after.total_seconds() / 60:.0f} minutes. The worker probably died "
                "(killed, out of memory, machine restarted); train again."
            ),
        )
        if marked:
            version.refresh_from_db()
            failed.append(version)
    return failed


def _fail_long_queued(*, queued_for: datetime.timedelta, now) -> list[ModelVersion]:
    failed = []
    for version in ModelVersion.objects.filter(status=ModelVersion.Status.QUEUED, created_at__lt=now - queued_for):
        # Only if still queued: a training worker that took it meanwhile keeps it.
        marked = ModelVersion.objects.filter(pk=version.pk, status=ModelVersion.Status.QUEUED).update(
            status=ModelVersion.Status.FAILED,
            finished_at=now,
            error=(
                f"No training worker took this version in the {queued_for.total_seconds() / 60:.0f} minutes since "
                f"it was queued ({version.created_at:%Y-%m-%d %H:%M:%S %Z}). Its task was probably lost (the "
                "broker restarted or purged) or no worker consumes the training queue (celery worker -Q training); "
                "queue it again."
            ),
        )
        if marked:
            version.refresh_from_db()
            failed.append(version)
    return failed


@transaction.atomic
def _store_run(version: ModelVersion, run: TrainingRun) -> None:
    outcome = run.outcome
    version.status = ModelVersion.Status.INTERRUPTED if outcome.interrupted else ModelVersion.Status.SUCCEEDED
    version.finished_at = timezone.now()
    version.class_names = run.class_names
    version.model_summary = jsonable(run.model_summary)
    version.history = jsonable(
        outcome.history
        | {"best_epoch": outcome.best_epoch, "phase_seconds": outcome.phase_seconds}
        | ({"member_best_epochs": outcome.member_best_epochs} if outcome.member_best_epochs else {})
    )
    version.wall_time_seconds = outcome.wall_time_seconds
    version.images_per_second = outcome.images_per_second
    version.dataset_summary = jsonable(run.dataset_summary)
    version.threshold = run.threshold
    version.threshold_rule = run.threshold_rule
    version.validation_metrics = jsonable(run.validation_metrics)
    version.metrics = jsonable(run.test_metrics)
    version.environment = run.environment
    version.provenance = jsonable(run.provenance)
    version.shortcut_audit = jsonable(run.shortcut_audit)
    version.temperature = run.temperature
    version.indeterminate_low, version.indeterminate_high = run.band.low, run.band.high
    version.heatmap_scale = run.heatmap_scale
    version.reliability = jsonable(run.reliability)
    if outcome.interrupted:
        version.error = "Interrupted (Ctrl-C); the best weights seen so far are kept, not evaluated."
    with run.model_path.open("rb") as handle:
        version.model_file.save(MODEL_FILENAME, File(handle), save=False)
    if run.gate is not None:
        gate_path = run.model_path.with_name(GATE_FILENAME)
        run.gate.save(gate_path)
        with gate_path.open("rb") as handle:
            version.gate_file.save(GATE_FILENAME, File(handle), save=False)
    version.full_clean()
    version.save()
    evaluation = None
    if run.test_metrics:
        evaluation = Evaluation.objects.create(
            version=version,
            kind=Evaluation.Kind.TEST_SPLIT,
            data_dir=run.dataset_summary["root"],
            threshold=run.threshold,
            dataset_summary=jsonable(run.dataset_summary),
            metrics=jsonable(run.test_metrics),
        )
    _store_plots(version, run.plots, evaluation=evaluation, evaluation_prefix="test_")


def _store_plots(version, plots: dict[str, tuple[str, bytes]], *, evaluation, evaluation_prefix: str):
    for key, (title, png) in plots.items():
        belongs = evaluation if evaluation is not None and key.startswith(evaluation_prefix) else None
        plot = Plot(version=version, evaluation=belongs, key=key.replace("_", "-"), title=title)
        plot.image.save(f"{key}.png", ContentFile(png), save=False)
        plot.save()


@transaction.atomic
def model_version_activate(*, version: ModelVersion, activated_by=None) -> ActiveModelVersion:
    """Make this version the one that diagnoses new scans; the previous one stops being active."""
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if not version.is_usable:
        raise ValidationError(
            f"Version {version.name} is {version.get_status_display().lower()}; "
            "only a succeeded version with a model file can be activated."
        )
    active, _ = ActiveModelVersion.objects.update_or_create(
        singleton=1, defaults={"version": version, "activated_by": activated_by}
    )
    transaction.on_commit(lambda: model_version_activated.send(sender=ModelVersion, version=version), robust=True)
    return active


@contextmanager
def local_model_file(version: ModelVersion):
    """A local path to the version's model file, whatever storage backend holds it."""
    try:
        local_path = Path(version.model_file.path)
    except NotImplementedError:
        local_path = None
    if local_path is not None:
        yield local_path
        return
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / MODEL_FILENAME
        with version.model_file.open("rb") as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink)
        yield target


# Evaluations on folders other than the version's own split; staff say which are this hospital's images.
OTHER_FOLDER_KINDS = (Evaluation.Kind.EXTERNAL, Evaluation.Kind.LOCAL)


def _check_other_folder_kind(kind: str) -> None:
    if kind not in OTHER_FOLDER_KINDS:
        raise ValidationError(
            f"An evaluation on another folder is external or local, not {kind!r}; "
            "only training makes a held-out test split."
        )


def evaluation_create_external(
    *,
    version: ModelVersion,
    data_dir: DataFolders,
    kind: str = Evaluation.Kind.EXTERNAL,
    class_aliases=None,
    log: Callable[[str], None] = print,
) -> Evaluation:
    """Evaluate a stored version on another labelled folder and store the metrics and plots.

    ``kind`` LOCAL marks the folder as this hospital's own labelled images: scan pages quote it first.
    """
    _check_other_folder_kind(kind)
    if not version.is_usable:
        raise ValidationError(f"Version {version.name} has no usable model to evaluate.")
    with local_model_file(version) as model_path:
        result: ExternalEvaluation = evaluate_folder(
            data_dir,
            model_path=model_path,
            class_names=version.class_names,
            positive_class=version.positive_class,
            threshold=version.threshold,
            preprocessing=PreprocessingSpec.from_stored(version.preprocessing),
            reliability=model_version_reliability(version=version),
            class_aliases=class_aliases,
            log=log,
        )
    with transaction.atomic():
        evaluation = Evaluation.objects.create(
            version=version,
            kind=kind,
            data_dir=result.dataset_summary["root"],
            threshold=version.threshold,
            dataset_summary=jsonable(result.dataset_summary),
            metrics=jsonable(result.metrics),
        )
        prefixed = {f"external_{evaluation.pk}_{key}": value for key, value in result.plots.items()}
        _store_plots(version, prefixed, evaluation=evaluation, evaluation_prefix="external_")
    return evaluation


def evaluation_create_refusals(*, version: ModelVersion, data_dir: str | Path, log: Callable[[str], None] = print):
    """Run the input gate of a version over folders of images it should refuse; store the shares refused."""
    if not version.is_usable:
        raise ValidationError(f"Version {version.name} has no usable model to evaluate.")
    with local_model_file(version) as model_path:
        result = evaluate_refusals(
            data_dir,
            model_path=model_path,
            positive_class=version.positive_class,
            class_names=version.class_names,
            threshold=version.threshold,
            preprocessing=PreprocessingSpec.from_stored(version.preprocessing),
            reliability=model_version_reliability(version=version),
            log=log,
        )
    return Evaluation.objects.create(
        version=version,
        kind=Evaluation.Kind.OUT_OF_DISTRIBUTION,
        data_dir=result.dataset_summary["root"],
        threshold=version.threshold,
        dataset_summary=jsonable(result.dataset_summary),
        metrics=jsonable(result.metrics),
    )


def evaluation_kind_set(*, evaluation: Evaluation, kind: str) -> Evaluation:
    """Mark an evaluation on another folder as local (this hospital's images) or external.

    A held-out test split stays what it is: its images come from the training sources whatever staff say.
    """
    _check_other_folder_kind(kind)
    if evaluation.kind == Evaluation.Kind.TEST_SPLIT:
        raise ValidationError(
            f"Evaluation {evaluation.pk} is the held-out test split of {evaluation.version}; it cannot be relabelled."
        )
    if evaluation.kind == Evaluation.Kind.OUT_OF_DISTRIBUTION:
        raise ValidationError(
            f"Evaluation {evaluation.pk} is an input-gate check on images to refuse; it has no figures to quote."
        )
    evaluation.kind = kind
    evaluation.full_clean()
    evaluation.save(update_fields=["kind"])
    return evaluation


def tflite_export_create(
    *,
    version: ModelVersion,
    data_dir: str | Path,
    quantization: str,
    max_auc_difference: float = 0.01,
    min_label_agreement: float = 0.98,
    class_aliases=None,
    log: Callable[[str], None] = print,
) -> TFLiteExport:
    """Convert a version to TFLite, measure its agreement with Keras on a labelled folder, store both.

    Verified (usable by workers) only if labels agree on at least ``min_label_agreement`` of the images
    and, where both classes are present, the AUC moves by at most ``max_auc_difference``.
    """
    import numpy as np

    from mlcore.core.dataset import discover_dataset, load_images
    from mlcore.core.inference import load_model, predict_probabilities
    from mlcore.core.tflite import TFLitePredictor, agreement, export_tflite

    if not version.is_usable:
        raise ValidationError(f"Version {version.name} has no usable model to export.")
    spec = PreprocessingSpec.from_stored(version.preprocessing)
    dataset = discover_dataset(data_dir, class_aliases=class_aliases)
    images, items, _ = load_images(dataset.items, spec, root=dataset.root)
    labels = np.array([1 if item.label == version.positive_class else 0 for item in items])
    with local_model_file(version) as path:
        model = load_model(path)
    log(f"Converting {version.name} to TFLite ({quantization}) and checking it on {len(items)} images.")
    rng = np.random.default_rng(0)
    calibration = images[rng.permutation(len(images))[:100]]
    content = export_tflite(model, quantization=quantization, representative=calibration)
    reference = predict_probabilities(model, images)
    lite = TFLitePredictor(content)
    candidate = np.concatenate([lite.probabilities(images[i : i + 32]) for i in range(0, len(images), 32)])
    measured = agreement(
        reference,
        candidate,
        positive_index=version.class_names.index(version.positive_class),
        threshold=version.threshold,
        labels=labels,
    )
    verified = measured["label_agreement"] >= min_label_agreement and (
        "auc_difference" not in measured or abs(measured["auc_difference"]) <= max_auc_difference
    )
    measured |= {"max_auc_difference": max_auc_difference, "min_label_agreement": min_label_agreement}
    with transaction.atomic():
        export, _ = TFLiteExport.objects.update_or_create(
            version=version,
            quantization=quantization,
            defaults={"checked_on": str(dataset.root), "agreement": jsonable(measured), "verified": verified},
        )
        export.model_file.save(f"model-{quantization}.tflite", ContentFile(content))
    return export


def model_version_gate_refit(
    *,
    version: ModelVersion,
    data_dir: DataFolders,
    quantile: float,
    refuse_examples: str | Path | None = None,
    class_aliases=None,
    log=print,
) -> ModelVersion:
    """Fit the version's input gate anew on the folders and split it was trained on, and store it;
    with ``refuse_examples`` (one sub-folder per kind), its view check too."""
    if not version.is_usable:
        raise ValidationError(f"Version {version.name} has no usable model.")
    hyperparameters = version.hyperparameters or {}
    with local_model_file(version) as model_path:
        result = refit_gate(
            data_dir,
            model_path=model_path,
            positive_class=version.positive_class,
            preprocessing=PreprocessingSpec.from_stored(version.preprocessing),
            **recorded_split(hyperparameters),
            class_aliases=class_aliases,
            patients=PatientRule.recorded(hyperparameters),
            quantile=quantile,
            refuse_examples=refuse_examples,
            log=log,
        )
    with tempfile.TemporaryDirectory() as folder, transaction.atomic():
        path = Path(folder) / GATE_FILENAME
        result.gate.save(path)
        with path.open("rb") as handle:
            version.gate_file.save(GATE_FILENAME, File(handle), save=False)
        version.reliability = jsonable((version.reliability or {}) | {"gate": result.gate.summary()})
        version.metrics = jsonable((version.metrics or {}) | {"gate": result.refused})
        version.full_clean()
        version.save()
        for evaluation in version.evaluations.filter(kind=Evaluation.Kind.TEST_SPLIT):
            evaluation.metrics = jsonable(evaluation.metrics | {"gate": result.refused})
            evaluation.save(update_fields=["metrics"])
    return version
