"""``manage.py benchmark_worker``: a real worker's scans per second end to end, where each scan's time
goes, and the network's own throughput measured in the same run, so the ratio of the two is the headline.

The scans are stored through the upload's own service (``scan_create``) for a patient and an account
the benchmark creates and removes; it refuses to run while patients' scans wait, so it reads none of
theirs. Its worker listens on a queue of its own, so no other worker takes its tasks.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from PIL import Image

from diagnosis.models import Patient, Scan
from diagnosis.services.inference import BATCH_TIMINGS
from mlcore.core.imaging import ImageDecodeError, decode_image, sniff_format

PER_SCAN_STAGES = ("decode", "preprocess", "heatmap", "preview", "overlay", "files")
PER_BATCH_STAGES = ("network", "database")
STAGES = ("queue_wait", "decode", "preprocess", "network", "heatmap", "preview", "overlay", "files", "database")
STAGE_WORDS = {
    "queue_wait": "queue wait (upload to claim)",
    "decode": "decode (read, decode, header, colour)",
    "preprocess": "preprocess (network input)",
    "network": "network (fused pass, share of batch)",
    "heatmap": "heatmap placement",
    "preview": "preview (display resize, PNG)",
    "overlay": "overlay (colours, PNG)",
    "files": "file writes",
    "database": "database (claim, writes; share)",
}
FINAL = (Scan.Status.DONE, Scan.Status.NOT_ASSESSABLE, Scan.Status.FAILED)
NETWORK_BATCH = 8
NETWORK_IMAGES = 64
MAX_FOLDER_FILES = 5000


class BenchmarkError(Exception):
    """Why the benchmark cannot run, in words (the command prints it without a traceback)."""


# Images ---------------------------------------------------------------------------------------


def xray_generated(rng: np.random.Generator, *, size: int) -> np.ndarray:
    """A chest-radiograph-like picture in [0, 1]: two lung fields, patchy opacities in some, film grain."""
    y, x = np.mgrid[0:size, 0:size] / size
    image = 0.15 + 0.04 * rng.standard_normal((size, size))
    for centre in (0.3, 0.7):
        image[((x - centre) / 0.16) ** 2 + ((y - 0.5) / 0.32) ** 2 < 1] += 0.35
    for _ in range(rng.integers(0, 4)):
        cx, cy = rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.7)
        image[((x - cx) / 0.08) ** 2 + ((y - cy) / 0.08) ** 2 < 1] += 0.4
    return np.clip(image, 0.0, 1.0)


def images_generated(*, count: int, size: int = 1024, seed: int = 0) -> list[tuple[str, bytes]]:
    """``count`` 8-bit grayscale PNGs of ``size`` pixels a side, as a scanner's export would be."""
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        buffer = io.BytesIO()
        Image.fromarray((xray_generated(rng, size=size) * 255).round().astype(np.uint8)).save(buffer, format="PNG")
        images.append((f"generated-{index:04d}.png", buffer.getvalue()))
    return images


def images_from_folder(folder: str | Path, *, count: int) -> list[tuple[str, bytes]]:
    """``count`` images taken in turn from the readable PNG, JPEG and DICOM files under ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        raise BenchmarkError(f"{root} is not a folder.")
    readable = []
    for path in sorted(p for p in root.rglob("*") if p.is_file())[:MAX_FOLDER_FILES]:
        data = path.read_bytes()
        if sniff_format(data[:132]) is None:
            continue
        try:
            decode_image(data, max_pixels=settings.SCAN_MAX_PIXELS)
        except ImageDecodeError:
            continue
        readable.append((path.name, data))
    if not readable:
        raise BenchmarkError(f"{root} holds no readable PNG, JPEG or DICOM image.")
    return [readable[index % len(readable)] for index in range(count)]


# Timing arithmetic ----------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    """Median and 95th percentile (linear interpolation), NaN when there are no values."""
    if not values:
        return {"median": float("nan"), "p95": float("nan")}
    return {"median": float(np.median(values)), "p95": float(np.percentile(values, 95))}


def batch_timings_read(log: str) -> list[dict]:
    """The worker's "Batch timings:" records, in the order it wrote them."""
    import json

    pattern = re.compile(re.escape(BATCH_TIMINGS) + r"(\{.*\})\s*$")
    return [json.loads(match.group(1)) for line in log.splitlines() if (match := pattern.search(line))]


