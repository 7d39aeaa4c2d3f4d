"""A doctor's whole day in real headless Chromium, against the live server and a real Celery worker.

Register, staff approval in the admin, sign in, create a patient, upload an X-ray, watch the result and
the Grad-CAM heatmap arrive, review it, open the printable report. Screenshots go to test-artifacts/.
"""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from accounts.models import User
from diagnosis.models import Patient, Review, Scan
from mlcore.core.classes import display_name
from tests.accounts.test_browser_signup import fill, submit
from tests.browser import save_screenshot, wait_for_text
from tests.conftest import DOCTOR_PASSWORD
from tests.diagnosis.conftest import xray_png
from tests.diagnosis.workers import Worker, purge_broker

pytestmark = [pytest.mark.embedded, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "Radium-and-Polonium-1898"


@pytest.fixture
def worker(tmp_path, make_version):
    make_version()
    purge_broker()
    started = Worker(tmp_path / "worker.log")
    yield started
    started.stop()


def click(browser, css: str) -> None:
    element = browser.find_element(By.CSS_SELECTOR, css)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", element)
    element.click()


def test_register_approve_diagnose_review_and_report(browser, live_server, staff_user, worker, tmp_path):
    browser.get(live_server.url + "/accounts/register/")
    fill(
        browser,
        {
            "full_name": "Marie Curie",
            "email": "marie.curie@hospital.example",
            "licence_number": "RCP-0001867",
            "hospital": "Hôpital Lariboisière",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    submit(browser)
    wait_for_text(browser, "h1", "Registration received")

    browser.get(live_server.url + "/accounts/login/")
    fill(browser, {"username": staff_user.email, "password": DOCTOR_PASSWORD})
    submit(browser)
    wait_for_text(browser, "nav", staff_user.full_name)
    browser.get(live_server.url + "/admin/accounts/user/?approval=waiting")
    click(browser, "#result_list input.action-select")
    Select(browser.find_element(By.NAME, "action")).select_by_value("approve_selected")
    click(browser, "button[name=index]")
    wait_for_text(browser, "ul.messagelist", "Approved 1 account(s)")
    browser.delete_all_cookies()

    browser.get(live_server.url + "/accounts/login/")
    fill(browser, {"username": "marie.curie@hospital.example", "password": PASSWORD})
    submit(browser)
    wait_for_text(browser, "nav", "Marie Curie")
    assert browser.current_url == live_server.url + "/"

    browser.get(live_server.url + "/patients/new/")
    fill(browser, {"mrn": "MRN-1867", "full_name": "Pierre Curie"})
    submit(browser)
    wait_for_text(browser, "h1", "Pierre Curie")
    patient = Patient.objects.get(mrn="MRN-1867")
    assert patient.created_by == User.objects.get(email="marie.curie@hospital.example")

    xray = tmp_path / "chest-pa.png"
    xray.write_bytes(xray_png(seed=11, size=256))
    browser.find_element(By.CSS_SELECTOR, "input[type=file][name=images]").send_keys(str(xray))
    click(browser, "form[enctype='multipart/form-data'] button[type=submit]")

    wait_for_text(browser, "#scan-status", "Done", timeout=120)
    WebDriverWait(browser, 60).until(
        lambda driver: driver.execute_script("return document.getElementById('scan-heatmap').naturalWidth") > 0
    )
    scan = Scan.objects.get(patient=patient)
    assert scan.status == Scan.Status.DONE
    assert browser.find_element(By.ID, "scan-label").text == display_name(scan.label)
    save_screenshot(browser, "e2e-scan-result")

    disagree = scan.label == "COVID"
    click(browser, f"input[name=agrees_with_model][value={'no' if disagree else 'yes'}]")
    Select(browser.find_element(By.NAME, "final_finding")).select_by_value("NORMAL" if disagree else scan.label)
    fill(browser, {"comment": "Clear lung fields on my reading."})
    click(browser, "form[action$='/review/'] button[type=submit]")
    wait_for_text(browser, "#review-summary", "Marie Curie")
    review = Review.objects.get(scan=scan)
    assert review.agrees_with_model is not disagree

    click(browser, "a[href$='/report/']")
    WebDriverWait(browser, 10).until(lambda driver: len(driver.window_handles) >= 1)
    browser.switch_to.window(browser.window_handles[-1])
    wait_for_text(browser, "body", "Pierre Curie")
    report = browser.find_element(By.TAG_NAME, "body").text
    assert "MRN-1867" in report
    assert "Clear lung fields on my reading." in report
    assert "Marie Curie" in report
    assert "decision support" in report.lower()
    save_screenshot(browser, "e2e-report")

    browser.get(live_server.url + "/")
    wait_for_text(browser, "main", "Pierre Curie")
    save_screenshot(browser, "e2e-dashboard")
