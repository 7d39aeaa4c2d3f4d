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
from mlcore.core.predictor import heat_layer_png, preview_png
from mlcore.core.preprocessing import PreprocessingSpec, preprocess
from mlcore.inference import active_predictor

logger = logging.getLogger(__name__)

NO_MODEL_MESSAGE = "Waiting for an active model version: staff activate one in the admin."
MAX_ATTEMPTS = 3
BATCH_TIMINGS = "Batch timings: "
DRAIN_SECONDS = 60


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
    """Diagnose waiting scans, batch after batch while full ones wait; returns the ids that reached done.

    Scans uploaded while the network runs fill the next batch, which this task takes at once instead
    of waiting for the broker to deliver another task; after DRAIN_SECONDS it leaves the rest to the
    tasks queued for them, so no task holds the queue for long.
    """
    limit = batch_size or settings.SCAN_BATCH_SIZE
    deadline = time.monotonic() + DRAIN_SECONDS
    done: list[int] = []
    while True:
        version, predictor = active_predictor()
        if version is None:
            Scan.objects.filter(status=Scan.Status.PENDING).update(status_message=NO_MODEL_MESSAGE)
            return done
        clock = StageClock()
        with clock.batch("database"):
            token, claimed = scans_claim(first_scan_id=first_scan_id, limit=limit)
        if not claimed:
            return done
        try:
            done += _diagnose_claimed(claimed, token, version, predictor, clock=clock)
        except BaseException:
            Scan.objects.filter(claim_token=token, status=Scan.Status.PROCESSING).update(
                status=Scan.Status.PENDING, claim_token="", claimed_until=None
            )
            raise
        clock.log([scan.pk for scan in claimed])
        if len(claimed) < limit or time.monotonic() > deadline:
            return done
        first_scan_id = None


@dataclass
class _Prepared:
    """A claimed scan decoded, checked by what needs no network, and ready for the batch."""

    scan: Scan
    gray: np.ndarray
    header: DicomHeader | None
    colour: float | None
    preprocess_ms: float
    data: bytes
    network_input: np.ndarray | None = None


@dataclass
class _Outcome:
    """A scan with its final values set (not yet written), the files they name, and its log line."""

    scan: Scan
    files: list[str]
    log: tuple


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

    batch = len(prepared)
    steps = [(item, verdict, None) for item, verdict in refused_early]
    for item, readout in zip(to_read, readouts, strict=True):
        steps.append((item, screen(header=item.header, colour=item.colour, image_check=readout.image_check), readout))
    outcomes = []
    for item, verdict, readout in steps:
        try:
            if verdict.assessable:
                outcomes.append(_reading(item, readout, verdict, version, predictor, network_ms, batch, clock))
            else:
                network = network_ms if readout is not None else None
                outcomes.append(
                    _not_assessable(
                        item, verdict, version, predictor.spec, network_ms=network, batch=batch, clock=clock
                    )
                )
        except (ValueError, OSError, MemoryError) as error:  # this image only: the rest of the batch goes on
            logger.exception("Scan %s could not be processed", item.scan.pk)
            with clock.batch("database"):
                _fail(item.scan, token, f"The image could not be processed: {error}")

    written = _store_batch(outcomes, token, clock)
    for outcome in written:
        transaction.on_commit(lambda scan_id=outcome.scan.pk: scan_read.send(sender=Scan, scan_id=scan_id))
    return [outcome.scan.pk for outcome in written if outcome.scan.status == Scan.Status.DONE]


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
        data=data,
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


RESULT_FIELDS = [
    "status",
    "status_message",
    "gate",
    "result",
    "label",
    "probability",
    "raw_probability",
    "probabilities",
    "threshold",
    "model_version",
    "preview",
    "heatmap",
    "claim_token",
    "claimed_until",
    "queue_wait_ms",
    "preprocess_ms",
    "network_ms",
    "total_ms",
    "batch_size",
    "finished_at",
]


