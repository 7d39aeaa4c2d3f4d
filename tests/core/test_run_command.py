"""The README's run command: the web server, an inference and a training worker and the DICOM listener come up."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.embedded

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_procfile_serves_the_login_page_and_starts_a_worker(tmp_path):
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")} | {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
        "WEB_PORT": str(port),
        "PACS_PORT": str(free_port()),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONUNBUFFERED": "1",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, timeout=120)
    log_path = tmp_path / "honcho.log"
    with log_path.open("w") as log:
        honcho = subprocess.Popen(
            [str(bin_dir / "honcho"), "--procfile", "Procfile.dev", "start"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        page = wait_for_page(f"http://127.0.0.1:{port}/accounts/login/", timeout=90)
        deadline = time.monotonic() + 60
        while log_path.read_text().count(" ready.") < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)
        honcho.wait(timeout=30)

    output = log_path.read_text()
    assert "Sign in to CovidXray" in page
    assert "inference@" in output
    assert "training@" in output
    assert "DICOM listener COVIDXRAY on 127.0.0.1" in output
    assert output.count(" ready.") == 2, output


def wait_for_page(url: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
