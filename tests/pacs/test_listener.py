"""The listener process (manage.py dicom_listener) answered by a real DICOM client: who may send, and what."""

import io

import pydicom
import pytest
from pynetdicom import AE, StoragePresentationContexts

from diagnosis.models import Patient, Scan
from pacs.services.receive import STATUS_CANNOT_UNDERSTAND, STATUS_SOP_CLASS_NOT_SUPPORTED
from tests.pacs.dicom import ct_dicom, radiograph_dicom
from tests.pacs.processes import Listener, dicom_echo

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def listener(tmp_path):
    process = Listener(tmp_path / "listener.log")
    yield process
    process.stop()


def c_store(port: int, data: bytes, *, calling_ae_title: str = "TESTSCU"):
    """Send one encoded file; returns the C-STORE status data set."""
    ae = AE(ae_title=calling_ae_title)
    ae.requested_contexts = StoragePresentationContexts[:120]
    association = ae.associate("127.0.0.1", port, ae_title="COVIDXRAY")
    assert association.is_established
    try:
        dataset = pydicom.dcmread(io.BytesIO(data), force=True)
        return association.send_c_store(dataset)
    finally:
        association.release()


def test_an_association_from_an_ae_that_is_not_allowed_is_refused_and_logged(listener):
    assert dicom_echo(listener.port, calling_ae_title="INTRUDER") == "rejected"
    assert "Refused an association from AE 'INTRUDER'" in listener.log()
    assert dicom_echo(listener.port, calling_ae_title="TESTSCU") == "echoed"


def test_a_ct_is_refused_with_its_reason_and_the_listener_keeps_receiving(listener, radiology):
    status = c_store(listener.port, ct_dicom())

    assert status.Status == STATUS_SOP_CLASS_NOT_SUPPORTED
    assert "not a chest radiograph" in status.ErrorComment
    assert "CT Image Storage is not a chest radiograph" in listener.log()
    assert not Scan.objects.exists()

    assert c_store(listener.port, radiograph_dicom(patient_id="PACS-7")).Status == 0x0000
    scan = Scan.objects.get()
    assert scan.patient.mrn == "PACS-7"
    assert scan.pacs_received.calling_ae_title == "TESTSCU"


def test_a_data_set_that_does_not_decode_is_refused(listener, radiology):
    damaged = radiograph_dicom()[:-3000]

    status = c_store(listener.port, damaged)

    assert status.Status == STATUS_CANNOT_UNDERSTAND
    assert "Refused an instance from AE 'TESTSCU'" in listener.log()
    assert not Patient.objects.exists()
    assert dicom_echo(listener.port) == "echoed"


def test_the_listener_will_not_start_without_allowed_ae_titles(tmp_path):
    with pytest.raises(AssertionError, match="COVIDXRAY_PACS_ALLOWED_AE_TITLES is empty"):
        Listener(tmp_path / "listener.log", allowed="")
