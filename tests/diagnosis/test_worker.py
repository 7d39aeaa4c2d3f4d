"""A real Celery worker process (on Redis when REDIS_URL is set, else the file-system broker)."""

import re
from collections import Counter

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis.models import Scan
from tests.diagnosis.conftest import xray_png
from tests.diagnosis.workers import Worker, purge_broker, wait_until

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

DONE_LINE = re.compile(r"Scan (\d+) done:")


@pytest.fixture
def workers(tmp_path):
    started = []

    def start(name, **options):
        worker = Worker(tmp_path / f"{name}.log", **options)
        started.append(worker)
        return worker

    purge_broker()
    yield start
    for worker in started:
        worker.stop()


def test_an_uploaded_scan_is_diagnosed_by_a_worker_with_a_heatmap(workers, make_version, patient, doctor, client):
    make_version()
    worker = workers("worker")
    client.force_login(doctor)

    response = client.post(
        reverse("diagnosis:scan_upload", args=[patient.pk]),
        {"images": SimpleUploadedFile("chest.png", xray_png(seed=3), content_type="image/png")},
    )

    assert response.status_code == 302
    scan = Scan.objects.get()
    assert response["Location"] == reverse("diagnosis:scan_detail", args=[scan.pk])
    wait_until(
        lambda: Scan.objects.filter(pk=scan.pk).exclude(heatmap="").exists(),
        timeout=180,
        explain=lambda: f"scan {Scan.objects.get(pk=scan.pk).status}; log:\n{worker.log()[-3000:]}",
    )
    scan.refresh_from_db()
    assert scan.status == Scan.Status.DONE
    assert scan.label in ("COVID", "NORMAL")
    status = client.get(reverse("diagnosis:scan_status", args=[scan.pk])).json()
    assert status["status"] == "done"
    assert status["finished"] is True
    heatmap = client.get(status["heatmap_url"])
    assert heatmap.status_code == 200
    assert b"".join(heatmap.streaming_content).startswith(b"\x89PNG")
    assert DONE_LINE.findall(worker.log()) == [str(scan.pk)]


def test_a_worker_killed_mid_batch_leaves_every_scan_completed_exactly_once(
    workers, make_version, patient, doctor, client
):
    make_version()
    lease = {"COVIDXRAY_SCAN_LEASE_SECONDS": "4", "COVIDXRAY_REQUEUE_INTERVAL_SECONDS": "2"}
    first = workers("first", **lease)
    client.force_login(doctor)
    url = reverse("diagnosis:scan_upload", args=[patient.pk])
    for seed in range(8):
        image = SimpleUploadedFile(f"chest{seed}.png", xray_png(seed=seed, size=1400), content_type="image/png")
        assert client.post(url, {"images": image}).status_code == 302

    wait_until(
        lambda: Scan.objects.filter(status=Scan.Status.PROCESSING).exists(),
        timeout=180,
        interval=0.02,
        explain=lambda: f"no scan reached processing; log:\n{first.log()[-3000:]}",
    )
    first.kill()
    interrupted = set(Scan.objects.filter(status=Scan.Status.PROCESSING).values_list("pk", flat=True))
    assert interrupted, "the worker finished before it could be killed mid-batch"

    second = workers("second", beat=True, **lease)
    wait_until(
        lambda: Scan.objects.filter(status=Scan.Status.DONE).count() == 8,
        timeout=180,
        explain=lambda: f"{Counter(Scan.objects.values_list('status', flat=True))}; {second.log()[-3000:]}",
    )
    done_lines = Counter(DONE_LINE.findall(first.log()) + DONE_LINE.findall(second.log()))
    assert done_lines == Counter({str(pk): 1 for pk in Scan.objects.values_list("pk", flat=True)})
    for scan in Scan.objects.filter(pk__in=interrupted):
        assert scan.attempts == 2
        assert scan.label
