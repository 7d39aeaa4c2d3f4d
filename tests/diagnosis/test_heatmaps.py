"""A done scan whose worker died between the result and the heatmap gets its heatmap from the periodic sweep."""

import datetime
import io

import numpy as np
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from PIL import Image

from diagnosis.models import Scan
from diagnosis.services.heatmaps import scan_heatmap_regenerate, scans_heatmap_queue_missing
from diagnosis.services.inference import scans_diagnose
from diagnosis.services.scans import scan_create
from mlcore import inference as mlcore_inference
from tests.diagnosis.conftest import xray_upload
from tests.diagnosis.workers import Worker, purge_broker, wait_until


def result_without_heatmap(patient, doctor, monkeypatch, seed: int = 5) -> Scan:
    """A real upload read by the real network, left as a worker that stored the result and died before
    the heatmap leaves it (what workers before the one-write batch could leave): done, no heatmap,
    still claimed under a lease that runs out."""
    scan = scan_create(patient=patient, image=xray_upload(seed=seed), uploaded_by=doctor)
    scans_diagnose(first_scan_id=scan.pk)
    scan.refresh_from_db()
    scan.heatmap.storage.delete(scan.heatmap.name)
    Scan.objects.filter(pk=scan.pk).update(
        heatmap="",
        claim_token="dead-worker",
        claimed_until=timezone.now() + datetime.timedelta(seconds=settings.SCAN_PROCESSING_LEASE_SECONDS),
    )
    scan.refresh_from_db()
    assert scan.status == Scan.Status.DONE
    assert not scan.heatmap
    return scan


def after_the_lease(scan: Scan) -> datetime.datetime:
    return scan.claimed_until + datetime.timedelta(seconds=1)


def png_pixels(field) -> np.ndarray:
    with field.open("rb") as handle:
        image = Image.open(io.BytesIO(handle.read()))
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.mark.django_db
def test_the_sweep_queues_the_heatmap_only_once_the_dead_workers_lease_ran_out(
    make_version, patient, doctor, monkeypatch
):
    make_version()
    scan = result_without_heatmap(patient, doctor, monkeypatch)

    assert scans_heatmap_queue_missing(now=timezone.now()) == []
    assert scans_heatmap_queue_missing(now=after_the_lease(scan)) == [scan.pk]


@pytest.mark.django_db
def test_the_regenerated_heatmap_is_the_one_the_worker_would_have_stored(make_version, patient, doctor, monkeypatch):
    make_version()
    orphan = result_without_heatmap(patient, doctor, monkeypatch, seed=5)
    complete = scan_create(patient=patient, image=xray_upload(seed=5), uploaded_by=doctor)
    scans_diagnose(first_scan_id=complete.pk)
    complete.refresh_from_db()

    assert scan_heatmap_regenerate(scan=orphan, now=after_the_lease(orphan))

    orphan.refresh_from_db()
    assert orphan.claim_token == ""
    assert orphan.claimed_until is None
    regenerated, reference = png_pixels(orphan.heatmap), png_pixels(complete.heatmap)
    assert regenerated.shape == reference.shape == (96, 96, 3)
    assert np.abs(regenerated - reference).max() <= 1
    assert scans_heatmap_queue_missing(now=timezone.now() + datetime.timedelta(days=1)) == []


@pytest.mark.django_db
def test_a_heatmap_a_live_worker_may_still_be_computing_is_left_to_it(make_version, patient, doctor, monkeypatch):
    make_version()
    scan = result_without_heatmap(patient, doctor, monkeypatch)
    token = scan.claim_token

    assert not scan_heatmap_regenerate(scan=scan, now=timezone.now())

    scan.refresh_from_db()
    assert not scan.heatmap
    assert scan.claim_token == token


@pytest.mark.django_db(transaction=True)
def test_the_network_runs_outside_any_transaction(make_version, patient, doctor, monkeypatch):
    """A write transaction open during inference would hold SQLite's only write lock for seconds."""
    make_version()
    in_transaction = []
    for method in ("read", "heatmap"):
        real = getattr(mlcore_inference.Predictor, method)

        def spy(self, *args, real=real, **kwargs):
            in_transaction.append(connection.in_atomic_block)
            return real(self, *args, **kwargs)

        monkeypatch.setattr(mlcore_inference.Predictor, method, spy)
    orphan = result_without_heatmap(patient, doctor, monkeypatch)
    scan_create(patient=patient, image=xray_upload(seed=6), uploaded_by=doctor)
    scans_diagnose()
    scan_heatmap_regenerate(scan=orphan, now=after_the_lease(orphan))

    assert in_transaction  # warm-ups, the orphan's read, the second scan's read and heatmap, the orphan's heatmap
    assert not any(in_transaction)


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_with_beat_stores_the_heatmap_a_dead_worker_left_out(
    make_version, patient, doctor, monkeypatch, settings, tmp_path
):
    make_version()
    settings.SCAN_PROCESSING_LEASE_SECONDS = 1
    scan = result_without_heatmap(patient, doctor, monkeypatch)
    purge_broker()

    worker = Worker(tmp_path / "worker.log", beat=True, COVIDXRAY_REQUEUE_INTERVAL_SECONDS="2")
    try:
        wait_until(
            lambda: Scan.objects.filter(pk=scan.pk).exclude(heatmap="").exists(),
            timeout=180,
            explain=lambda: worker.log()[-3000:],
        )
    finally:
        worker.stop()

    scan.refresh_from_db()
    assert png_pixels(scan.heatmap).shape == (96, 96, 3)
    assert scan.claim_token == ""
    assert f"Scan {scan.pk}: heatmap regenerated" in worker.log()
