"""Doctors, their patients and an active InceptionV3 version (random weights) for the load test.

Run by run.py with the load test's settings in the environment.
"""

import os
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import django

django.setup()

from django.core.files.base import ContentFile  # noqa: E402

from accounts.models import User  # noqa: E402
from diagnosis.models import Patient  # noqa: E402
from mlcore.core.model import ModelConfig, build_network  # noqa: E402
from mlcore.models import ModelVersion  # noqa: E402
from mlcore.services import model_version_activate  # noqa: E402

PATIENTS_PER_DOCTOR = 3


def seed(*, doctors: int, password: str, image_size: int) -> None:
    for number in range(1, doctors + 1):
        doctor = User.objects.create_user(
            email=f"loadtest-doctor-{number}@hospital.example",
            password=password,
            full_name=f"Doctor {number}",
            licence_number=f"LT-{number:05d}",
            hospital="Load Test Hospital",
            is_active=True,
        )
        for index in range(PATIENTS_PER_DOCTOR):
            Patient.objects.create(
                mrn=f"LT-{number}-{index}", full_name=f"Patient {number}-{index}", created_by=doctor
            )
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "model.keras"
        build_network(ModelConfig(image_size=image_size)).model.save(path)
        version = ModelVersion.objects.create(
            name="loadtest-random-weights",
            status=ModelVersion.Status.SUCCEEDED,
            class_names=["COVID", "NORMAL"],
            positive_class="COVID",
            threshold=0.5,
            preprocessing={"image_size": image_size, "scaling": "unit"},
        )
        version.model_file.save("model.keras", ContentFile(path.read_bytes()))
    model_version_activate(version=version)


if __name__ == "__main__":
    seed(
        doctors=int(os.environ["LOADTEST_DOCTORS"]),
        password=os.environ["LOADTEST_PASSWORD"],
        image_size=int(os.environ["LOADTEST_IMAGE_SIZE"]),
    )
