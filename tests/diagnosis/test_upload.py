"""Uploads: accepted by content, refused with a clear message otherwise, and nothing half-stored."""

import datetime
import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from diagnosis.models import Scan
from tests.diagnosis.conftest import xray_png
from tests.mlcore.test_imaging import dicom_bytes

pytestmark = pytest.mark.django_db


def post(client, patient, *files):
    return client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": list(files)})


def upload(name, data, content_type="image/png"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def jpeg_bytes():
    buffer = io.BytesIO()
    Image.open(io.BytesIO(xray_png())).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "file_type"),
    [
        ("chest.png", xray_png(), "PNG"),
        ("chest.jpg", jpeg_bytes(), "JPEG"),
        ("chest.dcm", dicom_bytes(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)), "DICOM"),
        ("no-extension", xray_png(), "PNG"),
    ],
)
def test_png_jpeg_and_dicom_are_accepted_by_content(doctor_client, patient, name, data, file_type):
    response = post(doctor_client, patient, upload(name, data))

    scan = Scan.objects.get()
    assert response.status_code == 302
    assert scan.file_type == file_type
    assert scan.status == Scan.Status.PENDING
    assert scan.original_filename == name
    assert name not in scan.image.name
    assert scan.image.name.startswith("originals/")


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("report.png", b"%PDF-1.7 not an image at all" * 10, "not a PNG, JPEG or DICOM image"),
        ("chest.png", xray_png()[:200], "damaged or truncated"),
        ("empty.png", b"", "empty"),
        ("nopixels.dcm", dicom_bytes(None), "no pixel data"),
    ],
)
def test_bad_files_are_refused_with_a_clear_message_and_nothing_is_stored(doctor_client, patient, name, data, message):
    response = post(doctor_client, patient, upload(name, data))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Scan.objects.exists()


def test_an_oversized_file_is_refused(doctor_client, patient, settings):
    settings.SCAN_MAX_UPLOAD_BYTES = 1000

    response = post(doctor_client, patient, upload("big.png", xray_png(size=300)))

    assert response.status_code == 400
    assert "the limit is 1000" in response.content.decode()
    assert not Scan.objects.exists()


def test_a_decompression_bomb_is_refused(doctor_client, patient, settings):
    settings.SCAN_MAX_PIXELS = 100 * 100
    buffer = io.BytesIO()
    Image.new("L", (5000, 5000)).save(buffer, format="PNG")

    response = post(doctor_client, patient, upload("bomb.png", buffer.getvalue()))

    assert response.status_code == 400
    assert "more than the limit" in response.content.decode()
    assert not Scan.objects.exists()


def test_one_bad_file_among_several_stores_none_of_them(doctor_client, patient):
    response = post(doctor_client, patient, upload("a.png", xray_png(seed=1)), upload("b.png", b"garbage" * 50))

    assert response.status_code == 400
    assert "b.png" in response.content.decode()
    assert not Scan.objects.exists()


def test_several_files_become_several_queued_scans(doctor_client, patient):
    response = post(doctor_client, patient, *(upload(f"{n}.png", xray_png(seed=n)) for n in range(3)))

    assert response.status_code == 302
    assert response["Location"] == reverse("diagnosis:patient_detail", args=[patient.pk])
    assert Scan.objects.filter(status=Scan.Status.PENDING).count() == 3


def test_another_doctors_patient_and_scans_answer_404(client, make_doctor, patient, doctor):
    doctor_client = client
    scan = Scan.objects.create(
        patient=patient, image="originals/x.png", file_type="PNG", uploaded_by=doctor, preview="derived/p.png"
    )
    other = make_doctor(email="other@hospital.example")
    doctor_client.force_login(other)

    for url in (
        reverse("diagnosis:patient_detail", args=[patient.pk]),
        reverse("diagnosis:scan_detail", args=[scan.pk]),
        reverse("diagnosis:scan_status", args=[scan.pk]),
        reverse("diagnosis:scan_image", args=[scan.pk, "preview"]),
    ):
        assert doctor_client.get(url).status_code == 404, url
    assert post(doctor_client, patient, upload("a.png", xray_png())).status_code == 404
    assert Scan.objects.count() == 1


# --- a DICOM's header fills in what the doctor left blank ------------------------------------------


def chest_dicom(**attributes) -> bytes:
    details = {"PatientID": "MRN-0001", "StudyDate": "20240131", "ViewPosition": "AP"}
    return dicom_bytes(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), **(details | attributes))


def test_a_dicom_uploaded_without_view_and_date_takes_them_from_its_header(doctor_client, patient):
    response = post(doctor_client, patient, upload("chest.dcm", chest_dicom(), "application/dicom"))

    scan = Scan.objects.get()
    assert response.status_code == 302
    assert scan.view == "AP"
    assert scan.acquisition_date == datetime.date(2024, 1, 31)


def test_the_view_and_date_the_doctor_chose_win_over_the_dicom_header(doctor_client, patient):
    url = reverse("diagnosis:scan_upload", args=[patient.pk])
    data = {"images": [upload("chest.dcm", chest_dicom())], "view": "PA", "acquisition_date": "2025-02-03"}

    doctor_client.post(url, data)

    scan = Scan.objects.get()
    assert scan.view == "PA"
    assert scan.acquisition_date == datetime.date(2025, 2, 3)


def test_each_dicom_among_several_takes_its_own_header_and_a_png_stays_blank(doctor_client, patient):
    post(
        doctor_client,
        patient,
        upload("ap.dcm", chest_dicom(ViewPosition="AP", StudyDate="20240101")),
        upload("pa.dcm", chest_dicom(ViewPosition="PA", StudyDate="20240202")),
        upload("chest.png", xray_png()),
    )

    scans = {scan.original_filename: scan for scan in Scan.objects.all()}
    assert (scans["ap.dcm"].view, scans["ap.dcm"].acquisition_date) == ("AP", datetime.date(2024, 1, 1))
    assert (scans["pa.dcm"].view, scans["pa.dcm"].acquisition_date) == ("PA", datetime.date(2024, 2, 2))
    assert (scans["chest.png"].view, scans["chest.png"].acquisition_date) == ("", None)
