"""Fixtures for scans: patients and X-ray files (the tiny model version lives in tests/conftest.py)."""

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from diagnosis.models import Patient
from tests.mlcore.synthetic import synthetic_image


@pytest.fixture
def patient(doctor) -> Patient:
    return Patient.objects.create(mrn="MRN-0001", full_name="Alan Turing", created_by=doctor)


def xray_png(seed: int = 0, size: int = 96, label: str = "COVID") -> bytes:
    pixels = (synthetic_image(label, np.random.default_rng(seed), size=size) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def xray_upload(name: str = "chest.png", seed: int = 0, size: int = 96) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, xray_png(seed, size), content_type="image/png")
