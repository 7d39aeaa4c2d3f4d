"""Hostile input: mutated PNG, JPEG and DICOM bytes end in an image or a clear ImageDecodeError.

Never an unhandled exception, a hang (hypothesis' deadline) or a memory blow-up: a bound on the peak
resident memory and on Python's allocations of every decode, check and header read.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mlcore.core.imaging import ImageDecodeError, check_image, decode_image, read_dicom_header
from tests.memory import MB, peak_memory
from tests.mlcore.bombs import deflated_dicom, dicom_header_dataset
from tests.mlcore.test_imaging import dicom_bytes, jpeg_bytes, png_bytes

MAX_PIXELS = 1_000_000
# 64 bytes a pixel at the limit: decode_image's float planes fit in a third of it.
MAX_PEAK_BYTES = 64 * MB
MAX_HEADER_PEAK_BYTES = 16 * MB
FUZZ = settings(
    max_examples=150,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


def _gray(size: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    return ((x * 5 + y * 3) % 256).astype(np.uint8)


SEEDS = {
    "png-gray": png_bytes(Image.fromarray(_gray())),
    "png-16bit": png_bytes(Image.fromarray(_gray().astype(np.uint16) * 257)),
    "png-rgba": png_bytes(Image.fromarray(_gray()).convert("RGBA")),
    "jpeg-gray": jpeg_bytes(Image.fromarray(_gray())),
    "jpeg-progressive": jpeg_bytes(Image.fromarray(_gray()).convert("RGB"), progressive=True),
    "dicom": dicom_bytes(
        _gray().astype(np.uint16) * 16,
        WindowCenter="2000",
        WindowWidth="4000",
        PatientName="Doe^Jane",
        StudyDate="20260101",
        ViewPosition="PA",
    ),
    "dicom-monochrome1": dicom_bytes(_gray().astype(np.uint16), photometric="MONOCHROME1", RescaleSlope="2"),
    "dicom-deflated": deflated_dicom(
        dicom_header_dataset(rows=48, columns=48), (_gray().astype("<u2") * 16).tobytes()
    ),
    "dicom-frames": dicom_bytes(
        _gray().astype(np.uint16), NumberOfFrames="2", PixelData=np.stack([_gray(), _gray().T]).astype("<u2").tobytes()
    ),
    "dicom-rgb": dicom_bytes(
        _gray(),
        SamplesPerPixel=3,
        PhotometricInterpretation="RGB",
        PlanarConfiguration=0,
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
        PixelData=np.stack([_gray()] * 3, axis=-1).tobytes(),
    ),
}


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    """A valid file damaged the ways files get damaged: flipped bytes, cuts, inserted junk, repeats."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "repeat", "delete"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[position] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01]))
        elif kind == "truncate":
            data = data[:position]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "repeat" and data:
            end = min(len(data), position + draw(st.integers(1, 64)))
            data[position:position] = data[position:end] * draw(st.integers(1, 4))
        elif kind == "delete" and data:
            del data[position : position + draw(st.integers(1, 16))]
    return bytes(data)


def decode_within_limits(data: bytes) -> np.ndarray | None:
    """decode_image's verdict; check_image, the upload's cheaper check, must also end in one."""
    image, refusal, check_refusal = None, None, None
    with peak_memory() as peak:
        try:
            image = decode_image(data, max_pixels=MAX_PIXELS)
        except ImageDecodeError as error:
            refusal = str(error)
        try:
            check_image(data, max_pixels=MAX_PIXELS)
        except ImageDecodeError as error:
            check_refusal = str(error)
    assert peak.traced < MAX_PEAK_BYTES, peak
    assert peak.resident < MAX_PEAK_BYTES, peak
    assert image is not None or refusal, "a refusal must say why"
    assert check_refusal is None or check_refusal, "a refusal must say why"
    return image


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_each_seed_decodes(name):
    image = decode_image(SEEDS[name])
    assert image.ndim == 2


@pytest.mark.parametrize("name", sorted(SEEDS))
@FUZZ
@given(data=st.data())
def test_mutated_files_decode_or_are_refused_with_a_clear_error(name, data):
    damaged = data.draw(mutated(SEEDS[name]))
    image = decode_within_limits(damaged)
    if image is not None:
        assert image.ndim == 2
        assert image.dtype == np.float32
        assert np.isfinite(image).all()
        assert float(image.min(initial=0)) >= 0.0
        assert float(image.max(initial=0)) <= 1.0


@pytest.mark.parametrize("name", ["dicom", "dicom-deflated"])
@FUZZ
@given(data=st.data())
def test_mutated_dicom_headers_are_read_or_refused_with_a_clear_error(name, data):
    damaged = data.draw(mutated(SEEDS[name]))
    header, refusal = None, None
    with peak_memory() as peak:
        try:
            header = read_dicom_header(io.BytesIO(damaged))
        except ImageDecodeError as error:
            refusal = str(error)
    assert peak.traced < MAX_HEADER_PEAK_BYTES, peak
    assert peak.resident < MAX_HEADER_PEAK_BYTES, peak
    if header is None:
        assert refusal, "a refusal must say why"
    else:
        assert header.view_position in ("PA", "AP", "")
        assert isinstance(header.patient_name, str)


@FUZZ
@given(junk=st.binary(max_size=600))
def test_arbitrary_bytes_are_refused_or_decoded(junk):
    decode_within_limits(junk)


MAGIC = {
    "png": b"\x89PNG\r\n\x1a\n",
    "jpeg": b"\xff\xd8\xff",
    "dicom": b"\x00" * 128 + b"DICM",
}


@pytest.mark.parametrize("name", sorted(MAGIC))
@FUZZ
@given(junk=st.binary(max_size=2000))
def test_junk_behind_a_valid_signature_is_refused_or_decoded(name, junk):
    decode_within_limits(MAGIC[name] + junk)
