"""The single preprocessing function that training and inference both call, so they never disagree.

Two rules exist. ``decoded`` (with squashing to a square) is what every version before issue 11 was
trained with, and those versions keep reading with it bit for bit. ``percentile`` (with letterboxing) is
one intensity rule for every format: decode_image's own scales differ by format (8-bit / 255, 16-bit
/ 65535 so that 12-bit data arrives nearly black, DICOM windowed then stretched, MONOCHROME1 inverted),
but each is an increasing affine map of the stored picture, and windowing between two percentiles of
the picture undoes any such map, so the same radiograph gives the same network input in every format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
from PIL import Image

from mlcore.core.imaging import decode_image

Scaling = Literal["inception", "unit"]
Intensity = Literal["decoded", "percentile"]
Equalization = Literal["none", "clahe"]

# What a stored spec without the newer fields means: the rule every version was trained with before them.
LEGACY_FIELDS = {"intensity": "decoded", "letterbox": False}
# What new training runs use.
CURRENT_FIELDS = {"intensity": "percentile", "letterbox": True}

LOW_PERCENTILE, HIGH_PERCENTILE = 0.5, 99.5
# The percentiles are taken on the resized picture, every k-th pixel so that about this many are ranked:
# ranking all of a 299 px picture costs ~3.5 ms, this many ~0.4 ms, and moves the window by far less
# than a grey level.
PERCENTILE_SAMPLE = 16_384
# CLAHE (scikit-image's equalize_adapthist) on the windowed picture at network resolution, so the tiles
# (an eighth of each side) cover the same share of the chest at every input size; the clip limit is
# scikit-image's default.
CLAHE_CLIP_LIMIT = 0.01
# Pixels at the picture's own minimum or maximum are flat borders, padding or burned-in saturation, not
# the body; they are left out of the percentiles unless they are nearly all there is.
MIN_BODY_SHARE = 0.05


@dataclass(frozen=True)
class PreprocessingSpec:
    """How pixels become network input. ``inception`` is [-1, 1] as InceptionV3's ImageNet weights
    expect (``keras.applications.inception_v3.preprocess_input``); ``unit`` is [0, 1] (from scratch).

    ``intensity``: ``decoded`` uses decode_image's [0, 1] values as they are; ``percentile`` maps the
    0.5th-99.5th percentile of the picture's body to [0, 1]. ``letterbox``: fit the longer side and pad
    the rest with black, instead of squashing the picture to a square. ``equalization``: ``clahe``
    equalises contrast locally after the intensity rule (``train_model --clahe``); ``none`` leaves it.
    The defaults are the legacy rule (see ``from_stored``); ``current`` gives the rule new runs train with.
    """

    image_size: int = 224
    scaling: Scaling = "unit"
    intensity: Intensity = "decoded"
    letterbox: bool = False
    equalization: Equalization = "none"

    def __post_init__(self):
        if self.image_size < 75:
            raise ValueError("InceptionV3 needs images of at least 75x75 pixels.")
        if self.scaling not in ("inception", "unit"):
            raise ValueError(f"Unknown pixel scaling {self.scaling!r}: use 'inception' or 'unit'.")
        if self.intensity not in ("decoded", "percentile"):
            raise ValueError(f"Unknown intensity rule {self.intensity!r}: use 'decoded' or 'percentile'.")
        if not isinstance(self.letterbox, bool):
            raise ValueError(f"letterbox must be true or false, not {self.letterbox!r}.")
        if self.equalization not in ("none", "clahe"):
            raise ValueError(f"Unknown equalization {self.equalization!r}: use 'none' or 'clahe'.")

    @classmethod
    def current(cls, *, image_size: int, scaling: Scaling, equalization: Equalization = "none") -> PreprocessingSpec:
        """The rule new training runs use: percentile windowing and letterboxing, CLAHE if asked for."""
        return cls(image_size=image_size, scaling=scaling, equalization=equalization, **CURRENT_FIELDS)

    @classmethod
    def from_stored(cls, stored: Mapping) -> PreprocessingSpec:
        """A model version's stored dict -> its spec; a field the dict lacks takes its legacy value, so a
        version stored before the field existed reads exactly as it was trained."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(stored) - known)
        if unknown:
            raise ValueError(f"Unknown preprocessing field(s) {', '.join(unknown)}: this version needs newer code.")
        return cls(**(LEGACY_FIELDS | dict(stored)))

    def as_dict(self) -> dict:
        """What a version stores. Without CLAHE the field is left out, so such a version still reads on
        code from before the field (a worker not yet upgraded); one with it is refused there, as it must be."""
        stored = asdict(self)
        if self.equalization == "none":
            del stored["equalization"]
        return stored

    @property
    def black(self) -> float:
        return -1.0 if self.scaling == "inception" else 0.0


