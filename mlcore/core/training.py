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
    vertical_flip: bool = False  # films are not taken upside down; opt in with --vflip
    rotation_degrees: float = 15.0
    zoom: float = 0.0  # zoom in or out by up to this share: random resized crops
    shift: float = 0.0  # translate by up to this share of the side
    contrast: float = 0.0
    gamma: float = 0.0  # gamma drawn from [1/(1+g), 1+g] on a log scale
    blur_sigma: float = 0.0  # Gaussian blur up to this sigma (pixels)
    noise: float = 0.0  # Gaussian noise standard deviation (in the input's value range)

    @property
    def enabled(self) -> bool:
        return any(
            [
                self.horizontal_flip,
                self.vertical_flip,
                self.rotation_degrees,
                self.zoom,
                self.shift,
                self.contrast,
                self.gamma,
                self.blur_sigma,
                self.noise,
            ]
        )


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 20
    fine_tune_epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    optimizer: str = "adam"  # "adam" or "adamw"
    weight_decay: float = 1e-4  # AdamW only
    schedule: str = "constant"  # "constant" or "cosine" (linear warm-up, then cosine decay to zero)
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    balance: str = "class"  # sample weights: "class", "source" (each source/class cell equally) or "none"
    fine_tune_learning_rate: float = 1e-5
    fine_tune_blocks: int = 0
    patience: int = 5
    min_epochs: int = 5  # no early stop before this: from scratch, BatchNorm statistics settle first
    monitor: str = "val_auc"
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
    member_best_epochs: list[int | None] = field(default_factory=list)  # an ensemble's, member by member

    @property
    def images_per_second(self) -> float:
        return self.images_seen / self.wall_time_seconds if self.wall_time_seconds else 0.0


def ensemble_outcome(outcomes: list[TrainingOutcome]) -> TrainingOutcome:
    """The outcomes of networks trained one after another, as one: their histories follow each other with
    a "member" column (epochs restart at each member), times and images add up, and the best epoch is
    the first member's, with every member's kept beside it. One network's outcome is returned as it is."""
    if len(outcomes) == 1:
        return outcomes[0]
    history: dict[str, list] = {}
    for index, outcome in enumerate(outcomes):
        epochs = len(outcome.history.get("loss", []))
        for key, values in (outcome.history | {"member": [index] * epochs}).items():
            history.setdefault(key, []).extend(values)
    phase_seconds: dict[str, float] = {}
    for outcome in outcomes:
        for phase, seconds in outcome.phase_seconds.items():
            phase_seconds[phase] = phase_seconds.get(phase, 0.0) + seconds
    return TrainingOutcome(
        history=history,
        best_epoch=outcomes[0].best_epoch,
        interrupted=any(outcome.interrupted for outcome in outcomes),
        wall_time_seconds=sum(outcome.wall_time_seconds for outcome in outcomes),
        images_seen=sum(outcome.images_seen for outcome in outcomes),
        phase_seconds=phase_seconds,
        member_best_epochs=[outcome.best_epoch for outcome in outcomes],
    )


def layer_seeds(seed: int, count: int) -> list[int]:
    """Independent seeds for ``count`` random layers, derived from the run's seed.

    One seed shared by every layer makes their draws identical (flipped exactly when rotated left).
    """
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(count)]


def augmentation_layers(config: AugmentationConfig, *, black: float, value_range, seed: int):
    """Keras preprocessing layers, each with a seed of its own; they act only in training (``training=True``)."""
    import keras

    makers = []
    if config.horizontal_flip:
        makers.append(lambda s: keras.layers.RandomFlip("horizontal", seed=s, name="flip_horizontal"))
    if config.vertical_flip:
        makers.append(lambda s: keras.layers.RandomFlip("vertical", seed=s, name="flip_vertical"))
    if config.rotation_degrees:
        makers.append(
            lambda s: keras.layers.RandomRotation(
                config.rotation_degrees / 360.0, fill_mode="constant", fill_value=black, seed=s, name="rotation"
            )
        )
    if config.zoom:
        makers.append(
            lambda s: keras.layers.RandomZoom(config.zoom, fill_mode="constant", fill_value=black, seed=s, name="zoom")
        )
    if config.shift:
        makers.append(
            lambda s: keras.layers.RandomTranslation(
                config.shift, config.shift, fill_mode="constant", fill_value=black, seed=s, name="shift"
            )
        )
    if config.contrast:
        makers.append(
            lambda s: keras.layers.RandomContrast(config.contrast, value_range=value_range, seed=s, name="contrast")
        )
    if config.gamma:
        makers.append(lambda s: random_gamma_layer(config.gamma, value_range=value_range, seed=s))
    if config.blur_sigma:
        makers.append(
            lambda s: keras.layers.RandomGaussianBlur(
                1.0, kernel_size=3, sigma=config.blur_sigma, value_range=value_range, seed=s, name="blur"
            )
        )
    if config.noise:
        makers.append(lambda s: keras.layers.GaussianNoise(config.noise, seed=s, name="noise"))
    if not makers:
        return None
    return keras.Sequential(
        [make(s) for make, s in zip(makers, layer_seeds(seed, len(makers)), strict=True)], name="augmentation"
    )


