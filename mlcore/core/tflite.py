"""TensorFlow Lite export of a trained model, and a predictor that runs it on the CPU.

A TFLite model is only used once its agreement with the Keras model has been measured
(``agreement``) and stored with the version.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

QUANTIZATIONS = ("float32", "float16", "int8")


def export_tflite(model, *, quantization: str, representative: np.ndarray | None = None) -> bytes:
    """Convert a Keras model; ``int8`` quantises weights and activations using ``representative``."""
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"Unknown quantization {quantization!r}: use one of {', '.join(QUANTIZATIONS)}.")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        if representative is None or not len(representative):
            raise ValueError("int8 quantization needs representative images.")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def samples() -> Iterable[list[np.ndarray]]:
            for image in representative:
                yield [image[np.newaxis].astype(np.float32)]

        converter.representative_dataset = samples
    return converter.convert()


class TFLitePredictor:
    """Same interface as ``Predictor.probabilities``: preprocessed images in, probabilities out."""

    def __init__(self, model_content: bytes, *, threads: int | None = None):
        import tensorflow as tf

        self.interpreter = tf.lite.Interpreter(model_content=model_content, num_threads=threads)
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self._batch = None

    def _resize(self, batch: int, shape) -> None:
        if self._batch != batch:
            self.interpreter.resize_tensor_input(self.input_index, [batch, *shape])
            self.interpreter.allocate_tensors()
            self._batch = batch

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        self._resize(len(images), images.shape[1:])
        self.interpreter.set_tensor(self.input_index, np.ascontiguousarray(images, dtype=np.float32))
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self.output_index))


def agreement(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    positive_index: int,
    threshold: float,
    labels: np.ndarray | None = None,
) -> dict:
    """How closely a converted model follows the Keras one on the same images."""
    from sklearn.metrics import roc_auc_score

    p_ref, p_new = reference[:, positive_index], candidate[:, positive_index]
    result = {
        "images": len(p_ref),
        "max_abs_difference": float(np.max(np.abs(p_ref - p_new))) if len(p_ref) else 0.0,
        "mean_abs_difference": float(np.mean(np.abs(p_ref - p_new))) if len(p_ref) else 0.0,
        "label_agreement": float(np.mean((p_ref >= threshold) == (p_new >= threshold))) if len(p_ref) else 1.0,
    }
    if labels is not None and len(set(labels.tolist())) == 2:
        result["auc_reference"] = float(roc_auc_score(labels, p_ref))
        result["auc_candidate"] = float(roc_auc_score(labels, p_new))
        result["auc_difference"] = result["auc_candidate"] - result["auc_reference"]
    return result
