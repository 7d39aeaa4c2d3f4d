"""Hostile uploads through the real endpoints: refused with a reason, nothing stored, memory bounded."""

from pathlib import Path

import pytest
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis.models import Scan
from diagnosis.services.inference import scans_diagnose
from diagnosis.services.scans import scan_create
from tests.diagnosis.conftest import xray_png, xray_upload
from tests.memory import MB, peak_memory
from tests.mlcore.bombs import deflated_dicom_bomb, deflated_multiframe_bomb, flat_raster

pytestmark = pytest.mark.django_db

AS_SCRIPT = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest", "HTTP_ACCEPT": "application/json"}


def post_images(client, patient, *files: tuple[str, bytes]):
    uploads = [SimpleUploadedFile(name, data) for name, data in files]
    return client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": uploads}, **AS_SCRIPT)


def stored_files() -> set[Path]:
    return {path for path in Path(storages["scans"].location).rglob("*") if path.is_file()}


def test_the_dicom_header_of_a_deflated_bomb_is_read_within_a_bounded_memory(doctor_client, patient):
    bomb = deflated_dicom_bomb()  # 280 KB that inflate to 288 MB

    with peak_memory() as peak:
        response = doctor_client.post(
            reverse("diagnosis:dicom_header", args=[patient.pk]),
            {"header": SimpleUploadedFile("bomb.dcm", bomb, content_type="application/dicom")},
            **AS_SCRIPT,
        )

    assert response.status_code == 200
    assert response.json()["patient_id"] == "BOMB-001"
    assert peak.resident < 48 * MB, peak  # was 550 MB


@pytest.mark.parametrize(
    ("name", "bomb", "reason"),
    [
        ("deflated.dcm", deflated_dicom_bomb, "12000x12000 pixels, 144,000,000 values: more than the limit"),
        ("frames.dcm", deflated_multiframe_bomb, "2048x2048 pixels x 50 frames, 209,715,200 values"),
    ],
)
def test_a_dicom_bomb_upload_is_refused_with_its_reason_and_nothing_is_stored(
    doctor_client, patient, name, bomb, reason
):
    data, before = bomb(), stored_files()

    with peak_memory() as peak:
        response = post_images(doctor_client, patient, (name, data))

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error.startswith(f"{name}: The DICOM image has {reason}")
    assert not Scan.objects.exists()
    assert stored_files() == before
    assert peak.resident < 48 * MB, peak  # was 550 MB and 1.27 GB


def test_a_png_pixel_bomb_is_validated_in_a_fraction_of_its_decoded_size(doctor_client, patient, queued):
    with peak_memory() as peak:
        response = post_images(doctor_client, patient, ("flat.png", flat_raster(kind="PNG")))

    assert response.status_code == 201
    assert Scan.objects.get().file_type == "PNG"
    assert peak.resident < 48 * MB, peak  # was 148 MB: decoded to float planes only to be checked


def test_a_request_over_its_pixel_budget_is_refused_from_the_headers_and_stores_nothing(doctor_client, patient):
    pictures = [(f"flat-{n}.png", flat_raster(kind="PNG")) for n in range(40)]  # 6 MP each, 240 MP together
    before = stored_files()

    with peak_memory() as peak:
        response = post_images(doctor_client, patient, *pictures)

    assert response.status_code == 400
    assert response.json()["errors"] == [
        "These 40 images hold 240 megapixels together; one upload may hold at most 200 megapixels. "
        "Upload them in smaller groups."
    ]
    assert not Scan.objects.exists()
    assert stored_files() == before
    assert peak.resident < 16 * MB, peak  # nothing was decoded


def test_the_request_budget_counts_every_image_and_follows_its_setting(doctor_client, patient, settings, queued):
    settings.SCAN_MAX_REQUEST_PIXELS = 2 * 96 * 96
    two = [("a.png", xray_png(seed=1)), ("b.png", xray_png(seed=2))]

    assert post_images(doctor_client, patient, *two).status_code == 201
    refused = post_images(doctor_client, patient, *two, ("c.png", xray_png(seed=3)))

    assert refused.status_code == 400
    assert "These 3 images hold" in refused.json()["errors"][0]
    assert Scan.objects.count() == 2


@pytest.fixture
def queued(monkeypatch):
    from diagnosis.services import scans as scan_services

    queued = []
    monkeypatch.setattr(scan_services, "queue_scan", queued.append)
    return queued


@pytest.mark.parametrize("bomb", [deflated_dicom_bomb, deflated_multiframe_bomb], ids=["deflated", "frames"])
def test_a_bomb_already_in_storage_fails_its_scan_with_the_reason_and_the_worker_reads_the_next(
    make_version, patient, doctor, bomb, queued
):
    """Files stored before these limits existed reach the worker: it refuses them from the header too."""
    make_version()
    stored, fine = (scan_create(patient=patient, image=xray_upload(seed=n), uploaded_by=doctor) for n in (1, 2))
    with stored.image.storage.open(stored.image.name, "wb") as handle:
        handle.write(bomb())

    done = scans_diagnose(first_scan_id=stored.pk)

    stored.refresh_from_db()
    assert done == [fine.pk]
    assert stored.status == Scan.Status.FAILED
    assert stored.status_message.startswith("The image cannot be read: The DICOM image has")
    assert "more than the limit" in stored.status_message
