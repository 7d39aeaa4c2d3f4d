"""The database holds a worker and a few doctors at once: no request fails while the worker writes results.

A real Celery worker diagnoses scans while doctors, each in a thread with a real session against the live
server, register colleagues, upload, poll, open scan pages and review. It runs on whichever database
DATABASE_URL names (CI: SQLite and MariaDB). On SQLite without WAL, immediate transactions and a busy
timeout, some of these requests answered 503 "database is locked" (500 before the 503 page existed).
"""

import itertools
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from accounts.models import User
from diagnosis.models import Patient, Review, Scan
from tests.conftest import DOCTOR_PASSWORD
from tests.diagnosis.conftest import xray_png
from tests.diagnosis.workers import Worker, purge_broker, wait_until

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

DOCTORS = 6
ROUNDS = 4
IMAGES_PER_UPLOAD = 4
RESULT_TIMEOUT = 300
_registrations = itertools.count(1)


class Doctor:
    """One doctor's browser: a requests session with its cookies; every answer goes into ``answers``."""

    def __init__(self, base_url: str, answers: list, lock: threading.Lock):
        self.base_url = base_url
        self.lock = lock
        self.session = requests.Session()
        self.answers = answers

    def request(self, method: str, name: str, path: str, *, expected: int, **options) -> requests.Response:
        response = self.session.request(method, self.base_url + path, allow_redirects=False, timeout=120, **options)
        with self.lock:
            self.answers.append((name, response.status_code, expected))
        return response

    def get(self, name: str, path: str, *, expected: int = 200, **options) -> requests.Response:
        return self.request("GET", name, path, expected=expected, **options)

    def post(self, name: str, path: str, data: dict, *, expected: int = 302, **options) -> requests.Response:
        data = data | {"csrfmiddlewaretoken": self.session.cookies.get("csrftoken", "")}
        return self.request("POST", name, path, data=data, expected=expected, **options)

    def register_a_colleague(self) -> None:
        """A colleague registers in a browser of their own (a signed-in doctor is sent to the worklist)."""
        colleague = Doctor(self.base_url, self.answers, self.lock)
        colleague.get("register page", "/accounts/register/")
        number = next(_registrations)
        colleague.post(
            "register",
            "/accounts/register/",
            {
                "full_name": f"Colleague {number}",
                "email": f"colleague-{number}@hospital.example",
                "licence_number": f"GMC-{number:07d}",
                "hospital": "St Mary's Hospital",
                "password1": "Lister-Antisepsis-1867",
                "password2": "Lister-Antisepsis-1867",
            },
        )

    def sign_in(self, email: str) -> None:
        self.get("login page", "/accounts/login/")
        self.post("sign in", "/accounts/login/", {"username": email, "password": DOCTOR_PASSWORD})

    def upload(self, patient_id: int, seed: int) -> list[int]:
        self.get("patient page", f"/patients/{patient_id}/")
        files = [
            ("images", (f"chest-{seed}-{n}.png", xray_png(seed=seed * 10 + n), "image/png"))
            for n in range(IMAGES_PER_UPLOAD)
        ]
        response = self.post(
            "upload",
            f"/patients/{patient_id}/upload/",
            {},
            files=files,
            headers={"X-Requested-With": "XMLHttpRequest"},
            expected=201,
        )
        return [scan["id"] for scan in response.json()["scans"]] if response.status_code == 201 else []

    def review_when_finished(self, scan_ids: list[int]) -> None:
        deadline = time.monotonic() + RESULT_TIMEOUT
        for scan_id in scan_ids:
            while time.monotonic() < deadline:
                status = self.get("status.json", f"/scans/{scan_id}/status.json")
                if status.status_code == 200 and status.json()["finished"]:
                    break
                time.sleep(0.5)
            self.get("scan page", f"/scans/{scan_id}/")
            self.post(
                "review",
                f"/scans/{scan_id}/review/",
                {"agrees_with_model": "no", "final_finding": "OTHER", "comment": "Checked on the ward."},
            )

    def work(self, email: str, patient_id: int) -> list[int]:
        """Sign in, then each round: register a colleague, upload, and review the previous round's scans."""
        self.sign_in(email)
        uploaded, previous = [], []
        for round_number in range(ROUNDS):
            self.register_a_colleague()
            latest = self.upload(patient_id, seed=patient_id * 100 + round_number)
            uploaded += latest
            self.review_when_finished(previous)
            previous = latest
        self.review_when_finished(previous)
        return uploaded


@pytest.fixture
def worker(tmp_path, make_version):
    make_version()
    purge_broker()
    started = Worker(tmp_path / "worker.log")
    yield started
    started.stop()


def test_doctors_register_upload_and_review_while_a_worker_writes_results(live_server, worker, make_doctor):
    doctors = [make_doctor(email=f"doctor-{n}@hospital.example") for n in range(DOCTORS)]
    patients = [
        Patient.objects.create(mrn=f"MRN-{n:04d}", full_name=f"Patient {n}", created_by=doctor)
        for n, doctor in enumerate(doctors)
    ]
    answers: list[tuple[str, int, int]] = []
    lock = threading.Lock()

    with ThreadPoolExecutor(max_workers=DOCTORS) as pool:
        futures = [
            pool.submit(Doctor(live_server.url, answers, lock).work, doctor.email, patient.pk)
            for doctor, patient in zip(doctors, patients, strict=True)
        ]
        uploaded = [scan_id for future in futures for scan_id in future.result()]

    unexpected = Counter((name, status) for name, status, expected in answers if status != expected)
    print(f"\n{len(answers)} requests, {sum(unexpected.values())} unexpected answers: {dict(unexpected)}")
    assert not unexpected, f"{len(answers)} requests; unexpected (endpoint, status): {dict(unexpected)}"
    assert len(uploaded) == DOCTORS * ROUNDS * IMAGES_PER_UPLOAD
    wait_until(
        lambda: Scan.objects.filter(status=Scan.Status.DONE).exclude(heatmap="").count() == len(uploaded),
        timeout=RESULT_TIMEOUT,
        explain=lambda: f"{Counter(Scan.objects.values_list('status', flat=True))}; {worker.log()[-3000:]}",
    )
    assert Review.objects.filter(scan_id__in=uploaded).count() == len(uploaded)
    assert User.objects.filter(email__startswith="colleague-", is_active=False).count() == DOCTORS * ROUNDS
