"""The worker's input gate: refused images are not assessable with the reason, and never read."""

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image
from sklearn.datasets import load_sample_image

from diagnosis.models import Scan
from diagnosis.selectors import worklist_counts
from diagnosis.services.inference import scans_diagnose
from diagnosis.services.scans import scan_create
from diagnosis.signals import scan_read
from mlcore.core.gate import IMAGE_CHECK_UNAVAILABLE
from tests.diagnosis.conftest import xray_png, xray_upload
from tests.mlcore.synthetic import lateral_like
from tests.mlcore.test_gate import ct_like, document
from tests.mlcore.test_imaging import dicom_bytes

pytestmark = pytest.mark.django_db


def png_upload(gray: np.ndarray, name="image.png") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.fromarray((np.clip(gray, 0, 1) * 255).astype(np.uint8)).save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


def dicom_upload(**attributes) -> SimpleUploadedFile:
    pixels = (np.asarray(Image.open(io.BytesIO(xray_png(seed=7))), dtype=np.float32) / 255 * 4095).astype(np.uint16)
    return SimpleUploadedFile("image.dcm", dicom_bytes(pixels, **attributes), content_type="application/dicom")


def diagnose(patient, doctor, upload) -> Scan:
    scan = scan_create(patient=patient, image=upload, uploaded_by=doctor)
    scans_diagnose(first_scan_id=scan.pk)
    scan.refresh_from_db()
    return scan


@pytest.mark.parametrize(
    ("attributes", "words"),
    [
        ({"Modality": "CT"}, "modality is CT"),
        ({"Modality": "MR"}, "modality is MR"),
        ({"Modality": "DX", "ViewPosition": "LL"}, "view position is LL"),
        ({"Modality": "CR", "BodyPartExamined": "KNEE"}, "body part examined is KNEE"),
    ],
)
def test_a_dicom_whose_header_rules_it_out_is_not_assessable_and_gets_no_reading(
    make_gated_version, patient, doctor, attributes, words
):
    make_gated_version()
    scan = diagnose(patient, doctor, dicom_upload(**attributes))

    assert scan.status == Scan.Status.NOT_ASSESSABLE
    assert words in scan.status_message
    assert (scan.result, scan.label, scan.probability, scan.probabilities) == ("", "", None, {})
    assert scan.preview  # the image is still shown
    assert not scan.heatmap
    assert scan.claim_token == ""


@pytest.mark.parametrize(
    "make_image",
    [
        lambda: png_upload(ct_like(np.random.default_rng(3))),
        lambda: png_upload(document()),
        lambda: png_upload(np.asarray(Image.fromarray(load_sample_image("china.jpg")).convert("L")) / 255),
    ],
    ids=["ct-slice", "document", "grey-photograph"],
)
def test_an_image_unlike_the_training_images_is_refused_by_the_stored_gate(
    make_gated_version, patient, doctor, make_image
):
    make_gated_version()
    scan = diagnose(patient, doctor, make_image())

    assert scan.status == Scan.Status.NOT_ASSESSABLE
    assert "unlike the frontal chest X-rays this model was trained on" in scan.status_message
    assert scan.gate["score"] > scan.gate["limit"]
    assert scan.probability is None


def test_a_headerless_lateral_view_is_not_assessable_with_the_lateral_reason(make_gated_version, patient, doctor):
    make_gated_version(view_check=True)
    scan = diagnose(patient, doctor, png_upload(lateral_like(np.random.default_rng(11)), name="lateral.png"))

    assert scan.status == Scan.Status.NOT_ASSESSABLE
    assert "looks like a lateral view" in scan.status_message
    assert scan.gate["view_check"]["refused"] is True
    assert scan.probability is None


def test_a_chest_radiograph_passes_the_view_check(make_gated_version, patient, doctor):
    make_gated_version(view_check=True)
    scan = diagnose(patient, doctor, xray_upload(seed=7))

    assert scan.status == Scan.Status.DONE
    assert scan.gate["view_check"]["refused"] is False


