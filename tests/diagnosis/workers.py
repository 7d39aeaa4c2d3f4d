"""Start and stop real Celery worker processes on the test database and the configured broker."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from diagnosis.benchmarks import celery_worker_command, database_url

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    def __init__(self, log_path: Path, *, beat: bool = False, queues: str | None = None, **environment: str):
        self.log_path = log_path
        env = (
            {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
            | {
                "DJANGO_SETTINGS_MODULE": "covidxray.settings.test",
                "DATABASE_URL": database_url(),
                "PYTHONUNBUFFERED": "1",
                "TF_CPP_MIN_LOG_LEVEL": "2",
            }
            | environment
        )
        command = celery_worker_command(name=f"test-{uuid.uuid4().hex[:8]}@%h", queues=queues)
        if beat:
            command += ["--beat", "--schedule", str(log_path.with_suffix(".beat"))]
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as a crash or the OOM killer would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self._log.close()


def purge_broker() -> None:
    """Empty the inference and the training queue of tasks an earlier test left behind."""
    from covidxray.celery import app
    from mlcore.tasks import TRAINING_QUEUE

    app.control.purge()
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        channel.queue_declare(TRAINING_QUEUE, durable=True, auto_delete=False)
        channel.queue_purge(TRAINING_QUEUE)


def wait_until(condition, *, timeout: float, interval: float = 0.25, explain=lambda: "") -> None:
    """Poll until the condition holds; on time-out, fail with what ``explain()`` says then."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout:.0f} s: {explain()}")
        time.sleep(interval)
