"""The SR and Secondary Capture built for a read scan, and when a send is recorded and queued."""

import io
import subprocess

import highdicom as hd
import numpy as np
import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from highdicom.sr.utils import find_content_items
from PIL import Image
from pydicom.sr.codedict import codes

from diagnosis.models import Patient, Scan
from diagnosis.services.scans import scan_create
from diagnosis.signals import scan_read
from pacs.models import ResultSend
from pacs.services.results import results_build
from tests.conftest import THREE_CLASSES
from tests.diagnosis.conftest import xray_png

pytestmark = pytest.mark.django_db

DESTINATION = {
    "PACS_DESTINATION_HOST": "127.0.0.1",
    "PACS_DESTINATION_PORT": 4242,
    "PACS_DESTINATION_AE_TITLE": "ORTHANC",
}


@pytest.fixture
def destination(settings):
    for name, value in DESTINATION.items():
        setattr(settings, name, value)


def sent_objects(scan):
    scan_read.send(sender=Scan, scan_id=scan.pk)
    send = ResultSend.objects.get(scan=scan)
    return send, results_build(scan=scan, send=send)


def roundtrip(dataset):
    """Write and read back, as the PACS will store and serve it."""
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def source_header(scan):
    with scan.image.open("rb") as handle:
        return pydicom.dcmread(handle, stop_before_pixels=True)


def test_the_sr_carries_the_finding_every_probability_the_threshold_and_the_model_version(
    destination, read_dicom_scan
):
    send, (sr, _) = sent_objects(read_dicom_scan)

    report = hd.sr.ComprehensiveSR.from_dataset(roundtrip(sr))
    source = source_header(read_dicom_scan)
    assert report.StudyInstanceUID == source.StudyInstanceUID == send.study_instance_uid
    assert report.PatientID == "PACS-0100"
    assert report.SOPInstanceUID == send.sr_sop_instance_uid
    assert report.CompletionFlag == "COMPLETE"
    [group] = report.content.get_image_measurement_groups()
    assert group.finding_type.meaning == "Positive"
    assert [(e.name.meaning, e.value.value, e.value.meaning) for e in group.get_qualitative_evaluations()] == [
        ("Predicted class", "COVID", "COVID-19 pneumonia")
    ]
    assert [(m.name.value, m.name.meaning, m.value) for m in group.get_measurements()] == [
        ("p-COVID", "Probability of COVID-19 pneumonia", pytest.approx(0.83)),
        ("p-NORMAL", "Probability of Normal", pytest.approx(0.17)),
        ("threshold", "Decision threshold of the positive class", pytest.approx(0.5)),
    ]
    [algorithm_name] = find_content_items(group[0], name=codes.DCM.AlgorithmName)
    [algorithm_version] = find_content_items(group[0], name=codes.DCM.AlgorithmVersion)
    assert algorithm_name.TextValue == "CovidXray InceptionV3 chest X-ray triage"
    assert algorithm_version.TextValue == "tiny-v1"
    assert group.source_images[0].referenced_sop_instance_uid == source.SOPInstanceUID


def test_a_three_class_reading_carries_every_class_and_the_called_one_in_words(
    destination, read_dicom_scan, make_version
):
    read_dicom_scan.model_version = make_version("tiny-3", activate=False, class_names=THREE_CLASSES)
    read_dicom_scan.result, read_dicom_scan.label = Scan.Result.NEGATIVE, "OTHER_PNEUMONIA"
    read_dicom_scan.probability = 0.3
    read_dicom_scan.probabilities = {"NORMAL": 0.1, "OTHER_PNEUMONIA": 0.6, "COVID": 0.3}
    read_dicom_scan.save()

    _, (sr, _) = sent_objects(read_dicom_scan)

    [group] = hd.sr.ComprehensiveSR.from_dataset(roundtrip(sr)).content.get_image_measurement_groups()
    assert group.finding_type.meaning == "Negative"
    [called] = group.get_qualitative_evaluations()
    assert (called.value.value, called.value.meaning) == ("OTHER_PNEUMONIA", "Other pneumonia (not COVID-19)")
    assert [(m.name.meaning, m.value) for m in group.get_measurements()] == [
        ("Probability of COVID-19 pneumonia", pytest.approx(0.3)),
        ("Probability of Other pneumonia (not COVID-19)", pytest.approx(0.6)),
        ("Probability of Normal", pytest.approx(0.1)),
        ("Decision threshold of the positive class", pytest.approx(0.5)),
    ]


def test_an_indeterminate_reading_names_no_class(destination, read_dicom_scan):
    read_dicom_scan.result, read_dicom_scan.label = Scan.Result.INDETERMINATE, ""
    read_dicom_scan.save()

    _, (sr, _) = sent_objects(read_dicom_scan)

    [group] = hd.sr.ComprehensiveSR.from_dataset(roundtrip(sr)).content.get_image_measurement_groups()
    assert group.finding_type.meaning == "Indeterminate"
    assert group.get_qualitative_evaluations() == []


