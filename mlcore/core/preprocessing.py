"""The single preprocessing function that training and inference both call, so they never disagree."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
from PIL import Image

from mlcore.core.imaging import decode_image

Scaling = Literal["inception", "unit"]


@dataclass(frozen=True)
class PreprocessingSpec:
    """How pixels become network input. ``inception`` is [-1, 1] as InceptionV3's ImageNet weights
    expect (``keras.applications.inception_v3.preprocess_input``); ``unit`` is [0, 1] (from scratch)."""

    image_size: int = 224
    scaling: Scaling = "unit"

    def __post_init__(self):
        if self.image_size < 75:
            raise ValueError("InceptionV3 needs images of at least 75x75 pixels.")
        if self.scaling not in ("inception", "unit"):
            raise ValueError(f"Unknown pixel scaling {self.scaling!r}: use 'inception' or 'unit'.")

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def black(self) -> float:
        return -1.0 if self.scaling == "inception" else 0.0


def preprocess(gray: np.ndarray, spec: PreprocessingSpec) -> np.ndarray:
    """Grayscale [0, 1] image of any size -> (size, size, 3) float32 network input."""
    resized = Image.fromarray(np.ascontiguousarray(gray, dtype=np.float32)).resize(
        (spec.image_size, spec.image_size), Image.Resampling.BILINEAR
    )
    unit = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    scaled = unit * 2.0 - 1.0 if spec.scaling == "inception" else unit
    return np.repeat(scaled[:, :, np.newaxis], 3, axis=2)


def load_image(source: str | Path | bytes | BinaryIO, spec: PreprocessingSpec) -> np.ndarray:
    """Decode a file (by content) and preprocess it: the path of every image into the network."""
    return preprocess(decode_image(source), spec)


def to_display(array: np.ndarray, spec: PreprocessingSpec) -> np.ndarray:
    """Network input back to a [0, 1] grayscale picture, for plots."""
    gray = array[..., 0]
    return (gray + 1.0) / 2.0 if spec.scaling == "inception" else gray
