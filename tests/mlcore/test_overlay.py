"""The preview and Grad-CAM heat layer PNGs the worker writes for every scan, and when an upload is its own preview."""

import io

import numpy as np
from matplotlib import colormaps
from PIL import Image

from mlcore.core.imaging import decode_image, high_bit_depth
from mlcore.core.predictor import (
    HEAT_LAYER_MAX_SIDE,
    composed_overlay,
    display_gray,
    gray_png,
    heat_layer_png,
    preview_png,
    shown_as_is,
)
from mlcore.core.preprocessing import PreprocessingSpec


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


def smooth_heatmap():
    """A Grad-CAM-like map: a few cells placed on the input and scaled smoothly, as the predictor gives."""
    grid = np.array([[0.0, 0.1, 0.2, 0.0, 0.0], [0.1, 0.6, 1.0, 0.3, 0.0], [0.0, 0.4, 0.7, 0.2, 0.0]], np.float32)
    return np.asarray(Image.fromarray(grid).resize((224, 224), Image.Resampling.BILINEAR))


def test_the_heat_layer_laid_over_the_radiograph_is_the_jet_blend():
    gray, heatmap = radiograph_and_heatmap()[0], smooth_heatmap()

    layer = heat_layer_png(heatmap, size=(420, 300))
    composed = np.asarray(composed_overlay(gray, layer), dtype=np.float64)

    assert composed.shape == (300, 420, 3)
    difference = np.abs(composed - float_blend(gray, heatmap))
    assert np.percentile(difference, 99) <= 4
    assert difference.max() <= 12  # the layer is scaled up from 256 pixels: edges of hot cells blur slightly


def test_the_heat_layer_is_small_transparent_and_of_the_images_aspect():
    layer = Image.open(io.BytesIO(heat_layer_png(smooth_heatmap(), size=(1024, 768))))

    assert layer.mode == "RGBA"
    assert layer.size == (HEAT_LAYER_MAX_SIDE, 192)
    alpha = np.asarray(layer)[..., 3]
    assert alpha.min() == 0  # cold: the radiograph shows through
    assert 100 < alpha.max() <= round(0.45 * 255)  # hottest: at most the blend's weight


def test_where_the_heatmap_is_cold_the_radiograph_shows_unchanged():
    gray, _ = radiograph_and_heatmap()

    composed = np.asarray(composed_overlay(gray, heat_layer_png(np.zeros((224, 224), np.float32), size=(420, 300))))

    expected = (gray * 255).round().astype(np.uint8)
    for channel in range(3):
        assert np.array_equal(composed[..., channel], expected)


def test_a_heatmap_stored_as_a_blend_before_layers_is_composed_as_it_is():
    blend = (np.random.default_rng(2).random((30, 40, 3)) * 255).astype(np.uint8)

    composed = composed_overlay(np.zeros((30, 40), np.float32), png(blend))

    assert np.array_equal(np.asarray(composed), blend)


def first_idat_zlib_header(png: bytes) -> bytes:
    start = png.index(b"IDAT") + 4
    return png[start : start + 2]


def test_previews_and_heat_layers_are_compressed_at_zlibs_fastest_level():
    gray, heatmap = radiograph_and_heatmap()

    assert first_idat_zlib_header(gray_png(gray)) == b"\x78\x01"
    assert first_idat_zlib_header(heat_layer_png(heatmap, size=(420, 300))) == b"\x78\x01"


def png(pixels: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", **options)
    return buffer.getvalue()


def test_an_8_bit_grayscale_png_within_the_display_size_is_its_own_preview():
    gray = (np.random.default_rng(1).random((600, 800)) * 255).astype(np.uint8)

    assert shown_as_is(png(gray))
    assert shown_as_is(png(np.zeros((1024, 300), np.uint8)))


def test_files_whose_pixels_or_rendering_differ_from_the_preview_are_re_encoded():
    gray = (np.random.default_rng(1).random((60, 80)) * 255).astype(np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(gray).save(jpeg, format="JPEG")

    assert not shown_as_is(png(np.zeros((1025, 300), np.uint8)))  # larger than shown
    assert not shown_as_is(png(gray.astype(np.uint16) * 257))  # 16-bit
    assert not shown_as_is(png(np.stack([gray] * 3, axis=2)))  # RGB
    assert not shown_as_is(png(gray, transparency=0))
    gamma = png(gray)
    gamma = gamma[:33] + b"\x00\x00\x00\x04gAMA\x00\x00\xb1\x8f\x0b\xfc\x61\x05" + gamma[33:]
    assert Image.open(io.BytesIO(gamma)).info["gamma"]
    assert not shown_as_is(gamma)
    assert not shown_as_is(jpeg.getvalue())


PERCENTILE = PreprocessingSpec.current(image_size=75, scaling="unit")
DECODED = PreprocessingSpec(image_size=75, scaling="unit")


def twelve_bit_png() -> bytes:
    """A 16-bit PNG whose values sit in 0..4095, as 12-bit detectors write them."""
    ramp = np.tile(np.linspace(0, 4095, 120), (90, 1)).astype(np.uint16)
    return png(ramp)


def preview_pixels(data: bytes, spec: PreprocessingSpec) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(preview_png(data, decode_image(data), spec=spec))))


def test_a_16_bit_png_is_previewed_with_the_windowing_of_its_network_input():
    data = twelve_bit_png()
    assert Image.open(io.BytesIO(data)).mode == "I;16"

    windowed = preview_pixels(data, PERCENTILE)

    assert (windowed.min(), windowed.max()) == (0, 255)
    assert preview_pixels(data, DECODED).max() <= 16  # a version trained on decoded values saw it this dark


def test_an_8_bit_image_is_previewed_as_decoded_whatever_the_windowing():
    rng = np.random.default_rng(4)
    narrow = (100 + rng.random((90, 120)) * 50).astype(np.uint8)
    for data in (png(np.stack([narrow] * 3, axis=2)), png(np.tile(narrow, (12, 1)))):  # RGB; taller than shown
        assert not shown_as_is(data)
        expected = np.asarray(Image.open(io.BytesIO(gray_png(display_gray(decode_image(data))))))
        np.testing.assert_array_equal(preview_pixels(data, PERCENTILE), expected)
    as_is = png(narrow)
    assert preview_png(as_is, decode_image(as_is), spec=PERCENTILE) == as_is


def test_only_a_16_bit_png_counts_as_high_bit_depth():
    gray = (np.random.default_rng(1).random((60, 80)) * 255).astype(np.uint8)

    assert high_bit_depth(twelve_bit_png())
    assert not high_bit_depth(png(gray))
    assert not high_bit_depth(png(np.stack([gray] * 3, axis=2)))
    assert not high_bit_depth(b"\x89PNG\r\n\x1a\n")
