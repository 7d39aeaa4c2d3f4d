"""Small files that would cost a lot to decode: refused from their headers, or decoded within a memory bound."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mlcore.core.imaging import (
    DICOM,
    ImageDecodeError,
    check_image,
    decode_image,
    read_dicom_header,
    read_image_size,
)
from tests.memory import MB, peak_memory
from tests.mlcore.bombs import (
    deflated_dicom,
    deflated_dicom_bomb,
    deflated_multiframe_bomb,
    dicom_header_dataset,
    flat_raster,
)
from tests.mlcore.test_imaging import dicom_bytes

READERS = (decode_image, check_image, read_image_size)


def random_pixels(rows: int, columns: int, *, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4096, (rows, columns)).astype("<u2")


# --- Deflated Explicit VR Little Endian ---------------------------------------------------------------


def test_a_deflated_dicom_decodes_like_the_same_image_uncompressed():
    pixels = random_pixels(64, 80)

    deflated = deflated_dicom(dicom_header_dataset(rows=64, columns=80), pixels.tobytes())

    assert np.array_equal(decode_image(deflated), decode_image(dicom_bytes(pixels)))
    assert check_image(deflated).pixels == read_image_size(deflated).pixels == 64 * 80
    assert read_dicom_header(deflated).patient_id == "BOMB-001"


def test_the_header_of_a_deflated_dicom_reads_from_the_first_256_kib_the_upload_form_sends():
    deflated = deflated_dicom(dicom_header_dataset(rows=1024, columns=1024), random_pixels(1024, 1024).tobytes())
    assert len(deflated) > 1024 * 1024

    header = read_dicom_header(deflated[: 256 * 1024])

    assert (header.patient_id, header.view_position, header.study_date.isoformat()) == ("BOMB-001", "PA", "2026-01-01")


def test_a_deflated_dicom_bomb_gives_its_header_within_a_few_megabytes():
    bomb = deflated_dicom_bomb()  # 280 KB of file, 288 MB inflated

    with peak_memory() as peak:
        header = read_dicom_header(bomb)

    assert header.patient_id == "BOMB-001"
    assert peak.traced < 16 * MB, peak
    assert peak.resident < 32 * MB, peak


@pytest.mark.parametrize("read", READERS, ids=lambda read: read.__name__)
def test_a_deflated_dicom_bomb_is_refused_by_its_header_before_it_is_inflated(read):
    bomb = deflated_dicom_bomb()

    with peak_memory() as peak, pytest.raises(ImageDecodeError, match="12000x12000 pixels, 144,000,000 values"):
        read(bomb)

    assert peak.traced < 16 * MB, peak
    assert peak.resident < 32 * MB, peak


@pytest.mark.parametrize("read", [decode_image, check_image], ids=lambda read: read.__name__)
def test_a_deflated_dicom_holding_more_than_its_image_is_refused_unread(read):
    header = dicom_header_dataset(rows=64, columns=64)
    data = deflated_dicom(header, 100 * MB)  # a 64x64 image needs 8 KB

    with peak_memory() as peak, pytest.raises(ImageDecodeError, match="inflates to more than its 64x64 image needs"):
        read(data)

    assert peak.traced < 16 * MB, peak


def test_a_damaged_deflate_stream_is_refused_with_a_clear_error():
    deflated = deflated_dicom(dicom_header_dataset(rows=8, columns=8), random_pixels(8, 8).tobytes())
    meta_end = deflated.index(b"1.2.840.10008.1.2.1.99") + 22
    damaged = deflated[:meta_end] + b"\xff" * 64 + deflated[meta_end + 64 :]

    with pytest.raises(ImageDecodeError, match="deflated DICOM data set is damaged"):
        decode_image(damaged)


# --- frames, samples and bits count before decoding ---------------------------------------------------


def multiframe(frames: int, rows: int = 40, columns: int = 50) -> tuple[bytes, np.ndarray]:
    stack = np.stack([random_pixels(rows, columns, seed=n) for n in range(frames)])
    return dicom_bytes(stack[0], NumberOfFrames=str(frames), PixelData=stack.tobytes()), stack


def test_every_frame_counts_in_the_pixel_limit_and_only_the_first_is_decoded():
    data, stack = multiframe(3)

    gray = decode_image(data, max_pixels=3 * 40 * 50)

    assert np.array_equal(gray, decode_image(dicom_bytes(stack[0])))
    assert read_image_size(data).frames == 3
    for read in READERS:
        with pytest.raises(ImageDecodeError, match=r"50x40 pixels x 3 frames, 6,000 values: more than the limit"):
            read(data, max_pixels=3 * 40 * 50 - 1)


def test_a_multiframe_bomb_is_refused_by_its_frame_count_before_decoding():
    bomb = deflated_multiframe_bomb()  # 2048 x 2048 (4 megapixels) x 50 frames: 400 MB inflated

    for read in READERS:
        with peak_memory() as peak, pytest.raises(ImageDecodeError, match="2048x2048 pixels x 50 frames"):
            read(bomb)
        assert peak.traced < 16 * MB, peak


def test_every_sample_of_a_colour_dicom_counts_in_the_pixel_limit():
    rgb = np.random.default_rng(1).integers(0, 256, (30, 20, 3)).astype(np.uint8)
    data = dicom_bytes(
        rgb[..., 0],
        SamplesPerPixel=3,
        PhotometricInterpretation="RGB",
        PlanarConfiguration=0,
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
        PixelData=rgb.tobytes(),
    )

    assert decode_image(data, max_pixels=30 * 20 * 3).shape == (30, 20)
    for read in READERS:
        with pytest.raises(ImageDecodeError, match="20x30 pixels x 3 samples, 1,800 values"):
            read(data, max_pixels=30 * 20 * 3 - 1)


def test_bits_allocated_count_in_the_memory_limit():
    data = dicom_bytes(random_pixels(10, 10), BitsAllocated=32, BitsStored=32, HighBit=31)

    size = read_image_size(data, max_pixels=200)

    assert (size.kind, size.pixels, size.pixel_bytes) == (DICOM, 100, 400)
    for read in READERS:
        with pytest.raises(ImageDecodeError, match="400 bytes at 32 bits a value, more than 398"):
            read(data, max_pixels=199)


# --- raster pixel bombs ---------------------------------------------------------------------------------


def test_a_png_pixel_bomb_is_checked_in_pillows_own_buffer_without_float_copies():
    bomb = flat_raster(kind="PNG")  # 22 KB, 3000 x 2000 RGB: Pillow holds 4 bytes a pixel, 24 MB

    with peak_memory() as peak:
        size = check_image(bomb)

    assert (size.width, size.height) == (3000, 2000)
    assert peak.resident < 40 * MB, peak  # decode_image's float planes took 150 MB


def test_a_jpeg_is_checked_at_an_eighth_of_its_size():
    photo = flat_raster(kind="JPEG")

    with peak_memory() as peak:
        size = check_image(photo)

    assert (size.width, size.height) == (3000, 2000)
    assert peak.resident < 8 * MB, peak


def test_a_raster_over_the_limit_is_refused_from_its_header():
    bomb = flat_raster(kind="PNG")

    for read in READERS:
        with peak_memory() as peak, pytest.raises(ImageDecodeError, match="3000x2000 pixels, more than the limit"):
            read(bomb, max_pixels=5_999_999)
        assert peak.resident < 4 * MB, peak


@pytest.mark.parametrize(("mode", "traced_per_pixel"), [("L", 6), ("RGB", 14)])
def test_decoding_a_raster_keeps_to_a_bound_per_pixel(mode, traced_per_pixel):
    """The worker decodes in full: one float plane for gray (two for colour, a band at a time) besides Pillow's."""
    buffer = io.BytesIO()
    Image.new(mode, (3000, 2000), 40 if mode == "L" else (40, 40, 40)).save(buffer, format="PNG")

    with peak_memory() as peak:
        gray = decode_image(buffer.getvalue())

    assert gray.shape == (2000, 3000)
    assert float(gray.max()) == pytest.approx(40 / 255, abs=1e-5)
    assert peak.traced < traced_per_pixel * 6_000_000, peak  # was 8 and 23 bytes a pixel
    assert peak.resident < 20 * 6_000_000, peak


def test_decoding_a_windowed_dicom_keeps_to_a_bound_per_pixel():
    """Modality and VOI LUTs in strips: pydicom's float64 planes over the whole image took 28 bytes a pixel."""
    stored = random_pixels(2000, 3000)
    data = dicom_bytes(stored, WindowCenter="2000", WindowWidth="4000", RescaleSlope="2", RescaleIntercept="-10")

    with peak_memory() as peak:
        gray = decode_image(data)

    assert gray.shape == (2000, 3000)
    assert gray.dtype == np.float32
    assert peak.traced < 16 * 6_000_000, peak
