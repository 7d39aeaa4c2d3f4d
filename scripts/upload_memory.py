"""Peak memory of the web process for hostile uploads: deflated DICOMs, multi-frame DICOMs, pixel bombs.

    .venv/bin/python scripts/upload_memory.py

Each case runs in a fresh Python process that signs a doctor in (Django's test client, the test settings,
a throw-away SQLite database), sends one request to the dicom-header or upload endpoint, and reports how
far the request raised the process's resident memory (VmHWM after minus VmRSS before, Linux) and the
answer. The process is capped at 8 GB of address space, so a case that would take more fails with a
MemoryError instead of the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADDRESS_SPACE_LIMIT = 8 * 1024**3

# case: (endpoint, files)
CASES = {
    "deflated DICOM bomb -> dicom-header": ("header", ["deflated.dcm"]),
    "deflated DICOM bomb -> upload": ("upload", ["deflated.dcm"]),
    "deflated 50-frame DICOM -> upload": ("upload", ["multiframe.dcm"]),
    "6 MP RGB PNG (22 KB) -> upload": ("upload", ["flat.png"]),
    "6 MP RGB JPEG -> upload": ("upload", ["flat.jpg"]),
    "40 x 6 MP RGB PNG in one request -> upload": ("upload", ["flat.png"] * 40),
}


def write_files(folder: Path) -> None:
    from tests.mlcore.bombs import deflated_dicom_bomb, deflated_multiframe_bomb, flat_raster

    (folder / "deflated.dcm").write_bytes(deflated_dicom_bomb())
    (folder / "multiframe.dcm").write_bytes(deflated_multiframe_bomb())
    (folder / "flat.png").write_bytes(flat_raster(kind="PNG"))
    (folder / "flat.jpg").write_bytes(flat_raster(kind="JPEG"))


def memory_kib() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def child(endpoint: str, paths: list[str]) -> None:
    """One request in this process; prints one JSON line."""
    import gc
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client
    from django.urls import reverse

    from accounts.models import User
    from diagnosis.models import Patient, Scan
    from tests.mlcore.bombs import flat_raster

    doctor = User.objects.create_user(
        email=f"memory-{os.getpid()}@hospital.example", full_name="Memory Test", is_active=True
    )
    patient = Patient.objects.create(mrn=f"MEM-{os.getpid()}", full_name="Memory Test", created_by=doctor)
    client = Client()
    client.force_login(doctor)
    small = SimpleUploadedFile("warm.png", flat_raster(size=(64, 64)), content_type="image/png")
    client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": [small]})  # imports, caches
    files = [SimpleUploadedFile(Path(p).name, Path(p).read_bytes()) for p in paths]
    gc.collect()
    before = memory_kib()["VmRSS"]
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM restarts from the resident size now
    try:
        if endpoint == "header":
            response = client.post(reverse("diagnosis:dicom_header", args=[patient.pk]), {"header": files[0]})
        else:
            response = client.post(
                reverse("diagnosis:scan_upload", args=[patient.pk]),
                {"images": files},
                headers={"accept": "application/json"},
            )
        answer = f"{response.status_code} {response.get('Location', '')}{response.content.decode()[:160]}"
    except MemoryError:
        answer = f"MemoryError (address space capped at {ADDRESS_SPACE_LIMIT // 1024**3} GB)"
    peak = memory_kib()["VmHWM"]
    for scan in Scan.objects.all():
        scan.image.delete(save=False)
    print(json.dumps({"before_mb": before / 1024, "peak_mb": peak / 1024, "answer": answer}))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="covidxray-memory-") as work:
        folder = Path(work)
        write_files(folder)
        env = os.environ | {
            "DJANGO_SETTINGS_MODULE": "covidxray.settings.test",
            "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
            "CELERY_BROKER_URL": "memory://",
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "PYTHONPATH": str(ROOT),
        }
        python = sys.executable
        subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        print(f"{'case':<45} {'file':>9} {'peak rise':>10} {'peak RSS':>9}  answer")
        for case, (endpoint, names) in CASES.items():
            paths = [str(folder / name) for name in names]
            size = sum(Path(p).stat().st_size for p in paths)
            result = subprocess.run(
                [python, __file__, "--child", endpoint, *paths], cwd=ROOT, env=env, capture_output=True, text=True
            )
            lines = result.stdout.strip().splitlines()
            if result.returncode or not lines:
                print(f"{case:<45} {size / 1024:>6.0f} KB  died (exit {result.returncode}): {result.stderr[-300:]}")
                continue
            figures = json.loads(lines[-1])
            rise = figures["peak_mb"] - figures["before_mb"]
            print(
                f"{case:<45} {size / 1024:>6.0f} KB {rise:>7.0f} MB {figures['peak_mb']:>6.0f} MB  {figures['answer']}"
            )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3:])
    else:
        main()
