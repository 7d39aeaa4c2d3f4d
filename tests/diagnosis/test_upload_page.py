"""The upload form in real headless Chromium: choosing files, checks, DICOM headers, progress and redirect."""

import base64

import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from diagnosis.models import Scan
from tests.browser import save_screenshot, wait_for_text
from tests.diagnosis.conftest import xray_png
from tests.diagnosis.test_scan_page import sign_in
from tests.mlcore.test_imaging import dicom_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every value the progress bar shows, kept in sessionStorage so that it outlives the redirect.
WATCH_PROGRESS = """
const bar = document.getElementById("upload-progress");
sessionStorage.setItem("progress", "[]");
new MutationObserver(() => {
  const seen = JSON.parse(sessionStorage.getItem("progress"));
  if (!bar.hidden) seen.push([bar.getAttribute("aria-valuenow"), bar.textContent.trim()]);
  sessionStorage.setItem("progress", JSON.stringify(seen));
}).observe(bar, {attributes: true, subtree: true, childList: true, characterData: true});
"""


@pytest.fixture
def queued(monkeypatch):
    """The live server runs in this process: record what would go to the workers."""
    from diagnosis.services import scans as scan_services

    queued = []
    monkeypatch.setattr(scan_services, "queue_scan", queued.append)
    return queued


@pytest.fixture
def open_patient_page(browser, live_server, patient, doctor):
    def open_page():
        sign_in(browser, live_server, doctor)
        browser.get(f"{live_server.url}/patients/{patient.pk}/")
        wait_for_text(browser, "#upload-drop-zone", "Drop chest X-rays here")
        return browser

    return open_page


def choose(browser, *paths):
    browser.find_element(By.ID, "id_images").send_keys("\n".join(str(path) for path in paths))


def listed_files(browser, count):
    items = (By.CSS_SELECTOR, ".upload-file")
    WebDriverWait(browser, 10).until(lambda driver: len(driver.find_elements(*items)) == count)
    return browser.find_elements(*items)


def chest_dicom(tmp_path, name="chest.dcm", **attributes):
    details = {"PatientName": "Turing^Alan", "PatientID": "MRN-0001", "StudyDate": "20240131", "ViewPosition": "AP"}
    path = tmp_path / name
    path.write_bytes(dicom_bytes(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), **(details | attributes)))
    return path


def test_two_pngs_are_listed_uploaded_with_a_progress_bar_and_queued(open_patient_page, tmp_path, patient, queued):
    paths = []
    for seed in (1, 2):
        paths.append(tmp_path / f"chest-{seed}.png")
        paths[-1].write_bytes(xray_png(seed=seed))
    browser = open_patient_page()
    file_input = browser.find_element(By.ID, "id_images")
    assert "visually-hidden" in file_input.get_attribute("class").split()  # the drop zone stands in for it

    choose(browser, *paths)

    files = listed_files(browser, 2)
    assert [file.find_element(By.CSS_SELECTOR, ".upload-file-name").text for file in files] == [
        "chest-1.png",
        "chest-2.png",
    ]
    assert all(file.find_element(By.CSS_SELECTOR, ".upload-file-meta").text.endswith("· PNG") for file in files)
    assert all("KB" in file.find_element(By.CSS_SELECTOR, ".upload-file-meta").text for file in files)
    save_screenshot(browser, "upload-form-files")
    browser.execute_script(WATCH_PROGRESS)

    browser.find_element(By.ID, "upload-submit").click()

    wait_for_text(browser, ".alert-success", "2 scan(s) uploaded and queued for analysis.")
    assert browser.current_url.endswith(f"/patients/{patient.pk}/")
    progress = browser.execute_script("return JSON.parse(sessionStorage.getItem('progress'))")
    assert progress[0] == ["0", "0%"]
    assert progress[-1] == ["100", "Uploaded; opening…"]
    scans = Scan.objects.filter(patient=patient, status=Scan.Status.PENDING)
    assert sorted(scan.original_filename for scan in scans) == ["chest-1.png", "chest-2.png"]
    assert sorted(queued) == sorted(scan.pk for scan in scans)


def test_a_dicom_shows_its_header_and_fills_in_the_view_and_date(open_patient_page, tmp_path, patient, queued):
    browser = open_patient_page()

    choose(browser, chest_dicom(tmp_path))

    summary = wait_for_text(browser, ".upload-dicom-summary", "From the DICOM header")
    assert summary == "From the DICOM header: Turing, Alan, ID MRN-0001, study date 31 Jan 2024, view AP"
    assert browser.find_element(By.ID, "id_view").get_attribute("value") == "AP"
    assert browser.find_element(By.ID, "id_acquisition_date").get_attribute("value") == "2024-01-31"
    assert not browser.find_elements(By.CSS_SELECTOR, ".upload-dicom-mismatch")
    save_screenshot(browser, "upload-form-dicom")

    browser.find_element(By.ID, "upload-submit").click()

    WebDriverWait(browser, 10).until(lambda driver: "/scans/" in driver.current_url)
    scan = Scan.objects.get(patient=patient)
    assert browser.current_url.endswith(f"/scans/{scan.pk}/")
    assert (scan.file_type, scan.view, scan.acquisition_date.isoformat()) == ("DICOM", "AP", "2024-01-31")