@dataclass(frozen=True)
class Box:
    """Where the picture lies in the (image_size, image_size) network input, in pixels."""

    top: int
    left: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)


def picture_box(shape: tuple[int, ...], spec: PreprocessingSpec) -> Box:
    """The whole square when squashed; letterboxed, the longer side fills it and the picture is centred."""
    size = spec.image_size
    if not spec.letterbox:
        return Box(0, 0, size, size)
    height, width = shape[:2]
    scale = size / max(height, width)
    inner_height = min(size, max(1, round(height * scale)))
    inner_width = min(size, max(1, round(width * scale)))
    return Box((size - inner_height) // 2, (size - inner_width) // 2, inner_height, inner_width)


def crop_to_picture(square: np.ndarray, shape: tuple[int, ...], spec: PreprocessingSpec) -> np.ndarray:
    """The part of an (image_size, image_size) map (a placed Grad-CAM) that covers a picture of `shape`:
    stretched to `shape`, it lies on the picture as the network saw it. Squashed inputs need no crop."""
    return square[picture_box(shape, spec).slices]


def preprocess(gray: np.ndarray, spec: PreprocessingSpec) -> np.ndarray:
    """Grayscale image of any size (decode_image's [0, 1]) -> (size, size, 3) float32 network input."""
    box = picture_box(gray.shape, spec)
    resized = Image.fromarray(np.ascontiguousarray(gray, dtype=np.float32)).resize(
        (box.width, box.height), Image.Resampling.BILINEAR
    )
    values = np.asarray(resized, dtype=np.float32)
    unit = percentile_window(values) if spec.intensity == "percentile" else np.clip(values, 0.0, 1.0)
    if spec.equalization == "clahe":
        unit = equalize_contrast(unit)
    scaled = unit * 2.0 - 1.0 if spec.scaling == "inception" else unit
    if spec.letterbox:
        canvas = np.full((spec.image_size, spec.image_size), spec.black, dtype=np.float32)
        canvas[box.slices] = scaled
        scaled = canvas
    return np.repeat(scaled[:, :, np.newaxis], 3, axis=2)


def percentile_window(values: np.ndarray) -> np.ndarray:
    """The body's 0.5th-99.5th percentile mapped to [0, 1], clipped beyond; a flat picture is all black.

    Any increasing affine map of `values` gives the same result (up to rounding), which is what makes the
    formats agree.
    """
    sample = values.ravel()
    sample = sample[:: max(1, sample.size // PERCENTILE_SAMPLE)]
    if sample.size == 0:
        return np.zeros_like(values)
    lowest, highest = sample.min(), sample.max()
    body = sample[(sample > lowest) & (sample < highest)]
    if body.size < MIN_BODY_SHARE * sample.size:
        body = sample
    low, high = np.percentile(body, [LOW_PERCENTILE, HIGH_PERCENTILE])
    span = float(high - low)
    if not np.isfinite(span) or span <= 1e-6 * max(1.0, abs(float(low)), abs(float(high))):
        return np.zeros_like(values)
    unit = values - np.float32(low)
    unit *= np.float32(1.0 / span)
    return np.clip(unit, 0.0, 1.0, out=unit)


def equalize_contrast(unit: np.ndarray) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of a [0, 1] picture; a flat one stays as it is."""
    from skimage.exposure import equalize_adapthist

    if float(unit.max()) == float(unit.min()):
        return unit
    return equalize_adapthist(unit, clip_limit=CLAHE_CLIP_LIMIT).astype(np.float32, copy=False)


def load_image(source: str | Path | bytes | BinaryIO, spec: PreprocessingSpec) -> np.ndarray:
    """Decode a file (by content) and preprocess it: the path of every image into the network."""
    return preprocess(decode_image(source), spec)


def to_display(array: np.ndarray, spec: PreprocessingSpec) -> np.ndarray:
    """Network input back to a [0, 1] grayscale picture, for plots."""
    gray = array[..., 0]
    return (gray + 1.0) / 2.0 if spec.scaling == "inception" else gray
