"""The preview and Grad-CAM overlay PNGs the worker writes for every scan."""

import io

import numpy as np
from matplotlib import colormaps
from PIL import Image

from mlcore.core.predictor import gray_png, overlay_png


def radiograph_and_heatmap():
    rng = np.random.default_rng(3)
    gray = np.clip(0.4 + 0.2 * rng.standard_normal((300, 420)), 0, 1).astype(np.float32)
    heatmap = np.zeros((224, 224), np.float32)
    heatmap[60:160, 40:120] = np.linspace(0.0, 1.0, 80)
    return gray, heatmap


def float_blend(gray, heatmap, alpha=0.45):
    """The overlay as first written: jet colours blended in floating point."""
    height, width = gray.shape
    cam = Image.fromarray(heatmap).resize((width, height), Image.Resampling.BILINEAR)
    cam = np.clip(np.asarray(cam), 0.0, 1.0)
    base = np.repeat(gray[..., np.newaxis], 3, axis=2)
    weight = (alpha * cam)[..., np.newaxis]
    return ((1.0 - weight) * base + weight * colormaps["jet"](cam)[..., :3]) * 255


def test_the_overlay_is_the_jet_blend_of_the_heatmap_over_the_radiograph():
    gray, heatmap = radiograph_and_heatmap()

    overlay = np.asarray(Image.open(io.BytesIO(overlay_png(gray, heatmap))), dtype=np.float64)

    assert overlay.shape == (300, 420, 3)
    assert np.abs(overlay - float_blend(gray, heatmap)).max() <= 3


def test_where_the_heatmap_is_cold_the_radiograph_shows_unchanged():
    gray, _ = radiograph_and_heatmap()

    overlay = np.asarray(Image.open(io.BytesIO(overlay_png(gray, np.zeros((224, 224), np.float32)))))

    expected = (gray * 255).round().astype(np.uint8)
    for channel in range(3):
        assert np.array_equal(overlay[..., channel], expected)


def first_idat_zlib_header(png: bytes) -> bytes:
    start = png.index(b"IDAT") + 4
    return png[start : start + 2]


def test_previews_and_overlays_are_compressed_at_zlibs_fastest_level():
    gray, heatmap = radiograph_and_heatmap()

    assert first_idat_zlib_header(gray_png(gray)) == b"\x78\x01"
    assert first_idat_zlib_header(overlay_png(gray, heatmap)) == b"\x78\x01"
