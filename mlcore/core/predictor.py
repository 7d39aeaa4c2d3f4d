"""A loaded model version that turns preprocessed images into calibrated readings, gate verdicts and Grad-CAM."""

from __future__ import annotations

import functools
import hashlib
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mlcore.core.calibration import Band, apply_temperature
from mlcore.core.classes import class_set, reading_call
from mlcore.core.gate import FeatureGate, GateVerdict, gate_features
from mlcore.core.gradcam import picture_heatmap, readout_function, run_readout
from mlcore.core.imaging import high_bit_depth
from mlcore.core.preprocessing import PreprocessingSpec, percentile_window


@dataclass(frozen=True)
class Reliability:
    """What a version learned on its validation split about trusting its own outputs (all optional)."""

    temperature: float | None = None
    band: Band = field(default_factory=lambda: Band(None, None))
    gate: FeatureGate | None = None
    heatmap_scale: float | None = None


@dataclass(frozen=True)
class Reading:
    label: str  # the class called, or "" when indeterminate
    result: str  # mlcore.core.classes.RESULT_POSITIVE, RESULT_NEGATIVE or RESULT_INDETERMINATE
    probability: float  # calibrated, of the positive class
    raw_probability: float  # the network's own, of the positive class
    threshold: float
    probabilities: dict[str, float]  # calibrated, every class


@dataclass
class Readout:
    """Everything one pass of the network gives for one image."""

    reading: Reading
    image_check: GateVerdict | None  # None when the version has no stored gate
    cam: np.ndarray  # the raw Grad-CAM grid of the last block


class Predictor:
    """Loads once, warms up, then reads batches in one pass: reading, gate features and Grad-CAM."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        class_names: list[str],
        positive_class: str,
        threshold: float,
        preprocessing: PreprocessingSpec,
        reliability: Reliability | None = None,
        max_batch: int = 32,
        reuse: Predictor | None = None,
    ):
        """``reuse``: a predictor this process holds; when its network file is byte for byte this one (a
        version whose gate was refitted, or one activated again), its loaded and traced network is taken
        instead of loading the same network a second time."""
        import keras
        import tensorflow as tf

        self.classes = class_set(class_names, positive_class)
        self.class_names = list(self.classes.names)
        self.positive_index = self.classes.positive_index
        self.positive_class = positive_class
        self.threshold = float(threshold)
        self.spec = preprocessing
        self.reliability = reliability or Reliability()
        self.max_batch = max_batch
        with open(model_path, "rb") as handle:
            self.network_digest = hashlib.file_digest(handle, "sha256").hexdigest()
        self.fast_path = None  # a verified TFLitePredictor, when the deployment enables it
        if reuse is not None and reuse._network_key == self._network_key:
            self.model, self._forward, self._readout = reuse.model, reuse._forward, reuse._readout
            self.network_reused = True
            return
        self.network_reused = False
        self.model = keras.saving.load_model(str(model_path), compile=False)
        size = preprocessing.image_size
        signature = tf.TensorSpec((None, size, size, 3), tf.float32)
        self._forward = tf.function(lambda x: self.model(x, training=False), input_signature=[signature])
        self._readout = readout_function(self.model, positive_index=self.positive_index, image_size=size)
        self.warm_up()

    @property
    def _network_key(self) -> tuple:
        """What the loaded and traced network depends on: its file, the positive column, the input size."""
        return (self.network_digest, self.positive_index, self.spec.image_size)

    @property
    def engine(self) -> str:
        return "tflite" if self.fast_path is not None else "keras"

    def use_fast_path(self, fast_path) -> None:
        """Probabilities alone (benchmarks) through a verified TFLite model; readings keep the fused pass."""
        self.fast_path = fast_path
        self.warm_up()

    def warm_up(self) -> float:
        """Trace the reading pass once so the first real scan does not pay for it; returns seconds.

        Only what scans use: the probabilities-only path (benchmarks, which warm up themselves) is traced
        on its first call, not here, where it cost every model load ~2 s.
        """
        started = time.perf_counter()
        blank = np.zeros((1, self.spec.image_size, self.spec.image_size, 3), np.float32)
        if self.fast_path is not None:
            self.fast_path.probabilities(blank)
        self.read(blank)
        return time.perf_counter() - started

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(n, size, size, 3) preprocessed images -> (n, classes) raw probabilities, in chunks of max_batch."""
        run = self.fast_path.probabilities if self.fast_path is not None else self._keras_probabilities
        chunks = [run(images[start : start + self.max_batch]) for start in range(0, len(images), self.max_batch)]
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.class_names)), np.float32)

    def _keras_probabilities(self, images: np.ndarray) -> np.ndarray:
        return self._forward(images).numpy()

    def read(self, images: np.ndarray) -> list[Readout]:
        """One pass per chunk: calibrated readings, the gate's verdicts and the Grad-CAM grids."""
        if len(images) == 0:
            return []
        raw, pooled, cams = run_readout(self._readout, images, batch_size=self.max_batch)
        gate = self.reliability.gate
        checks = gate.verdicts(gate_features(pooled, images)) if gate is not None else [None] * len(images)
        return [
            Readout(reading=self.reading(row), image_check=check, cam=cam)
            for row, check, cam in zip(raw, checks, cams, strict=True)
        ]

    def reading_pass_probabilities(self, images: np.ndarray) -> np.ndarray:
        """Raw probabilities through the reading pass ``read`` runs (gate features and maps computed, then
        dropped): what a scan costs in the network, for benchmarks."""
        return run_readout(self._readout, images, batch_size=self.max_batch)[0]

    def reading(self, raw: np.ndarray) -> Reading:
        calibrated = apply_temperature(raw, self.reliability.temperature)
        probabilities = {name: float(p) for name, p in zip(self.class_names, calibrated, strict=True)}
        band = self.reliability.band
        call = reading_call(probabilities, classes=self.classes, threshold=self.threshold, band=(band.low, band.high))
        return Reading(
            label=call.class_name,
            result=call.result,
            probability=probabilities[self.positive_class],
            raw_probability=float(raw[self.positive_index]),
            threshold=self.threshold,
            probabilities=probabilities,
        )

    def heatmap(self, cam: np.ndarray, *, shape: tuple[int, ...]) -> np.ndarray:
        """A Grad-CAM grid as a [0, 1] map of the decoded image of `shape`, on the version's fixed scale."""
        return picture_heatmap(cam, shape=shape, spec=self.spec, scale=self.reliability.heatmap_scale)


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


