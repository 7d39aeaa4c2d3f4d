"""Storing received DICOM instances as scans: the upload service's checks, the patient from the header, sharing."""

import pytest
from django.db import transaction

from diagnosis.models import Patient, Scan
from pacs.models import ReceivedInstance
from pacs.services.receive import (
    STATUS_CANNOT_UNDERSTAND,
    STATUS_DATASET_DOES_NOT_MATCH,
    STATUS_OUT_OF_RESOURCES,
    STATUS_SOP_CLASS_NOT_SUPPORTED,
    SYSTEM_USER_EMAIL,
    InstanceRefused,
    instance_receive,
)
from tests.pacs.dicom import ct_dicom, radiograph_dicom

pytestmark = pytest.mark.django_db


def test_a_dx_instance_becomes_a_queued_scan_of_a_patient_made_from_its_header(
    radiology, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        received = instance_receive(data=radiograph_dicom(patient_id="PACS-0042"), calling_ae_title="ORTHANC")

    scan = received.scan
    assert received.created
    assert scan.status == Scan.Status.PENDING
    assert scan.file_type == Scan.FileType.DICOM
    assert scan.view == "PA"
    assert len(queued) == 1
    patient = scan.patient
    assert (patient.mrn, patient.full_name, str(patient.date_of_birth), patient.sex) == (
        "PACS-0042",
        "Curie, Marie",
        "1967-11-07",
        Patient.Sex.FEMALE,
    )
    assert patient.created_by.email == SYSTEM_USER_EMAIL
    assert scan.uploaded_by.email == SYSTEM_USER_EMAIL
    assert not patient.created_by.is_active
    assert not patient.created_by.has_usable_password()
    assert list(patient.shared_with.values_list("email", flat=True)) == ["radiologist@hospital.example"]
    assert scan.pacs_received.calling_ae_title == "ORTHANC"


def test_an_instance_for_a_known_record_number_joins_that_patient(doctor, radiology):
    patient = Patient.objects.create(mrn="PACS-0001", full_name="Marie Curie", created_by=doctor)

    scan = instance_receive(data=radiograph_dicom(patient_id="PACS-0001"), calling_ae_title="ORTHANC").scan

    assert scan.patient == patient
    assert Patient.objects.count() == 1
    assert patient.shared_with.filter(email="radiologist@hospital.example").exists()


def test_the_same_instance_sent_twice_is_one_scan(radiology):
    data = radiograph_dicom()

    first = instance_receive(data=data, calling_ae_title="ORTHANC")
    second = instance_receive(data=data, calling_ae_title="ORTHANC")

    assert second.scan == first.scan
    assert not second.created
    assert Scan.objects.count() == 1


def test_without_the_share_group_only_staff_see_pacs_patients(db):
    scan = instance_receive(data=radiograph_dicom(), calling_ae_title="ORTHANC").scan

    assert scan.patient.shared_with.count() == 0


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (lambda: ct_dicom(), STATUS_SOP_CLASS_NOT_SUPPORTED, "CT Image Storage is not a chest radiograph"),
        (lambda: radiograph_dicom(modality="CT"), STATUS_DATASET_DOES_NOT_MATCH, "modality CT"),
        (lambda: radiograph_dicom()[:-2000], STATUS_CANNOT_UNDERSTAND, "DICOM"),
        (lambda: b"\0" * 128 + b"DICM" + b"\xff" * 64, STATUS_CANNOT_UNDERSTAND, "malformed DICOM"),
        (lambda: b"not dicom at all", STATUS_CANNOT_UNDERSTAND, "malformed DICOM"),
        (lambda: radiograph_dicom(patient_id=""), STATUS_DATASET_DOES_NOT_MATCH, "no PatientID"),
    ],
    ids=["ct-sop-class", "ct-modality", "truncated-pixels", "damaged-header", "not-dicom", "no-patient-id"],
)
def test_what_is_not_a_readable_chest_radiograph_is_refused_and_leaves_nothing(
    data, status, reason, radiology, stored_files
):
    before = stored_files()

    with pytest.raises(InstanceRefused) as refused:
        instance_receive(data=data(), calling_ae_title="ORTHANC")

    assert refused.value.status == status
    assert reason in refused.value.reason
    assert not Patient.objects.exists()
    assert not Scan.objects.exists()
    assert not ReceivedInstance.objects.exists()
    assert stored_files() == before


def test_an_instance_over_the_upload_limit_is_refused_as_out_of_resources(settings, radiology, stored_files):
    settings.SCAN_MAX_UPLOAD_BYTES = 10_000
    before = stored_files()

    with pytest.raises(InstanceRefused) as refused:
        instance_receive(data=radiograph_dicom(size=128), calling_ae_title="ORTHANC")

    assert refused.value.status == STATUS_OUT_OF_RESOURCES
    assert "limit" in refused.value.reason
    assert not Patient.objects.exists()
    assert stored_files() == before


def test_an_instance_over_the_pixel_limit_is_refused_by_the_upload_check(settings, radiology, stored_files):
    settings.SCAN_MAX_PIXELS = 64 * 64
    before = stored_files()

    with pytest.raises(InstanceRefused) as refused:
        instance_receive(data=radiograph_dicom(size=96), calling_ae_title="ORTHANC")

    assert "more than the limit" in refused.value.reason
    assert not Patient.objects.exists()
    assert stored_files() == before


def test_a_database_failure_after_the_file_was_stored_leaves_neither_row_nor_file(
    radiology, stored_files, monkeypatch
):
    before = stored_files()

    def fail(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(ReceivedInstance, "save", fail)
    with pytest.raises(RuntimeError), transaction.atomic():
        instance_receive(data=radiograph_dicom(), calling_ae_title="ORTHANC")

    assert not Patient.objects.exists()
    assert not Scan.objects.exists()
    assert stored_files() == before
