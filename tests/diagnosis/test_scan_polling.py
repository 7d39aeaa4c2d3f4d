"""The scan page's polling: pauses that grow, a bounded time, a "Check again" button, and no effect on the
idle sign-out (tests/accounts/test_session.py): a page left open on a ward computer still signs out.

Client tests for the server's side; real headless Chromium with the live server for the page's script.
"""

import datetime
import time

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.signals import request_started
from django.urls import reverse
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from diagnosis.models import Scan
from diagnosis.services.inference import scans_diagnose
from diagnosis.services.scans import scan_create
from tests.browser import wait_for_text
from tests.diagnosis.conftest import xray_upload
from tests.diagnosis.test_scan_page import sign_in


def session_of(session_key: str) -> Session:
    return Session.objects.get(session_key=session_key)


def expire_in(session_key: str, delta: datetime.timedelta) -> datetime.datetime:
    expire_date = timezone.now() + delta
    Session.objects.filter(session_key=session_key).update(expire_date=expire_date)
    return expire_date


@pytest.fixture
def doctor_session(doctor_client):
    doctor_client.get(reverse("home"))
    return doctor_client.cookies[settings.SESSION_COOKIE_NAME].value


@pytest.mark.django_db
def test_a_status_poll_leaves_the_idle_period_running(doctor_client, doctor_session, diagnosed_scan):
    expires = expire_in(doctor_session, datetime.timedelta(minutes=5))

    response = doctor_client.get(reverse("diagnosis:scan_status", args=[diagnosed_scan.pk]))

    assert response.status_code == 200
    assert session_of(doctor_session).expire_date == expires


@pytest.mark.django_db
def test_opening_the_scan_page_is_a_user_action_and_restarts_it(doctor_client, doctor_session, diagnosed_scan):
    expire_in(doctor_session, datetime.timedelta(minutes=5))

    doctor_client.get(reverse("diagnosis:scan_detail", args=[diagnosed_scan.pk]))

    remaining = session_of(doctor_session).expire_date - timezone.now()
    assert remaining > datetime.timedelta(seconds=settings.SESSION_COOKIE_AGE - 60)


@pytest.mark.django_db
def test_after_the_idle_period_a_poll_is_sent_to_sign_in(doctor_client, doctor_session, diagnosed_scan):
    expire_in(doctor_session, -datetime.timedelta(seconds=1))

    response = doctor_client.get(reverse("diagnosis:scan_status", args=[diagnosed_scan.pk]))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.django_db
def test_the_page_tells_its_script_the_polling_bounds_and_whether_to_poll_at_all(
    doctor_client, diagnosed_scan, settings
):
    settings.SCAN_POLL_MAX_INTERVAL_SECONDS = 20
    settings.SCAN_POLL_STOP_AFTER_SECONDS = 300
    url = reverse("diagnosis:scan_detail", args=[diagnosed_scan.pk])

    finished = doctor_client.get(url).content.decode()
    Scan.objects.filter(pk=diagnosed_scan.pk).update(status=Scan.Status.PENDING, heatmap="")
    pending = doctor_client.get(url).content.decode()

    assert 'data-poll-max-interval-ms="20000"' in finished
    assert 'data-poll-stop-after-ms="300000"' in finished
    assert 'data-finished="true"' in finished
    assert 'data-finished="false"' in pending


class StatusPolls:
    """When the live server received each poll of one scan's status (the server's clock)."""

    def __init__(self, scan_pk: int):
        self.path = reverse("diagnosis:scan_status", args=[scan_pk])
        self.times: list[float] = []

    def __call__(self, sender, environ, **kwargs):
        if environ.get("PATH_INFO") == self.path:
            self.times.append(time.monotonic())

    def gaps(self) -> list[float]:
        return [later - earlier for earlier, later in zip(self.times, self.times[1:], strict=False)]


@pytest.fixture
def status_polls():
    receivers = []

    def watch(scan_pk: int) -> StatusPolls:
        polls = StatusPolls(scan_pk)
        request_started.connect(polls, weak=False)
        receivers.append(polls)
        return polls

    yield watch
    for polls in receivers:
        request_started.disconnect(polls)


def browser_session_key(browser) -> str:
    return browser.get_cookie(settings.SESSION_COOKIE_NAME)["value"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_polling_slows_down_stops_and_checks_again_on_request_without_renewing_the_session(
    browser, live_server, make_version, patient, doctor, settings, status_polls
):
    settings.SCAN_POLL_MAX_INTERVAL_SECONDS = 2
    settings.SCAN_POLL_STOP_AFTER_SECONDS = 6
    make_version()
    scan = scan_create(patient=patient, image=xray_upload(seed=2), uploaded_by=doctor)
    polls = status_polls(scan.pk)
    sign_in(browser, live_server, doctor)
    browser.get(f"{live_server.url}/scans/{scan.pk}/")
    wait_for_text(browser, "#scan-status", "Pending")
    expires = expire_in(browser_session_key(browser), datetime.timedelta(minutes=30))

    WebDriverWait(browser, 30).until(lambda driver: driver.find_element(By.ID, "poll-stopped").is_displayed())

    # Pauses of 1 s, then 2 s (the longest here); a pause is at least its length, whatever the load.
    # Within 6 s that leaves room for three polls at most, however slow the machine.
    assert 1 <= len(polls.times) <= 3
    for gap, pause in zip(polls.gaps(), [1, 2], strict=False):
        assert gap >= pause - 0.05
    assert session_of(browser_session_key(browser)).expire_date == expires, "polls renewed the session"
    polled = len(polls.times)

    scans_diagnose(first_scan_id=scan.pk)
    assert len(polls.times) == polled, "the page polled after it said it had stopped"
    browser.find_element(By.ID, "poll-again").click()

    wait_for_text(browser, "#scan-status", "Done", timeout=20)
    assert not browser.find_element(By.ID, "poll-stopped").is_displayed()
    WebDriverWait(browser, 20).until(
        lambda driver: driver.execute_script("return document.getElementById('scan-heatmap').naturalWidth") > 0
    )


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_page_left_open_signs_out_after_the_idle_period_and_says_so(
    browser, live_server, patient, doctor, settings, status_polls
):
    settings.SCAN_POLL_MAX_INTERVAL_SECONDS = 1
    settings.SCAN_POLL_STOP_AFTER_SECONDS = 120
    scan = scan_create(patient=patient, image=xray_upload(seed=2), uploaded_by=doctor)
    polls = status_polls(scan.pk)
    sign_in(browser, live_server, doctor)
    browser.get(f"{live_server.url}/scans/{scan.pk}/")
    WebDriverWait(browser, 20).until(lambda driver: polls.times)

    expire_in(browser_session_key(browser), -datetime.timedelta(seconds=1))

    WebDriverWait(browser, 20).until(lambda driver: driver.find_element(By.ID, "poll-signed-out").is_displayed())
    browser.find_element(By.LINK_TEXT, "Sign in again").click()
    assert browser.current_url.startswith(live_server.url + reverse("accounts:login"))
