"""A whole training run, and the evaluation of a stored model on another folder; no Django here."""

from __future__ import annotations

import os
import platform
import time
import typing
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path

import numpy as np

from mlcore.core import plots
from mlcore.core.calibration import BAND_MAX_ERROR, Band, apply_temperature
from mlcore.core.classes import DEFAULT_POSITIVE_CLASS
from mlcore.core.dataset import (
    LEGACY_PATIENT_RULE,
    Dataset,
    DatasetError,
    PatientGroups,
    PatientRule,
    Split,
    binarize,
    discover_dataset,
    discover_image_folders,
    group_patients,
    load_images,
    resolve_patients,
    split_dataset,
)
from mlcore.core.evaluation import THRESHOLD_RULE, call_class, evaluate, jsonable, proportion_with_interval
from mlcore.core.gate import (
    DEFAULT_QUANTILE,
    IMAGE_CHECK_UNAVAILABLE,
    FeatureGate,
    colour_share,
    gate_features,
    screen,
    view_features,
)
from mlcore.core.gradcam import readout_function, run_readout
from mlcore.core.imaging import DICOM, read_dicom_header, sniff_format
from mlcore.core.inference import load_model
from mlcore.core.model import ModelConfig, build_network, combine_members, summarize
from mlcore.core.predictor import Reliability
from mlcore.core.preprocessing import PreprocessingSpec, to_display
from mlcore.core.provenance import run_provenance
from mlcore.core.reliability import fit_reliability, reliability_figures
from mlcore.core.shortcuts import shortcut_audit
from mlcore.core.training import (
    TrainingConfig,
    TrainingOutcome,
    ensemble_outcome,
    seed_everything,
    train_network,
)

DataFolders = str | Path | Sequence[str | Path]  # one --data folder or several
MODEL_FILENAME = "model.keras"
MEMBER_SEED_STRIDE = 100  # member k of an ensemble trains with seed + 100 k
SAMPLES_PER_CLASS = 40


@dataclass
class RunOptions:
    model: ModelConfig
    training: TrainingConfig
    preprocessing: PreprocessingSpec
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    positive_class: str = DEFAULT_POSITIVE_CLASS
    class_aliases: dict | None = None
    patients: PatientRule = field(default_factory=PatientRule)
    gate_quantile: float = DEFAULT_QUANTILE
    band_max_error: float = BAND_MAX_ERROR
    refuse_examples: str | None = None  # a folder of images to refuse, one sub-folder per kind: the view check
    split_seed: int | None = None  # draws the patient split; None: the training seed draws it too
    members: int = 1  # networks trained on the same split whose mean probabilities are the reading

    def __post_init__(self):
        if self.members < 1:
            raise ValueError(f"An ensemble needs at least one network (--members {self.members}).")

    @property
    def patient_split_seed(self) -> int:
        """A separate split seed lets runs share one split and differ only in their initial weights."""
        return self.training.seed if self.split_seed is None else self.split_seed

    @property
    def member_seeds(self) -> list[int]:
        """Each network's training seed: the first is the run's own, so its first network is a one-network run."""
        return [self.training.seed + MEMBER_SEED_STRIDE * index for index in range(self.members)]

    def hyperparameters(self) -> dict:
        return {
            "model": self.model.as_dict(),
            "training": self.training.as_dict(),
            "preprocessing": self.preprocessing.as_dict(),
            "validation_fraction": self.validation_fraction,
            "test_fraction": self.test_fraction,
            "positive_class": self.positive_class,
            "patients": self.patients.as_dict(),
            "gate_quantile": self.gate_quantile,
            "band_max_error": self.band_max_error,
            "refuse_examples": self.refuse_examples,
            "split_seed": self.patient_split_seed,
            "members": self.members,
        }

    def to_dict(self) -> dict:
        """Plain JSON types, to cross a task queue; ``from_dict`` rebuilds the same options."""
        return jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> RunOptions:
        options = _dataclass_from_dict(cls, data)
        if options.class_aliases:
            options.class_aliases = {name: tuple(names) for name, names in options.class_aliases.items()}
        return options


