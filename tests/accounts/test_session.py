"""Sessions end after an idle period (a shared ward computer) and each user action restarts that period (a page
polling by itself does not: tests/diagnosis/test_scan_polling.py)."""

import datetime

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db


def current_session(client) -> Session:
    return Session.objects.get(session_key=client.cookies[settings.SESSION_COOKIE_NAME].value)


def test_the_idle_period_is_eight_hours_and_the_cookie_ends_with_the_browser():
    assert settings.SESSION_COOKIE_AGE == 8 * 60 * 60
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE is True


def test_each_request_restarts_the_idle_period(doctor_client):
    doctor_client.get(reverse("home"))
    session = current_session(doctor_client)
    Session.objects.filter(pk=session.pk).update(expire_date=timezone.now() + datetime.timedelta(minutes=5))

    assert doctor_client.get(reverse("home")).status_code == 200

    renewed = current_session(doctor_client).expire_date - timezone.now()
    assert renewed > datetime.timedelta(seconds=settings.SESSION_COOKIE_AGE - 60)


def test_an_idle_session_sends_the_doctor_back_to_sign_in(doctor_client):
    doctor_client.get(reverse("home"))
    session = current_session(doctor_client)
    Session.objects.filter(pk=session.pk).update(expire_date=timezone.now() - datetime.timedelta(seconds=1))

    response = doctor_client.get(reverse("diagnosis:patient_list"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
