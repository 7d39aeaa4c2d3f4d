"""Round-trip time from Orthanc's C-STORE to CovidXray until the SR is back in Orthanc, with one worker.

Sets up a database, media and model folder of its own under var/pacs-roundtrip/ (SQLite unless
ROUNDTRIP_DATABASE_URL), an active InceptionV3 version with random weights at ROUNDTRIP_IMAGE_SIZE (299),
Debian's Orthanc, the DICOM listener and one Celery worker (Redis at ROUNDTRIP_REDIS_URL, default
redis://127.0.0.1:6379/6). Each of ROUNDTRIP_COUNT (20) DX images, generated in a study of its own, is
stored in Orthanc over REST (not timed); the clock runs from the request asking Orthanc to send it to
CovidXray until the SR appears in that study in Orthanc. One warm-up round trip (model loading) is not
counted. Prints the figures and writes var/pacs-roundtrip/report.md.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import pydicom  # noqa: E402

from tests.diagnosis.workers import wait_until  # noqa: E402
from tests.pacs.dicom import radiograph_dicom  # noqa: E402
from tests.pacs.processes import LISTENER_AE_TITLE, ORTHANC_AE_TITLE, Orthanc, dicom_echo, free_port  # noqa: E402

OUT = ROOT / "var" / "pacs-roundtrip"
SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.33"


def settings_env(listener_port: int, orthanc_port: int) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")} | {
        "DJANGO_SETTINGS_MODULE": "covidxray.settings.local",
        "DATABASE_URL": os.environ.get("ROUNDTRIP_DATABASE_URL", f"sqlite:///{OUT / 'db.sqlite3'}"),
        "REDIS_URL": os.environ.get("ROUNDTRIP_REDIS_URL", "redis://127.0.0.1:6379/6"),
        "DJANGO_MEDIA_ROOT": str(OUT / "media"),
        "COVIDXRAY_MODEL_DIR": str(OUT / "models"),
        "COVIDXRAY_PACS_AE_TITLE": LISTENER_AE_TITLE,
        "COVIDXRAY_PACS_PORT": str(listener_port),
        "COVIDXRAY_PACS_BIND_ADDRESS": "127.0.0.1",
        "COVIDXRAY_PACS_ALLOWED_AE_TITLES": ORTHANC_AE_TITLE,
        "COVIDXRAY_PACS_DESTINATION_HOST": "127.0.0.1",
        "COVIDXRAY_PACS_DESTINATION_PORT": str(orthanc_port),
        "COVIDXRAY_PACS_DESTINATION_AE_TITLE": ORTHANC_AE_TITLE,
        "ROUNDTRIP_IMAGE_SIZE": os.environ.get("ROUNDTRIP_IMAGE_SIZE", "299"),
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def start(command: list[str], env: dict[str, str], log: str) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=(OUT / log).open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def sr_is_back(orthanc: Orthanc, study_instance_uid: str) -> bool:
    return any(instance["SOPClassUID"] == SR_STORAGE for instance in orthanc.study_instances(study_instance_uid))


def round_trip(orthanc: Orthanc, seed: int, timeout: float = 600) -> float:
    xray = radiograph_dicom(patient_id=f"RT-{seed:04d}", seed=seed, size=512)
    study_instance_uid = pydicom.dcmread(io.BytesIO(xray), stop_before_pixels=True).StudyInstanceUID
    stored = orthanc.upload(xray)
    started = time.perf_counter()
    orthanc.store_to_covidxray(stored["ID"])
    while not sr_is_back(orthanc, study_instance_uid):
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"No SR in study {study_instance_uid} after {timeout:.0f} s; see {OUT}")
        time.sleep(0.05)
    return time.perf_counter() - started


def main() -> None:
    count = int(os.environ.get("ROUNDTRIP_COUNT", "20"))
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    listener_port = free_port()
    orthanc = Orthanc(OUT / "orthanc", listener_port=listener_port)
    env = settings_env(listener_port, orthanc.dicom_port)
    bin_dir = Path(sys.executable).parent
    processes = []
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run([sys.executable, "scripts/pacs_roundtrip/seed.py"], cwd=ROOT, env=env, check=True)
        subprocess.run([str(bin_dir / "celery"), "-A", "covidxray", "purge", "-f"], cwd=ROOT, env=env, check=True)
        processes.append(start([sys.executable, "manage.py", "dicom_listener"], env, "listener.log"))
        processes.append(
            start(
                [str(bin_dir / "celery"), "-A", "covidxray", "worker", "--concurrency=1", "--loglevel=INFO"],
                env,
                "worker.log",
            )
        )
        wait_until(lambda: dicom_echo(listener_port) == "echoed", timeout=120, explain=lambda: "listener")
        wait_until(lambda: " ready." in (OUT / "worker.log").read_text(), timeout=120, explain=lambda: "worker")
        print(f"warm-up: {round_trip(orthanc, seed=0):.2f} s (not counted)")
        times = []
        for seed in range(1, count + 1):
            times.append(round_trip(orthanc, seed=seed))
            print(f"{seed:2d}: {times[-1]:.2f} s")
    finally:
        for process in processes:
            stop(process)
        orthanc.stop()
    quantiles = statistics.quantiles(times, n=10)
    report = (
        f"PACS round trip (Orthanc C-STORE to SR back in Orthanc), {count} images, one worker, "
        f"InceptionV3 at {env['ROUNDTRIP_IMAGE_SIZE']} px, 512x512 DX:\n\n"
        f"median {statistics.median(times):.2f} s, p90 {quantiles[-1]:.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s\n"
    )
    (OUT / "report.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
