"""The scan page updates itself from pending to the result and heatmap, in real headless Chromium."""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from diagnosis.services.inference import scans_diagnose
from diagnosis.services.scans import scan_create
from tests.browser import save_screenshot, wait_for_text
from tests.diagnosis.conftest import xray_upload

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(browser, live_server, user):
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    browser.get(live_server.url + "/accounts/login/")
    browser.add_cookie({"name": settings.SESSION_COOKIE_NAME, "value": session.session_key, "path": "/"})


def test_the_scan_page_shows_the_result_without_a_reload(
    browser, live_server, make_version, patient, doctor, settings
):
    settings.SCAN_POLL_MAX_INTERVAL_SECONDS = 2  # the result shows within 2 s of being written
    make_version()
    scan = scan_create(patient=patient, image=xray_upload(seed=2), uploaded_by=doctor)
    sign_in(browser, live_server, doctor)
    browser.get(f"{live_server.url}/scans/{scan.pk}/")
    wait_for_text(browser, "#scan-status", "Pending")
    assert not browser.find_element(By.ID, "review-card").is_displayed()
    browser.execute_script("window.notReloaded = true")

    scans_diagnose(first_scan_id=scan.pk)

    wait_for_text(browser, "#scan-status", "Done", timeout=20)
    scan.refresh_from_db()
    assert browser.find_element(By.ID, "scan-label").text == scan.label
    assert browser.find_element(By.ID, "scan-probability").text == f"{scan.probability:.3f}"
    assert browser.find_element(By.ID, "review-card").is_displayed(), "the review form appears without a reload"
    WebDriverWait(browser, 20).until(
        lambda driver: driver.execute_script("return document.getElementById('scan-heatmap').naturalWidth") > 0
    )
    heatmap = browser.find_element(By.ID, "scan-heatmap")
    assert heatmap.get_attribute("src").endswith(f"/scans/{scan.pk}/heatmap.png")
    assert browser.execute_script("return window.notReloaded") is True
    save_screenshot(browser, "scan-result")