def test_the_heatmap_is_a_derived_secondary_capture_in_the_same_study_not_for_diagnosis(destination, read_dicom_scan):
    send, (_, capture) = sent_objects(read_dicom_scan)

    capture = roundtrip(capture)
    source = source_header(read_dicom_scan)
    assert capture.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert capture.StudyInstanceUID == source.StudyInstanceUID
    assert capture.SOPInstanceUID == send.sc_sop_instance_uid
    assert list(capture.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert "NOT FOR DIAGNOSIS" in capture.SeriesDescription
    assert "NOT FOR DIAGNOSIS" in capture.ImageComments
    assert capture.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert capture.PhotometricInterpretation == "RGB"
    assert capture.pixel_array.shape == (96, 96, 3)


def test_the_secondary_capture_lays_the_stored_heat_layer_over_the_radiograph(destination, read_dicom_scan):
    _, (_, capture) = sent_objects(read_dicom_scan)

    pixels = roundtrip(capture).pixel_array.astype(int)
    with read_dicom_scan.preview.open("rb") as handle:
        gray = np.asarray(Image.open(handle).convert("L"), dtype=int)
    cold, hot = pixels[:, :40], pixels[:, 56:]
    assert all(np.array_equal(cold[..., channel], gray[:, :40]) for channel in range(3))  # the radiograph as it is
    assert (np.abs(hot[..., 0] - hot[..., 2]) > 40).all()  # coloured where the heat is


def test_a_not_assessable_scan_gets_an_sr_saying_so_and_no_heatmap(destination, read_dicom_scan):
    read_dicom_scan.status = Scan.Status.NOT_ASSESSABLE
    read_dicom_scan.status_message = "This is not a frontal chest radiograph."
    read_dicom_scan.result = ""
    read_dicom_scan.heatmap = ""
    read_dicom_scan.save()

    _, objects = sent_objects(read_dicom_scan)

    [sr] = objects
    [group] = hd.sr.ComprehensiveSR.from_dataset(roundtrip(sr)).content.get_image_measurement_groups()
    assert group.finding_type.meaning == "Unusable - Quality renders image unusable"
    assert group.get_measurements() == []


def test_a_read_dicom_scan_is_queued_once_for_sending(
    destination, read_dicom_scan, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        scan_read.send(sender=Scan, scan_id=read_dicom_scan.pk)
        scan_read.send(sender=Scan, scan_id=read_dicom_scan.pk)

    send = ResultSend.objects.get()
    assert send.state == ResultSend.State.QUEUED
    assert send.destination == "ORTHANC@127.0.0.1:4242"
    assert len(queued) == 1


def test_nothing_is_sent_without_a_destination(read_dicom_scan):
    scan_read.send(sender=Scan, scan_id=read_dicom_scan.pk)

    assert not ResultSend.objects.exists()


def test_a_png_upload_has_no_study_to_go_back_to(destination, doctor):
    patient = Patient.objects.create(mrn="MRN-0001", full_name="Alan Turing", created_by=doctor)
    scan = scan_create(patient=patient, image=SimpleUploadedFile("chest.png", xray_png()), uploaded_by=doctor)
    Scan.objects.filter(pk=scan.pk).update(status=Scan.Status.DONE, result=Scan.Result.NEGATIVE, label="NORMAL")

    scan_read.send(sender=Scan, scan_id=scan.pk)

    assert not ResultSend.objects.exists()


def test_staff_re_send_from_the_admin_queues_the_same_objects_again(
    destination, read_dicom_scan, staff_client, django_capture_on_commit_callbacks
):
    scan_read.send(sender=Scan, scan_id=read_dicom_scan.pk)
    send = ResultSend.objects.get()
    ResultSend.objects.filter(pk=send.pk).update(state=ResultSend.State.FAILED, attempts=6, last_error="refused")
    changelist = reverse("admin:pacs_resultsend_changelist")

    page = staff_client.get(changelist)
    assert "refused" in page.content.decode()
    with django_capture_on_commit_callbacks() as queued:
        staff_client.post(changelist, {"action": "resend", "_selected_action": [send.pk]})

    send.refresh_from_db()
    assert send.state == ResultSend.State.QUEUED
    assert len(queued) == 1


@pytest.mark.parametrize("index", [0, 1], ids=["sr", "secondary-capture"])
def test_dciodvfy_finds_no_error_in_what_is_sent(destination, read_dicom_scan, tmp_path, index):
    _, objects = sent_objects(read_dicom_scan)
    path = tmp_path / "object.dcm"
    objects[index].save_as(path, enforce_file_format=True)

    checked = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)

    report = checked.stdout + checked.stderr
    assert report.strip(), "dciodvfy printed nothing"
    assert not [line for line in report.splitlines() if line.startswith("Error")], report