def test_a_dicom_of_another_patient_is_flagged_and_several_files_leave_the_fields_to_the_doctor(
    open_patient_page, tmp_path
):
    png = tmp_path / "chest.png"
    png.write_bytes(xray_png())
    browser = open_patient_page()

    choose(browser, png, chest_dicom(tmp_path, PatientID="MRN-9999", ViewPosition="PA"))

    warning = wait_for_text(browser, ".upload-dicom-mismatch", "Wrong patient?")
    assert "MRN-9999" in warning
    assert "MRN-0001" in warning
    save_screenshot(browser, "upload-form-wrong-patient")
    assert browser.find_element(By.ID, "id_view").get_attribute("value") == ""
    browser.find_element(By.CSS_SELECTOR, ".upload-dicom-apply").click()
    assert browser.find_element(By.ID, "id_view").get_attribute("value") == "PA"
    assert browser.find_element(By.ID, "id_acquisition_date").get_attribute("value") == "2024-01-31"


def test_a_file_the_server_refuses_shows_its_error_without_a_reload(open_patient_page, tmp_path, patient):
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(xray_png()[:200])  # a PNG by its first bytes, so only the server finds it damaged
    good = tmp_path / "good.png"
    good.write_bytes(xray_png())
    browser = open_patient_page()
    browser.execute_script("window.notReloaded = true")
    choose(browser, good, damaged)
    listed_files(browser, 2)

    browser.find_element(By.ID, "upload-submit").click()

    alert = wait_for_text(browser, "#upload-errors", "damaged.png")
    assert "Nothing was uploaded." in alert
    assert "damaged or truncated" in alert
    assert browser.execute_script("return window.notReloaded") is True
    assert browser.find_element(By.ID, "upload-submit").is_enabled()
    assert not browser.find_element(By.ID, "upload-progress").is_displayed()
    assert not Scan.objects.filter(patient=patient).exists()


def test_a_too_large_file_is_flagged_before_sending_and_can_be_removed(open_patient_page, tmp_path, patient, settings):
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    small.write_bytes(xray_png(size=64))
    large.write_bytes(xray_png(size=400))
    settings.SCAN_MAX_UPLOAD_BYTES = (small.stat().st_size + large.stat().st_size) // 2
    browser = open_patient_page()
    browser.execute_script("window.notReloaded = true")

    choose(browser, small, large)

    problem = wait_for_text(browser, ".upload-file-problem", "the limit is")
    assert problem.startswith("The file is ")
    browser.find_element(By.ID, "upload-submit").click()
    alert = wait_for_text(browser, "#upload-errors", "large.png")
    assert "Remove these files from the list" in alert
    assert browser.execute_script("return window.notReloaded") is True

    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Remove large.png']").click()
    assert [file.text.splitlines()[0] for file in listed_files(browser, 1)] == ["small.png"]
    assert browser.execute_script("return document.getElementById('id_images').files.length") == 1


def test_the_drop_zone_opens_the_file_chooser_from_the_keyboard(open_patient_page):
    browser = open_patient_page()
    browser.execute_script(
        "const input = document.getElementById('id_images');"
        "input.click = () => { window.chooserOpened = (window.chooserOpened || 0) + 1; };"
    )
    zone = browser.find_element(By.ID, "upload-drop-zone")

    zone.send_keys("\n")
    zone.send_keys(" ")

    assert browser.execute_script("return window.chooserOpened") == 2
    assert zone.get_attribute("tabindex") == "0"
    assert zone.get_attribute("role") == "button"


DROP_FILE = """
const [name, base64] = arguments;
const bytes = Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
const transfer = new DataTransfer();
transfer.items.add(new File([bytes], name, {type: "image/png"}));
const zone = document.getElementById("upload-drop-zone");
zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true, cancelable: true}));
window.activeWhileDragging = zone.classList.contains("upload-drop-zone-active");
zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
"""


def test_a_file_dropped_on_the_drop_zone_is_listed_and_goes_into_the_form(open_patient_page):
    browser = open_patient_page()

    browser.execute_script(DROP_FILE, "dropped.png", base64.b64encode(xray_png()).decode())

    [item] = listed_files(browser, 1)
    assert item.find_element(By.CSS_SELECTOR, ".upload-file-name").text == "dropped.png"
    assert item.find_element(By.CSS_SELECTOR, ".upload-file-meta").text.endswith("· PNG")
    assert browser.execute_script("return window.activeWhileDragging") is True
    zone_classes = browser.find_element(By.ID, "upload-drop-zone").get_attribute("class").split()
    assert "upload-drop-zone-active" not in zone_classes
    assert browser.execute_script("return document.getElementById('id_images').files[0].name") == "dropped.png"
