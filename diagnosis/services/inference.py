"""Diagnose waiting scans with the active model version: claim, read, store, then Grad-CAM.

Exactly once: a worker claims scans with one conditional UPDATE (pending -> processing, with its
own token and a lease), and writes results only while it still holds the claim. A worker that dies
loses its claim when the lease runs out; ``scans_requeue_stale`` then hands the scan to another.

Every batch logs where its time went, per stage (one "Batch timings:" line of JSON): the log, not
the scan rows, because the database write is itself a stage and can only be measured after it is
made; ``manage.py benchmark_worker`` reads these lines from the log of the worker it starts.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from diagnosis.models import Scan
from diagnosis.signals import scan_read
from mlcore.core.evaluation import jsonable
from mlcore.core.gate import colour_share, screen
from mlcore.core.imaging import DICOM, DicomHeader, ImageDecodeError, decode_image, read_dicom_header, sniff_format
from mlcore.core.predictor import display_gray, gray_png, overlay_png
from mlcore.core.preprocessing import preprocess
from mlcore.inference import active_predictor

logger = logging.getLogger(__name__)

NO_MODEL_MESSAGE = "Waiting for an active model version: staff activate one in the admin."
MAX_ATTEMPTS = 3
BATCH_TIMINGS = "Batch timings: "


@dataclass
class StageClock:
    """Milliseconds spent per stage: per scan (decoding, encoding) and per batch (network, database)."""

    per_scan: dict[int, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    per_batch: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def scan(self, scan_id: int, stage: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            stages = self.per_scan[scan_id]
            stages[stage] = stages.get(stage, 0.0) + (time.perf_counter() - started) * 1000

    @contextmanager
    def batch(self, stage: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.per_batch[stage] = self.per_batch.get(stage, 0.0) + (time.perf_counter() - started) * 1000

    def log(self, scan_ids: list[int]) -> None:
        record = {"scans": scan_ids, "per_batch": self.per_batch, "per_scan": self.per_scan}
        logger.info("%s%s", BATCH_TIMINGS, json.dumps(record, separators=(",", ":")))


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
    clock = StageClock()
    with clock.batch("database"):
        token, claimed = scans_claim(first_scan_id=first_scan_id, limit=batch_size or settings.SCAN_BATCH_SIZE)
    if not claimed:
        return []
    try:
        done = _diagnose_claimed(claimed, token, version, predictor, clock=clock)
        clock.log([scan.pk for scan in claimed])
        return done
    except BaseException:
        Scan.objects.filter(claim_token=token, status=Scan.Status.PROCESSING).update(
            status=Scan.Status.PENDING, claim_token="", claimed_until=None
        )
        raise


@dataclass
class _Prepared:
    """A claimed scan decoded, checked by what needs no network, and ready for the batch."""

    scan: Scan
    gray: np.ndarray
    header: DicomHeader | None
    colour: float | None
    preprocess_ms: float
    network_input: np.ndarray | None = None


def _diagnose_claimed(claimed: list[Scan], token: str, version, predictor, *, clock: StageClock) -> list[int]:
    prepared = []
    for scan in claimed:
        if scan.attempts > MAX_ATTEMPTS:
            with clock.batch("database"):
                _fail(scan, token, f"Gave up after {MAX_ATTEMPTS} attempts: a worker stopped each time.")
            continue
        try:
            with clock.scan(scan.pk, "decode"):
                prepared.append(_prepare(scan, predictor))
        except (ImageDecodeError, OSError) as error:
            with clock.batch("database"):
                _fail(scan, token, f"The image cannot be read: {error}")
    if not prepared:
        return []

    refused_early = [
        (item, verdict)
        for item in prepared
        if not (verdict := screen(header=item.header, colour=item.colour, image_check=None)).assessable
    ]
    refused_ids = {id(item) for item, _ in refused_early}
    to_read = [item for item in prepared if id(item) not in refused_ids]
    for item in to_read:
        with clock.scan(item.scan.pk, "preprocess"):
            item.network_input = preprocess(item.gray, predictor.spec)

    with clock.batch("network"):
        readouts = predictor.read(np.stack([item.network_input for item in to_read])) if to_read else []
    network_ms = clock.per_batch["network"]

    done, finished = [], []
    for item, verdict in refused_early:
        if _store_not_assessable(item, verdict, token, version, network_ms=None, batch=len(prepared), clock=clock):
            finished.append(item.scan.pk)
    for item, readout in zip(to_read, readouts, strict=True):
        verdict = screen(header=item.header, colour=item.colour, image_check=readout.image_check)
        if not verdict.assessable:
            if _store_not_assessable(
                item, verdict, token, version, network_ms=network_ms, batch=len(prepared), clock=clock
            ):
                finished.append(item.scan.pk)
            continue
        with clock.scan(item.scan.pk, "preview"):
            display = display_gray(item.gray)
        if _store_reading(item, display, readout.reading, verdict, token, version, network_ms, len(prepared), clock):
            done.append((item, display, readout))

    for item, display, readout in done:
        with clock.scan(item.scan.pk, "heatmap"):
            heatmap = predictor.heatmap(readout.cam)
        if _store_heatmap(item.scan, display, heatmap, token, clock):
            finished.append(item.scan.pk)
    for scan_id in finished:
        transaction.on_commit(lambda scan_id=scan_id: scan_read.send(sender=Scan, scan_id=scan_id))
    return [item.scan.pk for item, _, _ in done]


def _prepare(scan: Scan, predictor) -> _Prepared:
    started = time.perf_counter()
    with scan.image.open("rb") as handle:
        data = handle.read()
    gray = decode_image(data, max_pixels=settings.SCAN_MAX_PIXELS)
    header = read_dicom_header(data) if sniff_format(data[:132]) == DICOM else None
    return _Prepared(
        scan=scan,
        gray=gray,
        header=header,
        colour=colour_share(data),
        preprocess_ms=(time.perf_counter() - started) * 1000,
    )


def _timings(scan: Scan, *, preprocess_ms: float, network_ms: float | None, batch: int) -> dict:
    finished = timezone.now()
    return {
        "queue_wait_ms": (scan.started_at - scan.uploaded_at).total_seconds() * 1000,
        "preprocess_ms": preprocess_ms,
        "network_ms": network_ms,
        "total_ms": (finished - scan.uploaded_at).total_seconds() * 1000,
        "batch_size": batch,
        "finished_at": finished,
    }


def _store_not_assessable(item: _Prepared, verdict, token: str, version, *, network_ms, batch: int, clock) -> bool:
    """The image and the reason, no reading; the claim ends here (no heatmap follows)."""
    scan = item.scan
    with clock.scan(scan.pk, "preview"):
        preview = gray_png(display_gray(item.gray))
    with clock.scan(scan.pk, "files"):
        preview_name = scan_store_save(scan, "preview.png", preview)
    with clock.batch("database"):
        updated = _held(scan, token).update(
            status=Scan.Status.NOT_ASSESSABLE,
            status_message=verdict.reason[:500],
            gate=jsonable(verdict.figures),
            result="",
            label="",
            probability=None,
            raw_probability=None,
            probabilities={},
            threshold=None,
            model_version=version,
            preview=preview_name,
            claim_token="",
            claimed_until=None,
            **_timings(scan, preprocess_ms=item.preprocess_ms, network_ms=network_ms, batch=batch),
        )
    if not updated:
        scan.preview.storage.delete(preview_name)
        logger.warning("Scan %s was taken over by another worker; its verdict was discarded.", scan.pk)
        return False
    logger.info("Scan %s not assessable by model %s: %s", scan.pk, version.name, verdict.reason)
    return True


def _store_reading(item: _Prepared, display, reading, verdict, token, version, network_ms, batch, clock) -> bool:
    scan = item.scan
    with clock.scan(scan.pk, "preview"):
        preview = gray_png(display)
    with clock.scan(scan.pk, "files"):
        preview_name = scan_store_save(scan, "preview.png", preview)
    with clock.batch("database"):
        updated = _held(scan, token).update(
            status=Scan.Status.DONE,
            status_message="",
            gate=jsonable(verdict.figures),
            result=reading.result,
            label=reading.label,
            probability=reading.probability,
            raw_probability=reading.raw_probability,
            probabilities=reading.probabilities,
            threshold=reading.threshold,
            model_version=version,
            preview=preview_name,
            **_timings(scan, preprocess_ms=item.preprocess_ms, network_ms=network_ms, batch=batch),
        )
    if not updated:
        scan.preview.storage.delete(preview_name)
        logger.warning("Scan %s was taken over by another worker; its result was discarded.", scan.pk)
        return False
    logger.info(
        "Scan %s done: %s (%s), p=%.3f, model %s, batch of %d",
        scan.pk,
        reading.result,
        reading.label or "no call",
        reading.probability,
        version.name,
        batch,
    )
    return True


def _store_heatmap(scan: Scan, display, heatmap, token: str, clock: StageClock) -> bool:
    with clock.scan(scan.pk, "overlay"):
        overlay = overlay_png(display, heatmap)
    with clock.scan(scan.pk, "files"):
        name = scan_store_save(scan, "gradcam.png", overlay)
    with clock.batch("database"):
        updated = Scan.objects.filter(pk=scan.pk, claim_token=token, status=Scan.Status.DONE).update(
            heatmap=name, claim_token="", claimed_until=None
        )
    if not updated:
        scan.heatmap.storage.delete(name)
        return False
    return True


def scan_store_save(scan: Scan, filename: str, content: bytes) -> str:
    field = Scan._meta.get_field("preview")
    name = field.generate_filename(scan, filename)
    return field.storage.save(name, ContentFile(content))