def test_a_colour_photograph_is_refused_before_the_network(make_gated_version, patient, doctor):
    make_gated_version()
    buffer = io.BytesIO()
    Image.fromarray(load_sample_image("flower.jpg")).save(buffer, format="JPEG")
    scan = diagnose(patient, doctor, SimpleUploadedFile("flower.jpg", buffer.getvalue(), content_type="image/jpeg"))

    assert scan.status == Scan.Status.NOT_ASSESSABLE
    assert "in colour" in scan.status_message
    assert scan.network_ms is None


def test_a_chest_radiograph_passes_and_gets_a_calibrated_reading_of_every_class(make_gated_version, patient, doctor):
    version = make_gated_version(band=(0.0, 0.0))
    scan = diagnose(patient, doctor, xray_upload(seed=7))

    assert scan.status == Scan.Status.DONE
    assert scan.gate["image_check"] == "run"
    assert scan.gate["score"] <= scan.gate["limit"]
    assert set(scan.probabilities) == {"COVID", "NORMAL"}
    assert scan.probabilities["COVID"] == pytest.approx(scan.probability)
    raw = np.array([scan.raw_probability, 1 - scan.raw_probability])
    calibrated = np.exp(np.log(raw) / version.temperature)
    assert scan.probability == pytest.approx(calibrated[0] / calibrated.sum(), rel=1e-4)
    expected = Scan.Result.POSITIVE if scan.probability >= version.threshold else Scan.Result.NEGATIVE
    assert scan.result == expected
    assert scan.heatmap


def test_a_reading_inside_the_band_is_indeterminate_not_a_call(make_gated_version, patient, doctor):
    make_gated_version(band=(0.0, 1.0))
    scan = diagnose(patient, doctor, xray_upload(seed=2))

    assert scan.status == Scan.Status.DONE
    assert scan.result == Scan.Result.INDETERMINATE
    assert scan.label == ""
    assert scan.probability is not None


def test_an_old_version_without_a_gate_says_so_and_still_refuses_by_header(make_version, patient, doctor):
    make_version()
    read = diagnose(patient, doctor, xray_upload(seed=1))
    refused = diagnose(patient, doctor, dicom_upload(Modality="CT"))

    assert read.status == Scan.Status.DONE
    assert read.gate["image_check"] == "unavailable"
    assert read.gate["warning"] == IMAGE_CHECK_UNAVAILABLE
    assert refused.status == Scan.Status.NOT_ASSESSABLE


def test_refused_and_indeterminate_scans_are_counted_apart_from_positive_and_negative(
    make_gated_version, patient, doctor
):
    make_gated_version(band=(0.0, 1.0))
    diagnose(patient, doctor, dicom_upload(Modality="CT"))
    diagnose(patient, doctor, xray_upload(seed=3))
    import datetime

    counts = worklist_counts(user=doctor, since=datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))

    assert (counts["positive"], counts["indeterminate"], counts["not_assessable"]) == (0, 1, 1)


def test_every_final_reading_is_announced_once_for_other_apps(
    make_gated_version, patient, doctor, django_capture_on_commit_callbacks
):
    make_gated_version()
    announced = []

    def receiver(sender, scan_id, **kwargs):
        announced.append(scan_id)

    scan_read.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            refused = diagnose(patient, doctor, dicom_upload(Modality="CT"))
            read = diagnose(patient, doctor, xray_upload(seed=4))
    finally:
        scan_read.disconnect(receiver)

    assert sorted(announced) == sorted([refused.pk, read.pk])


def test_the_scan_page_and_report_show_the_reason_and_no_reading(make_gated_version, patient, doctor, client):
    make_gated_version()
    scan = diagnose(patient, doctor, dicom_upload(Modality="CT"))
    client.force_login(doctor)

    page = client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    status = client.get(reverse("diagnosis:scan_status", args=[scan.pk])).json()
    report = client.get(reverse("diagnosis:scan_report", args=[scan.pk]))

    assert "Not assessable: the model gives no reading for this image." in page
    assert "modality is CT" in page
    assert status["not_assessable"] is True
    assert status["result"] is None
    assert status["positive"] is None
    assert status["finished"] is True
    assert status["reading"]["available"] is False
    assert report.status_code == 200
    assert "modality is CT" in report.content.decode()
    assert "PPV" not in report.content.decode()
