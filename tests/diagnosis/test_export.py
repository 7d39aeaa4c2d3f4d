"""Reviewed scans exported as a dataset folder: what goes in, what stays out, and that train_model learns from it."""

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from auditlog.models import LogEntry
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from PIL import Image

from diagnosis.models import Patient, Review, Scan
from diagnosis.services.export import (
    ExportError,
    pseudonymous_patient_id,
    reviewed_scans_export,
)
from diagnosis.services.scans import scan_review
from mlcore.core.dataset import discover_dataset
from mlcore.core.imaging import decode_image
from mlcore.models import ModelVersion
from tests.diagnosis.conftest import xray_png
from tests.mlcore.identifying import IDENTIFIERS, STUDY_UID, identifying_dicom, jpeg_with_exif, png_with_text_chunks
from tests.mlcore.test_imaging import dicom_bytes

pytestmark = pytest.mark.django_db

PEOPLE = ("MRN-0001", "Alan Turing", "MRN-0002", "Grace Hopper-Murray")


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(xray_png(seed=seed))).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def dicom(seed: int = 6) -> bytes:
    """A DICOM whose header names the patient, the hospital and the visit, as real ones do."""
    pixels = np.random.default_rng(seed).integers(0, 4095, (64, 64))
    return dicom_bytes(
        pixels,
        PatientName="Hopper-Murray^Grace",
        PatientID=PEOPLE[2],
        PatientBirthDate="19061209",
        InstitutionName="St Mary's Hospital",
        ReferringPhysicianName="Lovelace^Ada",
        AccessionNumber="ACC-77",
        StudyDate="20260102",
        StudyInstanceUID="1.2.826.0.1.3680043.8.498.1",
    )


def make_scan(patient, *, label="COVID", finding=None, file_type="PNG", content=None, status=Scan.Status.DONE):
    """A scan with a real stored original; reviewed through the service when a finding is given."""
    scan = Scan(
        patient=patient,
        original_filename=f"{patient.full_name} chest.png",
        file_type=file_type,
        uploaded_by=patient.created_by,
        status=status,
        label=label if status == Scan.Status.DONE else "",
        result=(Scan.Result.POSITIVE if label == "COVID" else Scan.Result.NEGATIVE)
        if status == Scan.Status.DONE
        else "",
        probability=0.8 if status == Scan.Status.DONE else None,
    )
    scan.image.save("upload", ContentFile(content or xray_png(seed=patient.pk, label=label)), save=False)
    scan.save()
    if finding:
        scan_review(scan=scan, reviewer=patient.created_by, agrees_with_model=finding == label, final_finding=finding)
    return scan


@pytest.fixture
def exporter(make_staff):
    """Staff with the export's own permission and no other."""
    return make_staff("diagnosis.export_dataset", email="exporter@hospital.example")


@pytest.fixture
def other_patient(doctor):
    return Patient.objects.create(mrn=PEOPLE[2], full_name=PEOPLE[3], created_by=doctor)