def recorded_split(hyperparameters: dict) -> dict:
    """How a stored version drew its split, as ``redraw_split`` takes it; versions from before ``split_seed``
    drew it with the training seed."""
    split_seed = hyperparameters.get("split_seed")
    return {
        "seed": split_seed if split_seed is not None else hyperparameters.get("training", {}).get("seed", 42),
        "validation_fraction": hyperparameters.get("validation_fraction", 0.15),
        "test_fraction": hyperparameters.get("test_fraction", 0.15),
    }


def _dataclass_from_dict(cls, data: dict):
    """A dataclass from ``asdict`` output, nested dataclasses included; a key it does not know is an error
    (a worker running other code than the side that queued the run)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls) if f.init}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__} has no option {', '.join(sorted(unknown))}.")
    values = {}
    for name, value in data.items():
        hint = hints[name]
        values[name] = _dataclass_from_dict(hint, value) if is_dataclass(hint) and isinstance(value, dict) else value
    return cls(**values)


@dataclass
class TrainingRun:
    """What a finished (or interrupted) run produced, ready to be stored as a model version."""

    class_names: list[str]
    positive_class: str
    preprocessing: PreprocessingSpec
    hyperparameters: dict
    dataset_summary: dict
    model_summary: dict
    outcome: TrainingOutcome
    model_path: Path
    threshold: float | None = None
    threshold_rule: str = THRESHOLD_RULE
    temperature: float | None = None
    band: Band = field(default_factory=lambda: Band(None, None))
    gate: FeatureGate | None = None
    heatmap_scale: float | None = None
    reliability: dict = field(default_factory=dict)
    validation_metrics: dict = field(default_factory=dict)
    test_metrics: dict = field(default_factory=dict)
    plots: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    shortcut_audit: dict = field(default_factory=dict)  # baselines beside the model (mlcore.core.shortcuts)
    provenance: dict = field(default_factory=dict)  # what reproduces the run: commit, file hashes, splits


def check_dataset(data_dirs: DataFolders, options: RunOptions) -> Dataset:
    """Fail fast, before any image is decoded, on folders that cannot be trained on: too few classes, an
    unknown class folder, a positive class the data lacks, images without patients (unless allowed), or
    a class with too few patients to split. Returns the dataset with its patients resolved."""
    dataset = discover_dataset(data_dirs, class_aliases=options.class_aliases, min_classes=2)
    if options.positive_class not in dataset.class_names:
        raise DatasetError(
            f"Positive class {options.positive_class!r} is not a class of this dataset "
            f"({', '.join(dataset.class_names)}); choose one with --positive-class."
        )
    dataset = resolve_patients(dataset, options.patients)
    split_dataset(
        [item.label for item in dataset.items],
        [item.patient_id for item in dataset.items],
        validation_fraction=options.validation_fraction,
        test_fraction=options.test_fraction,
        seed=options.patient_split_seed,
    )
    return dataset


def options_for_dataset(options: RunOptions, dataset: Dataset) -> RunOptions:
    """The network gets one output per class the data has (two, three, ...), recorded as it is built."""
    return replace(options, model=replace(options.model, num_classes=len(dataset.class_names)))


def train_from_folder(
    data_dirs: DataFolders,
    options: RunOptions,
    work_dir: Path,
    *,
    log: Callable[[str], None] = print,
    verbose: int = 1,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> TrainingRun:
    """``on_epoch(epoch, logs)`` is called after every training epoch (a caller's heartbeat, for one)."""
    dataset = check_dataset(data_dirs, options)
    options = options_for_dataset(options, dataset)
    refuse = refuse_features(options.refuse_examples, options.preprocessing, log=log)
    log(f"Loading {len(dataset.items)} images from {dataset.location} at {options.preprocessing.image_size}px.")
    images, items, skipped = load_images(dataset.items, options.preprocessing, root=dataset.root)
    skipped = dataset.skipped + skipped
    if skipped:
        log(f"Skipped {len(skipped)} unreadable file(s); they are listed in the dataset summary.")
    labels = [item.label for item in items]
    if len(set(labels)) < 2:
        raise DatasetError("After skipping unreadable files, one class has no images left.")
    patients = group_patients(items, rule=options.patients, images=images)
    if patients.summary.get("duplicate_groups_joined"):
        log(
            f"Near-duplicate images joined {patients.summary['duplicate_groups_joined']} group(s) of patients "
            "into one split each."
        )
    split = split_dataset(
        labels,
        patients.keys,
        validation_fraction=options.validation_fraction,
        test_fraction=options.test_fraction,
        seed=options.patient_split_seed,
    )
    y = binarize(labels, dataset.class_names)
    positive_index = dataset.class_names.index(options.positive_class)
    summary = _dataset_summary(dataset, items, split.as_dict(), skipped, patients=patients)
    log(
        "Split (images): " + ", ".join(f"{name} {summary['counts'][name]}" for name in ("train", "validation", "test"))
    )
    provenance = run_provenance(
        paths=[item.path for item in items],
        split=split.as_dict(),
        roots=dataset.roots,
        seeds={"training": options.training.seed, "split": options.patient_split_seed}
        | ({"networks": options.member_seeds} if options.members > 1 else {}),
    )

    work_dir.mkdir(parents=True, exist_ok=True)
    network, outcome = _train_members(
        options,
        x_train=images[split.train],
        y_train=y[split.train],
        x_val=images[split.validation],
        y_val=y[split.validation],
        sources=[items[i].source for i in split.train],
        positive_index=positive_index,
        log=log,
        verbose=verbose,
        on_epoch=on_epoch,
    )
    model_path = work_dir / MODEL_FILENAME
    network.save(model_path)
    run = TrainingRun(
        class_names=dataset.class_names,
        positive_class=options.positive_class,
        preprocessing=options.preprocessing,
        hyperparameters=options.hyperparameters(),
        dataset_summary=summary,
        model_summary=summarize(network),
        outcome=outcome,
        model_path=model_path,
        environment=_environment(),
        provenance=provenance,
    )
    run.plots.update(_training_plots(outcome, images, items, split.as_dict(), dataset.class_names, options))
    if outcome.interrupted:
        return run

    readout = readout_function(network, positive_index=positive_index, image_size=options.preprocessing.image_size)
    batch = options.training.batch_size
    outputs = {
        name: run_readout(readout, images[indices], batch_size=batch)
        for name, indices in (("train", split.train), ("validation", split.validation), ("test", split.test))
    }
    gate_inputs = {
        name: gate_features(outputs[name][1], images[indices])
        for name, indices in (("train", split.train), ("validation", split.validation), ("test", split.test))
    }
    fitted = fit_reliability(
        y_validation=y[split.validation],
        raw_validation=outputs["validation"][0],
        gate_train=gate_inputs["train"],
        train_labels=np.asarray(labels)[split.train],
        train_groups=[patients.keys[i] for i in split.train],
        gate_validation=gate_inputs["validation"],
        cams_validation=outputs["validation"][2],
        positive_index=positive_index,
        gate_quantile=options.gate_quantile,
        band_max_error=options.band_max_error,
        refuse=refuse,
    )
    run.threshold, run.temperature, run.band = fitted.threshold, fitted.temperature, fitted.band
    run.gate, run.heatmap_scale, run.reliability = fitted.gate, fitted.heatmap_scale, fitted.summary
    for name, indices, target in (
        ("validation", split.validation, "validation_metrics"),
        ("test", split.test, "test_metrics"),
    ):
        raw = outputs[name][0]
        calibrated = apply_temperature(raw, fitted.temperature)
        y_positive = y[indices][:, positive_index]
        metrics = evaluate(
            labels=[items[i].label for i in indices],
            probabilities=calibrated,
            threshold=run.threshold,
            class_names=dataset.class_names,
            positive_class=options.positive_class,
            sources=[items[i].source for i in indices],
            patient_ids=[items[i].patient_id for i in indices],
            seed=options.training.seed,
        )
        refused = [not verdict.assessable for verdict in fitted.gate.verdicts(gate_inputs[name])]
        metrics |= reliability_figures(
            y_positive=y_positive,
            raw_positive=raw[:, positive_index],
            calibrated_positive=calibrated[:, positive_index],
            threshold=run.threshold,
            band=fitted.band,
            refused=refused,
            labels=[items[i].label for i in indices],
        )
        setattr(run, target, metrics)
    run.plots.update(evaluation_plots(run.test_metrics, prefix="test"))
    run.shortcut_audit = shortcut_audit(
        images=images,
        labels=labels,
        sources=[item.source for item in items],
        patient_ids=[item.patient_id for item in items],
        split=split.as_dict(),
        positive_class=options.positive_class,
        model_auc=run.test_metrics.get("auc"),
        seed=options.training.seed,
    )
    return run


def _train_members(
    options: RunOptions,
    *,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    sources: list,
    positive_index: int,
    log: Callable[[str], None],
    verbose: int,
    on_epoch: Callable[[int, dict], None] | None,
):
    """``options.members`` networks on the same split (its arrays taken once), one after another, each
    seeded before it is built
    -> (one model whose output is their mean, their outcome as one). Ctrl-C during a later network keeps
    the finished ones and drops the interrupted one; during the first it keeps that network's best
    weights, unevaluated, as a one-network run always has."""
    pretrained = options.model.weights != "none"
    networks, outcomes = [], []
    for index, seed in enumerate(options.member_seeds):
        if options.members > 1:
            log(f"Network {index + 1} of {options.members} (seed {seed}).")
        seed_everything(seed)  # before building: the seed fixes the initial weights
        parts = build_network(options.model)  # options_for_dataset gave it one output per class
        if pretrained:
            parts.base.trainable = False
        outcome = train_network(
            parts,
            x_train=x_train,
            y_train=y_train,
            x_val=x_val,
            y_val=y_val,
            config=replace(options.training, seed=seed),
            pretrained=pretrained,
            black=options.preprocessing.black,
            value_range=(options.preprocessing.black, 1.0),
            positive_index=positive_index,
            sources=sources,
            verbose=verbose,
            log=log,
            on_epoch=on_epoch,
        )
        if outcome.interrupted and networks:
            log(f"Keeping the {len(networks)} finished network(s); network {index + 1} is dropped.")
            break
        networks.append(parts.model)
        outcomes.append(outcome)
        if outcome.interrupted:
            break
    return combine_members(networks), ensemble_outcome(outcomes)


def _dataset_summary(
    dataset: Dataset, items, split: dict, skipped: list[dict], *, patients: PatientGroups | None = None
) -> dict:
    per_split = {}
    sources = {}
    folders = {}
    for name, indices in split.items():
        counts = {label: 0 for label in dataset.class_names}
        for i in indices:
            counts[items[i].label] += 1
            key = items[i].source or "unknown"
            sources.setdefault(key, {s: {c: 0 for c in dataset.class_names} for s in split})
            sources[key][name][items[i].label] += 1
            folder = str(items[i].folder or dataset.root)
            folders.setdefault(folder, {s: {c: 0 for c in dataset.class_names} for s in split})
            folders[folder][name][items[i].label] += 1
        per_split[name] = counts
    return {
        "root": dataset.location,
        "roots": [str(root) for root in dataset.roots],
        "class_names": dataset.class_names,
        "images": len(items),
        "patients_known": sum(1 for item in items if item.patient_id),
        "per_split": per_split,
        "counts": {name: len(indices) for name, indices in split.items()},
        "per_folder": folders if len(dataset.roots) > 1 else {},
        "per_source": sources if any(item.source for item in items) else {},
        "patients": patients.summary if patients is not None else {},
        "skipped": skipped,
    }


def _training_plots(outcome, images, items, split, class_names, options) -> dict[str, tuple[str, bytes]]:
    spec = options.preprocessing
    result = {}
    if outcome.history.get("loss"):
        result["history_accuracy"] = (
            "Accuracy per epoch",
            plots.history_png(outcome.history, metric="accuracy"),
        )
        result["history_loss"] = ("Loss per epoch", plots.history_png(outcome.history, metric="loss"))
    for class_name in class_names:
        chosen = [i for i, item in enumerate(items) if item.label == class_name][:SAMPLES_PER_CLASS]
        result[f"samples_{class_name.lower()}"] = (
            f"First {len(chosen)} {class_name} images",
            plots.image_grid_png(
                [to_display(images[i], spec) for i in chosen],
                [items[i].path.name[:18] for i in chosen],
                title=f"{class_name}: first {len(chosen)} images",
            ),
        )
    examples = [
        (part, i)
        for part in ("train", "test")
        for class_name in class_names
        for i in [j for j in split[part] if items[j].label == class_name][:4]
    ]
    result["train_test_examples"] = (
        "Training and test images with their labels",
        plots.image_grid_png(
            [to_display(images[i], spec) for _, i in examples],
            [f"{part}: {items[i].label}" for part, i in examples],
            title="Training (first row) and test (second row) images",
        ),
    )
    return result


def evaluation_plots(metrics: dict, *, prefix: str) -> dict[str, tuple[str, bytes]]:
    result = {
        f"{prefix}_confusion_counts": (
            "Confusion matrix (counts)",
            plots.confusion_png(metrics, percent=False),
        ),
        f"{prefix}_confusion_percent": (
            "Confusion matrix (percent)",
            plots.confusion_png(metrics, percent=True),
        ),
        f"{prefix}_calibration": ("Reliability (calibration)", plots.calibration_png(metrics)),
    }
    if metrics.get("roc"):
        positive = metrics.get("positive_class", "positive")
        result[f"{prefix}_roc"] = (f"ROC curve ({positive} against the rest)", plots.roc_png(metrics))
    if metrics.get("per_class"):
        result[f"{prefix}_called_positive"] = (
            "Share of each class called positive",
            plots.called_positive_png(metrics),
        )
    return result


@dataclass
class ExternalEvaluation:
    dataset_summary: dict
    metrics: dict
    plots: dict[str, tuple[str, bytes]]
    seconds: float


def evaluate_folder(
    data_dirs: DataFolders,
    *,
    model_path: Path,
    class_names: list[str],
    positive_class: str,
    threshold: float,
    preprocessing: PreprocessingSpec,
    reliability: Reliability,
    class_aliases: dict | None = None,
    batch_size: int = 32,
    log: Callable[[str], None] = print,
) -> ExternalEvaluation:
    """Every image of another folder is test data for a stored model (external validation).

    The folder may hold any subset of the model's classes (only OTHER_PNEUMONIA, say: then the share called
    positive is what can be measured); a class the model does not know is refused. Probabilities are the
    version's calibrated ones; the gate's refusals are counted per class folder.
    """
    started = time.perf_counter()
    dataset = discover_dataset(data_dirs, class_aliases=class_aliases, min_classes=1)
    unknown = [name for name in dataset.class_names if name not in class_names]
    if unknown:
        raise DatasetError(
            f"The folder holds class {', '.join(unknown)}, which this model was not trained on "
            f"(its classes: {', '.join(class_names)}). Leave that folder out or evaluate another version."
        )
    images, items, skipped = _load_all(dataset, preprocessing, log=log)
    positive_index = class_names.index(positive_class)
    raw, refused, _ = _read_images(model_path, images, items, positive_index, preprocessing, reliability, batch_size)
    calibrated = apply_temperature(raw, reliability.temperature)
    y_positive = np.array([1 if item.label == positive_class else 0 for item in items])
    metrics = evaluate(
        labels=[item.label for item in items],
        probabilities=calibrated,
        threshold=threshold,
        class_names=class_names,
        positive_class=positive_class,
        sources=[item.source for item in items],
        patient_ids=[item.patient_id for item in items],
    )
    metrics |= reliability_figures(
        y_positive=y_positive,
        raw_positive=raw[:, positive_index],
        calibrated_positive=calibrated[:, positive_index],
        threshold=threshold,
        band=reliability.band,
        refused=refused,
        labels=[item.label for item in items],
    )
    if reliability.gate is None:
        metrics["gate"]["unavailable"] = IMAGE_CHECK_UNAVAILABLE
    summary = _dataset_summary(dataset, items, {"test": list(range(len(items)))}, dataset.skipped + skipped)
    return ExternalEvaluation(
        dataset_summary=summary,
        metrics=metrics,
        plots=evaluation_plots(metrics, prefix="external"),
        seconds=time.perf_counter() - started,
    )


def evaluate_refusals(
    data_dir: str | Path,
    *,
    model_path: Path,
    positive_class: str,
    class_names: list[str],
    threshold: float,
    preprocessing: PreprocessingSpec,
    reliability: Reliability,
    batch_size: int = 32,
    log: Callable[[str], None] = print,
) -> ExternalEvaluation:
    """A folder of images the model should refuse (one sub-folder per kind, e.g. CT/, LATERAL/):
    the share the input gate refuses per folder, and what the model would have called the rest."""
    started = time.perf_counter()
    dataset = discover_image_folders(data_dir)
    images, items, skipped = _load_all(dataset, preprocessing, log=log)
    positive_index = class_names.index(positive_class)
    raw, refused, by_view = _read_images(
        model_path, images, items, positive_index, preprocessing, reliability, batch_size
    )
    called_positive = apply_temperature(raw, reliability.temperature)[:, positive_index] >= threshold
    calibrated = apply_temperature(raw, reliability.temperature)
    called_positive = call_class(calibrated, class_names, positive_class, threshold) == positive_class
    labels = [item.label for item in items]
    per_folder = {}
    for name in dataset.class_names:
        members = np.array([label == name for label in labels])
        per_folder[name] = {
            "refused": proportion_with_interval(int(refused[members].sum()), int(members.sum())),
            "refused_by_view_check": proportion_with_interval(int(by_view[members].sum()), int(members.sum())),
            "called_positive_if_not_refused": proportion_with_interval(
                int((called_positive & members & ~refused).sum()), int((members & ~refused).sum())
            ),
        }
    metrics = {
        "n": len(items),
        "gate": {"refused": proportion_with_interval(int(refused.sum()), len(items)), "per_class": per_folder},
        "out_of_distribution": True,
    }
    if reliability.gate is None:
        metrics["gate"]["unavailable"] = IMAGE_CHECK_UNAVAILABLE
    metrics["gate"]["view_check_fitted"] = reliability.gate is not None and reliability.gate.view is not None
    summary = _dataset_summary(dataset, items, {"test": list(range(len(items)))}, dataset.skipped + skipped)
    return ExternalEvaluation(
        dataset_summary=summary, metrics=metrics, plots={}, seconds=time.perf_counter() - started
    )


def refuse_features(
    folder: str | Path | None, preprocessing: PreprocessingSpec, *, log: Callable[[str], None] = print
) -> dict[str, np.ndarray] | None:
    """The view check's features of the examples to refuse, per kind (sub-folder); None without a folder."""
    if not folder:
        return None
    dataset = discover_image_folders(folder)
    images, items, _ = load_images(dataset.items, preprocessing, root=dataset.root)
    labels = np.array([item.label for item in items])
    if not len(items):
        raise DatasetError(f"No readable images to refuse in {dataset.root}.")
    log(
        "Examples to refuse: "
        + ", ".join(f"{name} {int((labels == name).sum())}" for name in dataset.class_names)
        + f" (from {dataset.root})."
    )
    features = view_features(images)
    return {name: features[labels == name] for name in dataset.class_names}


def _load_all(dataset: Dataset, preprocessing: PreprocessingSpec, *, log: Callable[[str], None]):
    images, items, skipped = load_images(dataset.items, preprocessing, root=dataset.root)
    if not items:
        raise DatasetError(f"No readable images in {dataset.location}.")
    log(f"Evaluating on {len(items)} images from {dataset.location}.")
    return images, items, skipped


def _read_images(model_path, images, items, positive_index, preprocessing, reliability, batch_size):
    """Raw probabilities and which images the input gate refuses, by the same checks as the worker:
    the DICOM header, colour, and the stored distance and view check (when the version has them);
    and which of them the view check alone would refuse."""
    model = load_model(model_path)
    readout = readout_function(model, positive_index=positive_index, image_size=preprocessing.image_size)
    raw, pooled, _ = run_readout(readout, images, batch_size=batch_size)
    checks = reliability.gate.verdicts(gate_features(pooled, images)) if reliability.gate else [None] * len(images)
    refused = []
    for item, check in zip(items, checks, strict=True):
        data = item.path.read_bytes()
        header = read_dicom_header(data) if sniff_format(data[:132]) == DICOM else None
        refused.append(not screen(header=header, colour=colour_share(data), image_check=check).assessable)
    by_view = [check is not None and _view_refused(check) for check in checks]
    return raw, np.array(refused, dtype=bool), np.array(by_view, dtype=bool)


def _view_refused(check) -> bool:
    view = check.figures.get("view_check")
    return isinstance(view, dict) and view["refused"]


def _environment() -> dict:
    import keras
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "machine": platform.machine(),
        "processor_count": os.cpu_count(),
    }


