"""Servers and workers started without DJANGO_SETTINGS_MODULE run the production settings, never DEBUG and the
repository's development key; manage.py (``make run``) keeps the local ones."""

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.core.test_run_command import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PRODUCTION_SECRETS = {
    "DJANGO_SECRET_KEY": "prod-" + "k3y-Zq8w!Lm2#Rt6$Vx9" * 3,
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
}
SHOW_SETTINGS = "from django.conf import settings; print(settings.SETTINGS_MODULE, settings.DEBUG)"
LOADS = {
    "wsgi": f"import covidxray.wsgi; {SHOW_SETTINGS}",
    "asgi": f"import covidxray.asgi; {SHOW_SETTINGS}",
    "celery": f"from covidxray.celery import app; app.loader.import_default_modules(); {SHOW_SETTINGS}",
}


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without any Django setting, as on a freshly provisioned server."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")} | extra


def run_python(code: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment(**extra), capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("entry_point", LOADS)
def test_an_entry_point_without_a_settings_module_refuses_to_start_without_a_secret_key(entry_point):
    result = run_python(LOADS[entry_point])

    assert result.returncode != 0
    assert "Set the DJANGO_SECRET_KEY environment variable" in result.stderr


@pytest.mark.parametrize("entry_point", LOADS)
def test_an_entry_point_without_a_settings_module_runs_production_settings(entry_point):
    result = run_python(LOADS[entry_point], **PRODUCTION_SECRETS)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["covidxray.settings.production", "False"]


def test_manage_py_keeps_the_local_settings_for_make_run():
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SHOW_SETTINGS],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["covidxray.settings.local", "True"]


def start_gunicorn(log_path: Path, port: int, **extra: str) -> subprocess.Popen:
    with log_path.open("w") as log:
        return subprocess.Popen(
            [str(BIN / "gunicorn"), "covidxray.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            cwd=ROOT,
            env=environment(**extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_gunicorn_without_a_settings_module_or_secret_key_does_not_start(tmp_path):
    log_path = tmp_path / "gunicorn.log"
    gunicorn = start_gunicorn(log_path, free_port())
    try:
        gunicorn.wait(timeout=90)
    finally:
        if gunicorn.poll() is None:
            os.killpg(gunicorn.pid, signal.SIGKILL)

    assert gunicorn.returncode != 0
    assert "Set the DJANGO_SECRET_KEY environment variable" in log_path.read_text()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_gunicorn_without_a_settings_module_serves_production_https_only(tmp_path):
    """Production redirects plain HTTP to HTTPS; the local settings would serve the page with DEBUG on."""
    port = free_port()
    gunicorn = start_gunicorn(tmp_path / "gunicorn.log", port, **PRODUCTION_SECRETS)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                response = opener.open(f"http://127.0.0.1:{port}/accounts/login/", timeout=10)
                break
            except urllib.error.HTTPError as answer:
                response = answer
                break
            except OSError:
                if time.monotonic() > deadline or gunicorn.poll() is not None:
                    raise AssertionError((tmp_path / "gunicorn.log").read_text()) from None
                time.sleep(0.5)
    finally:
        os.killpg(gunicorn.pid, signal.SIGTERM)
        gunicorn.wait(timeout=30)

    assert response.status == 301
    assert response.headers["Location"] == f"https://127.0.0.1:{port}/accounts/login/"
