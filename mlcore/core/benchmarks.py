"""Rerunnable speed measurements of the training code (no Django; the commands print the results)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from mlcore.core.dataset import binarize, discover_dataset, load_images, split_dataset
from mlcore.core.gradcam import readout_function, run_readout
from mlcore.core.model import ModelConfig, build_network, ensemble_members
from mlcore.core.preprocessing import PreprocessingSpec
from mlcore.core.training import AugmentationConfig, TrainingConfig, train_network

NO_AUGMENTATION = AugmentationConfig(
    horizontal_flip=False, vertical_flip=False, rotation_degrees=0.0, zoom=0.0, contrast=0.0
)


def benchmark_head_phase(
    data_dir: str | Path,
    *,
    image_size: int = 224,
    epochs: int = 5,
    batch_size: int = 32,
    weights: str = "none",
    seed: int = 42,
    log=print,
) -> dict:
    """The head-only phase on a frozen base, with the base's features cached once vs recomputed.

    Both runs see the same training and validation images, the same epochs and no augmentation,
    so the difference is the caching alone. The weights' values do not change the cost.
    """
    spec = PreprocessingSpec.current(image_size=image_size, scaling="inception")
    dataset = discover_dataset(data_dir)
    images, items, _ = load_images(dataset.items, spec, root=dataset.root)
    labels = [item.label for item in items]
    split = split_dataset(labels, [item.patient_id for item in items], seed=seed)
    y = binarize(labels, dataset.class_names)
    results = {"images_train": len(split.train), "images_validation": len(split.validation), "epochs": epochs}
    for cached in (True, False):
        parts = build_network(ModelConfig(image_size=image_size, weights=weights, head="flatten"))
        config = TrainingConfig(
            epochs=epochs,
            batch_size=batch_size,
            patience=epochs,
            min_epochs=epochs,
            cache_features=cached,
            seed=seed,
            augmentation=NO_AUGMENTATION,
        )
        log(f"Head phase, features {'cached' if cached else 'recomputed every epoch'}: {epochs} epochs")
        started = time.perf_counter()
        outcome = train_network(
            parts,
            x_train=images[split.train],
            y_train=y[split.train],
            x_val=images[split.validation],
            y_val=y[split.validation],
            config=config,
            pretrained=True,
            black=spec.black,
            value_range=(spec.black, 1.0),
            verbose=0,
            log=log,
        )
        total = time.perf_counter() - started
        epoch_seconds = outcome.history["epoch_seconds"]
        results["cached" if cached else "recomputed"] = {
            "total_seconds": total,
            "epoch_seconds": epoch_seconds,
            "median_epoch_seconds": statistics.median(epoch_seconds),
            "feature_extraction_seconds": outcome.phase_seconds.get("feature_extraction", 0.0),
        }
    cached, recomputed = results["cached"], results["recomputed"]
    results["ratio_total"] = recomputed["total_seconds"] / cached["total_seconds"]
    results["ratio_median_epoch"] = recomputed["median_epoch_seconds"] / cached["median_epoch_seconds"]
    return results


def _latencies(run, images: np.ndarray, *, warmup: int = 3) -> list[float]:
    for image in images[:warmup]:
        run(image[np.newaxis])
    timings = []
    for image in images:
        started = time.perf_counter()
        run(image[np.newaxis])
        timings.append(time.perf_counter() - started)
    return timings


def _throughput(run, images: np.ndarray, batch: int) -> float:
    run(images[:batch])
    started = time.perf_counter()
    for start in range(0, len(images), batch):
        run(images[start : start + batch])
    return len(images) / (time.perf_counter() - started)


def _reading_pass(model, positive_index: int, image_size: int):
    """The worker's fused pass as a probabilities function (its gate features and maps are computed, then dropped)."""
    readout = readout_function(model, positive_index=positive_index, image_size=image_size)
    return lambda batch: run_readout(readout, batch, batch_size=len(batch))[0]


def _summary(timings: list[float]) -> dict:
    ordered = sorted(timings)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000,
        "calls": len(ordered),
    }


def benchmark_inference(
    *,
    model,
    predictor,
    tflite_models: dict[str, bytes],
    latency_images: np.ndarray,
    throughput_images: np.ndarray,
    auc_images: np.ndarray | None = None,
    auc_labels: np.ndarray | None = None,
    positive_index: int = 0,
    threads: int | None = None,
    log=print,
) -> dict:
    """Every inference path on the same preprocessed images, in one process, one after another.

    naive: ``model.predict`` on one image per call (the original project). project: the worker's
    ``Predictor`` (a traced function called directly). reading pass: what the worker runs per scan,
    probabilities with the gate's features and Grad-CAM in one traced function; for an ensemble, also
    its first network alone, so the cost of the other networks is measured in the same run.
    tflite-*: the TFLite exports.
    """
    from sklearn.metrics import roc_auc_score

    from mlcore.core.tflite import TFLitePredictor

    size = latency_images.shape[1]
    networks = ensemble_members(model)
    paths = {
        "naive model.predict": lambda batch: model.predict(batch, verbose=0),
        "project (Keras, direct call)": predictor.probabilities,
        f"reading pass ({len(networks)} network{'s' if len(networks) > 1 else ''})": (
            predictor.reading_pass_probabilities
        ),
    }
    if len(networks) > 1:
        paths["reading pass (first network alone)"] = _reading_pass(networks[0], positive_index, size)
    for quantization, content in tflite_models.items():
        paths[f"tflite {quantization}"] = TFLitePredictor(content, threads=threads).probabilities
    results = {}
    for name, run in paths.items():
        log(f"Measuring {name}")
        entry = {"batch_1": _summary(_latencies(run, latency_images))}
        if name != "naive model.predict":
            entry["throughput_batch_8"] = _throughput(run, throughput_images, 8)
            entry["throughput_batch_32"] = _throughput(run, throughput_images, 32)
        if auc_images is not None and auc_labels is not None and len(set(auc_labels.tolist())) == 2:
            scores = np.concatenate([run(auc_images[i : i + 32]) for i in range(0, len(auc_images), 32)])
            entry["auc"] = float(roc_auc_score(auc_labels, scores[:, positive_index]))
        results[name] = entry
    naive = results["naive model.predict"]["batch_1"]["median_ms"]
    for entry in results.values():
        entry["batch_1"]["ratio_to_naive"] = entry["batch_1"]["median_ms"] / naive
    return results