@dataclass
class RedrawnSplit:
    dataset: Dataset
    images: np.ndarray
    items: list
    labels: list[str]
    patient_keys: list
    split: Split


def redraw_split(
    data_dirs: DataFolders,
    *,
    preprocessing: PreprocessingSpec,
    patients: PatientRule,
    seed: int,
    validation_fraction: float,
    test_fraction: float,
    class_aliases: dict | None = None,
    log: Callable[[str], None] = print,
) -> RedrawnSplit:
    """The images of the folders a version was trained on and the train/validation/test split its training
    drew (``recorded_split(hyperparameters)`` gives seed and fractions; ``patients``: the rule it recorded)."""
    dataset = resolve_patients(discover_dataset(data_dirs, class_aliases=class_aliases), patients)
    images, items, _ = _load_all(dataset, preprocessing, log=log)
    labels = [item.label for item in items]
    patient_keys = group_patients(items, rule=patients, images=images).keys
    split = split_dataset(
        labels, patient_keys, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed
    )
    return RedrawnSplit(dataset, images, items, labels, patient_keys, split)


@dataclass
class RefittedGate:
    gate: FeatureGate
    refused: dict  # the share of each split (and of the test split per class) the new gate refuses


def refit_gate(
    data_dirs: DataFolders,
    *,
    model_path: Path,
    positive_class: str,
    preprocessing: PreprocessingSpec,
    seed: int,
    validation_fraction: float,
    test_fraction: float,
    class_aliases: dict | None = None,
    patients: PatientRule = LEGACY_PATIENT_RULE,
    quantile: float = DEFAULT_QUANTILE,
    refuse_examples: str | Path | None = None,
    batch_size: int = 32,
    log: Callable[[str], None] = print,
) -> RefittedGate:
    """Fit a stored version's input gate again (a version trained before it, or with an older method)
    on the same folders and the same train/validation/test split its training drew (``patients``: the
    rule the version recorded, PatientRule.recorded(hyperparameters)); with ``refuse_examples``, the view
    check too."""
    refuse = refuse_features(refuse_examples, preprocessing, log=log)
    drawn = redraw_split(
        data_dirs,
        preprocessing=preprocessing,
        patients=patients,
        seed=seed,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        class_aliases=class_aliases,
        log=log,
    )
    images, labels, patient_keys, split = drawn.images, drawn.labels, drawn.patient_keys, drawn.split
    model = load_model(model_path)
    readout = readout_function(
        model, positive_index=drawn.dataset.class_names.index(positive_class), image_size=preprocessing.image_size
    )
    features = {
        name: gate_features(run_readout(readout, images[indices], batch_size=batch_size)[1], images[indices])
        for name, indices in (("train", split.train), ("validation", split.validation), ("test", split.test))
    }
    gate = FeatureGate.fit(
        train=features["train"],
        train_labels=np.asarray(labels)[split.train],
        train_groups=[patient_keys[i] for i in split.train],
        validation=features["validation"],
        quantile=quantile,
        refuse=refuse,
    )
    refused = [not verdict.assessable for verdict in gate.verdicts(features["test"])]
    per_class = {
        name: proportion_with_interval(
            sum(r for r, i in zip(refused, split.test, strict=True) if labels[i] == name),
            sum(1 for i in split.test if labels[i] == name),
        )
        for name in drawn.dataset.class_names
    }
    return RefittedGate(
        gate=gate,
        refused={"refused": proportion_with_interval(sum(refused), len(refused)), "per_class": per_class},
    )
