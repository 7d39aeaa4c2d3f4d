"""A whole training run, and the evaluation of a stored model on another folder; no Django here."""

from __future__ import annotations

import os
import platform
import time
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

import numpy as np

from mlcore.core import plots
from mlcore.core.calibration import BAND_MAX_ERROR, Band, apply_temperature
from mlcore.core.dataset import (
    POSITIVE,
    Dataset,
    DatasetError,
    binarize,
    discover_dataset,
    discover_image_folders,
    load_images,
    split_dataset,
)
from mlcore.core.evaluation import THRESHOLD_RULE, evaluate, jsonable, proportion_with_interval
from mlcore.core.gate import (
    DEFAULT_QUANTILE,
    IMAGE_CHECK_UNAVAILABLE,
    FeatureGate,
    colour_share,
    gate_features,
    screen,
)
from mlcore.core.gradcam import readout_function, run_readout
from mlcore.core.imaging import DICOM, read_dicom_header, sniff_format
from mlcore.core.inference import load_model
from mlcore.core.model import ModelConfig, build_network, summarize
from mlcore.core.predictor import Reliability
from mlcore.core.preprocessing import PreprocessingSpec, to_display
from mlcore.core.provenance import run_provenance
from mlcore.core.reliability import fit_reliability, reliability_figures
from mlcore.core.training import TrainingConfig, TrainingOutcome, train_network

MODEL_FILENAME = "model.keras"
SAMPLES_PER_CLASS = 40


