"""Running a trained network on preprocessed images."""

from __future__ import annotations

import numpy as np


def predict_probabilities(model, images: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
    """Class probabilities for a stack of preprocessed images, calling the model directly per batch."""
    if len(images) == 0:
        return np.zeros((0, int(model.output_shape[-1])), dtype=np.float32)
    batches = [
        np.asarray(model(images[start : start + batch_size], training=False))
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(batches).astype(np.float32)


def load_model(path) -> object:
    import keras

    return keras.saving.load_model(str(path), compile=False)
