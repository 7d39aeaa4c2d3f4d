"""InceptionV3 without its top, and the classification head, built so the base's features can be cached."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

LAST_CONV_LAYER = "mixed10"
GATE_LAYER = "mixed5"  # the middle block whose activation statistics the input gate measures
CLASSIFIER_LAYER = "predictions"
INCEPTION_BLOCKS = [f"mixed{n}" for n in range(11)]
MEMBER_PREFIX = "member_"  # the networks inside an ensemble are layers member_0, member_1, ...
ENSEMBLE_MEAN_LAYER = "ensemble_mean"


class WeightsError(RuntimeError):
    """Pre-trained weights could not be obtained or do not fit the network."""


@dataclass(frozen=True)
class ModelConfig:
    num_classes: int = 2
    image_size: int = 224
    weights: str = "none"  # "imagenet", "none" or a path to a weights file for the base
    head: str = "gap"  # "flatten" (the original project's) or "gap" (global average pooling)
    dropout: float = 0.5
    batchnorm_momentum: float | None = 0.9  # Keras' default 0.99 does not settle in a few hundred steps

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class NetworkParts:
    """The full model plus two views on the same layers: base (image -> features) and head."""

    model: object
    base: object
    head: object


def build_network(config: ModelConfig) -> NetworkParts:
    import keras

    inputs = keras.Input(shape=(config.image_size, config.image_size, 3), name="image")
    base = _inception_base(config, inputs)
    if config.batchnorm_momentum is not None:
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = config.batchnorm_momentum
    pooling = (
        keras.layers.GlobalAveragePooling2D(name="head_pool")
        if config.head == "gap"
        else keras.layers.Flatten(name="head_flatten")
    )
    dropout = keras.layers.Dropout(config.dropout, name="head_dropout")
    dense = keras.layers.Dense(config.num_classes, activation="softmax", name=CLASSIFIER_LAYER)

    model = keras.Model(inputs, dense(dropout(pooling(base.output))), name="covidxray_inception_v3")
    features = keras.Input(shape=base.output.shape[1:], name="features")
    head = keras.Model(features, dense(dropout(pooling(features))), name="head")
    return NetworkParts(model=model, base=base, head=head)


def combine_members(models: list) -> object:
    """One model whose output is the mean of its members' class probabilities.

    A single network is returned as it is (the format of every version before ensembles), so one
    file, one loader, the TFLite export and the benchmarks serve both. The members are copies without
    their training state (a nested model stores its optimizer and metrics, and loading the file would
    then need the training code's own metric classes), named member_0, member_1, ..., which is how
    ``ensemble_members`` finds them again after the file is loaded.
    """
    import keras

    if not models:
        raise ValueError("An ensemble needs at least one network.")
    if len(models) == 1:
        return models[0]
    members = []
    for index, network in enumerate(models):
        member = keras.Model.from_config(network.get_config())
        member.set_weights(network.get_weights())
        member.name = f"{MEMBER_PREFIX}{index}"
        members.append(member)
    inputs = keras.Input(shape=members[0].input_shape[1:], name="image")
    mean = keras.layers.Average(name=ENSEMBLE_MEAN_LAYER)([member(inputs) for member in members])
    return keras.Model(inputs, mean, name=f"covidxray_ensemble_of_{len(members)}")


def ensemble_members(model) -> list:
    """The networks a stored model averages: its member_k layers, or the model itself when it is one."""
    members = [layer for layer in model.layers if layer.name.startswith(MEMBER_PREFIX)]
    return sorted(members, key=lambda layer: int(layer.name[len(MEMBER_PREFIX) :])) if members else [model]


def _inception_base(config: ModelConfig, inputs):
    from keras.applications import InceptionV3

    if config.head not in ("gap", "flatten"):
        raise ValueError(f"Unknown head {config.head!r}: use 'gap' or 'flatten'.")
    if config.weights == "imagenet":
        try:
            return InceptionV3(include_top=False, weights="imagenet", input_tensor=inputs)
        except Exception as error:  # Keras raises a bare Exception when the download fails
            raise WeightsError(
                "The ImageNet weights for InceptionV3 could not be downloaded or read from Keras' cache "
                f"(~/.keras/models, or $KERAS_HOME/models): {error}. Either train from scratch with "
                "--weights none, or download inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5 "
                "elsewhere and pass --weights /path/to/that/file."
            ) from error
    base = InceptionV3(include_top=False, weights=None, input_tensor=inputs)
    if config.weights not in ("none", "", None):
        path = Path(config.weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"Weights file {path} does not exist. Use --weights imagenet|none|PATH.")
        try:
            base.load_weights(str(path))
        except Exception as error:  # h5py and Keras raise several types for a file that does not fit
            raise WeightsError(f"Weights file {path} does not fit InceptionV3 without its top: {error}") from error
    return base


def fine_tune_layers(base, blocks: int) -> list:
    """The layers of the top ``blocks`` Inception blocks (mixed10 is the last), BatchNorm excluded."""
    import keras

    if blocks <= 0:
        return []
    names = [layer.name for layer in base.layers]
    first_block = INCEPTION_BLOCKS[max(0, len(INCEPTION_BLOCKS) - 1 - blocks)]
    start = names.index(first_block) + 1 if blocks < len(INCEPTION_BLOCKS) else 0
    return [
        layer
        for layer in base.layers[start:]
        if not isinstance(layer, keras.layers.BatchNormalization) and layer.weights
    ]


def summarize(model) -> dict:
    """Layers and parameter counts for the model version page."""
    import numpy as np

    def count(weights):
        return int(sum(np.prod(w.shape) for w in weights))

    trainable = count(model.trainable_weights)
    frozen = count(model.non_trainable_weights)
    return {
        "name": model.name,
        "layers": len(model.layers),
        "total_parameters": trainable + frozen,
        "trainable_parameters": trainable,
        "frozen_parameters": frozen,
        "input_shape": list(model.input_shape[1:]),
        "output_classes": int(model.output_shape[-1]),
        "members": len(ensemble_members(model)),
    }
