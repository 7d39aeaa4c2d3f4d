"""Real processes for the PACS tests: Debian's Orthanc with its own storage and ports, and CovidXray's listener."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from pynetdicom import AE
from pynetdicom.sop_class import Verification

from diagnosis.benchmarks import database_url
from tests.diagnosis.workers import ROOT, wait_until

ORTHANC_AE_TITLE = "ORTHANC"
LISTENER_AE_TITLE = "COVIDXRAY"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def dicom_echo(port: int, *, calling_ae_title: str = ORTHANC_AE_TITLE, called_ae_title: str = LISTENER_AE_TITLE):
    """ "echoed", "rejected" (the listener refused the association) or "unreachable"."""
    ae = AE(ae_title=calling_ae_title)
    ae.add_requested_context(Verification)
    association = ae.associate("127.0.0.1", port, ae_title=called_ae_title)
    if association.is_rejected:
        return "rejected"
    if not association.is_established:
        return "unreachable"
    status = association.send_c_echo()
    association.release()
    return "echoed" if getattr(status, "Status", None) == 0x0000 else "unreachable"


class Listener:
    """``manage.py dicom_listener`` on a free port, pointed at the test database like the suite's workers."""

    def __init__(self, log_path: Path, *, allowed: str = f"{ORTHANC_AE_TITLE},TESTSCU", **environment: str):
        self.port = free_port()
        self.log_path = log_path
        env = (
            {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
            | {
                "DJANGO_SETTINGS_MODULE": "covidxray.settings.test",
                "DATABASE_URL": database_url(),
                "PYTHONUNBUFFERED": "1",
                "COVIDXRAY_PACS_AE_TITLE": LISTENER_AE_TITLE,
                "COVIDXRAY_PACS_ALLOWED_AE_TITLES": allowed,
            }
            | environment
        )
        command = [sys.executable, "manage.py", "dicom_listener", "--bind", "127.0.0.1", "--port", str(self.port)]
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_until(self._answers, timeout=60, explain=self.log)

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"The listener exited: {self.log()}")
        return dicom_echo(self.port, calling_ae_title="TESTSCU") == "echoed"

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        _stop(self.process)
        self._log.close()


class Orthanc:
    """Debian's Orthanc, in a folder of its own, with CovidXray's listener as the modality "covidxray"."""

    def __init__(self, folder: Path, *, listener_port: int):
        self.folder = folder
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        storage = folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "CovidXray test PACS",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "DicomAet": ORTHANC_AE_TITLE,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [],
            "DicomModalities": {"covidxray": [LISTENER_AE_TITLE, "127.0.0.1", listener_port]},
            "DicomScuTimeout": 30,
            "OverwriteInstances": True,
        }
        self.config_path = folder / "orthanc.json"
        self.config_path.write_text(json.dumps(config))
        self.log_path = folder / "orthanc.log"
        self.process = None
        self.start()

    @staticmethod
    def binary() -> str:
        found = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
        if not Path(found).exists():
            raise AssertionError("Orthanc is missing: scripts/system-packages.sh test installs it.")
        return found

    def start(self) -> None:
        self._log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [self.binary(), str(self.config_path)], stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_until(self._answers, timeout=60, explain=lambda: self.log_path.read_text())

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"Orthanc exited: {self.log_path.read_text()}")
        try:
            self.get("/system")
        except OSError:
            return False
        return True

    def stop(self) -> None:
        _stop(self.process)
        self._log.close()

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"):
        request = urllib.request.Request(
            self.url + path, data=body, method=method, headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            payload = response.read()
        return json.loads(payload) if payload and payload[:1] in b"[{" else payload

    def get(self, path: str):
        return self.request("GET", path)

    def upload(self, dicom: bytes) -> dict:
        """Store an instance through the REST API; returns Orthanc's answer (its ID, ParentStudy...)."""
        return self.request("POST", "/instances", dicom, "application/dicom")

    def store_to_covidxray(self, instance_id: str) -> dict:
        """Ask Orthanc to C-STORE one instance to CovidXray's listener, as a PACS routing rule would."""
        body = json.dumps({"Resources": [instance_id], "Synchronous": True}).encode()
        return self.request("POST", "/modalities/covidxray/store", body)

    def study_instances(self, study_instance_uid: str) -> list[dict]:
        """Every instance of the study with its tags (SOPClassUID, SeriesDescription...)."""
        found = self.request("POST", "/tools/lookup", study_instance_uid.encode(), "text/plain")
        studies = [item["ID"] for item in found if item["Type"] == "Study"]
        if not studies:
            return []
        return [
            self.get(f"/instances/{instance['ID']}/simplified-tags") | {"ID": instance["ID"]}
            for instance in self.get(f"/studies/{studies[0]}/instances")
        ]

    def instance_file(self, instance_id: str) -> bytes:
        return self.request("GET", f"/instances/{instance_id}/file")


def store_error(orthanc: Orthanc, instance_id: str) -> str:
    """What Orthanc answers when CovidXray refused the instance (an HTTP error with Orthanc's details)."""
    try:
        orthanc.store_to_covidxray(instance_id)
    except urllib.error.HTTPError as error:
        return error.read().decode(errors="replace")
    return ""
