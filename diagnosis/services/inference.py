"""Diagnose waiting scans with the active model version: claim, read, store, then Grad-CAM.

Exactly once: a worker claims scans with one conditional UPDATE (pending -> processing, with its
own token and a lease), and writes results only while it still holds the claim. A worker that dies
loses its claim when the lease runs out; ``scans_requeue_stale`` then hands the scan to another.
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from diagnosis.models import Scan
from diagnosis.signals import scan_read
from mlcore.core.imaging import ImageDecodeError, decode_image
from mlcore.core.predictor import display_gray, gray_png, overlay_png
from mlcore.core.preprocessing import preprocess
from mlcore.inference import active_predictor

logger = logging.getLogger(__name__)

NO_MODEL_MESSAGE = "Waiting for an active model version: staff activate one in the admin."
MAX_ATTEMPTS = 3


def scans_claim(*, first_scan_id: int | None, limit: int) -> tuple[str, list[Scan]]:
    """Claim up to ``limit`` pending scans (this one first, then the oldest waiting)."""
    token = uuid.uuid4().hex
    now = timezone.now()
    waiting = Scan.objects.filter(status=Scan.Status.PENDING).order_by("uploaded_at")
    ids = [first_scan_id] if first_scan_id else []
    ids += list(waiting.exclude(pk=first_scan_id).values_list("pk", flat=True)[: max(0, limit - len(ids))])
    Scan.objects.filter(pk__in=ids, status=Scan.Status.PENDING).update(
        status=Scan.Status.PROCESSING,
        claim_token=token,
        claimed_until=now + datetime.timedelta(seconds=settings.SCAN_PROCESSING_LEASE_SECONDS),
        started_at=now,
        attempts=F("attempts") + 1,
        status_message="",
    )
    claimed = list(Scan.objects.filter(claim_token=token, status=Scan.Status.PROCESSING).order_by("pk"))
    return token, claimed


def _held(scan: Scan, token: str):
    return Scan.objects.filter(pk=scan.pk, claim_token=token, status=Scan.Status.PROCESSING)


def _fail(scan: Scan, token: str, message: str) -> None:
    _held(scan, token).update(
        status=Scan.Status.FAILED, status_message=message[:500], finished_at=timezone.now(), claim_token=""
    )


def scans_diagnose(*, first_scan_id: int | None = None, batch_size: int | None = None) -> list[int]:
    """Diagnose a batch of waiting scans; returns the ids that reached done."""
    version, predictor = active_predictor()
    if version is None:
        Scan.objects.filter(status=Scan.Status.PENDING).update(status_message=NO_MODEL_MESSAGE)
        return []
    token, claimed = scans_claim(first_scan_id=first_scan_id, limit=batch_size or settings.SCAN_BATCH_SIZE)
    if not claimed:
        return []
    try:
        return _diagnose_claimed(claimed, token, version, predictor)
    except BaseException:
        Scan.objects.filter(claim_token=token, status=Scan.Status.PROCESSING).update(
            status=Scan.Status.PENDING, claim_token="", claimed_until=None
        )
        raise


def _diagnose_claimed(claimed: list[Scan], token: str, version, predictor) -> list[int]:
    readable, grays, inputs, preprocess_ms = [], [], [], []
    for scan in claimed:
        if scan.attempts > MAX_ATTEMPTS:
            _fail(scan, token, f"Gave up after {MAX_ATTEMPTS} attempts: a worker stopped each time.")
            continue
        started = time.perf_counter()
        try:
            with scan.image.open("rb") as handle:
                gray = decode_image(handle.read(), max_pixels=settings.SCAN_MAX_PIXELS)
            network_input = preprocess(gray, predictor.spec)
        except (ImageDecodeError, OSError) as error:
            _fail(scan, token, f"The image cannot be read: {error}")
            continue
        readable.append(scan)
        grays.append(gray)
        inputs.append(network_input)
        preprocess_ms.append((time.perf_counter() - started) * 1000)
    if not readable:
        return []

    started = time.perf_counter()
    readings = predictor.read(np.stack(inputs))
    network_ms = (time.perf_counter() - started) * 1000

    done = []
    displays = [display_gray(gray) for gray in grays]
    for scan, display, reading, prep_ms in zip(readable, displays, readings, preprocess_ms, strict=True):
        preview_name = scan_store_save(scan, "preview.png", gray_png(display))
        finished = timezone.now()
        updated = _held(scan, token).update(
            status=Scan.Status.DONE,
            status_message="",
            result=Scan.Result.POSITIVE if reading.label == predictor.positive_class else Scan.Result.NEGATIVE,
            label=reading.label,
            probability=reading.probability,
            probabilities=reading.probabilities,
            threshold=reading.threshold,
            model_version=version,
            queue_wait_ms=(scan.started_at - scan.uploaded_at).total_seconds() * 1000,
            preprocess_ms=prep_ms,
            network_ms=network_ms,
            total_ms=(finished - scan.uploaded_at).total_seconds() * 1000,
            batch_size=len(readable),
            preview=preview_name,
            finished_at=finished,
        )
        if updated:
            done.append(scan.pk)
            logger.info(
                "Scan %s done: %s, p=%.3f, model %s, batch of %d",
                scan.pk,
                reading.label,
                reading.probability,
                version.name,
                len(readable),
            )
        else:
            scan.preview.storage.delete(preview_name)
            logger.warning("Scan %s was taken over by another worker; its result was discarded.", scan.pk)

    for scan, display, network_input in zip(readable, displays, inputs, strict=True):
        if scan.pk in done:
            _store_heatmap(scan, display, network_input, predictor, token)
    return done


def _store_heatmap(scan: Scan, display, network_input, predictor, token: str) -> None:
    heatmap = predictor.heatmap(network_input)
    name = scan_store_save(scan, "gradcam.png", overlay_png(display, heatmap))
    if not Scan.objects.filter(pk=scan.pk, claim_token=token, status=Scan.Status.DONE).update(
        heatmap=name, claim_token="", claimed_until=None
    ):
        scan.heatmap.storage.delete(name)
    transaction.on_commit(lambda: scan_read.send(sender=Scan, scan_id=scan.pk))


def scan_store_save(scan: Scan, filename: str, content: bytes) -> str:
    field = Scan._meta.get_field("preview")
    name = field.generate_filename(scan, filename)
    return field.storage.save(name, ContentFile(content))
