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
    ids=["png", "jpeg", "dicom", "png-without-extension"],  # the DICOM's UIDs differ in each xdist process
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
    ids=["pdf", "truncated-png", "empty", "dicom-without-pixels"],
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


# --- the upload page and form ---------------------------------------------------------------------


def test_the_upload_page_offers_the_drop_zone_with_the_size_limit(doctor_client, patient, settings):
    settings.SCAN_MAX_UPLOAD_BYTES = 12345

    response = doctor_client.get(reverse("diagnosis:scan_upload", args=[patient.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="upload-drop-zone"' in page
    assert 'data-max-bytes="12345"' in page
    assert f'data-header-url="{reverse("diagnosis:dicom_header", args=[patient.pk])}"' in page
    assert 'data-mrn="MRN-0001"' in page
    assert "js/upload.js" in page


def test_the_patient_page_carries_the_upload_form_and_its_script(doctor_client, patient):
    page = doctor_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()

    assert 'id="upload-form"' in page
    assert "js/upload.js" in page


def test_posting_no_file_is_refused_and_stores_nothing(doctor_client, patient):
    response = doctor_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"view": "PA"})

    assert response.status_code == 400
    assert "Choose at least one image to upload." in response.content.decode()
    assert not Scan.objects.exists()


# --- the same form posted by upload.js answers JSON -----------------------------------------------

AS_SCRIPT = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest", "HTTP_ACCEPT": "application/json"}


def post_json(client, patient, *files, **fields):
    url = reverse("diagnosis:scan_upload", args=[patient.pk])
    return client.post(url, {"images": list(files), **fields}, **AS_SCRIPT)


@pytest.fixture
def queued(monkeypatch):
    from diagnosis.services import scans as scan_services

    queued = []
    monkeypatch.setattr(scan_services, "queue_scan", queued.append)
    return queued


def test_script_upload_of_several_files_answers_201_with_the_scans_and_queues_them(
    doctor_client, patient, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(
            doctor_client, patient, upload("a.png", xray_png(seed=1)), upload("b.png", xray_png(seed=2))
        )

    scans = list(Scan.objects.order_by("pk"))
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    assert response.json() == {
        "scans": [
            {"id": scan.pk, "url": reverse("diagnosis:scan_detail", args=[scan.pk]), "original_filename": name}
            for scan, name in zip(scans, ["a.png", "b.png"], strict=True)
        ],
        "redirect": reverse("diagnosis:patient_detail", args=[patient.pk]),
    }
    assert all(scan.status == Scan.Status.PENDING for scan in scans)
    assert sorted(queued) == [scan.pk for scan in scans]


def test_script_upload_of_one_file_redirects_to_its_scan(doctor_client, patient, queued):
    response = post_json(doctor_client, patient, upload("a.png", xray_png()), view="PA")

    scan = Scan.objects.get()
    assert response.status_code == 201
    assert response.json()["redirect"] == reverse("diagnosis:scan_detail", args=[scan.pk])
    assert scan.view == "PA"


def test_asking_for_json_by_accept_header_alone_answers_json(doctor_client, patient, queued):
    url = reverse("diagnosis:scan_upload", args=[patient.pk])

    response = doctor_client.post(url, {"images": [upload("a.png", xray_png())]}, HTTP_ACCEPT="application/json")

    assert response.status_code == 201
    assert response["Content-Type"] == "application/json"


def test_script_upload_with_a_bad_file_answers_400_with_the_errors_and_stores_nothing(doctor_client, patient, queued):
    response = post_json(doctor_client, patient, upload("a.png", xray_png(seed=1)), upload("b.png", b"garbage" * 50))

    assert response.status_code == 400
    assert response.json() == {"errors": ["b.png: This is not a PNG, JPEG or DICOM image (whatever its name says)."]}
    assert not Scan.objects.exists()
    assert queued == []


def test_script_upload_errors_name_the_field_they_are_about(doctor_client, patient):
    response = post_json(doctor_client, patient, acquisition_date="31/31/2024", view="XX")

    errors = response.json()["errors"]
    assert response.status_code == 400
    assert "Choose at least one image to upload." in errors
    assert "Acquired on: Enter a valid date." in errors
    assert any(error.startswith("View: Select a valid choice.") for error in errors)
    assert not Scan.objects.exists()


def test_script_upload_to_another_doctors_patient_answers_404(client, make_doctor, patient):
    client.force_login(make_doctor(email="other@hospital.example"))

    assert post_json(client, patient, upload("a.png", xray_png())).status_code == 404
    assert not Scan.objects.exists()


# --- the DICOM header endpoint --------------------------------------------------------------------


def post_header(client, patient, data: bytes):
    url = reverse("diagnosis:dicom_header", args=[patient.pk])
    return client.post(url, {"header": upload("chest.dcm", data, "application/dicom")}, **AS_SCRIPT)


def test_dicom_header_endpoint_reads_the_start_of_a_dicom(doctor_client, patient):
    data = chest_dicom(PatientName="Turing^Alan", PatientID=" mrn-0001 ", BodyPartExamined="CHEST")

    response = post_header(doctor_client, patient, data[: len(data) // 2])

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"], "the header names the patient"
    assert response.json() == {
        "patient_name": "Turing, Alan",
        "patient_id": "mrn-0001",
        "study_date": "2024-01-31",
        "view_position": "AP",
        "modality": "CR",
        "body_part": "CHEST",
        "matches_patient": True,
    }


@pytest.mark.parametrize("patient_id", ["MRN-0002", ""])
def test_dicom_header_of_another_or_no_patient_id_does_not_match(doctor_client, patient, patient_id):
    response = post_header(doctor_client, patient, chest_dicom(PatientID=patient_id))

    assert response.status_code == 200
    assert response.json()["patient_id"] == patient_id
    assert response.json()["matches_patient"] is False


def test_dicom_header_without_a_study_date_gives_null(doctor_client, patient):
    response = post_header(doctor_client, patient, dicom_bytes(None))

    assert response.json()["study_date"] is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (xray_png(), "Not a DICOM file"),
        (b"\x00" * 128 + b"DICM" + b"\xff" * 300, "The DICOM header is damaged"),
    ],
)
def test_dicom_header_of_garbage_answers_400_with_a_clear_error(doctor_client, patient, data, message):
    response = post_header(doctor_client, patient, data)

    assert response.status_code == 400
    assert response.json()["error"].startswith(message)


def test_dicom_header_larger_than_1_mib_is_refused(doctor_client, patient):
    data = chest_dicom()

    response = post_header(doctor_client, patient, data + b"\x00" * (1024 * 1024 + 1 - len(data)))

    assert response.status_code == 400
    assert response.json() == {"error": "Send only the start of the file, at most 1.0\xa0MB."}


def test_dicom_header_without_a_file_is_refused(doctor_client, patient):
    response = doctor_client.post(reverse("diagnosis:dicom_header", args=[patient.pk]), **AS_SCRIPT)

    assert response.status_code == 400
    assert "Send the start of a DICOM file" in response.json()["error"]


def test_dicom_header_of_another_doctors_patient_answers_404(client, make_doctor, patient):
    client.force_login(make_doctor(email="other@hospital.example"))

    assert post_header(client, patient, chest_dicom()).status_code == 404


def test_dicom_header_takes_only_post_with_a_csrf_token(doctor, patient):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(doctor)
    url = reverse("diagnosis:dicom_header", args=[patient.pk])

    assert client.get(url).status_code == 405
    assert post_header(client, patient, chest_dicom()).status_code == 403


def test_a_scan_row_that_cannot_be_saved_leaves_no_stored_file(patient, doctor, monkeypatch):
    from pathlib import Path

    from diagnosis.services.scans import scan_create

    root = Path(Scan._meta.get_field("image").storage.location)
    before = {path for path in root.rglob("*") if path.is_file()}

    def fail(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Scan, "save", fail)
    with pytest.raises(RuntimeError):
        scan_create(patient=patient, image=upload("chest.png", xray_png()), uploaded_by=doctor)

    assert {path for path in root.rglob("*") if path.is_file()} == before
