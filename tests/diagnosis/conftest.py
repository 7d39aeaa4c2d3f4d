"""Fixtures for scans: patients and X-ray files (the tiny model version lives in tests/conftest.py)."""

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from diagnosis.models import Patient, Scan
from tests.mlcore.synthetic import synthetic_image


@pytest.fixture
def patient(doctor) -> Patient:
    return Patient.objects.create(mrn="MRN-0001", full_name="Alan Turing", created_by=doctor)


def xray_png(seed: int = 0, size: int = 96, label: str = "COVID") -> bytes:
    pixels = (synthetic_image(label, np.random.default_rng(seed), size=size) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def xray_upload(name: str = "chest.png", seed: int = 0, size: int = 96, label: str = "COVID") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, xray_png(seed, size, label), content_type="image/png")


@pytest.fixture
def diagnosed_scan(patient, doctor):
    """A scan the worker has read: stored original, preview and heatmap, a COVID result."""
    from django.core.files.base import ContentFile

    scan = Scan(
        patient=patient,
        original_filename="chest.png",
        file_type="PNG",
        uploaded_by=doctor,
        status=Scan.Status.DONE,
        result=Scan.Result.POSITIVE,
        label="COVID",
        probability=0.91,
        probabilities={"COVID": 0.91, "NORMAL": 0.09},
        threshold=0.7,
        queue_wait_ms=120.0,
        preprocess_ms=8.0,
        network_ms=40.0,
        total_ms=170.0,
        batch_size=1,
    )
    scan.image.save("chest.png", ContentFile(xray_png(seed=1)), save=False)
    scan.preview.save("preview.png", ContentFile(xray_png(seed=2)), save=False)
    scan.heatmap.save("gradcam.png", ContentFile(xray_png(seed=3)), save=False)
    scan.save()
    return scan


@pytest.fixture
def validated_version(make_version):
    """A version whose held-out test split gave sensitivity 90/100 and specificity 190/200 at threshold 0.7."""
    from mlcore.core.evaluation import binary_metrics, jsonable
    from mlcore.models import Evaluation

    version = make_version("validated-v1", activate=False)
    version.threshold = 0.7
    version.save(update_fields=["threshold"])
    y = np.array([1] * 100 + [0] * 200)
    p = np.array([0.9] * 90 + [0.1] * 10 + [0.1] * 190 + [0.9] * 10)
    metrics = binary_metrics(y, p, 0.7, class_names=["COVID", "NORMAL"], positive_class="COVID")
    Evaluation.objects.create(
        version=version,
        kind=Evaluation.Kind.TEST_SPLIT,
        data_dir="/data/test",
        threshold=0.7,
        metrics=jsonable(metrics),
    )
    return version


@pytest.fixture
def scan(diagnosed_scan, validated_version) -> Scan:
    """A diagnosed scan read by a version with a held-out evaluation (so PPV/NPV can be given)."""
    diagnosed_scan.model_version = validated_version
    diagnosed_scan.save()
    return diagnosed_scan
