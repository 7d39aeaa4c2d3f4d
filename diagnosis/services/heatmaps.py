"""Heatmaps for done scans that lack one: their worker died between storing the result and the heatmap.

The periodic sweep (``scans_requeue_stale``) queues each such scan once its worker's lease has run out; a
worker claims it with a lease of its own, so one heatmap is stored however often it is queued, and
computes the Grad-CAM of the scan's own model version exactly as the diagnosis would have (the same
single pass, placed and scaled alike).
"""

from __future__ import annotations

import datetime
import logging
import uuid

import numpy as np
from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from diagnosis.models import Scan
from diagnosis.services.inference import scan_store_save
from mlcore.core.imaging import decode_image
from mlcore.core.predictor import heat_layer_png
from mlcore.core.preprocessing import preprocess
from mlcore.inference import predictor_for
from mlcore.models import ModelVersion

logger = logging.getLogger(__name__)


def _lacking_heatmap(now: datetime.datetime) -> QuerySet[Scan]:
    """Done scans without a heatmap that no worker holds, read by a version whose model is still stored."""
    return (
        Scan.objects.filter(
            status=Scan.Status.DONE,
            heatmap="",
            model_version__status=ModelVersion.Status.SUCCEEDED,
        )
        .exclude(model_version__model_file="")
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
    )


def scans_heatmap_queue_missing(*, now: datetime.datetime | None = None) -> list[int]:
    """Queue a heatmap task for each done scan whose worker died before storing its heatmap."""
    from diagnosis.tasks import regenerate_heatmap

    scan_ids = list(_lacking_heatmap(now or timezone.now()).order_by("pk").values_list("pk", flat=True))
    for scan_id in scan_ids:
        try:
            regenerate_heatmap.delay(scan_id)
        except Exception:  # kombu raises several types when the broker is unreachable; the next sweep retries
            logger.warning("Could not queue the heatmap of scan %s; the next sweep tries again.", scan_id)
            break
    return scan_ids


def scan_heatmap_regenerate(*, scan: Scan, now: datetime.datetime | None = None) -> bool:
    """Compute and store the missing heatmap of a done scan; False if it has one or a worker holds it."""
    now = now or timezone.now()
    token = uuid.uuid4().hex
    claimed = (
        _lacking_heatmap(now)
        .filter(pk=scan.pk)
        .update(
            claim_token=token,
            claimed_until=now + datetime.timedelta(seconds=settings.SCAN_PROCESSING_LEASE_SECONDS),
        )
    )
    if not claimed:
        return False
    scan = Scan.objects.select_related("model_version").get(pk=scan.pk)
    predictor = predictor_for(scan.model_version)
    with scan.image.open("rb") as handle:
        gray = decode_image(handle.read(), max_pixels=settings.SCAN_MAX_PIXELS)
    readout = predictor.read(preprocess(gray, predictor.spec)[np.newaxis])[0]
    heatmap = predictor.heatmap(readout.cam, shape=gray.shape)
    name = scan_store_save(scan, "gradcam.png", heat_layer_png(heatmap, size=(gray.shape[1], gray.shape[0])))
    if not Scan.objects.filter(pk=scan.pk, claim_token=token, status=Scan.Status.DONE).update(
        heatmap=name, claim_token="", claimed_until=None
    ):
        scan.heatmap.storage.delete(name)
    scan.refresh_from_db(fields=["heatmap"])
    logger.info("Scan %s: heatmap regenerated with model %s", scan.pk, scan.model_version.name)
    return bool(scan.heatmap)
