"""Settings modes: production passes Django's deployment check with nothing to report."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")} | env
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_mode_passes_check_deploy():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SETTINGS_MODULE="covidxray.settings.production",
        DJANGO_SECRET_KEY="prod-" + "k3y-Zq8w!Lm2#Rt6$Vx9" * 3,
        DJANGO_ALLOWED_HOSTS="xray.hospital.example",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_mode_refuses_to_start_without_a_secret_key():
    result = run_manage(
        "check",
        DJANGO_SETTINGS_MODULE="covidxray.settings.production",
        DJANGO_ALLOWED_HOSTS="xray.hospital.example",
    )

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_argon2_is_the_first_password_hasher_outside_tests():
    from covidxray.settings import base

    assert base.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")


def test_celery_broker_follows_redis_url():
    redis_url = os.environ.get("REDIS_URL")

    assert settings.CELERY_BROKER_URL == (redis_url or "filesystem://")


def xdist_worker_settings(worker: str, **env) -> dict:
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({'models': str(s.MODEL_STORE_DIR),"
        " 'media': str(s.MEDIA_ROOT), 'broker': s.CELERY_BROKER_TRANSPORT_OPTIONS}))"
    )
    result = run_manage(
        "shell", "-c", code, DJANGO_SETTINGS_MODULE="covidxray.settings.test", PYTEST_XDIST_WORKER=worker, **env
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_each_xdist_worker_has_stored_files_and_a_broker_of_its_own():
    """Two xdist workers (and the Celery workers their tests start) must not empty each other's folders or
    take or purge each other's tasks."""
    on_files = [xdist_worker_settings(worker, REDIS_URL="") for worker in ("gw0", "gw1")]
    on_redis = [xdist_worker_settings(worker, REDIS_URL="redis://127.0.0.1:6379/8") for worker in ("gw0", "gw1")]

    first, second = on_files
    assert first["models"] != second["models"]
    assert first["media"] != second["media"]
    assert Path(first["models"]).name == "test-models"
    assert Path(first["media"]).name == "test-media"
    assert first["broker"]["data_folder_in"] != second["broker"]["data_folder_in"]
    assert first["broker"]["control_folder"] != second["broker"]["control_folder"]
    assert [s["broker"]["global_keyprefix"] for s in on_redis] == ["gw0:", "gw1:"]


def test_the_training_queue_timeout_is_360_minutes_unless_the_environment_says_otherwise():
    code = "from django.conf import settings as s; print(s.TRAINING_QUEUE_TIMEOUT_SECONDS)"
    result = run_manage(
        "shell",
        "-c",
        code,
        DJANGO_SETTINGS_MODULE="covidxray.settings.test",
        COVIDXRAY_TRAINING_QUEUE_TIMEOUT_MINUTES="15",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == str(15 * 60)
    assert settings.TRAINING_QUEUE_TIMEOUT_SECONDS == 360 * 60


@pytest.mark.xdist_group("grouping-check")
def test_xdist_groups_reach_the_scheduler(request):
    """`--dist loadgroup` sends a group to one process through a suffix on the node id. With pytest 9.2 the
    suffix is silently lost (pytest-dev/pytest-xdist#1386): every group's fixtures were built in each process."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not run by pytest-xdist with --dist loadgroup")
    assert request.node.nodeid.endswith("@grouping-check")