@dataclass
class RunOptions:
    model: ModelConfig
    training: TrainingConfig
    preprocessing: PreprocessingSpec
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    positive_class: str = POSITIVE
    class_aliases: dict | None = None
    gate_quantile: float = DEFAULT_QUANTILE
    band_max_error: float = BAND_MAX_ERROR

    def hyperparameters(self) -> dict:
        return {
            "model": self.model.as_dict(),
            "training": self.training.as_dict(),
            "preprocessing": self.preprocessing.as_dict(),
            "validation_fraction": self.validation_fraction,
            "test_fraction": self.test_fraction,
            "positive_class": self.positive_class,
            "gate_quantile": self.gate_quantile,
            "band_max_error": self.band_max_error,
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


def check_dataset(data_dir: str | Path, options: RunOptions) -> Dataset:
    """Fail fast, before any image is decoded, on a folder that cannot be trained on."""
    dataset = discover_dataset(data_dir, class_aliases=options.class_aliases)
    if options.positive_class not in dataset.class_names:
        raise DatasetError(f"Positive class {options.positive_class} is not among {dataset.class_names}.")
    split_dataset(
        [item.label for item in dataset.items],
        [item.patient_id for item in dataset.items],
        validation_fraction=options.validation_fraction,
        test_fraction=options.test_fraction,
        seed=options.training.seed,
    )
    return dataset


def train_from_folder(
    data_dir: str | Path,
    options: RunOptions,
    work_dir: Path,
    *,
    log: Callable[[str], None] = print,
    verbose: int = 1,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> TrainingRun:
    """``on_epoch(epoch, logs)`` is called after every training epoch (a caller's heartbeat, for one)."""
    dataset = check_dataset(data_dir, options)
    log(f"Loading {len(dataset.items)} images from {dataset.root} at {options.preprocessing.image_size}px.")
    images, items, skipped = load_images(dataset.items, options.preprocessing, root=dataset.root)
    skipped = dataset.skipped + skipped
    if skipped:
        log(f"Skipped {len(skipped)} unreadable file(s); they are listed in the dataset summary.")
    labels = [item.label for item in items]
    if len(set(labels)) < 2:
        raise DatasetError("After skipping unreadable files, one class has no images left.")
    split = split_dataset(
        labels,
        [item.patient_id for item in items],
        validation_fraction=options.validation_fraction,
        test_fraction=options.test_fraction,
        seed=options.training.seed,
    )
    y = binarize(labels, dataset.class_names)
    positive_index = dataset.class_names.index(options.positive_class)
    summary = _dataset_summary(dataset, items, split.as_dict(), skipped)
    log(
        "Split (images): " + ", ".join(f"{name} {summary['counts'][name]}" for name in ("train", "validation", "test"))
    )
    provenance = run_provenance(
        paths=[item.path for item in items],
        split=split.as_dict(),
        roots=[dataset.root],
        seeds={"training": options.training.seed, "split": options.training.seed},
    )

    pretrained = options.model.weights != "none"
    parts = build_network(options.model)
    if pretrained:
        parts.base.trainable = False
    work_dir.mkdir(parents=True, exist_ok=True)
    outcome = train_network(
        parts,
        x_train=images[split.train],
        y_train=y[split.train],
        x_val=images[split.validation],
        y_val=y[split.validation],
        config=options.training,
        pretrained=pretrained,
        black=options.preprocessing.black,
        value_range=(options.preprocessing.black, 1.0),
        verbose=verbose,
        log=log,
        on_epoch=on_epoch,
    )
    model_path = work_dir / MODEL_FILENAME
    parts.model.save(model_path)
    run = TrainingRun(
        class_names=dataset.class_names,
        positive_class=options.positive_class,
        preprocessing=options.preprocessing,
        hyperparameters=options.hyperparameters(),
        dataset_summary=summary,
        model_summary=summarize(parts.model),
        outcome=outcome,
        model_path=model_path,
        environment=_environment(),
        provenance=provenance,
    )
    run.plots.update(_training_plots(outcome, images, items, split.as_dict(), dataset.class_names, options))
    if outcome.interrupted:
        return run

    readout = readout_function(parts.model, positive_index=positive_index, image_size=options.preprocessing.image_size)
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
        gate_validation=gate_inputs["validation"],
        cams_validation=outputs["validation"][2],
        positive_index=positive_index,
        gate_quantile=options.gate_quantile,
        band_max_error=options.band_max_error,
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
            y_positive=y_positive,
            p_positive=calibrated[:, positive_index],
            threshold=run.threshold,
            class_names=dataset.class_names,
            positive_class=options.positive_class,
            sources=[items[i].source for i in indices],
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
    return run


def _dataset_summary(dataset: Dataset, items, split: dict, skipped: list[dict]) -> dict:
    per_split = {}
    sources = {}
    for name, indices in split.items():
        counts = {label: 0 for label in dataset.class_names}
        for i in indices:
            counts[items[i].label] += 1
            key = items[i].source or "unknown"
            sources.setdefault(key, {s: {c: 0 for c in dataset.class_names} for s in split})
            sources[key][name][items[i].label] += 1
        per_split[name] = counts
    return {
        "root": str(dataset.root),
        "class_names": dataset.class_names,
        "images": len(items),
        "patients_known": sum(1 for item in items if item.patient_id),
        "per_split": per_split,
        "counts": {name: len(indices) for name, indices in split.items()},
        "per_source": sources if any(item.source for item in items) else {},
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
        result[f"{prefix}_roc"] = ("ROC curve", plots.roc_png(metrics))
    return result


@dataclass
class ExternalEvaluation:
    dataset_summary: dict
    metrics: dict
    plots: dict[str, tuple[str, bytes]]
    seconds: float


def evaluate_folder(
    data_dir: str | Path,
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

    Probabilities are the version's calibrated ones; the gate's refusals are counted per class folder.
    """
    started = time.perf_counter()
    dataset = discover_dataset(data_dir, class_aliases=class_aliases)
    if sorted(dataset.class_names) != sorted(class_names):
        raise DatasetError(f"The folder's classes {dataset.class_names} differ from the model's {class_names}.")
    images, items, skipped = _load_all(dataset, preprocessing, log=log)
    positive_index = class_names.index(positive_class)
    raw, refused = _read_images(model_path, images, items, positive_index, preprocessing, reliability, batch_size)
    calibrated = apply_temperature(raw, reliability.temperature)
    y_positive = np.array([1 if item.label == positive_class else 0 for item in items])
    metrics = evaluate(
        y_positive=y_positive,
        p_positive=calibrated[:, positive_index],
        threshold=threshold,
        class_names=class_names,
        positive_class=positive_class,
        sources=[item.source for item in items],
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
    raw, refused = _read_images(model_path, images, items, positive_index, preprocessing, reliability, batch_size)
    called_positive = apply_temperature(raw, reliability.temperature)[:, positive_index] >= threshold
    labels = [item.label for item in items]
    per_folder = {}
    for name in dataset.class_names:
        members = np.array([label == name for label in labels])
        per_folder[name] = {
            "refused": proportion_with_interval(int(refused[members].sum()), int(members.sum())),
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
    summary = _dataset_summary(dataset, items, {"test": list(range(len(items)))}, dataset.skipped + skipped)
    return ExternalEvaluation(
        dataset_summary=summary, metrics=metrics, plots={}, seconds=time.perf_counter() - started
    )


def _load_all(dataset: Dataset, preprocessing: PreprocessingSpec, *, log: Callable[[str], None]):
    images, items, skipped = load_images(dataset.items, preprocessing, root=dataset.root)
    if not items:
        raise DatasetError(f"No readable images in {dataset.root}.")
    log(f"Evaluating on {len(items)} images from {dataset.root}.")
    return images, items, skipped


def _read_images(model_path, images, items, positive_index, preprocessing, reliability, batch_size):
    """Raw probabilities and which images the input gate refuses, by the same checks as the worker:
    the DICOM header, colour, and the stored distance (when the version has one)."""
    model = load_model(model_path)
    readout = readout_function(model, positive_index=positive_index, image_size=preprocessing.image_size)
    raw, pooled, _ = run_readout(readout, images, batch_size=batch_size)
    checks = reliability.gate.verdicts(gate_features(pooled, images)) if reliability.gate else [None] * len(images)
    refused = []
    for item, check in zip(items, checks, strict=True):
        data = item.path.read_bytes()
        header = read_dicom_header(data) if sniff_format(data[:132]) == DICOM else None
        refused.append(not screen(header=header, colour=colour_share(data), image_check=check).assessable)
    return raw, np.array(refused, dtype=bool)


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
class RefittedGate:
    gate: FeatureGate
    refused: dict  # the share of each split (and of the test split per class) the new gate refuses


def refit_gate(
    data_dir: str | Path,
    *,
    model_path: Path,
    positive_class: str,
    preprocessing: PreprocessingSpec,
    seed: int,
    validation_fraction: float,
    test_fraction: float,
    class_aliases: dict | None = None,
    quantile: float = DEFAULT_QUANTILE,
    batch_size: int = 32,
    log: Callable[[str], None] = print,
) -> RefittedGate:
    """Fit a stored version's input gate again (a version trained before it, or with an older method)
    on the same folder and the same train/validation/test split its training drew."""
    dataset = discover_dataset(data_dir, class_aliases=class_aliases)
    images, items, _ = _load_all(dataset, preprocessing, log=log)
    labels = [item.label for item in items]
    split = split_dataset(
        labels,
        [item.patient_id for item in items],
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
    model = load_model(model_path)
    readout = readout_function(
        model, positive_index=dataset.class_names.index(positive_class), image_size=preprocessing.image_size
    )
    features = {
        name: gate_features(run_readout(readout, images[indices], batch_size=batch_size)[1], images[indices])
        for name, indices in (("train", split.train), ("validation", split.validation), ("test", split.test))
    }
    gate = FeatureGate.fit(
        train=features["train"],
        train_labels=np.asarray(labels)[split.train],
        validation=features["validation"],
        quantile=quantile,
    )
    refused = [not verdict.assessable for verdict in gate.verdicts(features["test"])]
    per_class = {
        name: proportion_with_interval(
            sum(r for r, i in zip(refused, split.test, strict=True) if labels[i] == name),
            sum(1 for i in split.test if labels[i] == name),
        )
        for name in dataset.class_names
    }
    return RefittedGate(
        gate=gate,
        refused={"refused": proportion_with_interval(sum(refused), len(refused)), "per_class": per_class},
    )
