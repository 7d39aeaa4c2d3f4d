"""Fixtures for scans: an untrained 75x75 model as the active version, patients and X-ray files."""

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from diagnosis.models import Patient
from mlcore.models import ModelVersion
from mlcore.services import model_version_activate
from tests.mlcore.synthetic import synthetic_image

TINY = {"image_size": 75, "scaling": "unit"}


@pytest.fixture(scope="session")
def tiny_model_bytes(tmp_path_factory) -> bytes:
    """An untrained network is enough to exercise inference: readings are valid, not meaningful."""
    from mlcore.core.model import ModelConfig, build_network

    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_network(ModelConfig(image_size=TINY["image_size"])).model.save(path)
    return path.read_bytes()


@pytest.fixture
def make_version(db, tiny_model_bytes):
    def make(name="tiny-v1", *, activate=True) -> ModelVersion:
        version = ModelVersion.objects.create(
            name=name,
            status=ModelVersion.Status.SUCCEEDED,
            class_names=["COVID", "NORMAL"],
            positive_class="COVID",
            threshold=0.5,
            preprocessing=TINY,
        )
        version.model_file.save("model.keras", ContentFile(tiny_model_bytes))
        if activate:
            model_version_activate(version=version)
        return version

    return make


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
