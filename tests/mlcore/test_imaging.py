"""Decoding PNG, JPEG and DICOM chest X-rays into one grayscale float image in [0, 1]."""

from __future__ import annotations

import datetime
import io

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from mlcore.core.imaging import (
    DICOM,
    JPEG,
    PNG,
    DicomHeader,
    ImageDecodeError,
    decode_image,
    read_dicom_header,
    sniff_format,
)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, **options)
    return buffer.getvalue()


def dicom_bytes(
    pixels: np.ndarray | None, *, photometric: str = "MONOCHROME2", bits_stored: int = 12, **attributes
) -> bytes:
    """A minimal, valid DICOM Part 10 file (pydicom 3 API), with or without pixel data."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.PatientID = "TEST-001"
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = 16
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = 0
        ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    for name, value in attributes.items():
        setattr(ds, name, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# --- sniff_format ---------------------------------------------------------------------------------


def test_sniff_format_recognises_each_format_by_content():
    gray = Image.fromarray(np.zeros((8, 8), np.uint8))
    assert sniff_format(png_bytes(gray)[:132]) == PNG
    assert sniff_format(jpeg_bytes(gray)[:132]) == JPEG
    assert sniff_format(dicom_bytes(np.zeros((4, 4), np.uint16))[:132]) == DICOM


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"hello" * 100,
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"0" * 200,
        b"\x00" * 128 + b"DICX",
        b"\x00" * 100 + b"DICM",  # DICM at the wrong offset
        b"\x89PNG",  # a PNG signature cut short
    ],
)
def test_sniff_format_returns_none_for_other_content(head):
    assert sniff_format(head) is None


# --- PNG ------------------------------------------------------------------------------------------


def test_8bit_grayscale_png_maps_exactly_to_unit_range():
    pixels = np.array([[0, 51, 128], [200, 254, 255]], dtype=np.uint8)
    gray = decode_image(png_bytes(Image.fromarray(pixels)))
    assert gray.dtype == np.float32
    assert gray.shape == (2, 3)
    assert gray[0, 0] == 0.0
    assert gray[1, 2] == 1.0
    np.testing.assert_allclose(gray, pixels / 255.0, rtol=0, atol=1e-7)


def test_16bit_grayscale_png_keeps_16bit_precision():
    pixels = np.array([[0, 32768, 40000], [40001, 65534, 65535]], dtype=np.uint16)
    image = Image.fromarray(pixels)
    assert image.mode == "I;16"
    gray = decode_image(png_bytes(image))
    assert gray.dtype == np.float32
    assert gray[0, 0] == 0.0
    assert gray[1, 2] == 1.0
    assert gray[0, 1] == pytest.approx(0.5, abs=1e-4)
    # values 1/65535 apart stay different (an 8-bit round trip would merge them)
    assert gray[0, 2] != gray[1, 0]
    assert gray[1, 1] != gray[1, 2]
    assert gray[1, 0] - gray[0, 2] == pytest.approx(1 / 65535, rel=1e-2)
    np.testing.assert_allclose(gray, pixels / 65535.0, rtol=0, atol=1e-6)


def test_dark_16bit_png_is_not_mistaken_for_8bit():
    pixels = np.array([[0, 100], [200, 255]], dtype=np.uint16)  # all values fit in 8 bits
    gray = decode_image(png_bytes(Image.fromarray(pixels)))
    np.testing.assert_allclose(gray, pixels / 65535.0, rtol=0, atol=1e-7)
    assert gray.max() < 0.01


def test_rgb_png_becomes_luminance():
    pixels = np.array(
        [[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]],
        dtype=np.uint8,
    )
    gray = decode_image(png_bytes(Image.fromarray(pixels, mode="RGB")))
    assert gray.shape == (2, 2)
    np.testing.assert_allclose(gray, [[0.299, 0.587], [0.114, 1.0]], atol=1e-5)


def test_rgb_png_of_gray_pixels_equals_the_grayscale_png():
    values = np.arange(0, 256, 16, dtype=np.uint8).reshape(4, 4)
    rgb = np.repeat(values[:, :, None], 3, axis=2)
    from_rgb = decode_image(png_bytes(Image.fromarray(rgb, mode="RGB")))
    from_gray = decode_image(png_bytes(Image.fromarray(values)))
    np.testing.assert_allclose(from_rgb, from_gray, atol=1e-5)


def test_rgba_png_is_flattened_onto_black():
    pixels = np.array(
        [
            [[255, 255, 255, 0], [255, 255, 255, 255]],
            [[255, 255, 255, 128], [0, 0, 0, 0]],
        ],
        dtype=np.uint8,
    )
    gray = decode_image(png_bytes(Image.fromarray(pixels, mode="RGBA")))
    assert gray.shape == (2, 2)
    assert gray[0, 0] == pytest.approx(0.0, abs=1e-6)  # white but fully transparent -> black
    assert gray[0, 1] == pytest.approx(1.0, abs=1e-6)  # white and opaque -> white
    assert gray[1, 0] == pytest.approx(128 / 255, abs=0.01)  # half transparent white -> mid gray
    assert gray[1, 1] == pytest.approx(0.0, abs=1e-6)


def test_grayscale_with_alpha_png_is_flattened_onto_black():
    pixels = np.array([[[255, 0], [255, 255]]], dtype=np.uint8)
    gray = decode_image(png_bytes(Image.fromarray(pixels, mode="LA")))
    np.testing.assert_allclose(gray, [[0.0, 1.0]], atol=1e-6)


# --- JPEG -----------------------------------------------------------------------------------------


def _left_bright_image(width: int = 40, height: int = 20) -> Image.Image:
    pixels = np.full((height, width), 20, dtype=np.uint8)
    pixels[:, : width // 2] = 235  # bright left half
    return Image.fromarray(pixels)


def test_jpeg_without_orientation_keeps_its_stored_shape():
    gray = decode_image(jpeg_bytes(_left_bright_image()))
    assert gray.shape == (20, 40)
    assert gray[:, :20].mean() > 0.8
    assert gray[:, 20:].mean() < 0.2


def test_jpeg_with_exif_orientation_6_is_returned_upright():
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    data = jpeg_bytes(_left_bright_image(), exif=exif.tobytes())
    assert Image.open(io.BytesIO(data)).size == (40, 20)  # stored 40 wide, 20 high
    gray = decode_image(data)
    assert gray.shape == (40, 20)  # (stored width, stored height): rows and columns swapped
    # rotating clockwise brings the stored left half to the top
    assert gray[:20, :].mean() > 0.8
    assert gray[20:, :].mean() < 0.2


# --- DICOM ----------------------------------------------------------------------------------------


DICOM_PIXELS = np.array([[0, 1000, 2000], [3000, 3500, 4000]], dtype=np.uint16)


def test_dicom_monochrome2_is_scaled_to_unit_range():
    gray = decode_image(dicom_bytes(DICOM_PIXELS, photometric="MONOCHROME2"))
    assert gray.dtype == np.float32
    assert gray.shape == (2, 3)
    np.testing.assert_allclose(gray, DICOM_PIXELS / 4000.0, atol=1e-6)


def test_dicom_monochrome1_is_inverted():
    mono2 = decode_image(dicom_bytes(DICOM_PIXELS, photometric="MONOCHROME2"))
    mono1 = decode_image(dicom_bytes(DICOM_PIXELS, photometric="MONOCHROME1"))
    np.testing.assert_allclose(mono1, 1.0 - mono2, atol=1e-6)
    assert mono1[0, 0] == pytest.approx(1.0)  # stored 0 is white in MONOCHROME1
    assert mono1[1, 2] == pytest.approx(0.0)


def test_dicom_voi_window_clips_outside_the_window():
    pixels = np.array([[0, 899, 950, 1000], [1050, 1100, 2000, 4000]], dtype=np.uint16)
    gray = decode_image(dicom_bytes(pixels, WindowCenter=1000, WindowWidth=201))
    # below the window -> black, above -> white, inside -> strictly between and increasing
    assert gray[0, 0] == 0.0
    assert gray[0, 1] == 0.0
    assert gray[1, 1] == 1.0
    assert gray[1, 2] == 1.0
    assert gray[1, 3] == 1.0
    inside = [gray[0, 2], gray[0, 3], gray[1, 0]]
    assert all(0.0 < value < 1.0 for value in inside)
    assert inside == sorted(inside)
    assert gray[0, 3] == pytest.approx(0.5, abs=0.01)
    # without the window the same pixels spread linearly over [0, 1]
    plain = decode_image(dicom_bytes(pixels))
    assert plain[0, 3] == pytest.approx(1000 / 4000, abs=1e-6)


def test_dicom_rescale_is_applied_before_the_window():
    # stored value v means slope*v + intercept; the window is given in rescaled units
    raw = np.array([[0, 450, 550], [650, 2000, 4000]], dtype=np.uint16)  # -> -100, 800, 1000, 1200, ...
    gray = decode_image(dicom_bytes(raw, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=1000, WindowWidth=201))
    assert gray[0, 0] == 0.0
    assert gray[0, 1] == 0.0
    assert gray[0, 2] == pytest.approx(0.5, abs=0.01)  # 2*550-100 = 1000, the window centre
    assert gray[1, 0] == 1.0
    assert gray[1, 1] == 1.0
    # had the rescale been ignored, raw 550 would lie below the window and be black
    unscaled = decode_image(dicom_bytes(raw, WindowCenter=1000, WindowWidth=201))
    assert unscaled[0, 2] == 0.0


def test_dicom_monochrome1_with_window_inverts_after_clipping():
    pixels = np.array([[0, 1000, 4000]], dtype=np.uint16)
    gray = decode_image(dicom_bytes(pixels, photometric="MONOCHROME1", WindowCenter=1000, WindowWidth=201))
    assert gray[0, 0] == 1.0
    assert gray[0, 1] == pytest.approx(0.5, abs=0.01)
    assert gray[0, 2] == 0.0


def test_dicom_without_pixel_data_is_refused():
    with pytest.raises(ImageDecodeError, match=r"no pixel data|no image"):
        decode_image(dicom_bytes(None))


def test_damaged_dicom_is_refused():
    data = dicom_bytes(DICOM_PIXELS)
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) - 6])


def test_dicom_max_pixels_is_enforced():
    data = dicom_bytes(np.zeros((100, 120), np.uint16))
    with pytest.raises(ImageDecodeError):
        decode_image(data, max_pixels=100 * 119)
    assert decode_image(data, max_pixels=100 * 120).shape == (100, 120)


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"hello" * 100,
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" * 5,
        b"",
    ],
)
def test_non_image_bytes_are_refused(data):
    with pytest.raises(ImageDecodeError, match="Not a PNG, JPEG or DICOM"):
        decode_image(data)


def test_truncated_png_is_refused():
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    data = png_bytes(Image.fromarray(noise))
    assert decode_image(data).shape == (64, 64)  # the whole file is fine
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 2])


def test_truncated_jpeg_is_refused():
    noise = np.random.default_rng(1).integers(0, 256, (64, 64), dtype=np.uint8)
    data = jpeg_bytes(Image.fromarray(noise))
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 2])


def test_image_decode_error_is_a_value_error():
    with pytest.raises(ValueError, match="Not a PNG"):
        decode_image(b"hello" * 100)


def test_max_pixels_refuses_a_too_large_image():
    data = png_bytes(Image.fromarray(np.zeros((200, 200), np.uint8)))
    with pytest.raises(ImageDecodeError, match="200x200"):
        decode_image(data, max_pixels=10_000)
    assert decode_image(data, max_pixels=40_000).shape == (200, 200)


# --- sources --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["png", "jpeg", "dicom"])
def test_path_bytes_and_file_object_decode_identically(tmp_path, kind):
    rng = np.random.default_rng(3)
    if kind == "dicom":
        data = dicom_bytes(rng.integers(0, 4096, (30, 40)).astype(np.uint16))
    else:
        image = Image.fromarray(rng.integers(0, 256, (30, 40), dtype=np.uint8))
        data = png_bytes(image) if kind == "png" else jpeg_bytes(image)
    path = tmp_path / "upload.bin"  # the name says nothing: format comes from content
    path.write_bytes(data)

    from_path = decode_image(path)
    from_str = decode_image(str(path))
    from_bytes = decode_image(data)
    handle = io.BytesIO(data)
    handle.seek(0)
    from_file = decode_image(handle)

    assert from_path.shape == (30, 40)
    assert np.array_equal(from_path, from_bytes)
    assert np.array_equal(from_path, from_str)
    assert np.array_equal(from_path, from_file)
    with path.open("rb") as real_file:
        assert np.array_equal(from_path, decode_image(real_file))


def test_reading_a_file_object_restores_its_position():
    data = png_bytes(Image.fromarray(np.full((5, 5), 7, np.uint8)))
    handle = io.BytesIO(data)
    decode_image(handle)
    assert handle.tell() == 0
    assert handle.read() == data


def _valid_dicom() -> bytes:
    pixels = np.arange(64, dtype=np.uint16).reshape(8, 8) * 16
    return dicom_bytes(pixels, WindowCenter="1000.0", WindowWidth="500.0")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(
            lambda data: data.replace(b"\x02\x00\x00\x00UL\x04\x00", b"\x02\x00\x00\x00UL\x06\x00", 1),
            id="meta-group-length",
        ),
        pytest.param(lambda data: data.replace(b"\x28\x00\x10\x00US", b"\x28\x00\x10\x00QQ", 1), id="unknown-vr"),
        pytest.param(lambda data: data.replace(b"1000.0", b"1O00.0", 1), id="non-numeric-window"),
    ],
)
def test_any_damaged_dicom_ends_in_a_decode_error(damage):
    data = _valid_dicom()
    damaged = damage(data)
    assert damaged != data

    with pytest.raises(ImageDecodeError, match="DICOM"):
        decode_image(damaged)


# --- DICOM header -----------------------------------------------------------------------------------


def _chest_dicom(pixels_shape=(8, 8), **attributes) -> bytes:
    details = {
        "PatientName": "Turing^Alan^Mathison",
        "PatientID": " MRN-0001 ",
        "StudyDate": "20240131",
        "ViewPosition": "PA",
        "BodyPartExamined": "CHEST",
    }
    return dicom_bytes(np.zeros(pixels_shape, np.uint16), **(details | attributes))


def test_dicom_header_gives_patient_study_and_view():
    header = read_dicom_header(_chest_dicom())

    assert header == DicomHeader(
        patient_name="Turing, Alan Mathison",
        patient_id="MRN-0001",
        study_date=datetime.date(2024, 1, 31),
        view_position="PA",
        modality="CR",
        body_part="CHEST",
        view_text="PA",
    )


def test_dicom_header_is_read_from_the_first_256_kib_of_a_large_file():
    data = _chest_dicom(pixels_shape=(600, 600))
    assert len(data) > 256 * 1024

    prefix = data[: 256 * 1024]

    with pytest.raises(ImageDecodeError):
        decode_image(prefix)  # the pixels are cut off...
    assert read_dicom_header(prefix) == read_dicom_header(data)  # ...but the header is whole


def test_dicom_header_cut_inside_a_value_leaves_that_value_out_rather_than_half_read():
    data = _chest_dicom()
    cut = data.index(b"Turing^Alan") + len(b"Turing^Al")

    header = read_dicom_header(data[:cut])

    assert header.patient_name == ""
    assert header.patient_id == ""
    assert header.study_date == datetime.date(2024, 1, 31)  # written before the name, so complete


def test_dicom_header_without_these_elements_is_blank():
    header = read_dicom_header(dicom_bytes(None))

    assert header.patient_name == ""
    assert header.study_date is None
    assert header.view_position == ""
    assert header.patient_id == "TEST-001"


@pytest.mark.parametrize(
    ("stored", "readable"),
    [
        ("Turing^Alan", "Turing, Alan"),
        ("Turing", "Turing"),
        ("Curie^Marie^Salomea^Dr^", "Curie, Marie Salomea"),
        ("^Alan", "Alan"),
    ],
)
def test_dicom_person_name_is_written_family_comma_given(stored, readable):
    assert read_dicom_header(_chest_dicom(PatientName=stored)).patient_name == readable


@pytest.mark.parametrize(
    ("stored", "view"),
    [("PA", "PA"), ("ap", "AP"), ("AP SUPINE", "AP"), ("LL", ""), ("PAX", ""), ("", "")],
)
def test_dicom_view_position_is_normalised_to_pa_or_ap(stored, view):
    assert read_dicom_header(_chest_dicom(ViewPosition=stored)).view_position == view


@pytest.mark.parametrize(
    ("stored", "date"),
    [("20240131", datetime.date(2024, 1, 31)), ("2024.01.31", datetime.date(2024, 1, 31)), ("20241331", None)],
)
def test_dicom_study_date_is_parsed_and_a_bad_one_is_left_out(stored, date):
    assert read_dicom_header(_chest_dicom(StudyDate=stored)).study_date == date


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello" * 100, "Not a DICOM file"),
        (b"", "Not a DICOM file"),
        (png_bytes(Image.fromarray(np.zeros((8, 8), np.uint8))), "Not a DICOM file"),
        (b"\x00" * 128 + b"DICM" + b"\xff" * 300, "DICOM header is damaged"),
        (b"\x00" * 128 + b"DICM" + bytes(range(256)) * 4, "DICOM header is damaged"),
    ],
)
def test_dicom_header_of_garbage_is_refused_with_a_clear_message(data, message):
    with pytest.raises(ImageDecodeError, match=message):
        read_dicom_header(data)
