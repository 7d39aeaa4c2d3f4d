"""Fixtures shared by the whole suite."""

import pytest

from accounts.models import User

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
