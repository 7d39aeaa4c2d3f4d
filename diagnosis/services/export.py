"""Reviewed scans as a dataset folder ``train_model`` reads, so doctors' findings train the next model.

The layout is the one :func:`mlcore.core.dataset.discover_dataset` expects: one folder per class a
doctor found (``COVID/``, ``OTHER_PNEUMONIA/``, ``NORMAL/``, by mlcore.core.classes.finding_training_class;
a class nobody was found to have gets no empty folder) with the uploads de-identified, and a
``manifest.csv`` whose patient ids keep a patient's scans in one split. Patients appear only as keyed
hashes; file names are scan ids.
"""

from __future__ import annotations

import csv
import datetime
import shutil
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from auditlog.context import set_actor
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.text import slugify

from covidxray.audit import record_access
from diagnosis.models import Scan
from mlcore.core.classes import DEFAULT_CLASSES, finding_training_class
from mlcore.core.dataset import MANIFEST_NAME
from mlcore.core.deidentification import deidentify_dicom, raster_without_metadata
from mlcore.core.imaging import ImageDecodeError

CLASS_FOLDERS = DEFAULT_CLASSES
EXTENSIONS = {Scan.FileType.PNG: ".png", Scan.FileType.JPEG: ".jpg", Scan.FileType.DICOM: ".dcm"}
README_NAME = "README.txt"
SOURCE = "covidxray-review"
MANIFEST_COLUMNS = (
    "path",
    "label",
    "patient_id",
    "source",
    "scan_id",
    "reviewed_at",
    "model_label",
    "agrees_with_model",
)
# What an export writes: only these may be replaced by an overwrite, so a wrong folder is never emptied.
EXPORT_ENTRIES = {*CLASS_FOLDERS, MANIFEST_NAME, README_NAME}
# Its own right (Scan.Meta.permissions): reading scans does not let anyone take them out.
EXPORT_PERMISSION = "diagnosis.export_dataset"
EXPORT_REFUSED = (
    "Exporting reviewed scans needs the permission 'Can export reviewed scans as a training dataset' "
    f"({EXPORT_PERMISSION}), which {{user}} does not have."
)


class ExportError(Exception):
    """The export cannot start; the message says why, and nothing was written."""


@dataclass
class ExportSummary:
    destination: Path
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASS_FOLDERS, 0))
    skipped: list[tuple[int, str]] = field(default_factory=list)

    @property
    def written(self) -> int:
        return sum(self.counts.values())

    def skipped_text(self) -> str:
        reasons = Counter(reason for _, reason in self.skipped)
        return " ".join(f"Skipped {count}: {reason}." for reason, count in sorted(reasons.items()))

    def as_text(self) -> str:
        per_class = ", ".join(f"{count} {name}" for name, count in self.counts.items())
        return f"Exported {self.written} reviewed scan(s) to {self.destination}: {per_class}. {self.skipped_text()}"


def pseudonymous_patient_id(patient_id: int) -> str:
    """Stable across exports with the same SECRET_KEY, and reveals neither the MRN nor the name."""
    return salted_hmac("covidxray.dataset-export.patient", str(patient_id)).hexdigest()[:20]


def export_uid_key() -> bytes:
    """The key of the keyed hash that replaces DICOM UIDs: like the patient ids, stable with the same SECRET_KEY."""
    return salted_hmac("covidxray.dataset-export.uid", "uid-key").digest()


def reviewed_scans(*, since: datetime.date | None = None) -> QuerySet[Scan]:
    """Diagnosed scans a doctor has reviewed, optionally only those reviewed on or after `since`."""
    scans = Scan.objects.filter(status=Scan.Status.DONE, review__isnull=False)
    return scans.filter(review__reviewed_at__date__gte=since) if since else scans


def _require_exporter(user) -> None:
    if not user.has_perm(EXPORT_PERMISSION):
        raise PermissionDenied(EXPORT_REFUSED.format(user=user.email))


def reviewed_scans_export(
    *,
    destination: Path,
    exported_by,
    scans: QuerySet[Scan] | None = None,
    overwrite: bool = False,
) -> ExportSummary:
    """Write scans reviewed as one of the classes, de-identified, a manifest and a README into `destination`.

    For use outside a request (the management command): the audit log names `exported_by` as the reader.
    """
    _require_exporter(exported_by)
    with set_actor(exported_by):
        return _export(destination=destination, scans=scans, overwrite=overwrite)


def reviewed_scans_export_zip(*, exported_by, scans: QuerySet[Scan] | None = None) -> tuple[IO[bytes], ExportSummary]:
    """The same export as a zip in an anonymous temporary file (gone once closed), for a download.

    Within a request, whose audit middleware names the reader and their address.
    """
    _require_exporter(exported_by)
    archive = tempfile.TemporaryFile(suffix=".zip")  # noqa: SIM115 (the caller, a download, closes it)
    try:
        with tempfile.TemporaryDirectory(prefix="covidxray-export-") as work:
            folder = Path(work) / "dataset"
            summary = _export(destination=folder, scans=scans, overwrite=False)
            with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
                for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                    bundle.write(path, path.relative_to(folder).as_posix())
    except BaseException:
        archive.close()
        raise
    archive.seek(0)
    return archive, summary