def stages_per_scan(batches: list[dict], *, queue_wait_ms: dict[int, float]) -> dict[str, list[float]]:
    """Milliseconds per scan for every stage; a batch's network and database time is shared equally
    among the scans of that batch. Only the scans in ``queue_wait_ms`` are counted."""
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for batch in batches:
        ours = [scan_id for scan_id in batch["scans"] if scan_id in queue_wait_ms]
        if not ours:
            continue
        for stage in PER_BATCH_STAGES:
            share = batch["per_batch"].get(stage, 0.0) / len(batch["scans"])
            stages[stage] += [share] * len(ours)
        for scan_id in ours:
            own = batch["per_scan"].get(str(scan_id), {})
            for stage in PER_SCAN_STAGES:
                stages[stage].append(own.get(stage, 0.0))
            stages["queue_wait"].append(queue_wait_ms[scan_id])
    return stages


def headline(*, scans: int, seconds: float, network_per_second: float) -> dict[str, float]:
    """Scans per second end to end, and as a share of what the network alone does."""
    per_second = scans / seconds if seconds > 0 else float("nan")
    share = per_second / network_per_second if network_per_second > 0 else float("nan")
    return {"scans_per_second": per_second, "network_per_second": network_per_second, "share_of_network": share}


def throughput(run, images: np.ndarray, *, batch: int) -> float:
    """Images per second of ``run`` on batches of ``batch``, after one untimed call."""
    run(images[:batch])
    started = time.perf_counter()
    for start in range(0, len(images), batch):
        run(images[start : start + batch])
    return len(images) / (time.perf_counter() - started)


# The run --------------------------------------------------------------------------------------


def database_url() -> str:
    """A DATABASE_URL that points the worker process at the database this process uses."""
    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(config['NAME']).resolve()}"
    if connection.vendor != "mysql":
        raise BenchmarkError(f"The benchmark runs on SQLite or MySQL/MariaDB, not {connection.vendor}.")
    credentials = quote(config["USER"], safe="") + (
        f":{quote(config['PASSWORD'], safe='')}" if config["PASSWORD"] else ""
    )
    return f"mysql://{credentials}@{config['HOST'] or '127.0.0.1'}:{config['PORT'] or 3306}/{config['NAME']}"


def celery_worker_command(*, name: str, queues: str | None = None) -> list[str]:
    """One worker process as ``make worker`` runs it, without the cluster chatter a lone worker needs not."""
    command = [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "covidxray",
        "worker",
        "--loglevel=INFO",
        "--concurrency=1",
        "--pool=prefork",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        name,
    ]
    return [*command, "-Q", queues] if queues else command


