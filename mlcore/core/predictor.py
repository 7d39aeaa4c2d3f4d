"""A loaded model version that turns preprocessed images into readings, in batches, with Grad-CAM."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mlcore.core.model import CLASSIFIER_LAYER, LAST_CONV_LAYER
from mlcore.core.preprocessing import PreprocessingSpec


@dataclass(frozen=True)
class Reading:
    label: str
    probability: float  # of the positive class
    threshold: float
    probabilities: dict[str, float]


class Predictor:
    """Loads once, warms up, then calls the network directly (not ``model.predict``) per batch."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        class_names: list[str],
        positive_class: str,
        threshold: float,
        preprocessing: PreprocessingSpec,
        max_batch: int = 32,
    ):
        import keras
        import tensorflow as tf

        self.class_names = list(class_names)
        self.positive_index = self.class_names.index(positive_class)
        self.positive_class = positive_class
        self.negative_class = next(name for name in self.class_names if name != positive_class)
        self.threshold = float(threshold)
        self.spec = preprocessing
        self.max_batch = max_batch
        self.model = keras.saving.load_model(str(model_path), compile=False)
        size = preprocessing.image_size
        signature = tf.TensorSpec((None, size, size, 3), tf.float32)
        self._forward = tf.function(lambda x: self.model(x, training=False), input_signature=[signature])
        self._classifier = self.model.get_layer(CLASSIFIER_LAYER)
        self._gradcam_model = keras.Model(
            self.model.inputs, [self.model.get_layer(LAST_CONV_LAYER).output, self._classifier.input]
        )
        self._gradcam = tf.function(self._gradcam_step, input_signature=[signature])
        self.fast_path = None  # a verified TFLitePredictor, when the deployment enables it
        self.warm_up()

    @property
    def engine(self) -> str:
        return "tflite" if self.fast_path is not None else "keras"

    def use_fast_path(self, fast_path) -> None:
        """Run readings through a verified TFLite model (Grad-CAM keeps the Keras graph)."""
        self.fast_path = fast_path
        self.warm_up()

    def warm_up(self) -> float:
        """Trace the graphs once so the first real scan does not pay for it; returns seconds."""
        started = time.perf_counter()
        blank = np.zeros((1, self.spec.image_size, self.spec.image_size, 3), np.float32)
        self.probabilities(blank)
        return time.perf_counter() - started

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(n, size, size, 3) preprocessed images -> (n, classes) probabilities, in chunks of max_batch."""
        run = self.fast_path.probabilities if self.fast_path is not None else self._keras_probabilities
        chunks = [run(images[start : start + self.max_batch]) for start in range(0, len(images), self.max_batch)]
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.class_names)), np.float32)

    def _keras_probabilities(self, images: np.ndarray) -> np.ndarray:
        return self._forward(images).numpy()

    def read(self, images: np.ndarray) -> list[Reading]:
        return [self.reading(row) for row in self.probabilities(images)]

    def reading(self, row: np.ndarray) -> Reading:
        probability = float(row[self.positive_index])
        return Reading(
            label=self.positive_class if probability >= self.threshold else self.negative_class,
            probability=probability,
            threshold=self.threshold,
            probabilities={name: float(p) for name, p in zip(self.class_names, row, strict=True)},
        )

    def _gradcam_step(self, images):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            activations, features = self._gradcam_model(images, training=False)
            score = self._log_odds(features)
        gradients = tape.gradient(score, activations)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        return tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1))

    def _log_odds(self, features):
        """The positive class's score before the softmax (as Grad-CAM's paper uses it): its log-odds.

        Computed from the classifier's own weights, so its gradient does not vanish when the model is
        sure and a confident reading, positive or negative, still gets a heatmap.
        """
        import tensorflow as tf

        logits = tf.matmul(features, self._classifier.kernel) + self._classifier.bias
        positive = logits[:, self.positive_index]
        others = tf.concat([logits[:, : self.positive_index], logits[:, self.positive_index + 1 :]], axis=1)
        return positive - tf.reduce_logsumexp(others, axis=1)

    def heatmap(self, image: np.ndarray) -> np.ndarray:
        """Grad-CAM of the positive class over InceptionV3's last block, scaled to [0, 1]."""
        cam = self._gradcam(image[np.newaxis]).numpy()[0]
        peak = float(cam.max())
        return cam / peak if peak > 0 else np.zeros_like(cam)


DISPLAY_MAX_SIDE = 1024


def display_gray(gray: np.ndarray, max_side: int = DISPLAY_MAX_SIDE) -> np.ndarray:
    """The radiograph at most max_side pixels on its longer side, for the browser."""
    height, width = gray.shape
    scale = min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return gray
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(np.ascontiguousarray(gray, dtype=np.float32)).resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized), 0.0, 1.0)


def gray_png(gray: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((np.clip(gray, 0, 1) * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def overlay_png(gray: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.45) -> bytes:
    """The heatmap in jet colours over the grayscale radiograph, stronger where it is hotter, as PNG."""
    from matplotlib import colormaps

    height, width = gray.shape
    cam = Image.fromarray(np.ascontiguousarray(heatmap, dtype=np.float32)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    cam = np.clip(np.asarray(cam), 0.0, 1.0)
    colours = colormaps["jet"](cam)[..., :3]
    base = np.repeat(np.clip(gray, 0.0, 1.0)[..., np.newaxis], 3, axis=2)
    weight = (alpha * cam)[..., np.newaxis]
    blended = (1.0 - weight) * base + weight * colours
    buffer = io.BytesIO()
    Image.fromarray((blended * 255).round().astype(np.uint8)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