def _export(*, destination: Path, scans: QuerySet[Scan] | None, overwrite: bool) -> ExportSummary:
    destination = Path(destination).expanduser()
    _prepare(destination, overwrite=overwrite)
    scans = reviewed_scans() if scans is None else scans
    scans = scans.select_related("review", "uploaded_by").order_by("pk")
    summary = ExportSummary(destination=destination)
    rows = _write_images(scans, destination, summary)
    _write_manifest(destination / MANIFEST_NAME, rows)
    _write_readme(destination / README_NAME, summary)
    return summary


def _prepare(destination: Path, *, overwrite: bool) -> None:
    if destination.exists() and not destination.is_dir():
        raise ExportError(f"{destination} is a file; give a folder to export into.")
    present = sorted(p.name for p in destination.iterdir()) if destination.is_dir() else []
    if present and not overwrite:
        raise ExportError(f"{destination} is not empty; choose an empty folder or overwrite an earlier export.")
    foreign = [name for name in present if name not in EXPORT_ENTRIES]
    if foreign:
        raise ExportError(
            f"{destination} holds files that are not from an export ({', '.join(foreign[:5])}); "
            "overwrite only replaces an earlier export. Choose an empty folder."
        )
    for name in present:
        path = destination / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    # Patient images: readable by the exporting account only.
    destination.mkdir(mode=0o700, parents=True, exist_ok=True)


def _write_images(scans, destination: Path, summary: ExportSummary) -> list[dict]:
    rows = []
    uid_key = export_uid_key()
    for scan in scans:
        reason = _skip_reason(scan)
        if reason:
            summary.skipped.append((scan.pk, reason))
            continue
        review = scan.review
        folder = finding_training_class(review.final_finding)
        relative = f"{folder}/scan-{scan.pk}{EXTENSIONS[scan.file_type]}"
        try:
            with scan.image.open("rb") as handle:
                data = handle.read()
        except OSError:
            summary.skipped.append((scan.pk, "the original image is missing from storage"))
            continue
        record_access(scan, what="dataset export")
        patient_id = pseudonymous_patient_id(scan.patient_id)
        try:
            data = _deidentified(scan, data, patient_id=patient_id, uid_key=uid_key)
        except ImageDecodeError as error:
            summary.skipped.append((scan.pk, f"the image could not be de-identified: {error}"))
            continue
        (destination / folder).mkdir(mode=0o700, exist_ok=True)
        (destination / relative).write_bytes(data)
        summary.counts[folder] += 1
        rows.append(
            {
                "path": relative,
                "label": folder,
                "patient_id": patient_id,
                "source": _source(scan),
                "scan_id": scan.pk,
                "reviewed_at": review.reviewed_at.isoformat(),
                "model_label": scan.label,
                "agrees_with_model": "yes" if review.agrees_with_model else "no",
            }
        )
    return rows


def _deidentified(scan: Scan, data: bytes, *, patient_id: str, uid_key: bytes) -> bytes:
    if scan.file_type == Scan.FileType.DICOM:
        return deidentify_dicom(data, pseudonym=patient_id, uid_key=uid_key, max_pixels=settings.SCAN_MAX_PIXELS)
    return raster_without_metadata(data, max_pixels=settings.SCAN_MAX_PIXELS)


def _skip_reason(scan: Scan) -> str:
    if scan.status != Scan.Status.DONE:
        return f"not diagnosed ({scan.get_status_display().lower()})"
    review = getattr(scan, "review", None)
    if review is None:
        return "not reviewed"
    if finding_training_class(review.final_finding) is None:
        return f"final finding {review.get_final_finding_display()} is not a training class"
    return ""


def _source(scan: Scan) -> str:
    """Per-source metrics then tell hospitals apart; the hospital is the uploading doctor's."""
    hospital = slugify(scan.uploaded_by.hospital)
    return f"{SOURCE}:{hospital}" if hospital else SOURCE


def _write_manifest(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _write_readme(path: Path, summary: ExportSummary) -> None:
    per_class = ", ".join(f"{count} in {name}/" for name, count in summary.counts.items() if count)
    path.write_text(
        f"""CovidXray: reviewed scans as a training dataset
Exported {timezone.now():%Y-%m-%d %H:%M %Z}: {summary.written} images ({per_class}).

CONTAINS PATIENT IMAGES. Keep this folder on protected storage, share it with nobody outside
the care and model team, and delete it once the model is trained. Every image read for this
export is recorded in the audit log.

Each image is a diagnosed scan, filed under the final finding of the doctor who reviewed it
(scans reviewed as other findings or indeterminate are left out). DICOM headers are
de-identified with the DICOM PS3.15 Basic Application Level Confidentiality Profile, nested
sequences included (names, record numbers, dates, places, descriptions, comments and private
tags removed; UIDs replaced by a keyed hash, consistent within the export; the patient named
by the pseudonymous id below). PNG and JPEG images are written again from their pixels, so
no EXIF, XMP or text metadata is left (JPEG at quality 95).
File names are scan ids. In manifest.csv, patient_id is a keyed hash of the patient record
(the same patient gets the same id in every export made with this installation's secret key),
never the record number or name. Pixels are those uploaded (a JPEG's within re-encoding):
any image may show burned-in text, which needs a person's check before the folder leaves
the hospital.

Train a new model version on it:
    manage.py train_model --data <this folder>
""",
        encoding="utf-8",
    )
