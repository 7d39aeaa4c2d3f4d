"""Fixtures shared by the whole suite."""

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile

from accounts.models import User
from mlcore.models import ModelVersion
from mlcore.services import model_version_activate

DOCTOR_PASSWORD = "Xray-Triage-2026!"


@pytest.fixture
def make_doctor(db):
    def make(*, email="doctor@hospital.example", active=True, **fields) -> User:
        defaults = {
            "full_name": "Ada Lovelace",
            "licence_number": "GMC-1234567",
            "hospital": "St Mary's Hospital",
        }
        return User.objects.create_user(email=email, password=DOCTOR_PASSWORD, is_active=active, **(defaults | fields))

    return make


@pytest.fixture
def doctor(make_doctor) -> User:
    return make_doctor()


@pytest.fixture
def staff_user(db) -> User:
    return User.objects.create_superuser(
        email="staff@hospital.example", password=DOCTOR_PASSWORD, full_name="Grace Hopper"
    )


@pytest.fixture
def make_staff(db):
    """A staff account (admin sign-in, no superuser) holding exactly the named permissions ("app.codename")."""

    def make(*permissions: str, email="clerk@hospital.example") -> User:
        user = User.objects.create_user(
            email=email, password=DOCTOR_PASSWORD, full_name="Staff Member", is_active=True, is_staff=True
        )
        for name in permissions:
            app_label, codename = name.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return User.objects.get(pk=user.pk)  # a fresh instance: no permission cache from before the grants

    return make


@pytest.fixture
def doctor_client(client, doctor):
    client.force_login(doctor)
    return client


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def browser():
    from tests.browser import start_chromium

    driver = start_chromium()
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


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
