"""Rerunnable speed measurements of the training code (no Django; the commands print the results)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from mlcore.core.dataset import binarize, discover_dataset, load_images, split_dataset
from mlcore.core.model import ModelConfig, build_network
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
    spec = PreprocessingSpec(image_size=image_size, scaling="inception")
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
            "feature_extraction_seconds": total - sum(epoch_seconds) if cached else 0.0,
        }
    cached, recomputed = results["cached"], results["recomputed"]
    results["ratio_total"] = recomputed["total_seconds"] / cached["total_seconds"]
    results["ratio_median_epoch"] = recomputed["median_epoch_seconds"] / cached["median_epoch_seconds"]
    return results
