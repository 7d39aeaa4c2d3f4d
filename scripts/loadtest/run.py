"""`make loadtest`: gunicorn, two Celery workers, MariaDB and Redis under simulated doctors (Locust).

Sets up a database of its own (LOADTEST_DATABASE_URL, default MariaDB on 127.0.0.1), a Redis database
of its own, doctors with patients and an active InceptionV3 version (random weights: the speed of a
reading does not depend on what the weights learned), starts the services, runs Locust headless for a
bounded time, waits for every uploaded scan to finish, and prints one report: per endpoint requests,
p50/p95 latency and errors, plus inference throughput. Everything it writes lies under var/loadtest/.

Environment: LOADTEST_USERS (20), LOADTEST_SPAWN_RATE (4/s), LOADTEST_DURATION (120s),
LOADTEST_WEB_WORKERS (4), LOADTEST_IMAGE_SIZE (299), LOADTEST_POLL_SECONDS (0.25), LOADTEST_IMAGES (a
folder of X-rays; default ../shared/data/cxr-dev if present, else generated images), LOADTEST_PORT (8765).
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "loadtest"
BIN = Path(sys.executable).parent
PASSWORD = "Load-Test-Doctor-2026!"
PATIENTS_PER_DOCTOR = 3


def settings_env() -> dict[str, str]:
    port = os.environ.get("LOADTEST_PORT", "8765")
    return os.environ | {
        "DJANGO_SETTINGS_MODULE": "covidxray.settings.local",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", secrets.token_urlsafe(40)),
        "DATABASE_URL": os.environ.get("LOADTEST_DATABASE_URL", "mysql://root@127.0.0.1:3306/covidxray_loadtest"),
        "REDIS_URL": os.environ.get("LOADTEST_REDIS_URL", "redis://127.0.0.1:6379/13"),
        "DJANGO_MEDIA_ROOT": str(OUT / "media"),
        "COVIDXRAY_MODEL_DIR": str(OUT / "models"),
        "DJANGO_STATIC_ROOT": str(OUT / "static"),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_CONN_MAX_AGE": "60",
        "COVIDXRAY_REQUEUE_INTERVAL_SECONDS": "30",
        "LOADTEST_PASSWORD": PASSWORD,
        "LOADTEST_PORT": port,
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def run(command: list[str], env: dict[str, str]) -> None:
    subprocess.run(command, cwd=ROOT, env=env, check=True)


def reset_database(env: dict[str, str]) -> None:
    """A database and a Redis database of the load test's own, emptied before each run."""
    import environ
    import redis

    config = environ.Env.db_url_config(env["DATABASE_URL"])
    if config["ENGINE"] == "django.db.backends.mysql":
        import MySQLdb

        connection = MySQLdb.connect(
            host=config["HOST"] or "127.0.0.1",
            port=int(config["PORT"] or 3306),
            user=config["USER"],
            password=config["PASSWORD"] or "",
        )
        cursor = connection.cursor()
        cursor.execute(f"DROP DATABASE IF EXISTS `{config['NAME']}`")
        cursor.execute(f"CREATE DATABASE `{config['NAME']}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        connection.close()
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()


def prepare_images() -> Path:
    """Real chest X-rays when the shared development set is there, else generated ones (never committed)."""
    target = OUT / "images"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    source = Path(os.environ.get("LOADTEST_IMAGES", ROOT.parent / "shared" / "data" / "cxr-dev"))
    found = sorted(source.rglob("*.png"))[::10][:40] if source.is_dir() else []
    if found:
        for index, path in enumerate(found):
            shutil.copy(path, target / f"xray-{index:02d}.png")
        return target
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(20):
        pixels = (rng.random((1024, 1024)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(target / f"generated-{index:02d}.png")
    return target


def start(name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
    log = (OUT / f"{name}.log").open("w")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wait_for_web(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/accounts/login/", timeout=5)
            return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"The web server did not answer at {url} (see {OUT}/web.log)")


def wait_for_workers(expected: int, timeout: float = 180) -> None:
    """Both workers must be consuming before doctors start (TensorFlow takes a while to import)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = [(OUT / f"worker-{number}.log").read_text() for number in range(1, expected + 1)]
        if all("ready." in log for log in logs):
            return
        time.sleep(2)
    raise SystemExit(f"The Celery workers did not start (see {OUT}/worker-*.log)")


def scan_outcome(env: dict[str, str], ids_file: Path, timeout: float) -> dict:
    """Every uploaded scan's end state and timings, once all have finished or the time is up."""
    script = str(ROOT / "scripts" / "loadtest" / "outcome.py")
    result = subprocess.run(
        [str(BIN / "python"), script, str(ids_file), str(timeout)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def endpoint_table(stats_csv: Path) -> list[str]:
    lines = [
        "| endpoint | requests | errors | p50 ms | p95 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    with stats_csv.open() as handle:
        for row in csv.DictReader(handle):
            name = row["Name"] if row["Name"] != "Aggregated" else "**all requests**"
            lines.append(f"| {name} | {row['Request Count']} | {row['Failure Count']} | {row['50%']} | {row['95%']} |")
    return lines


def percentile(values, q: int) -> float:
    """The q-th percentile (inclusive method: the 50th is the median) of the values that are set."""
    values = sorted(value for value in values if value is not None)
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> int:
    users = int(os.environ.get("LOADTEST_USERS", "20"))
    env = settings_env() | {
        "LOADTEST_DOCTORS": str(users),
        "LOADTEST_IMAGE_SIZE": os.environ.get("LOADTEST_IMAGE_SIZE", "299"),
    }
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    url = f"http://127.0.0.1:{env['LOADTEST_PORT']}"

    print("Preparing the database, Redis, static files, doctors, patients and a model version ...", flush=True)
    reset_database(env)
    python = str(BIN / "python")
    run([python, "manage.py", "migrate", "--noinput", "-v0"], env)
    run([python, "manage.py", "collectstatic", "--noinput", "-v0"], env)
    run([python, str(ROOT / "scripts" / "loadtest" / "seed.py")], env)
    env["LOADTEST_IMAGES"] = str(prepare_images())
    env["LOADTEST_UPLOADED_FILE"] = str(OUT / "uploaded.txt")

    web_workers = os.environ.get("LOADTEST_WEB_WORKERS", "4")
    processes = [
        start(
            "web",
            [str(BIN / "gunicorn"), "covidxray.wsgi", "-w", web_workers, "-b", url.removeprefix("http://")],
            env,
        ),
        *[
            start(
                f"worker-{number}",
                [str(BIN / "celery"), "-A", "covidxray", "worker", "-c", "1", "-n", f"load{number}@%h", "-l", "INFO"],
                env,
            )
            for number in (1, 2)
        ],
        start("beat", [str(BIN / "celery"), "-A", "covidxray", "beat", "-s", str(OUT / "beat-schedule")], env),
    ]
    try:
        wait_for_web(url)
        wait_for_workers(expected=2)
        duration = os.environ.get("LOADTEST_DURATION", "120s")
        print(f"Running {users} simulated doctors for {duration} against {url} ...", flush=True)
        subprocess.run(
            [
                str(BIN / "locust"),
                "-f",
                str(ROOT / "scripts" / "loadtest" / "locustfile.py"),
                "--headless",
                "--users",
                str(users),
                "--spawn-rate",
                os.environ.get("LOADTEST_SPAWN_RATE", "4"),
                "--run-time",
                duration,
                "--stop-timeout",
                "60",
                "--host",
                url,
                "--csv",
                str(OUT / "locust"),
                "--only-summary",
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            check=False,
        )
        print("Waiting for every uploaded scan to finish ...", flush=True)
        drain = float(os.environ.get("LOADTEST_DRAIN_SECONDS", "600"))
        outcome = scan_outcome(env, OUT / "uploaded.txt", timeout=drain)
    finally:
        stop(processes)

    throughput = outcome["done"] / outcome["seconds"] if outcome["seconds"] else float("nan")
    report = [
        f"# Load test: {users} simulated doctors, {os.environ.get('LOADTEST_DURATION', '120s')}, "
        f"gunicorn x{web_workers}, 2 Celery workers, {env['DATABASE_URL'].split('@')[-1]}, Redis",
        "",
        *endpoint_table(OUT / "locust_stats.csv"),
        "",
        f"- Scans uploaded: {outcome['uploaded']}; done: {outcome['done']}; failed: {outcome['failed']}; "
        f"never finished: {outcome['unfinished']}",
        f"- Inference throughput: {throughput:.2f} scans/s ({outcome['done']} scans between the first start "
        f"and the last finish, {outcome['seconds'] or 0:.0f} s)",
        f"- Upload to result and heatmap as the server records it (upload stored to result written): "
        f"p50 {percentile(outcome['total_ms'], 50):.0f} ms, p95 {percentile(outcome['total_ms'], 95):.0f} ms",
        f"- Per scan (median): network {percentile(outcome['network_ms'], 50):.0f} ms, queue wait "
        f"{percentile(outcome['queue_wait_ms'], 50):.0f} ms, batch size {percentile(outcome['batch_sizes'], 50):.0f}",
    ]
    text = "\n".join(report) + "\n"
    (OUT / "report.md").write_text(text)
    print(text)
    return 0 if outcome["unfinished"] == 0 and outcome["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
