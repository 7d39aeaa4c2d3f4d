"""Hostile input: mutated PNG, JPEG and DICOM bytes end in an image or a clear ImageDecodeError.

Never an unhandled exception, a hang (hypothesis' deadline) or a memory blow-up (a cap on what one
decode may allocate through NumPy, and the pixel limit for everything else).
"""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mlcore.core.imaging import ImageDecodeError, decode_image, read_dicom_header
from tests.mlcore.test_imaging import dicom_bytes, jpeg_bytes, png_bytes

MAX_PIXELS = 1_000_000
MAX_ALLOCATED_BYTES = 64 * 1024 * 1024
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
    image, refusal = None, None
    tracemalloc.start()
    try:
        image = decode_image(data, max_pixels=MAX_PIXELS)
    except ImageDecodeError as error:
        refusal = str(error)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MAX_ALLOCATED_BYTES, f"one decode allocated {peak / 1e6:.0f} MB"
    assert image is not None or refusal, "a refusal must say why"
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


@FUZZ
@given(data=st.data())
def test_mutated_dicom_headers_are_read_or_refused_with_a_clear_error(data):
    damaged = data.draw(mutated(SEEDS["dicom"]))
    header, refusal = None, None
    try:
        header = read_dicom_header(io.BytesIO(damaged))
    except ImageDecodeError as error:
        refusal = str(error)
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
