"""One preprocessing function for training and inference: shapes, scaling, their exact agreement, one intensity
rule for every format, letterboxing, and old versions reading as they were trained."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlcore.core.dataset import DatasetItem, load_images
from mlcore.core.imaging import decode_image
from mlcore.core.preprocessing import (
    Box,
    PreprocessingSpec,
    crop_to_picture,
    load_image,
    percentile_window,
    picture_box,
    preprocess,
    to_display,
)
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
    assert PreprocessingSpec(image_size=96, scaling="unit").as_dict() == {
        "image_size": 96,
        "scaling": "unit",
        "intensity": "decoded",
        "letterbox": False,
    }
    assert PreprocessingSpec(scaling="unit").black == 0.0
    assert PreprocessingSpec(scaling="inception").black == -1.0
    black = np.zeros((80, 80), np.float32)
    for scaling in ("unit", "inception"):
        spec = PreprocessingSpec(image_size=80, scaling=scaling)
        assert np.all(preprocess(black, spec) == spec.black)


# --- training and inference agree -----------------------------------------------------------------


@pytest.mark.parametrize("rule", ["legacy", "current"])
@pytest.mark.parametrize("scaling", ["unit", "inception"])
@pytest.mark.parametrize("kind", ["png", "jpeg", "dicom"])
def test_training_and_inference_paths_are_bit_identical(tmp_path, kind, scaling, rule):
    spec = PreprocessingSpec(image_size=96, scaling=scaling)
    if rule == "current":
        spec = PreprocessingSpec.current(image_size=96, scaling=scaling)
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


# --- stored specs: old versions read exactly as they were trained ---------------------------------


def legacy_preprocess(gray: np.ndarray, spec: PreprocessingSpec) -> np.ndarray:
    """preprocess as every version before issue 11 was trained with it, kept verbatim."""
    resized = Image.fromarray(np.ascontiguousarray(gray, dtype=np.float32)).resize(
        (spec.image_size, spec.image_size), Image.Resampling.BILINEAR
    )
    unit = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    scaled = unit * 2.0 - 1.0 if spec.scaling == "inception" else unit
    return np.repeat(scaled[:, :, np.newaxis], 3, axis=2)


@pytest.mark.parametrize("scaling", ["unit", "inception"])
@pytest.mark.parametrize("kind", ["png", "jpeg", "dicom", "gradient"])
def test_a_stored_dict_without_the_new_fields_gives_the_old_array_bit_for_bit(tmp_path, kind, scaling):
    stored = {"image_size": 96, "scaling": scaling}
    spec = PreprocessingSpec.from_stored(stored)
    gray = gradient() if kind == "gradient" else decode_image(WRITERS[kind](tmp_path / kind, np.random.default_rng(3)))

    assert spec.intensity == "decoded"
    assert spec.letterbox is False
    assert np.array_equal(preprocess(gray, spec), legacy_preprocess(gray, spec))


def test_an_empty_stored_dict_is_the_old_default():
    assert PreprocessingSpec.from_stored({}) == PreprocessingSpec(
        image_size=224, scaling="unit", intensity="decoded", letterbox=False
    )


def test_a_new_spec_reads_back_from_its_stored_dict():
    spec = PreprocessingSpec.current(image_size=299, scaling="inception")

    assert spec.intensity == "percentile"
    assert spec.letterbox is True
    assert PreprocessingSpec.from_stored(spec.as_dict()) == spec


def test_a_stored_dict_with_an_unknown_field_is_refused():
    with pytest.raises(ValueError, match="sharpen"):
        PreprocessingSpec.from_stored({"image_size": 96, "scaling": "unit", "sharpen": True})


@pytest.mark.parametrize(
    ("field", "value"), [("intensity", "minmax"), ("letterbox", "yes"), ("equalization", "histogram")]
)
def test_spec_refuses_unknown_intensity_rules_and_letterbox_values(field, value):
    with pytest.raises(ValueError, match=field):
        PreprocessingSpec(**{field: value})


# --- one intensity rule for every format -----------------------------------------------------------


def same_picture() -> np.ndarray:
    """A non-square generated radiograph in [0, 1], the one picture every format below stores."""
    return synthetic_image("COVID", np.random.default_rng(3), size=160)[:, 20:140]


def png_of(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def stored_as(kind: str, picture: np.ndarray) -> bytes:
    from pydicom.dataset import Dataset

    twelve_bit = (picture * 3000 + 600).round().astype(np.uint16)  # a detector's raw values
    if kind == "png8":
        return png_of((picture * 255).round().astype(np.uint8))
    if kind == "png16_12bit":
        return png_of((picture * 4095).round().astype(np.uint16))  # 16-bit PNG holding 12-bit data
    if kind == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray((picture * 255).round().astype(np.uint8)).save(buffer, "JPEG", quality=95)
        return buffer.getvalue()
    if kind == "dicom":
        return dicom_bytes(twelve_bit)
    if kind == "dicom_window":  # the window clips no more than the percentiles would
        return dicom_bytes(twelve_bit, WindowCenter=2100, WindowWidth=2900)
    if kind == "dicom_monochrome1":
        return dicom_bytes(4095 - twelve_bit, photometric="MONOCHROME1", WindowCenter=1995, WindowWidth=2900)
    if kind == "dicom_voi_lut":  # a 16-bit output LUT, linear where the picture lies
        lut = Dataset()
        lut.LUTDescriptor = [4096, 0, 16]
        lut.LUTData = np.clip((np.arange(4096) - 500) * 12, 0, 65535).astype("<u2").tobytes()
        return dicom_bytes(twelve_bit, VOILUTSequence=[lut])
    raise AssertionError(kind)


FORMATS = ["png16_12bit", "jpeg", "dicom", "dicom_window", "dicom_monochrome1", "dicom_voi_lut"]


# CLAHE steepens the grey-level mapping where the picture's histogram is dense, so the formats' rounding
# differences grow with it: its tolerances are wider, still far below the picture's own contrast.
TOLERANCES = {"none": (0.002, 0.01), "clahe": (0.01, 0.08)}


@pytest.mark.parametrize("equalization", TOLERANCES)
@pytest.mark.parametrize("kind", FORMATS)
def test_the_same_picture_in_every_format_gives_nearly_the_same_network_input(kind, equalization):
    spec = PreprocessingSpec.current(image_size=96, scaling="unit", equalization=equalization)
    picture = same_picture()
    reference = load_image(stored_as("png8", picture), spec)

    other = load_image(stored_as(kind, picture), spec)

    difference = np.abs(other - reference)
    mean_limit, max_limit = TOLERANCES[equalization]
    assert difference.mean() < mean_limit
    assert difference.max() < max_limit
    assert reference.std() > 0.1  # a real picture, not two blanks


def test_clahe_raises_local_contrast_that_one_global_window_leaves_faint():
    """A faint patch in the bright half of a picture with a dark half: the global window spends its range on
    the step between the halves; CLAHE equalises each region on its own and the patch stands out more."""
    rows, cols = np.mgrid[0:96, 0:96]
    picture = np.where(cols < 48, 0.1, 0.6) + 0.02 * np.random.default_rng(0).standard_normal((96, 96))
    distance = np.hypot(cols - 72, rows - 48)
    patch, surround = distance < 8, (distance >= 12) & (distance < 18)
    picture[patch] += 0.05
    picture = np.clip(picture, 0.0, 1.0).astype(np.float32)

    def contrast(equalization):
        spec = PreprocessingSpec.current(image_size=96, scaling="unit", equalization=equalization)
        gray = preprocess(picture, spec)[..., 0]
        assert 0.0 <= gray.min() <= gray.max() <= 1.0
        return gray[patch].mean() - gray[surround].mean()

    assert contrast("clahe") > 1.3 * contrast("none") > 0


def test_a_spec_with_clahe_reads_back_and_a_stored_dict_without_it_has_none():
    spec = PreprocessingSpec.current(image_size=128, scaling="unit", equalization="clahe")

    assert spec.as_dict()["equalization"] == "clahe"
    assert PreprocessingSpec.from_stored(spec.as_dict()) == spec
    assert PreprocessingSpec.from_stored({"image_size": 128, "scaling": "unit"}).equalization == "none"


def test_the_legacy_rule_reads_12_bit_data_in_a_16_bit_png_nearly_black():
    """The defect the percentile rule removes: / 65535 leaves 12-bit values under 1/16."""
    legacy = PreprocessingSpec(image_size=96)
    picture = same_picture()

    assert load_image(stored_as("png16_12bit", picture), legacy).max() < 1 / 16
    assert load_image(stored_as("png8", picture), legacy).max() > 0.9


def test_percentile_windowing_spans_the_unit_range_whatever_the_scale():
    spec = PreprocessingSpec(image_size=96, intensity="percentile")
    picture = same_picture()

    dim = preprocess(picture * 0.05 + 0.01, spec)
    full = preprocess(picture, spec)

    np.testing.assert_allclose(dim, full, atol=1e-4)
    assert full.min() == 0.0
    assert full.max() == 1.0
    assert np.mean(full == 1.0) < 0.02  # only the top half-percent or so is clipped


def test_flat_borders_do_not_set_the_window():
    """A third of the picture a burned-in white border: the body keeps the window it has without it."""
    picture = same_picture()
    bordered = np.concatenate([picture, np.ones((80, picture.shape[1]), np.float32)])

    np.testing.assert_allclose(percentile_window(bordered)[:160], percentile_window(picture), atol=0.01)


def test_a_flat_picture_becomes_black():
    for value in (0.0, 0.4, 1.0):
        spec = PreprocessingSpec.current(image_size=80, scaling="inception")
        assert np.all(preprocess(np.full((100, 60), value, np.float32), spec) == -1.0)


# --- letterboxing ----------------------------------------------------------------------------------


def disc(height: int, width: int, radius: float) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    inside = (y + 0.5 - height / 2) ** 2 + (x + 0.5 - width / 2) ** 2 < radius**2
    return np.where(inside, 0.9, 0.1).astype(np.float32)


def extent(mask: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(mask)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_letterboxing_keeps_a_round_shape_round_and_pads_with_black():
    spec = PreprocessingSpec.current(image_size=100, scaling="inception")
    picture = disc(200, 100, radius=40)

    array = preprocess(picture, spec)[..., 0]

    height, width = extent(array > 0)
    assert abs(height - width) <= 1  # squashed to a square it would be twice as wide as tall
    assert np.all(array[:, :25] == -1.0)
    assert np.all(array[:, 75:] == -1.0)
    squashed = preprocess(picture, PreprocessingSpec(image_size=100, scaling="inception"))[..., 0]
    squashed_height, squashed_width = extent(squashed > 0)
    assert squashed_width > 1.8 * squashed_height


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((200, 100), Box(0, 25, 100, 50)), ((90, 300), Box(35, 0, 30, 100)), ((64, 64), Box(0, 0, 100, 100))],
)
def test_picture_box_fits_the_longer_side_and_centres_the_picture(shape, expected):
    assert picture_box(shape, PreprocessingSpec(image_size=100, letterbox=True)) == expected
    assert picture_box(shape, PreprocessingSpec(image_size=100)) == Box(0, 0, 100, 100)


def test_crop_to_picture_returns_the_picture_part_of_a_square_map():
    spec = PreprocessingSpec(image_size=100, letterbox=True)
    square = np.arange(100 * 100, dtype=np.float32).reshape(100, 100)

    assert np.array_equal(crop_to_picture(square, (200, 100), spec), square[:, 25:75])
    assert np.array_equal(crop_to_picture(square, (200, 100), PreprocessingSpec(image_size=100)), square)
