"""The round trip against a real PACS: Debian's Orthanc sends an X-ray, a real worker reads it, the SR and heatmap
come back into the same study in Orthanc. Also what Orthanc is refused, and sending while Orthanc is down."""

import io

import highdicom as hd
import pydicom
import pytest
from django.urls import reverse
from highdicom.sr.utils import find_content_items
from pydicom.sr.codedict import codes

from diagnosis.models import Scan
from diagnosis.signals import scan_read
from pacs.models import ResultSend
from tests.diagnosis.workers import Worker, purge_broker, wait_until
from tests.pacs.dicom import ct_dicom, radiograph_dicom
from tests.pacs.processes import ORTHANC_AE_TITLE, Listener, Orthanc, store_error

pytestmark = pytest.mark.django_db(transaction=True)

SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.33"
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"


@pytest.fixture
def pacs(tmp_path, settings):
    """CovidXray's listener and an Orthanc that knows it; sends from this process and the worker go to Orthanc."""
    listener = Listener(tmp_path / "listener.log")
    orthanc = Orthanc(tmp_path / "orthanc", listener_port=listener.port)
    settings.PACS_DESTINATION_HOST = "127.0.0.1"
    settings.PACS_DESTINATION_PORT = orthanc.dicom_port
    settings.PACS_DESTINATION_AE_TITLE = ORTHANC_AE_TITLE
    yield listener, orthanc
    orthanc.stop()
    listener.stop()


@pytest.fixture
def worker(tmp_path, pacs):
    _, orthanc = pacs
    purge_broker()
    process = Worker(
        tmp_path / "worker.log",
        COVIDXRAY_PACS_DESTINATION_HOST="127.0.0.1",
        COVIDXRAY_PACS_DESTINATION_PORT=str(orthanc.dicom_port),
        COVIDXRAY_PACS_DESTINATION_AE_TITLE=ORTHANC_AE_TITLE,
        COVIDXRAY_PACS_SEND_RETRIES="2",
        COVIDXRAY_PACS_SEND_RETRY_SECONDS="1",
    )
    yield process
    process.stop()


def results_in_study(orthanc: Orthanc, study_instance_uid: str) -> dict[str, dict]:
    return {
        instance["SOPClassUID"]: instance
        for instance in orthanc.study_instances(study_instance_uid)
        if instance["SOPClassUID"] in (SR_STORAGE, SC_STORAGE)
    }


def test_an_xray_sent_by_orthanc_is_read_and_its_sr_and_heatmap_come_back_into_its_study(
    pacs, worker, make_version, radiology
):
    _, orthanc = pacs
    make_version()
    xray = radiograph_dicom(patient_id="PACS-2026", seed=5)
    study_instance_uid = pydicom.dcmread(io.BytesIO(xray)).StudyInstanceUID
    stored = orthanc.upload(xray)

    orthanc.store_to_covidxray(stored["ID"])

    scan = Scan.objects.get(patient__mrn="PACS-2026")
    wait_until(
        lambda: len(results_in_study(orthanc, study_instance_uid)) == 2,
        timeout=240,
        explain=lambda: f"scan {Scan.objects.get(pk=scan.pk).status}; worker:\n{worker.log()[-3000:]}",
    )
    # The worker records the send after Orthanc has acknowledged both objects, so the row can lag the study.
    wait_until(
        lambda: ResultSend.objects.filter(scan=scan, state=ResultSend.State.SENT).exists(),
        timeout=30,
        explain=lambda: f"send {ResultSend.objects.filter(scan=scan).values('state', 'attempts', 'last_error')}",
    )
    scan.refresh_from_db()
    assert scan.status == Scan.Status.DONE
    assert scan.patient.shared_with.filter(email="radiologist@hospital.example").exists()
    results = results_in_study(orthanc, study_instance_uid)
    assert "NOT FOR DIAGNOSIS" in results[SC_STORAGE]["SeriesDescription"]
    report = hd.sr.ComprehensiveSR.from_dataset(
        pydicom.dcmread(io.BytesIO(orthanc.instance_file(results[SR_STORAGE]["ID"])))
    )
    assert report.StudyInstanceUID == study_instance_uid
    [group] = report.content.get_image_measurement_groups()
    assert group.finding_type.meaning == scan.get_result_display()
    assert [e.value.value for e in group.get_qualitative_evaluations()] == ([scan.label] if scan.label else [])
    probabilities = {m.name.value: m.value for m in group.get_measurements()}
    assert probabilities["p-COVID"] == pytest.approx(scan.probabilities["COVID"])
    [version] = find_content_items(group[0], name=codes.DCM.AlgorithmVersion)
    assert version.TextValue == "tiny-v1"
    send = ResultSend.objects.get(scan=scan)
    assert (send.state, send.attempts) == (ResultSend.State.SENT, 1)
    assert send.sr_sop_instance_uid == report.SOPInstanceUID


def test_a_ct_that_orthanc_sends_is_refused_with_its_reason_and_never_read(pacs, radiology):
    listener, orthanc = pacs
    stored = orthanc.upload(ct_dicom(patient_id="PACS-CT"))

    error = store_error(orthanc, stored["ID"])

    assert error
    assert "CT Image Storage is not a chest radiograph" in listener.log()
    assert not Scan.objects.exists()


def test_a_send_while_orthanc_is_down_is_retried_shown_in_the_admin_and_re_sent(
    pacs, worker, read_dicom_scan, staff_client
):
    _, orthanc = pacs
    orthanc.stop()

    scan_read.send(sender=Scan, scan_id=read_dicom_scan.pk)

    send = ResultSend.objects.get(scan=read_dicom_scan)
    wait_until(
        lambda: ResultSend.objects.filter(pk=send.pk, state=ResultSend.State.FAILED).exists(),
        timeout=120,
        explain=lambda: f"{ResultSend.objects.get(pk=send.pk).__dict__}; worker:\n{worker.log()[-3000:]}",
    )
    send.refresh_from_db()
    assert send.attempts == 3
    assert "No association with ORTHANC@127.0.0.1" in send.last_error
    changelist = reverse("admin:pacs_resultsend_changelist")
    page = staff_client.get(changelist).content.decode()
    assert "Failed (gave up; re-send from the admin)" in page
    assert "No association with ORTHANC" in page

    orthanc.start()
    staff_client.post(changelist, {"action": "resend", "_selected_action": [send.pk]})

    wait_until(
        lambda: ResultSend.objects.filter(pk=send.pk, state=ResultSend.State.SENT).exists(),
        timeout=120,
        explain=lambda: worker.log()[-3000:],
    )
    assert set(results_in_study(orthanc, send.study_instance_uid)) == {SR_STORAGE, SC_STORAGE}