# Chunks that make a browser show a PNG's pixels differently from the values decode_image reads.
RENDERING_CHUNKS = (b"eXIf", b"gAMA", b"iCCP", b"cHRM", b"tRNS")


def shown_as_is(data: bytes, *, max_side: int = DISPLAY_MAX_SIDE) -> bool:
    """Whether an uploaded file already is its own preview: an 8-bit grayscale PNG within the display
    size with nothing that changes how it renders, so decoding and re-encoding it would change no pixel."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or any(chunk in data for chunk in RENDERING_CHUNKS):
        return False
    try:
        image = Image.open(io.BytesIO(data))
    except (OSError, ValueError):
        return False
    return image.mode == "L" and max(image.size) <= max_side


def preview_png(data: bytes, gray: np.ndarray, *, spec: PreprocessingSpec) -> bytes:
    """The stored preview of an upload: the file itself where it already is one, else the display-sized
    picture as PNG. A 16-bit PNG is windowed as the version windows its network input, so data that fill
    only 12 bits are not shown nearly black; an 8-bit image is shown as it was decoded."""
    if shown_as_is(data):
        return data
    shown = display_gray(gray)
    if spec.intensity == "percentile" and high_bit_depth(data):
        shown = percentile_window(shown)
    return gray_png(shown)


# zlib's fastest level: several times quicker to encode than the default for a few percent more bytes on
# radiographs, and the worker encodes two images per scan.
PNG_COMPRESS_LEVEL = 1


@functools.cache
def jet_palette() -> bytes:
    """matplotlib's jet as a 256-entry RGB palette (matplotlib is loaded on the first overlay only)."""
    from matplotlib import colormaps

    return (colormaps["jet"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8).tobytes()


def gray_png(gray: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((np.clip(gray, 0, 1) * 255).round().astype(np.uint8)).save(
        buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL
    )
    return buffer.getvalue()


# A heat layer carries a Grad-CAM grid of at most 8x8 cells: 256 pixels on its longer side keep every detail
# the browser's smooth scaling shows over a 1024-pixel preview, at a sixteenth of the pixels to encode.
HEAT_LAYER_MAX_SIDE = 256
HEAT_ALPHA = 0.45


def heat_layer_png(heatmap: np.ndarray, *, size: tuple[int, int], alpha: float = HEAT_ALPHA) -> bytes:
    """The heatmap in jet colours as a transparent PNG of the image's aspect (`size` is width, height):
    opaque where hot, clear where cold, laid over the preview by the page, the report and the PDF.

    Laid over the radiograph it gives the picture of blending the two in jet colours, without re-encoding
    the radiograph in colour for every scan (that encoding was the worker's largest cost after the network).
    """
    width, height = size
    scale = min(1.0, HEAT_LAYER_MAX_SIDE / max(width, height))
    layer_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    heat = _heat_bytes(heatmap, layer_size)
    colours = Image.frombytes("P", layer_size, heat.tobytes())
    colours.putpalette(jet_palette())
    layer = colours.convert("RGBA")
    layer.putalpha(Image.fromarray((heat.astype(np.float32) * alpha).round().astype(np.uint8)))
    buffer = io.BytesIO()
    layer.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def composed_overlay(gray: np.ndarray, heatmap_png: bytes) -> Image.Image:
    """The radiograph with its stored heatmap laid over it, as one RGB picture (for a DICOM Secondary Capture).

    A transparent heat layer is scaled to the radiograph and composited; a heatmap stored before layers
    (the blend itself, opaque RGB) already is the picture.
    """
    stored = Image.open(io.BytesIO(heatmap_png))
    if stored.mode != "RGBA":
        return stored.convert("RGB")
    height, width = gray.shape
    base = Image.fromarray((np.clip(gray, 0.0, 1.0) * 255).round().astype(np.uint8)).convert("RGBA")
    return Image.alpha_composite(base, stored.resize((width, height), Image.Resampling.BILINEAR)).convert("RGB")


def _heat_bytes(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A [0, 1] heatmap scaled to (width, height) as 8-bit heat, the jet palette's index."""
    cam = Image.fromarray(np.ascontiguousarray(heatmap, dtype=np.float32)).resize(size, Image.Resampling.BILINEAR)
    return (np.clip(np.asarray(cam), 0.0, 1.0) * 255).round().astype(np.uint8)
