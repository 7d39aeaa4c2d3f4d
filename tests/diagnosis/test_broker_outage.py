"""Redis goes away and comes back while doctors upload: no upload fails, no scan stays pending.

The web side and a real worker both reach Redis through a TCP proxy the test cuts (every connection
reset, new ones refused, as when Redis restarts) and restores.
"""

import contextlib
import re
import time

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from covidxray.celery import app
from diagnosis.models import Scan
from diagnosis.services.scans import QUEUED_LATER_MESSAGE
from tests.diagnosis.conftest import xray_png
from tests.diagnosis.workers import Worker, purge_broker, wait_until
from tests.proxy import TcpProxy

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.CELERY_BROKER_URL.startswith("redis://"), reason="Redis is the broker under test"),
]

DONE_LINE = re.compile(r"Scan (\d+) done:")
UPLOAD_BOUND_SECONDS = 15


@contextlib.contextmanager
def broker(url: str):
    """Point this process's Celery app at another broker URL for a while.

    kombu keeps one connection pool per broker URL for the whole process; only the pool of the URL
    used here is closed afterwards, so the app's own pool stays usable for the tests that follow.
    """

    def forget_pools():
        app._pool = None
        app.amqp._producer_pool = None

    saved = app.conf.broker_url
    app.conf.broker_url = url
    forget_pools()
    try:
        yield
    finally:
        app.pool.force_close_all()
        app.conf.broker_url = saved
        forget_pools()


def upload(client, patient, seed: int) -> Scan:
    started = time.monotonic()
    response = client.post(
        reverse("diagnosis:scan_upload", args=[patient.pk]),
        {"images": SimpleUploadedFile(f"chest{seed}.png", xray_png(seed=seed), content_type="image/png")},
    )
    assert response.status_code == 302
    assert time.monotonic() - started < UPLOAD_BOUND_SECONDS, "an upload must not hang on a missing broker"
    return Scan.objects.latest("pk")


def test_uploads_during_a_redis_restart_are_all_diagnosed_exactly_once(
    tmp_path, make_version, patient, doctor, client
):
    make_version()
    purge_broker()
    redis_url = settings.CELERY_BROKER_URL
    host, port, database = re.match(r"redis://([^:/]+):(\d+)/?(\d*)", redis_url).groups()
    proxy = TcpProxy(host, int(port)).start()
    proxied_url = f"redis://127.0.0.1:{proxy.port}/{database or 0}"
    worker = Worker(
        tmp_path / "worker.log",
        beat=True,
        CELERY_BROKER_URL=proxied_url,
        COVIDXRAY_REQUEUE_INTERVAL_SECONDS="2",
    )
    client.force_login(doctor)

    def all_done(scans):
        return lambda: Scan.objects.filter(pk__in=[s.pk for s in scans], status=Scan.Status.DONE).count() == len(scans)

    def explain():
        return f"{list(Scan.objects.values_list('pk', 'status', 'status_message'))}\n{worker.log()[-3000:]}"

    try:
        with broker(proxied_url):
            before = upload(client, patient, seed=1)
            wait_until(all_done([before]), timeout=180, explain=explain)

            proxy.stop()
            during = [upload(client, patient, seed=seed) for seed in (2, 3)]
            for scan in during:
                scan.refresh_from_db()
                assert scan.status == Scan.Status.PENDING
                assert scan.status_message == QUEUED_LATER_MESSAGE

            proxy.start()
            after = upload(client, patient, seed=4)
            wait_until(all_done([*during, after]), timeout=180, explain=explain)
    finally:
        worker.stop()
        proxy.stop()

    done_lines = DONE_LINE.findall(worker.log())
    assert sorted(done_lines) == sorted(str(scan.pk) for scan in [before, *during, after])