class WorkerProcess:
    """A Celery worker (one process, as ``make worker`` starts) on this database, listening on ``queue``."""

    def __init__(self, *, queue: str, log_path: Path, environment: dict[str, str]):
        self.log_path = log_path
        env = os.environ | {
            "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
            "DATABASE_URL": database_url(),
            "PYTHONUNBUFFERED": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        command = celery_worker_command(name=f"{queue}@%h", queues=queue)
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=env | environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self._log.close()


@contextmanager
def diagnoses_routed_to(queue: str):
    """This process sends its diagnosis tasks to ``queue`` (and nowhere else) while inside."""
    from covidxray.celery import app

    routes = app.conf.task_routes
    app.conf.task_routes = {**(routes or {}), "diagnosis.tasks.diagnose_scans": {"queue": queue}}
    app.amqp.flush_routes()
    app.amqp.router = app.amqp.Router()
    try:
        yield
    finally:
        app.conf.task_routes = routes
        app.amqp.flush_routes()
        app.amqp.router = app.amqp.Router()
        with app.connection_for_write() as broker:
            broker.default_channel.queue_declare(queue, durable=True, auto_delete=False)
            broker.default_channel.queue_purge(queue)
            broker.default_channel.queue_delete(queue)


@dataclass
class BenchmarkResult:
    scans: int
    seconds: float
    upload_seconds: float
    outcomes: dict[str, int]
    stages: dict[str, dict[str, float]]
    latency: dict[str, float]
    network: dict[str, float]
    headline: dict[str, float]
    worker_log: Path
    batch_sizes: dict[str, float] = field(default_factory=dict)


def _wait_for(scan_ids: list[int], *, timeout: float, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + timeout
    while Scan.objects.filter(pk__in=scan_ids).exclude(status__in=FINAL).exists() or (
        Scan.objects.filter(pk__in=scan_ids, status=Scan.Status.DONE, heatmap="").exists()
    ):
        if worker.process.poll() is not None:
            raise BenchmarkError(f"The worker stopped (exit {worker.process.returncode}):\n{worker.log()[-3000:]}")
        if time.monotonic() > deadline:
            waiting = Scan.objects.filter(pk__in=scan_ids).exclude(status__in=FINAL).count()
            raise BenchmarkError(
                f"{waiting} of {len(scan_ids)} scans were not finished after {timeout:.0f} s; the worker's log "
                f"ends:\n{worker.log()[-3000:]}"
            )
        time.sleep(0.05)


def _upload(patient: Patient, uploaded_by, name: str, data: bytes) -> int:
    from diagnosis.services.scans import scan_create

    return scan_create(patient=patient, image=SimpleUploadedFile(name, data), uploaded_by=uploaded_by).pk


def _network_throughput(version, images: list[tuple[str, bytes]]) -> dict[str, float]:
    """The network alone (probabilities) and the worker's fused pass, both in batches of 8, in this process."""
    from mlcore.core.preprocessing import PreprocessingSpec, preprocess
    from mlcore.inference import predictor_for

    spec = PreprocessingSpec.from_stored(version.preprocessing)
    unique = list(dict.fromkeys(data for _, data in images))[:NETWORK_IMAGES]
    inputs = np.stack([preprocess(decode_image(data), spec) for data in unique])
    inputs = np.concatenate([inputs] * max(1, -(-NETWORK_IMAGES // len(inputs))))[:NETWORK_IMAGES]
    predictor = predictor_for(version)
    return {
        "probabilities": throughput(predictor.probabilities, inputs, batch=NETWORK_BATCH),
        "fused_read": throughput(predictor.read, inputs, batch=NETWORK_BATCH),
    }


def worker_benchmark_run(
    *,
    images: list[tuple[str, bytes]],
    timeout: float = 1800,
    worker_environment: dict[str, str] | None = None,
    log=print,
) -> BenchmarkResult:
    """Upload ``images`` as scans to a real worker of their own, time them to the last heatmap, clean up."""
    from accounts.models import User
    from diagnosis.services.patients import patient_create, patient_delete
    from mlcore.selectors import model_version_active

    version = model_version_active()
    if version is None:
        raise BenchmarkError(
            "No model version is active: train one (manage.py train_model) and activate it in the admin first."
        )
    if not images:
        raise BenchmarkError("No images to benchmark with.")
    others = Scan.objects.filter(status__in=(Scan.Status.PENDING, Scan.Status.PROCESSING)).count()
    if others:
        raise BenchmarkError(
            f"{others} patients' scans are waiting or being read: run the benchmark when the queue is empty, "
            "so that its worker reads only the benchmark's own scans."
        )
    tag = uuid.uuid4().hex[:12]
    queue = f"benchmark-{tag}"
    user = User.objects.create_user(
        email=f"benchmark-{tag}@benchmark.invalid", password=None, full_name="Worker benchmark", is_active=False
    )
    patient = patient_create(created_by=user, mrn=f"BENCHMARK-{tag}", full_name="Worker benchmark (generated)")
    folder = Path(tempfile.mkdtemp(prefix="benchmark-worker-"))
    worker = None
    try:
        with diagnoses_routed_to(queue):
            log(f"Starting a worker on queue {queue} and warming it up on one scan")
            worker = WorkerProcess(queue=queue, log_path=folder / "worker.log", environment=worker_environment or {})
            warm_up = _upload(patient, user, *images[0])
            _wait_for([warm_up], timeout=timeout, worker=worker)
            log(f"Uploading {len(images)} scans")
            started = time.perf_counter()
            scan_ids = [_upload(patient, user, name, data) for name, data in images]
            upload_seconds = time.perf_counter() - started
            _wait_for(scan_ids, timeout=timeout, worker=worker)
            seconds = time.perf_counter() - started
            worker.stop()
            batches = batch_timings_read(worker.log())
        rows = {
            row["pk"]: row
            for row in Scan.objects.filter(pk__in=scan_ids).values(
                "pk", "status", "queue_wait_ms", "total_ms", "batch_size"
            )
        }
        log("Measuring the network alone in this process")
        network = _network_throughput(version, images)
    finally:
        if worker is not None:
            worker.stop()
        patient_delete(patient=patient, deleted_by=user)
        user.delete()
    stages = stages_per_scan(batches, queue_wait_ms={pk: row["queue_wait_ms"] or 0.0 for pk, row in rows.items()})
    outcomes = {status: sum(1 for row in rows.values() if row["status"] == status) for status in FINAL}
    return BenchmarkResult(
        scans=len(scan_ids),
        seconds=seconds,
        upload_seconds=upload_seconds,
        outcomes=outcomes,
        stages={stage: summary(values) for stage, values in stages.items()},
        latency=summary([row["total_ms"] for row in rows.values() if row["total_ms"] is not None]),
        network=network,
        headline=headline(scans=len(scan_ids), seconds=seconds, network_per_second=network["probabilities"]),
        worker_log=folder / "worker.log",
        batch_sizes=summary([row["batch_size"] for row in rows.values() if row["batch_size"]]),
    )
