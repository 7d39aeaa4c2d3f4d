"""A realistic day in real Chromium: a model trained on generated images reads several patients' scans.

The worklist and a positive scan's page are checked and photographed (test-artifacts/dashboard.png and
scan-result.png, the README's screenshots). Every image is generated; no patient data is involved.
The suite uses its tiny untrained network (75 px, where InceptionV3's last block is 1x1 and Grad-CAM
has nothing to show); the README's screenshots were taken with a network trained for them:
COVIDXRAY_DEMO_IMAGE_SIZE=160 COVIDXRAY_DEMO_EPOCHS=20 (a 3x3 map).
"""

import io
import os

import pytest
from django.core.management import call_command
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from diagnosis.models import Patient, Scan
from diagnosis.services.inference import scans_diagnose
from diagnosis.services.scans import scan_create, scan_review
from mlcore.models import ModelVersion
from tests.browser import save_screenshot, wait_for_text
from tests.diagnosis.conftest import xray_upload
from tests.diagnosis.test_scan_page import sign_in
from tests.mlcore.synthetic import write_dataset

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PATIENTS = [
    ("MRN-20417", "Dorothy Hodgkin", ["COVID", "COVID"]),
    ("MRN-31890", "Rosalind Franklin", ["NORMAL"]),
    ("MRN-40266", "Alexander Fleming", ["COVID", "NORMAL"]),
    ("MRN-51173", "Florence Nightingale", ["NORMAL"]),
]


@pytest.fixture
def trained_version(request, tmp_path):
    """The active version. By default the suite's tiny untrained network with a held-out evaluation;
    with COVIDXRAY_DEMO_IMAGE_SIZE set, a network trained on generated images (for the screenshots)."""
    from mlcore.services import model_version_activate

    size = os.environ.get("COVIDXRAY_DEMO_IMAGE_SIZE")
    if not size:
        version = request.getfixturevalue("validated_version")
        model_version_activate(version=version)
        return version
    epochs = int(os.environ.get("COVIDXRAY_DEMO_EPOCHS", "6"))
    data = write_dataset(tmp_path / "data", per_class=48, patients_per_class=24)
    call_command(
        "train_model",
        data=str(data),
        image_size=int(size),
        epochs=epochs,
        batch_size=16,
        patience=epochs,
        members=1,
        activate=True,
        stdout=io.StringIO(),
    )
    return ModelVersion.objects.get()


def test_the_worklist_marks_positive_and_unreviewed_scans_and_the_result_page_explains_the_reading(
    browser, live_server, trained_version, doctor
):
    seed = 0
    for mrn, name, labels in PATIENTS:
        patient = Patient.objects.create(mrn=mrn, full_name=name, created_by=doctor)
        for label in labels:
            seed += 1
            scan_create(patient=patient, image=xray_upload(seed=seed, size=160, label=label), uploaded_by=doctor)
    scans_diagnose()
    done = list(Scan.objects.filter(status=Scan.Status.DONE).order_by("pk"))
    assert len(done) == 6
    reviewed = done[1]
    scan_review(scan=reviewed, reviewer=doctor, agrees_with_model=True, final_finding=reviewed.label)
    pending_patient = Patient.objects.get(mrn="MRN-51173")
    scan_create(patient=pending_patient, image=xray_upload(seed=99, size=160), uploaded_by=doctor)
    positives = [scan for scan in done if scan.label == trained_version.positive_class]

    sign_in(browser, live_server, doctor)
    browser.get(live_server.url + "/")
    wait_for_text(browser, "h1", "Worklist")
    assert browser.find_element(By.ID, "count-pending").text == "1"
    assert browser.find_element(By.ID, "count-positive").text == str(len(positives))
    assert browser.find_element(By.ID, "count-awaiting").text == "5"
    assert browser.find_element(By.ID, "count-reviewed").text == "1"
    rows = browser.find_elements(By.CSS_SELECTOR, "table.worklist tbody tr")
    assert len(rows) == 7
    assert rows[0].text.startswith("Florence Nightingale")
    assert sum("Awaiting review" in row.text for row in rows) == 5
    assert sum("Positive" in row.text for row in rows) == len(positives)
    save_screenshot(browser, "dashboard")

    shown = positives[0] if positives else done[0]
    browser.get(f"{live_server.url}/scans/{shown.pk}/")
    wait_for_text(browser, "#scan-status", "Done")
    WebDriverWait(browser, 20).until(
        lambda driver: driver.execute_script("return document.getElementById('scan-heatmap').naturalWidth") > 0
    )
    page = browser.find_element(By.TAG_NAME, "main").text
    assert f"Model version {trained_version.name}" in page
    assert "Sensitivity" in page
    assert "PPV" in page
    assert "Decision support, not a diagnosis." in page
    save_screenshot(browser, "scan-result")
