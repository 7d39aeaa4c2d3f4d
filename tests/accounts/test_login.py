import pytest
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY
from django.urls import reverse

from accounts.services import doctors_approve
from tests.conftest import DOCTOR_PASSWORD

pytestmark = pytest.mark.django_db

LOGIN_URL = reverse("accounts:login")


def sign_in(client, email, password=DOCTOR_PASSWORD, **extra):
    return client.post(LOGIN_URL, {"username": email, "password": password}, **extra)


def test_login_works_only_after_approval(client, make_doctor, staff_user):
    doctor = make_doctor(active=False)

    refused = sign_in(client, doctor.email)

    assert refused.status_code == 200
    assert "awaiting approval" in refused.content.decode()
    assert SESSION_KEY not in client.session

    doctors_approve(doctors=[doctor], approved_by=staff_user)
    accepted = sign_in(client, doctor.email)

    assert accepted.status_code == 302
    assert int(client.session[SESSION_KEY]) == doctor.pk


def test_unapproved_account_with_wrong_password_learns_nothing_about_approval(client, make_doctor):
    doctor = make_doctor(active=False)

    response = sign_in(client, doctor.email, password="wrong-password-123")

    html = response.content.decode()
    assert "do not match an account" in html
    assert "awaiting approval" not in html


def test_login_ignores_letter_case_of_the_email(client, doctor):
    response = sign_in(client, doctor.email.upper())

    assert response.status_code == 302
    assert int(client.session[SESSION_KEY]) == doctor.pk


def test_wrong_password_gets_a_clear_message_and_no_session(client, doctor):
    response = sign_in(client, doctor.email, password="not-the-password")

    assert response.status_code == 200
    assert "do not match an account" in response.content.decode()
    assert SESSION_KEY not in client.session
    doctor.refresh_from_db()
    assert doctor.last_login is None


def test_repeated_failures_for_one_account_lock_it(client, doctor, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, doctor.email, password="guess-1234567").status_code == 200
    assert sign_in(client, doctor.email, password="guess-1234567").status_code == 429

    locked = sign_in(client, doctor.email.upper())

    assert locked.status_code == 429
    assert "Too many failed sign-in attempts" in locked.content.decode()
    assert SESSION_KEY not in client.session
    assert AccessAttempt.objects.filter(username=doctor.email).exists()


def test_successful_login_clears_earlier_failures(client, doctor, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, doctor.email, password="guess-1234567")
    assert sign_in(client, doctor.email).status_code == 302
    client.post(reverse("accounts:logout"))

    sign_in(client, doctor.email, password="guess-1234567")

    assert sign_in(client, doctor.email).status_code == 302


def test_logout_ends_the_session(doctor_client):
    response = doctor_client.post(reverse("accounts:logout"))

    assert response.status_code == 302
    assert SESSION_KEY not in doctor_client.session


def test_password_change_requires_the_old_password(doctor_client, doctor):
    url = reverse("accounts:password_change")
    wrong = doctor_client.post(
        url,
        {
            "old_password": "not-it",
            "new_password1": "Fresh-Password-2027",
            "new_password2": "Fresh-Password-2027",
        },
    )
    assert wrong.status_code == 200
    assert "old password was entered incorrectly" in wrong.content.decode()

    right = doctor_client.post(
        url,
        {
            "old_password": DOCTOR_PASSWORD,
            "new_password1": "Fresh-Password-2027",
            "new_password2": "Fresh-Password-2027",
        },
    )
    assert right.status_code == 302
    doctor.refresh_from_db()
    assert doctor.check_password("Fresh-Password-2027")
