"""Training in two phases: the head on a frozen base (on cached features), then optional fine-tuning.

From scratch (no pre-trained weights) the whole network trains in one phase.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from mlcore.core.model import NetworkParts, fine_tune_layers


@dataclass(frozen=True)
class AugmentationConfig:
    horizontal_flip: bool = True
    vertical_flip: bool = True
    rotation_degrees: float = 15.0
    zoom: float = 0.0
    contrast: float = 0.0

    @property
    def enabled(self) -> bool:
        return any([self.horizontal_flip, self.vertical_flip, self.rotation_degrees, self.zoom, self.contrast])


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 20
    fine_tune_epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-5
    fine_tune_blocks: int = 0
    patience: int = 5
    min_epochs: int = 5  # no early stop before this: from scratch, BatchNorm statistics settle first
    monitor: str = "val_auc"
    class_weights: bool = True
    cache_features: bool = True
    seed: int = 42
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainingOutcome:
    history: dict[str, list]
    best_epoch: int | None
    interrupted: bool
    wall_time_seconds: float
    images_seen: int
    phase_seconds: dict[str, float]

    @property
    def images_per_second(self) -> float:
        return self.images_seen / self.wall_time_seconds if self.wall_time_seconds else 0.0


def augmentation_layers(config: AugmentationConfig, *, black: float, value_range, seed: int):
    """Keras preprocessing layers; they act only in training (``training=True``)."""
    import keras

    layers = []
    modes = [m for m, on in (("horizontal", config.horizontal_flip), ("vertical", config.vertical_flip)) if on]
    if modes:
        layers.append(keras.layers.RandomFlip("_and_".join(modes), seed=seed))
    if config.rotation_degrees:
        layers.append(
            keras.layers.RandomRotation(
                config.rotation_degrees / 360.0, fill_mode="constant", fill_value=black, seed=seed
            )
        )
    if config.zoom:
        layers.append(keras.layers.RandomZoom(config.zoom, fill_mode="constant", fill_value=black, seed=seed))
    if config.contrast:
        layers.append(keras.layers.RandomContrast(config.contrast, value_range=value_range, seed=seed))
    return keras.Sequential(layers, name="augmentation") if layers else None


def class_weight_for(y_onehot: np.ndarray) -> dict[int, float]:
    from sklearn.utils.class_weight import compute_class_weight

    labels = y_onehot.argmax(axis=1)
    classes = np.arange(y_onehot.shape[1])
    weights = compute_class_weight("balanced", classes=classes, y=labels)
    return {int(c): float(w) for c, w in zip(classes, weights, strict=True)}


class _BestWeights:
    """The full model's best weights so far, kept in memory (what Ctrl-C and early stopping fall back to).

    A copy in memory costs tens of milliseconds; writing ~90 MB to disk every better epoch would cost
    more than a whole epoch of the cached head phase. The pipeline saves the restored model at the end.
    """

    def __init__(self, model, monitor: str):
        self.model, self.monitor = model, monitor
        self.mode_max = "auc" in monitor or "acc" in monitor
        self.best = -np.inf if self.mode_max else np.inf
        self.best_epoch: int | None = None
        self._weights: list | None = None

    def offer(self, epoch: int, logs: dict) -> None:
        value = logs.get(self.monitor)
        if value is None or not np.isfinite(value):
            return
        better = value > self.best if self.mode_max else value < self.best
        if better or self.best_epoch is None:
            self.best, self.best_epoch = value, epoch
            self._weights = self.model.get_weights()

    def restore(self) -> bool:
        if self._weights is None:
            return False
        self.model.set_weights(self._weights)
        return True


def train_network(
    parts: NetworkParts,
    *,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    config: TrainingConfig,
    pretrained: bool,
    black: float,
    value_range: tuple[float, float],
    verbose: int = 1,
    log: Callable[[str], None] = print,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> TrainingOutcome:
    """Train in place; afterwards ``parts.model`` holds the best weights seen on validation.

    ``on_epoch(epoch, logs)`` is called after every epoch of every phase, epochs counted across phases.
    """
    import keras

    keras.utils.set_random_seed(config.seed)
    history: dict[str, list] = {}
    phase_seconds: dict[str, float] = {}
    best = _BestWeights(parts.model, config.monitor)
    class_weight = class_weight_for(y_train) if config.class_weights else None
    augment = augmentation_layers(config.augmentation, black=black, value_range=value_range, seed=config.seed)
    images_seen = 0
    epoch_offset = 0
    started = time.perf_counter()
    interrupted = False

    def run_phase(phase: str, model, x, x_val, *, learning_rate: float, epochs: int, augmentation) -> None:
        """Fit one phase and append its epochs to the history."""
        nonlocal images_seen, epoch_offset
        phase_started = time.perf_counter()
        fit_history, epoch_seconds = _fit(
            model,
            x,
            y_train,
            x_val,
            y_val,
            config,
            learning_rate,
            epochs,
            class_weight,
            best,
            epoch_offset,
            verbose,
            augment=augmentation,
            on_epoch=on_epoch,
        )
        phase_seconds[phase.replace("-", "_")] = time.perf_counter() - phase_started
        fitted = len(next(iter(fit_history.history.values()), []))
        for key, values in fit_history.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        history.setdefault("phase", []).extend([phase] * fitted)
        history.setdefault("epoch_seconds", []).extend(epoch_seconds[:fitted])
        images_seen += len(x) * fitted
        epoch_offset += fitted

    try:
        if not pretrained:
            run_phase(
                "full",
                parts.model,
                x_train,
                x_val,
                learning_rate=config.learning_rate,
                epochs=config.epochs,
                augmentation=augment,
            )
        else:
            parts.base.trainable = False
            if config.cache_features:
                log("Computing the frozen base's features once for the head phase.")
                started_features = time.perf_counter()
                f_train = parts.base.predict(x_train, batch_size=config.batch_size, verbose=0)
                f_val = parts.base.predict(x_val, batch_size=config.batch_size, verbose=0)
                phase_seconds["feature_extraction"] = time.perf_counter() - started_features
                run_phase(
                    "head",
                    parts.head,
                    f_train,
                    f_val,
                    learning_rate=config.learning_rate,
                    epochs=config.epochs,
                    augmentation=None,
                )
            else:
                run_phase(
                    "head",
                    parts.model,
                    x_train,
                    x_val,
                    learning_rate=config.learning_rate,
                    epochs=config.epochs,
                    augmentation=augment,
                )
            if config.fine_tune_blocks > 0:
                best.restore()
                for layer in fine_tune_layers(parts.base, config.fine_tune_blocks):
                    layer.trainable = True
                run_phase(
                    "fine-tune",
                    parts.model,
                    x_train,
                    x_val,
                    learning_rate=config.fine_tune_learning_rate,
                    epochs=config.fine_tune_epochs,
                    augmentation=augment,
                )
    except KeyboardInterrupt:
        interrupted = True
        log("Interrupted: keeping the best checkpoint so far.")
    best.restore()
    return TrainingOutcome(
        history=history,
        best_epoch=best.best_epoch,
        interrupted=interrupted,
        wall_time_seconds=time.perf_counter() - started,
        images_seen=images_seen,
        phase_seconds=phase_seconds,
    )


def _epoch_clock():
    """A Keras callback timing each epoch (validation included), for the history and benchmarks."""
    import keras

    class EpochClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self._started = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._started)

    return EpochClock()


def _fit(
    model, x, y, x_val, y_val, config, learning_rate, epochs, class_weight, best, offset, verbose, *, augment, on_epoch
):
    import keras
    import tensorflow as tf

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    train = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
    )
    if augment is not None:
        train = train.map(lambda images, labels: (augment(images, training=True), labels))
    train = train.prefetch(tf.data.AUTOTUNE)
    clock = _epoch_clock()
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor=config.monitor,
            mode="max" if "auc" in config.monitor or "acc" in config.monitor else "min",
            patience=config.patience,
            start_from_epoch=config.min_epochs,
            restore_best_weights=False,
        ),
        keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: best.offer(offset + epoch, logs)),
        clock,
    ]
    if on_epoch is not None:
        callbacks.append(
            keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: on_epoch(offset + epoch, logs or {}))
        )
    fit_history = model.fit(
        train,
        validation_data=(x_val, y_val),
        validation_batch_size=config.batch_size,
        epochs=epochs,
        class_weight=class_weight,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline above already reshuffles every epoch
        verbose=verbose,
    )
    return fit_history, clock.seconds