def random_gamma_layer(gamma: float, *, value_range, seed: int):
    """Per-image gamma in [1/(1+g), 1+g] (log-uniform), applied on the [0, 1] scale of ``value_range``."""
    import keras
    from keras import ops

    low, high = value_range

    class RandomGamma(keras.layers.Layer):
        def __init__(self):
            super().__init__(name="gamma")
            self.generator = keras.random.SeedGenerator(seed)

        def call(self, images, training=True):
            if not training:
                return images
            limit = float(np.log1p(gamma))
            exponent = ops.exp(
                keras.random.uniform((ops.shape(images)[0], 1, 1, 1), -limit, limit, seed=self.generator)
            )
            unit = ops.clip((images - low) / (high - low), 0.0, 1.0)
            return low + (high - low) * ops.power(unit, exponent)

    return RandomGamma()


def sample_weights(y_onehot: np.ndarray, *, balance: str, sources: list[str | None] | None = None) -> np.ndarray:
    """Per-image weights with mean 1: each class counts equally ("class"), or each source/class cell does
    ("source": a source that only has one class no longer dominates that class), or all images alike."""
    labels = y_onehot.argmax(axis=1)
    if balance == "none":
        return np.ones(len(labels), dtype=np.float32)
    if balance == "class":
        cells = labels.astype(str)
    elif balance == "source":
        sources = sources if sources is not None else [None] * len(labels)
        cells = np.array([f"{source or ''}|{label}" for source, label in zip(sources, labels, strict=True)])
    else:
        raise ValueError(f"Unknown balance {balance!r}: use 'class', 'source' or 'none'.")
    names, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    weights = len(labels) / (len(names) * counts[inverse])
    if balance == "source":
        weights = np.minimum(weights, SOURCE_WEIGHT_CAP * np.median(weights))  # a cell of two images is not 50x
    return (weights / weights.mean()).astype(np.float32)


SOURCE_WEIGHT_CAP = 5.0


def positive_class_auc(positive_index: int, name: str = "auc"):
    """ROC AUC of one class's own column (one-vs-rest); Keras' AUC on all columns pools them."""
    import keras

    class PositiveClassAUC(keras.metrics.AUC):
        def update_state(self, y_true, y_pred, sample_weight=None):
            return super().update_state(y_true[:, positive_index], y_pred[:, positive_index], sample_weight)

    return PositiveClassAUC(name=name)


def seed_everything(seed: int) -> None:
    """Python, NumPy and the backend's generators; called before the network is built and before training."""
    import keras

    keras.utils.set_random_seed(seed)


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
    positive_index: int = 0,
    sources: list[str | None] | None = None,
    verbose: int = 1,
    log: Callable[[str], None] = print,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> TrainingOutcome:
    """Train in place; afterwards ``parts.model`` holds the best weights seen on validation.

    ``positive_index`` is the column whose own AUC ("auc", "val_auc") early stopping monitors; ``sources``
    (one per training image) serve source-balanced sample weights. ``on_epoch(epoch, logs)`` is called after
    every epoch of every phase, epochs counted across phases.
    """
    seed_everything(config.seed)
    history: dict[str, list] = {}
    phase_seconds: dict[str, float] = {}
    best = _BestWeights(parts.model, config.monitor)
    weights = sample_weights(y_train, balance=config.balance, sources=sources)
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
            weights,
            positive_index,
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


def _optimizer(config: TrainingConfig, learning_rate: float, steps_per_epoch: int, epochs: int):
    """Adam at a fixed rate (the original recipe), or with linear warm-up and cosine decay; AdamW optionally."""
    import keras

    rate = learning_rate
    if config.schedule == "cosine":
        warmup = min(config.warmup_epochs, max(epochs - 1, 0)) * steps_per_epoch
        rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=learning_rate / 100 if warmup else learning_rate,
            decay_steps=max(epochs * steps_per_epoch - warmup, 1),
            warmup_target=learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    elif config.schedule != "constant":
        raise ValueError(f"Unknown schedule {config.schedule!r}: use 'constant' or 'cosine'.")
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=rate)
    raise ValueError(f"Unknown optimizer {config.optimizer!r}: use 'adam' or 'adamw'.")


def _fit(
    model,
    x,
    y,
    x_val,
    y_val,
    config,
    learning_rate,
    epochs,
    weights,
    positive_index,
    best,
    offset,
    verbose,
    *,
    augment,
    on_epoch,
):
    import keras
    import tensorflow as tf

    steps_per_epoch = -(-len(x) // config.batch_size)
    model.compile(
        optimizer=_optimizer(config, learning_rate, steps_per_epoch, epochs),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"), positive_class_auc(positive_index)],
    )
    # Every variable exists before the first step: a step that creates some (Adam's moments, or the metric
    # Keras resolves from the string "accuracy") is traced twice, ~10 s of InceptionV3 graph building.
    model.optimizer.build(model.trainable_variables)
    train = (
        tf.data.Dataset.from_tensor_slices((x, y, weights))
        .shuffle(len(x), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
    )
    if augment is not None:
        train = train.map(lambda images, labels, w: (augment(images, training=True), labels, w))
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
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline above already reshuffles every epoch
        verbose=verbose,
    )
    return fit_history, clock.seconds
