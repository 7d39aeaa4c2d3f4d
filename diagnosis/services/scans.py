"""Writes for scans: uploads, queueing for the workers, and doctors' reviews (patients: services/patients.py)."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from diagnosis.models import Patient, Review, Scan
from diagnosis.selectors import patient_can_upload, scan_can_review
from diagnosis.services.heatmaps import scans_heatmap_queue_missing
from diagnosis.validators import validate_xray_upload
from mlcore.core.classes import display_name, finding_agrees
from mlcore.core.imaging import read_dicom_header

UPLOAD_REFUSED = "Only the doctors caring for this patient can upload X-rays for them."
REVIEW_REFUSED = "Only the doctors caring for this patient can review their scans."


def scan_create(
    *,
    patient: Patient,
    image,
    uploaded_by,
    view: str = "",
    acquisition_date: datetime.date | None = None,
) -> Scan:
    """Store an upload (checked by content) as a pending scan and queue it once the row is committed.

    A DICOM's own header fills in the view and acquisition date the doctor left blank (what the doctor
    chose wins), and names the device (manufacturer, station) for monitoring per device.
    """
    if not patient_can_upload(user=uploaded_by, patient=patient):
        raise PermissionDenied(UPLOAD_REFUSED)
    checked = validate_xray_upload(image)
    header = read_dicom_header(image) if checked.file_type == Scan.FileType.DICOM else None
    if header is not None:
        view, acquisition_date = view or header.view_position, acquisition_date or header.study_date
    scan = Scan(
        patient=patient,
        original_filename=(getattr(image, "name", "") or "")[:255],
        file_type=checked.file_type,
        view=view,
        acquisition_date=acquisition_date,
        manufacturer=header.manufacturer[:64] if header else "",
        station_name=header.station_name[:64] if header else "",
        uploaded_by=uploaded_by,
        status=Scan.Status.PENDING,
    )
    scan.image.save(image.name or "upload", image, save=False)
    try:
        scan.full_clean()
        scan.save()
    except BaseException:
        scan.image.storage.delete(scan.image.name)  # no file without its row
        raise
    transaction.on_commit(lambda: queue_scan(scan.pk))
    return scan


QUEUED_LATER_MESSAGE = "Queued for the next available worker."


def queue_scan(scan_id: int) -> None:
    """Hand a scan to the workers; if the broker is down, the periodic sweep queues it later."""
    from diagnosis.tasks import diagnose_scans

    try:
        diagnose_scans.delay(scan_id)
    except Exception:  # kombu raises several types when the broker is unreachable
        Scan.objects.filter(pk=scan_id, status=Scan.Status.PENDING).update(status_message=QUEUED_LATER_MESSAGE)


def scans_requeue_stale(*, now: datetime.datetime | None = None) -> int:
    """Take back scans whose worker's lease ran out (it died), and queue the pending scans again, and the
    heatmaps that workers which died after a result never stored.

    One task per batch of pending scans is enough, since each task claims a whole batch. Re-queuing is
    safe: a task only works on scans it claims, and a claim succeeds once. Returns the pending count.
    """
    now = now or timezone.now()
    Scan.objects.filter(status=Scan.Status.PROCESSING, claimed_until__lt=now).update(
        status=Scan.Status.PENDING,
        claim_token="",
        claimed_until=None,
        status_message="Taken back after a worker stopped; queued again.",
    )
    pending = list(
        Scan.objects.filter(status=Scan.Status.PENDING).order_by("uploaded_at").values_list("pk", flat=True)
    )
    for first_of_batch in pending[:: settings.SCAN_BATCH_SIZE]:
        queue_scan(first_of_batch)
    scans_heatmap_queue_missing(now=now)
    return len(pending)


@transaction.atomic
def scan_review(*, scan: Scan, reviewer, agrees_with_model: bool, final_finding: str, comment: str = "") -> Review:
    """Record (or revise) the doctor's review of a diagnosed scan."""
    if not scan_can_review(user=reviewer, scan=scan):
        raise PermissionDenied(REVIEW_REFUSED)
    scan = Scan.objects.select_for_update().get(pk=scan.pk)
    if scan.status != Scan.Status.DONE:
        raise ValidationError("Only a scan with a result can be reviewed.", code="not_done")
    if agrees_with_model and scan.result == Scan.Result.INDETERMINATE:
        raise ValidationError(
            {"agrees_with_model": "The model made no call on this scan (indeterminate): give your own finding."}
        )
    if agrees_with_model and not finding_agrees(final_finding, scan.label):
        raise ValidationError(
            {
                "final_finding": f"You agree with the model, whose reading is {display_name(scan.label)}; choose "
                "that finding or say you disagree."
            },
        )
    review = Review.objects.filter(scan=scan).first() or Review(scan=scan)
    review.agrees_with_model = agrees_with_model
    review.final_finding = final_finding
    review.comment = comment.strip()
    review.reviewer = reviewer
    review.full_clean()
    review.save()
    return review
