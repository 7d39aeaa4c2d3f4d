"""Thin Celery tasks: each calls one service; the scan rows are the source of truth."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from diagnosis.models import Scan
from diagnosis.services.heatmaps import scan_heatmap_regenerate
from diagnosis.services.inference import scans_diagnose
from diagnosis.services.scans import scans_requeue_stale


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=10,
)
def diagnose_scans(scan_id: int | None = None) -> list[int]:
    """Diagnose this scan and whichever others are waiting, together in one batch."""
    return scans_diagnose(first_scan_id=scan_id)


@shared_task(acks_late=True)
def requeue_stale_scans() -> int:
    """Periodic: take back scans of workers that died, queue scans still pending and missing heatmaps."""
    return scans_requeue_stale()


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=10,
)
def regenerate_heatmap(scan_id: int) -> bool:
    """The heatmap of a done scan whose worker died before storing it."""
    scan = Scan.objects.filter(pk=scan_id).first()
    return scan is not None and scan_heatmap_regenerate(scan=scan)