@pytest.fixture
def mix(patient, other_patient):
    """Three scans that belong in a dataset (PNG, JPEG, DICOM) and four that do not."""
    return {
        "covid": make_scan(patient, label="COVID", finding="COVID"),
        "normal_jpeg": make_scan(patient, label="COVID", finding="NORMAL", file_type="JPEG", content=jpeg(5)),
        "normal_dicom": make_scan(other_patient, label="NORMAL", finding="NORMAL", file_type="DICOM", content=dicom()),
        "other": make_scan(other_patient, label="COVID", finding="OTHER"),
        "indeterminate": make_scan(patient, label="NORMAL", finding="INDETERMINATE"),
        "unreviewed": make_scan(other_patient, label="COVID"),
        "failed": make_scan(patient, status=Scan.Status.FAILED),
    }


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def manifest(root: Path) -> list[dict]:
    with (root / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def original(scan: Scan) -> bytes:
    with scan.image.open("rb") as handle:
        return handle.read()


def same_pixels(exported: bytes, uploaded: bytes, *, tolerance: float = 0.0) -> bool:
    return float(np.abs(decode_image(exported) - decode_image(uploaded)).max()) <= tolerance


def test_only_reviewed_covid_and_normal_scans_are_exported_with_their_pixels_dicom_de_identified(
    mix, exporter, tmp_path
):
    dest = tmp_path / "export"

    summary = reviewed_scans_export(destination=dest, exported_by=exporter)

    covid, jpeg_scan, dicom_scan = mix["covid"], mix["normal_jpeg"], mix["normal_dicom"]
    images = {name: data for name, data in files_under(dest).items() if "/" in name}
    assert set(images) == {
        f"COVID/scan-{covid.pk}.png",
        f"NORMAL/scan-{jpeg_scan.pk}.jpg",
        f"NORMAL/scan-{dicom_scan.pk}.dcm",
    }
    assert same_pixels(images[f"COVID/scan-{covid.pk}.png"], original(covid))
    assert same_pixels(images[f"NORMAL/scan-{jpeg_scan.pk}.jpg"], original(jpeg_scan), tolerance=0.03)
    exported_dicom = pydicom.dcmread(io.BytesIO(images[f"NORMAL/scan-{dicom_scan.pk}.dcm"]))
    uploaded_dicom = pydicom.dcmread(io.BytesIO(original(dicom_scan)))
    assert exported_dicom.PixelData == uploaded_dicom.PixelData
    assert np.array_equal(decode_image(images[f"NORMAL/scan-{dicom_scan.pk}.dcm"]), decode_image(original(dicom_scan)))
    assert (
        exported_dicom.PatientID == str(exported_dicom.PatientName) == pseudonymous_patient_id(dicom_scan.patient_id)
    )
    assert exported_dicom.PatientIdentityRemoved == "YES"
    for keyword in ("PatientBirthDate", "InstitutionName", "ReferringPhysicianName", "AccessionNumber", "StudyDate"):
        assert str(exported_dicom.get(keyword, "")) != str(uploaded_dicom[keyword].value), keyword
    assert exported_dicom.StudyInstanceUID != uploaded_dicom.StudyInstanceUID
    assert set(files_under(dest)) - set(images) == {"manifest.csv", "README.txt"}
    assert summary.counts == {"COVID": 1, "OTHER_PNEUMONIA": 0, "NORMAL": 2}
    assert not (dest / "OTHER_PNEUMONIA").exists()  # no empty class folder: train_model would refuse it
    assert sorted(summary.skipped) == [
        (mix["other"].pk, "final finding Other finding is not a training class"),
        (mix["indeterminate"].pk, "final finding Indeterminate is not a training class"),
    ]
    assert "Exported 3 reviewed scan(s)" in summary.as_text()
    assert "Skipped 1: final finding Indeterminate is not a training class." in summary.as_text()


def test_the_manifest_names_patients_only_by_a_keyed_hash(mix, exporter, patient, other_patient, tmp_path):
    dest = tmp_path / "export"
    reviewed_scans_export(destination=dest, exported_by=exporter)

    rows = manifest(dest)
    covid, jpeg_scan, dicom_scan = mix["covid"], mix["normal_jpeg"], mix["normal_dicom"]
    assert [row["scan_id"] for row in rows] == [str(covid.pk), str(jpeg_scan.pk), str(dicom_scan.pk)]
    first = rows[0]
    assert first == {
        "path": f"COVID/scan-{covid.pk}.png",
        "label": "COVID",
        "patient_id": pseudonymous_patient_id(patient.pk),
        "source": "covidxray-review:st-marys-hospital",
        "scan_id": str(covid.pk),
        "reviewed_at": Review.objects.get(scan=covid).reviewed_at.isoformat(),
        "model_label": "COVID",
        "agrees_with_model": "yes",
    }
    assert (rows[1]["label"], rows[1]["model_label"], rows[1]["agrees_with_model"]) == ("NORMAL", "COVID", "no")
    assert rows[0]["patient_id"] == rows[1]["patient_id"] != rows[2]["patient_id"]
    assert rows[2]["patient_id"] == pseudonymous_patient_id(other_patient.pk)
    assert all(len(row["patient_id"]) == 20 and row["patient_id"] not in {"1", "2"} for row in rows)

    everything = b"".join(files_under(dest).values()).lower()
    for identifier in (*PEOPLE, "Hopper-Murray^Grace", "St Mary's", "Lovelace", "ACC-77", "19061209"):
        assert identifier.lower().encode() not in everything
    assert b"chest.png" not in everything
    assert "CONTAINS PATIENT IMAGES" in (dest / "README.txt").read_text()


def test_nothing_identifying_leaves_in_any_file_and_a_studys_uids_stay_consistent(patient, exporter, tmp_path):
    """DICOM text in every place the Basic Profile names and in nested sequences, PNG text chunks, JPEG EXIF."""
    gray = (np.random.default_rng(3).integers(0, 4096, (48, 64)) // 16).astype(np.uint8)
    first_dicom = identifying_dicom(gray.astype(np.uint16), sop_instance_uid="1.2.826.0.1.3680043.8.498.30001")
    second_dicom = identifying_dicom(gray.astype(np.uint16), sop_instance_uid="1.2.826.0.1.3680043.8.498.30002")
    scans = [
        make_scan(patient, finding="COVID", file_type="DICOM", content=first_dicom),
        make_scan(patient, finding="COVID", file_type="DICOM", content=second_dicom),
        make_scan(patient, finding="COVID", content=png_with_text_chunks(gray)),
        make_scan(patient, finding="COVID", file_type="JPEG", content=jpeg_with_exif(gray)),
    ]
    dest = tmp_path / "export"

    summary = reviewed_scans_export(destination=dest, exported_by=exporter)

    assert summary.written == 4
    exported = files_under(dest)
    everything = b"".join(exported.values()).lower()
    assert [text for text in IDENTIFIERS if text.lower().encode() in everything] == []
    images = b"".join(data for name, data in exported.items() if "/" in name)
    for metadata in (b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"Exif\x00\x00", b"http://ns.adobe.com/xap/1.0/"):
        assert metadata not in images
    first, second = (pydicom.dcmread(io.BytesIO(exported[f"COVID/scan-{scan.pk}.dcm"])) for scan in scans[:2])
    assert first.StudyInstanceUID == second.StudyInstanceUID != STUDY_UID
    assert first.SOPInstanceUID != second.SOPInstanceUID
    assert first.PatientID == second.PatientID == pseudonymous_patient_id(patient.pk)
    assert same_pixels(exported[f"COVID/scan-{scans[0].pk}.dcm"], first_dicom)
    assert same_pixels(exported[f"COVID/scan-{scans[2].pk}.png"], png_with_text_chunks(gray))


def test_a_file_that_cannot_be_de_identified_is_skipped_with_its_reason(patient, exporter, tmp_path):
    damaged = make_scan(patient, finding="COVID", file_type="DICOM", content=b"\x00" * 128 + b"DICM" + b"\xff" * 40)

    summary = reviewed_scans_export(destination=tmp_path / "export", exported_by=exporter)

    [(scan_id, reason)] = summary.skipped
    assert scan_id == damaged.pk
    assert reason.startswith("the image could not be de-identified: The DICOM file is damaged")
    assert files_under(tmp_path / "export" / "COVID") == {}


def test_scans_reviewed_as_other_pneumonia_get_their_own_class_folder(mix, exporter, patient, tmp_path):
    pneumonia = make_scan(patient, label="COVID", finding="OTHER_PNEUMONIA")
    dest = tmp_path / "export"

    summary = reviewed_scans_export(destination=dest, exported_by=exporter)

    assert summary.counts == {"COVID": 1, "OTHER_PNEUMONIA": 1, "NORMAL": 2}
    assert set(files_under(dest / "OTHER_PNEUMONIA")) == {f"scan-{pneumonia.pk}.png"}
    assert (dest / "OTHER_PNEUMONIA").stat().st_mode & 0o077 == 0
    [row] = [row for row in manifest(dest) if row["scan_id"] == str(pneumonia.pk)]
    assert (row["label"], row["model_label"], row["agrees_with_model"]) == ("OTHER_PNEUMONIA", "COVID", "no")
    assert "1 in OTHER_PNEUMONIA/" in (dest / "README.txt").read_text()


def test_the_pseudonymous_id_depends_on_the_secret_key(patient, settings):
    before = pseudonymous_patient_id(patient.pk)
    settings.SECRET_KEY = "another-installation"
    assert pseudonymous_patient_id(patient.pk) != before


def test_the_export_is_a_dataset_train_model_reads_with_patient_groups(
    mix, exporter, patient, other_patient, tmp_path
):
    dest = tmp_path / "export"
    reviewed_scans_export(destination=dest, exported_by=exporter)

    dataset = discover_dataset(dest)

    by_name = {item.path.name: item for item in dataset.items}
    assert dataset.class_names == ["COVID", "NORMAL"]
    assert dataset.skipped == []
    assert {name: item.label for name, item in by_name.items()} == {
        f"scan-{mix['covid'].pk}.png": "COVID",
        f"scan-{mix['normal_jpeg'].pk}.jpg": "NORMAL",
        f"scan-{mix['normal_dicom'].pk}.dcm": "NORMAL",
    }
    assert by_name[f"scan-{mix['covid'].pk}.png"].patient_id == pseudonymous_patient_id(patient.pk)
    assert by_name[f"scan-{mix['normal_jpeg'].pk}.jpg"].patient_id == pseudonymous_patient_id(patient.pk)
    assert by_name[f"scan-{mix['normal_dicom'].pk}.dcm"].patient_id == pseudonymous_patient_id(other_patient.pk)
    assert {item.source for item in dataset.items} == {"covidxray-review:st-marys-hospital"}


def test_the_folder_is_readable_by_its_owner_only(mix, exporter, tmp_path):
    dest = tmp_path / "export"
    reviewed_scans_export(destination=dest, exported_by=exporter)

    for folder in (dest, dest / "COVID", dest / "NORMAL"):
        assert folder.stat().st_mode & 0o077 == 0


@pytest.mark.training
@pytest.mark.django_db(transaction=True)
def test_train_model_trains_on_an_export_of_reviewed_scans(make_doctor, exporter, tmp_path):
    doctor = make_doctor()
    for n in range(12):
        label = "COVID" if n % 2 else "NORMAL"
        person = Patient.objects.create(mrn=f"MRN-T{n:02d}", full_name=f"Patient {n}", created_by=doctor)
        make_scan(person, label=label, finding=label, content=xray_png(seed=n, label=label))
    dest = tmp_path / "export"
    call_command("export_reviewed_scans", str(dest), "--by", exporter.email, stdout=io.StringIO())
    out = io.StringIO()

    call_command(
        "train_model",
        data=str(dest),
        image_size=75,
        epochs=1,
        batch_size=16,
        members=1,
        name="from-reviews",
        stdout=out,
    )

    version = ModelVersion.objects.get(name="from-reviews")
    assert version.status == ModelVersion.Status.SUCCEEDED, out.getvalue()
    assert sum(version.dataset_summary["counts"].values()) == 12
    assert version.dataset_summary["skipped"] == []


def test_the_command_logs_every_image_read_as_the_named_user(mix, exporter, tmp_path):
    out = io.StringIO()

    call_command("export_reviewed_scans", str(tmp_path / "export"), "--by", exporter.email.upper(), stdout=out)

    reads = LogEntry.objects.filter(action=LogEntry.Action.ACCESS, additional_data={"read": "dataset export"})
    exported = {mix["covid"].pk, mix["normal_jpeg"].pk, mix["normal_dicom"].pk}
    assert {int(entry.object_pk) for entry in reads} == exported
    assert {entry.actor for entry in reads} == {exporter}
    assert "Exported 3 reviewed scan(s)" in out.getvalue()
    assert "patient images" in out.getvalue()


def test_the_command_refuses_an_unknown_user_and_a_bad_date(mix, exporter, tmp_path):
    with pytest.raises(CommandError, match="No account"):
        call_command("export_reviewed_scans", str(tmp_path / "a"), "--by", "nobody@hospital.example")
    with pytest.raises(CommandError, match="not a date"):
        call_command("export_reviewed_scans", str(tmp_path / "b"), "--by", exporter.email, "--since", "yesterday")
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "b").exists()


def test_since_leaves_out_scans_reviewed_before_that_day(mix, exporter, tmp_path):
    Review.objects.filter(scan=mix["covid"]).update(reviewed_at="2020-01-01T12:00:00Z")

    call_command(
        "export_reviewed_scans",
        str(tmp_path / "export"),
        "--by",
        exporter.email,
        "--since",
        "2021-01-01",
        stdout=io.StringIO(),
    )

    assert [row["scan_id"] for row in manifest(tmp_path / "export")] == [
        str(mix["normal_jpeg"].pk),
        str(mix["normal_dicom"].pk),
    ]


def test_a_non_empty_destination_is_refused_and_nothing_is_written(mix, exporter, tmp_path):
    dest = tmp_path / "export"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")

    with pytest.raises(CommandError, match="not empty"):
        call_command("export_reviewed_scans", str(dest), "--by", exporter.email)

    assert files_under(dest) == {"notes.txt": b"mine"}
    assert not LogEntry.objects.filter(action=LogEntry.Action.ACCESS).exists()


def test_overwrite_replaces_an_earlier_export_but_never_other_files(mix, exporter, tmp_path):
    dest = tmp_path / "export"
    reviewed_scans_export(destination=dest, exported_by=exporter)
    Review.objects.filter(scan=mix["covid"]).update(final_finding="OTHER", agrees_with_model=False)

    summary = reviewed_scans_export(destination=dest, exported_by=exporter, overwrite=True)

    assert summary.counts == {"COVID": 0, "OTHER_PNEUMONIA": 0, "NORMAL": 2}
    assert not dest.joinpath("COVID").exists()
    assert len(manifest(dest)) == 2

    (dest / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not from an export"):
        reviewed_scans_export(destination=dest, exported_by=exporter, overwrite=True)
    assert (dest / "NORMAL").is_dir()
    assert (dest / "notes.txt").read_text() == "mine"


def test_a_missing_original_is_skipped_with_its_reason(mix, exporter, tmp_path):
    mix["covid"].image.storage.delete(mix["covid"].image.name)

    summary = reviewed_scans_export(destination=tmp_path / "export", exported_by=exporter)

    assert (mix["covid"].pk, "the original image is missing from storage") in summary.skipped
    assert summary.counts == {"COVID": 0, "OTHER_PNEUMONIA": 0, "NORMAL": 2}


def changelist_action(client, scans):
    return client.post(
        reverse("admin:diagnosis_scan_changelist"),
        {"action": "export_training_dataset", "_selected_action": [scan.pk for scan in scans]},
    )


def test_staff_download_the_selected_scans_as_a_zip_of_the_same_layout(staff_client, staff_user, mix):
    chosen = [mix["covid"], mix["normal_jpeg"], mix["other"], mix["unreviewed"], mix["failed"]]

    response = changelist_action(staff_client, chosen)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="reviewed-scans-')
    assert "no-store" in response["Cache-Control"]
    bundle = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(bundle.namelist()) == [
        f"COVID/scan-{mix['covid'].pk}.png",
        f"NORMAL/scan-{mix['normal_jpeg'].pk}.jpg",
        "README.txt",
        "manifest.csv",
    ]
    assert same_pixels(bundle.read(f"COVID/scan-{mix['covid'].pk}.png"), original(mix["covid"]))
    reads = LogEntry.objects.filter(action=LogEntry.Action.ACCESS, additional_data={"read": "dataset export"})
    assert {(int(entry.object_pk), entry.actor) for entry in reads} == {
        (mix["covid"].pk, staff_user),
        (mix["normal_jpeg"].pk, staff_user),
    }


def test_a_selection_with_nothing_to_export_gives_a_message_instead_of_a_file(staff_client, mix):
    response = changelist_action(staff_client, [mix["other"], mix["unreviewed"], mix["failed"]])

    assert response.status_code == 302
    page = staff_client.get(response["Location"]).content.decode()
    assert "Nothing to export" in page
    assert "Skipped 1: not reviewed." in page
    assert "Skipped 1: not diagnosed (failed)." in page


def test_doctors_cannot_use_the_admin_export(doctor_client, mix):
    response = changelist_action(doctor_client, [mix["covid"]])

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert not LogEntry.objects.filter(action=LogEntry.Action.ACCESS).exists()


def export_reads():
    return LogEntry.objects.filter(action=LogEntry.Action.ACCESS, additional_data={"read": "dataset export"})


def test_the_export_needs_its_own_permission_and_writes_nothing_without_it(mix, make_staff, tmp_path):
    reader = make_staff("diagnosis.view_patient", "diagnosis.view_scan", "diagnosis.view_review")
    dest = tmp_path / "export"

    with pytest.raises(PermissionDenied, match=r"diagnosis\.export_dataset"):
        reviewed_scans_export(destination=dest, exported_by=reader)
    with pytest.raises(CommandError, match=r"diagnosis\.export_dataset"):
        call_command("export_reviewed_scans", str(dest), "--by", reader.email)

    assert not dest.exists()
    assert not export_reads().exists()


def test_the_command_needs_to_know_who_exports(mix, tmp_path):
    with pytest.raises(CommandError, match="--by"):
        call_command("export_reviewed_scans", str(tmp_path / "export"))

    assert not (tmp_path / "export").exists()


def test_staff_who_may_view_scans_are_neither_offered_nor_given_the_admin_export(make_staff, mix):
    client = Client()
    client.force_login(make_staff("diagnosis.view_scan"))

    page = client.get(reverse("admin:diagnosis_scan_changelist"))
    response = changelist_action(client, [mix["covid"], mix["normal_jpeg"]])

    assert page.status_code == 200
    assert "export_training_dataset" not in page.content.decode()
    assert response.get("Content-Type") != "application/zip"
    assert not export_reads().exists()


def test_staff_with_the_export_permission_download_the_zip(make_staff, mix):
    exporter = make_staff("diagnosis.view_scan", "diagnosis.export_dataset")
    client = Client()
    client.force_login(exporter)

    page = client.get(reverse("admin:diagnosis_scan_changelist"))
    response = changelist_action(client, [mix["covid"]])

    assert "export_training_dataset" in page.content.decode()
    assert response["Content-Type"] == "application/zip"
    assert {entry.actor for entry in export_reads()} == {exporter}
