import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.accounts.test_registration import VALID

pytestmark = pytest.mark.django_db


@pytest.fixture
def strict_client():
    return Client(enforce_csrf_checks=True)


def test_registration_without_csrf_token_is_refused_and_stores_nothing(strict_client):
    response = strict_client.post(reverse("accounts:register"), VALID)

    assert response.status_code == 403
    assert "Your form expired or did not come from this site" in response.content.decode()
    assert not User.objects.exists()


def test_forged_csrf_token_is_refused(strict_client, doctor):
    strict_client.get(reverse("accounts:login"))
    response = strict_client.post(
        reverse("accounts:login"),
        {"username": doctor.email, "password": "x", "csrfmiddlewaretoken": "forged" * 8},
    )

    assert response.status_code == 403
    doctor.refresh_from_db()
    assert doctor.last_login is None


def test_genuine_csrf_token_is_accepted(strict_client, doctor):
    page = strict_client.get(reverse("accounts:login"))
    token = page.context["csrf_token"]

    response = strict_client.post(
        reverse("accounts:login"),
        {"username": doctor.email, "password": "Xray-Triage-2026!", "csrfmiddlewaretoken": str(token)},
    )

    assert response.status_code == 302
