"""One preprocessing function for training and inference: shapes, scaling, and their exact agreement."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlcore.core.dataset import DatasetItem, load_images
from mlcore.core.imaging import decode_image
from mlcore.core.preprocessing import PreprocessingSpec, load_image, preprocess, to_display
from tests.mlcore.synthetic import synthetic_image
from tests.mlcore.test_imaging import dicom_bytes


def gradient(height: int = 120, width: int = 90) -> np.ndarray:
    """A non-square grayscale image in [0, 1] with every corner different."""
    y, x = np.mgrid[0:height, 0:width]
    return ((0.7 * y / (height - 1)) + (0.3 * x / (width - 1))).astype(np.float32)


def write_png(path: Path, rng: np.random.Generator) -> bytes:
    Image.fromarray((synthetic_image("COVID", rng, size=100) * 255).astype(np.uint8)).save(path, "PNG")
    return path.read_bytes()


def write_jpeg(path: Path, rng: np.random.Generator) -> bytes:
    pixels = (synthetic_image("NORMAL", rng, size=130) * 255).astype(np.uint8)
    Image.fromarray(pixels[:, :110]).convert("RGB").save(path, "JPEG", quality=90)
    return path.read_bytes()


def write_dicom(path: Path, rng: np.random.Generator) -> bytes:
    pixels = (synthetic_image("COVID", rng, size=90) * 4095).astype("<u2")
    data = dicom_bytes(
        pixels,
        photometric="MONOCHROME1",
        RescaleSlope=1,
        RescaleIntercept=-1024,
        WindowCenter=1000,
        WindowWidth=2000,
    )
    path.write_bytes(data)
    return data


WRITERS = {"png": write_png, "jpeg": write_jpeg, "dicom": write_dicom}


# --- preprocess -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scaling", ["unit", "inception"])
@pytest.mark.parametrize("size", [75, 128, 224])
def test_preprocess_returns_square_three_channel_float32(scaling, size):
    array = preprocess(gradient(), PreprocessingSpec(image_size=size, scaling=scaling))
    assert array.shape == (size, size, 3)
    assert array.dtype == np.float32
    # the three channels are the same grayscale picture
    assert np.array_equal(array[..., 0], array[..., 1])
    assert np.array_equal(array[..., 0], array[..., 2])


def test_unit_scaling_lies_in_zero_one_and_spans_it():
    array = preprocess(gradient(), PreprocessingSpec(image_size=100, scaling="unit"))
    assert array.min() >= 0.0
    assert array.max() <= 1.0
    assert array.min() < 0.05
    assert array.max() > 0.95


def test_inception_scaling_is_unit_times_two_minus_one():
    gray = gradient()
    unit = preprocess(gray, PreprocessingSpec(image_size=100, scaling="unit"))
    inception = preprocess(gray, PreprocessingSpec(image_size=100, scaling="inception"))
    assert inception.min() >= -1.0
    assert inception.max() <= 1.0
    assert inception.min() < -0.9  # really uses the negative half
    np.testing.assert_allclose(inception, unit * 2.0 - 1.0, rtol=0, atol=1e-6)


def test_preprocess_keeps_the_picture_orientation():
    gray = np.zeros((120, 80), np.float32)
    gray[:40, :] = 1.0  # bright top third
    array = preprocess(gray, PreprocessingSpec(image_size=90))
    assert array[:20, :, 0].mean() > 0.95
    assert array[-40:, :, 0].mean() < 0.05


def test_preprocess_clips_values_outside_unit_range():
    gray = np.linspace(-0.5, 1.5, 100 * 100, dtype=np.float32).reshape(100, 100)
    unit = preprocess(gray, PreprocessingSpec(image_size=100, scaling="unit"))
    inception = preprocess(gray, PreprocessingSpec(image_size=100, scaling="inception"))
    assert unit.min() == 0.0
    assert unit.max() == 1.0
    assert inception.min() == -1.0
    assert inception.max() == 1.0


@pytest.mark.parametrize("size", [0, 32, 74])
def test_spec_refuses_images_smaller_than_75(size):
    with pytest.raises(ValueError, match="75"):
        PreprocessingSpec(image_size=size)


def test_spec_accepts_the_smallest_size():
    assert PreprocessingSpec(image_size=75).image_size == 75


@pytest.mark.parametrize("scaling", ["imagenet", "", "Unit", None])
def test_spec_refuses_unknown_scaling(scaling):
    with pytest.raises(ValueError, match="scaling"):
        PreprocessingSpec(scaling=scaling)


def test_spec_as_dict_and_black_level():
    assert PreprocessingSpec(image_size=96, scaling="unit").as_dict() == {"image_size": 96, "scaling": "unit"}
    assert PreprocessingSpec(scaling="unit").black == 0.0
    assert PreprocessingSpec(scaling="inception").black == -1.0
    black = np.zeros((80, 80), np.float32)
    for scaling in ("unit", "inception"):
        spec = PreprocessingSpec(image_size=80, scaling=scaling)
        assert np.all(preprocess(black, spec) == spec.black)


# --- training and inference agree -----------------------------------------------------------------


@pytest.mark.parametrize("scaling", ["unit", "inception"])
@pytest.mark.parametrize("kind", ["png", "jpeg", "dicom"])
def test_training_and_inference_paths_are_bit_identical(tmp_path, kind, scaling):
    spec = PreprocessingSpec(image_size=96, scaling=scaling)
    folder = tmp_path / "COVID"
    folder.mkdir()
    path = folder / f"scan.{kind}"
    uploaded = WRITERS[kind](path, np.random.default_rng(7))

    # training: the dataset loader over DatasetItem entries
    batch, loaded, skipped = load_images([DatasetItem(path=path, label="COVID")], spec, root=tmp_path)
    assert skipped == []
    assert [item.path for item in loaded] == [path]
    assert batch.shape == (1, 96, 96, 3)
    assert batch.dtype == np.float32
    training = batch[0]

    # inference: the raw bytes of an upload, and the upload as a file object
    from_bytes = load_image(uploaded, spec)
    from_file = load_image(io.BytesIO(uploaded), spec)

    assert from_bytes.dtype == training.dtype
    assert np.array_equal(training, from_bytes)
    assert np.array_equal(training, from_file)
    # and the image is not a constant (so equality means something)
    assert training.std() > 0.01


def test_training_batch_preserves_item_order_and_content(tmp_path):
    spec = PreprocessingSpec(image_size=80)
    rng = np.random.default_rng(11)
    paths = []
    for name, kind in (("a.png", "png"), ("b.jpg", "jpeg"), ("c.dcm", "dicom")):
        path = tmp_path / name
        WRITERS[kind](path, rng)
        paths.append(path)
    items = [DatasetItem(path=p, label="NORMAL") for p in paths]
    batch, loaded, skipped = load_images(items, spec)
    assert skipped == []
    assert [item.path for item in loaded] == paths
    for index, path in enumerate(paths):
        assert np.array_equal(batch[index], load_image(path.read_bytes(), spec))
    assert not np.array_equal(batch[0], batch[1])


# --- to_display -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scaling", ["unit", "inception"])
def test_to_display_inverts_the_scaling(scaling):
    gray = gradient(100, 100)
    spec = PreprocessingSpec(image_size=100, scaling=scaling)
    shown = to_display(preprocess(gray, spec), spec)
    assert shown.shape == (100, 100)
    assert shown.min() >= 0.0
    assert shown.max() <= 1.0
    # at the native size the resize is the identity, so the picture comes back
    np.testing.assert_allclose(shown, gray, atol=1e-6)


def test_to_display_of_inception_matches_unit_preprocessing():
    gray = gradient()
    unit_spec = PreprocessingSpec(image_size=90, scaling="unit")
    inception_spec = PreprocessingSpec(image_size=90, scaling="inception")
    np.testing.assert_allclose(
        to_display(preprocess(gray, inception_spec), inception_spec),
        preprocess(gray, unit_spec)[..., 0],
        atol=1e-6,
    )


def test_decode_then_preprocess_equals_load_image(tmp_path):
    spec = PreprocessingSpec(image_size=100, scaling="inception")
    data = write_png(tmp_path / "x.png", np.random.default_rng(5))
    assert np.array_equal(load_image(data, spec), preprocess(decode_image(data), spec))