def _final(scan: Scan, **values) -> None:
    """Set a scan's final values (every one of RESULT_FIELDS) on the instance; the claim ends with them."""
    values |= {"claim_token": "", "claimed_until": None}
    if set(values) != set(RESULT_FIELDS):
        raise TypeError(f"A final write sets every result field; these differ: {set(RESULT_FIELDS) ^ set(values)}")
    for name, value in values.items():
        setattr(scan, name, value)


def _not_assessable(
    item: _Prepared, verdict, version, spec: PreprocessingSpec, *, network_ms, batch: int, clock: StageClock
) -> _Outcome:
    """The image and the reason, no reading and no heatmap."""
    scan = item.scan
    with clock.scan(scan.pk, "preview"):
        preview = preview_png(item.data, item.gray, spec=spec)
    with clock.scan(scan.pk, "files"):
        preview_name = scan_store_save(scan, "preview.png", preview)
    _final(
        scan,
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
        heatmap="",
        **_timings(scan, preprocess_ms=item.preprocess_ms, network_ms=network_ms, batch=batch),
    )
    log = ("Scan %s not assessable by model %s: %s", scan.pk, version.name, verdict.reason)
    return _Outcome(scan=scan, files=[preview_name], log=log)


def _reading(item: _Prepared, readout, verdict, version, predictor, network_ms, batch, clock) -> _Outcome:
    """The reading with its preview and its Grad-CAM heat layer of the preview's size."""
    scan, reading = item.scan, readout.reading
    with clock.scan(scan.pk, "preview"):
        preview = preview_png(item.data, item.gray, spec=predictor.spec)
    with clock.scan(scan.pk, "heatmap"):
        heatmap = predictor.heatmap(readout.cam, shape=item.gray.shape)
    with clock.scan(scan.pk, "overlay"):
        layer = heat_layer_png(heatmap, size=(item.gray.shape[1], item.gray.shape[0]))
    with clock.scan(scan.pk, "files"):
        files = [scan_store_save(scan, "preview.png", preview), scan_store_save(scan, "gradcam.png", layer)]
    _final(
        scan,
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
        preview=files[0],
        heatmap=files[1],
        **_timings(scan, preprocess_ms=item.preprocess_ms, network_ms=network_ms, batch=batch),
    )
    log = (
        "Scan %s done: %s (%s), p=%.3f, model %s, batch of %d",
        scan.pk,
        reading.result,
        reading.label or "no call",
        reading.probability,
        version.name,
        batch,
    )
    return _Outcome(scan=scan, files=files, log=log)


def _store_batch(outcomes: list[_Outcome], token: str, clock: StageClock) -> list[_Outcome]:
    """One UPDATE for the whole batch, of the scans this worker still holds; the others' files go.

    The UPDATE carries the claim condition itself (bulk_update keeps the queryset's filter), so a scan
    another worker took over is never overwritten, and no read comes before it: on SQLite a read that
    a write follows in one transaction fails with "database is locked" when an upload writes between.
    """
    if not outcomes:
        return []
    ids = [outcome.scan.pk for outcome in outcomes]
    with clock.batch("database"):
        updated = Scan.objects.filter(pk__in=ids, claim_token=token, status=Scan.Status.PROCESSING).bulk_update(
            [outcome.scan for outcome in outcomes], RESULT_FIELDS
        )
        if updated == len(outcomes):
            held = set(ids)
        else:  # some were taken over: ours are the rows that now carry this batch's own finishing times
            stored = dict(Scan.objects.filter(pk__in=ids).values_list("pk", "finished_at"))
            held = {outcome.scan.pk for outcome in outcomes if stored.get(outcome.scan.pk) == outcome.scan.finished_at}
    for outcome in outcomes:
        if outcome.scan.pk in held:
            logger.info(*outcome.log)
            continue
        for name in outcome.files:
            Scan._meta.get_field("preview").storage.delete(name)
        logger.warning("Scan %s was taken over by another worker; its result was discarded.", outcome.scan.pk)
    return [outcome for outcome in outcomes if outcome.scan.pk in held]


def scan_store_save(scan: Scan, filename: str, content: bytes) -> str:
    field = Scan._meta.get_field("preview")
    name = field.generate_filename(scan, filename)
    return field.storage.save(name, ContentFile(content))
