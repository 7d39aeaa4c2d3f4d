"""The scan page updates itself from pending to the result and heatmap, in real headless Chromium."""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from diagnosis.models import Scan
from diagnosis.services.inference import scans_diagnose
from diagnosis.services.scans import scan_create
from mlcore.core.classes import display_name
from tests.browser import save_screenshot, wait_for_text
from tests.conftest import THREE_CLASSES
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
    assert not browser.find_element(By.ID, "heatmap-controls").is_displayed()  # nothing to overlay yet
    browser.execute_script("window.notReloaded = true")

    scans_diagnose(first_scan_id=scan.pk)

    wait_for_text(browser, "#scan-status", "Done", timeout=20)
    scan.refresh_from_db()
    assert browser.find_element(By.ID, "scan-label").text == display_name(scan.label)
    assert browser.find_element(By.ID, "scan-probability").text == f"{scan.probability:.3f}"
    assert browser.find_element(By.ID, "class-probabilities").text.split("\n")[::2] == ["COVID-19 pneumonia", "Normal"]
    assert browser.find_element(By.ID, "scan-negative-rule").text == ""
    assert browser.find_element(By.ID, "review-card").is_displayed(), "the review form appears without a reload"
    WebDriverWait(browser, 20).until(
        lambda driver: driver.execute_script("return document.getElementById('scan-heatmap').naturalWidth") > 0
    )
    heatmap = browser.find_element(By.ID, "scan-heatmap")
    assert heatmap.get_attribute("src").endswith(f"/scans/{scan.pk}/heatmap.png")
    assert browser.find_element(By.ID, "heatmap-controls").is_displayed()
    assert browser.execute_script("return window.notReloaded") is True
    save_screenshot(browser, "scan-result")


def test_a_three_class_reading_shows_every_class_by_name_without_a_reload(
    browser, live_server, make_version, patient, doctor, settings
):
    settings.SCAN_POLL_MAX_INTERVAL_SECONDS = 2
    make_version("tiny-3", class_names=THREE_CLASSES)
    scan = scan_create(patient=patient, image=xray_upload(seed=3), uploaded_by=doctor)
    sign_in(browser, live_server, doctor)
    browser.get(f"{live_server.url}/scans/{scan.pk}/")
    wait_for_text(browser, "#scan-status", "Pending")

    scans_diagnose(first_scan_id=scan.pk)

    wait_for_text(browser, "#scan-status", "Done", timeout=20)
    scan.refresh_from_db()
    assert set(scan.probabilities) == set(THREE_CLASSES)
    rows = browser.find_element(By.ID, "class-probabilities").text.split("\n")
    assert rows[::2] == ["COVID-19 pneumonia", "Other pneumonia (not COVID-19)", "Normal"]
    assert rows[1::2] == [f"{scan.probabilities[name]:.3f}" for name in THREE_CLASSES]
    assert browser.find_element(By.ID, "scan-label").text == display_name(scan.label)
    called = browser.find_element(By.CSS_SELECTOR, "#class-probabilities dt.fw-semibold")
    assert called.get_attribute("data-class") == scan.label
    assert (
        "more probable of Other pneumonia (not COVID-19) and Normal"
        in browser.find_element(By.ID, "scan-negative-rule").text
    )
    save_screenshot(browser, "scan-result-three-classes")


def test_a_refused_image_shows_its_reason_and_no_reading_without_a_reload(
    browser, live_server, make_gated_version, patient, doctor
):
    from tests.diagnosis.test_input_gate import dicom_upload

    make_gated_version()
    scan = scan_create(patient=patient, image=dicom_upload(Modality="CT"), uploaded_by=doctor)
    sign_in(browser, live_server, doctor)
    browser.get(f"{live_server.url}/scans/{scan.pk}/")
    wait_for_text(browser, "#scan-status", "Pending")

    scans_diagnose(first_scan_id=scan.pk)

    wait_for_text(browser, "#scan-status", "Not assessable", timeout=20)
    assert "modality is CT" in browser.find_element(By.ID, "not-assessable-reason").text
    assert browser.find_element(By.ID, "scan-not-assessable").is_displayed()
    assert not browser.find_element(By.ID, "scan-result").is_displayed()
    assert not browser.find_element(By.ID, "review-card").is_displayed()
    assert not browser.find_element(By.ID, "heatmap-controls").is_displayed()  # it will never have a heatmap
    assert not browser.find_element(By.ID, "heatmap-caption").is_displayed()
    save_screenshot(browser, "scan-not-assessable")


def test_an_indeterminate_reading_is_shown_as_such_with_its_band(
    browser, live_server, make_gated_version, patient, doctor
):
    make_gated_version(band=(0.0, 1.0))
    scan = scan_create(patient=patient, image=xray_upload(seed=5), uploaded_by=doctor)
    sign_in(browser, live_server, doctor)
    browser.get(f"{live_server.url}/scans/{scan.pk}/")
    wait_for_text(browser, "#scan-status", "Pending")

    scans_diagnose(first_scan_id=scan.pk)

    wait_for_text(browser, "#scan-label", "Indeterminate: the model cannot separate this case", timeout=20)
    assert browser.find_element(By.ID, "band-marker").is_displayed()
    assert "COVID-19 pneumonia" in browser.find_element(By.ID, "class-probabilities").text
    assert "no predictive value" in browser.find_element(By.ID, "reading-unavailable").text


def test_the_evidence_line_names_its_source_and_caveats_when_the_result_arrives(
    browser, live_server, doctor, diagnosed_scan, validated_version
):
    evaluation = validated_version.evaluations.get()
    nih = {"n": 200, "positives": 0, "negatives": 200, "confusion_matrix": {"labels": ["NORMAL", "COVID"]}}
    evaluation.metrics |= {"per_source": {"nih": nih}}
    evaluation.save()
    files = {"preview": diagnosed_scan.preview.name, "heatmap": diagnosed_scan.heatmap.name}
    Scan.objects.filter(pk=diagnosed_scan.pk).update(
        status="pending", label="", result="", probability=None, preview="", heatmap=""
    )
    sign_in(browser, live_server, doctor)
    browser.get(f"{live_server.url}/scans/{diagnosed_scan.pk}/")
    wait_for_text(browser, "#scan-status", "Pending")
    assert not browser.find_element(By.ID, "reading-warning").is_displayed()

    Scan.objects.filter(pk=diagnosed_scan.pk).update(
        status="done", label="COVID", result="positive", probability=0.91, model_version=validated_version, **files
    )

    wait_for_text(browser, "#reading-evidence", "the internal test split of 300 images", timeout=20)
    warning = browser.find_element(By.ID, "reading-warning")
    assert warning.is_displayed()
    assert warning.text == "Internal test split: same sources as training; overstates what a new hospital will see."
    confounded = browser.find_element(By.ID, "reading-confounded")
    assert confounded.is_displayed()
    assert confounded.text.startswith("Confounded: nih (only NORMAL).")
    assert not browser.find_element(By.ID, "reading-band").is_displayed()
