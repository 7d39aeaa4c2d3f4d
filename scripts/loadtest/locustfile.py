"""Simulated doctors for `make loadtest`: sign in, read the worklist and patient pages, upload, poll.

Each simulated doctor is one of the accounts scripts/loadtest/run.py created (LOADTEST_DOCTORS,
password LOADTEST_PASSWORD) and works on their own patient. Requests are named by endpoint, not by
URL, so the report has one line per endpoint.
"""

import itertools
import os
import random
import re
import time
from pathlib import Path

from locust import HttpUser, between, events, task

DOCTORS = int(os.environ.get("LOADTEST_DOCTORS", "20"))
PASSWORD = os.environ["LOADTEST_PASSWORD"]
IMAGES = sorted(Path(os.environ["LOADTEST_IMAGES"]).glob("*"))
RESULT_TIMEOUT = float(os.environ.get("LOADTEST_RESULT_TIMEOUT", "300"))
# Fine enough that the measured latency is the worker's, not the polling's (a 1 s poll rounds every
# result up to the next whole second).
POLL_SECONDS = float(os.environ.get("LOADTEST_POLL_SECONDS", "0.25"))
_numbers = itertools.count(1)
UPLOADED: list[int] = []
SCAN_URL = re.compile(r"/scans/(\d+)/$")


def csrf_token(response) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text)
    if not match:
        raise RuntimeError(f"No CSRF token on {response.url}")
    return match.group(1)


class Doctor(HttpUser):
    wait_time = between(1, 3)

    def on_start(self):
        number = (next(_numbers) - 1) % DOCTORS + 1
        self.email = f"loadtest-doctor-{number}@hospital.example"
        login = self.client.get("/accounts/login/", name="login page")
        response = self.client.post(
            "/accounts/login/",
            {"username": self.email, "password": PASSWORD, "csrfmiddlewaretoken": csrf_token(login)},
            name="sign in",
            allow_redirects=False,
        )
        if response.status_code != 302:
            raise RuntimeError(f"{self.email} could not sign in: {response.status_code}")
        patients = self.client.get("/patients/", name="patient list")
        self.patient_ids = [int(pk) for pk in re.findall(r'href="/patients/(\d+)/"', patients.text)]
        if not self.patient_ids:
            raise RuntimeError(f"{self.email} sees no patient")

    @task(4)
    def worklist(self):
        self.client.get("/", name="worklist")

    @task(2)
    def patient_list(self):
        self.client.get("/patients/", name="patient list")

    @task(3)
    def patient_page(self):
        self.client.get(f"/patients/{random.choice(self.patient_ids)}/", name="patient page")

    @task(2)
    def upload_and_wait_for_the_result(self):
        patient = random.choice(self.patient_ids)
        page = self.client.get(f"/patients/{patient}/upload/", name="upload page")
        image = random.choice(IMAGES)
        started = time.monotonic()
        with image.open("rb") as handle:
            response = self.client.post(
                f"/patients/{patient}/upload/",
                data={"csrfmiddlewaretoken": csrf_token(page), "view": "PA"},
                files={"images": (image.name, handle, "application/octet-stream")},
                name="upload",
                allow_redirects=False,
            )
        match = SCAN_URL.search(response.headers.get("Location", ""))
        if response.status_code != 302 or not match:
            return
        scan_id = int(match.group(1))
        UPLOADED.append(scan_id)
        self.client.get(f"/scans/{scan_id}/", name="scan page")
        while time.monotonic() - started < RESULT_TIMEOUT:
            status = self.client.get(f"/scans/{scan_id}/status.json", name="scan status poll").json()
            if status["finished"]:
                events.request.fire(
                    request_type="RESULT",
                    name="upload to result and heatmap",
                    response_time=(time.monotonic() - started) * 1000,
                    response_length=0,
                    exception=None if status["status"] == "done" else RuntimeError(status["message"]),
                    context={},
                )
                return
            time.sleep(POLL_SECONDS)


@events.quitting.add_listener
def write_uploaded_ids(environment, **kwargs):
    """The runner checks afterwards that every one of these scans reached done."""
    target = os.environ.get("LOADTEST_UPLOADED_FILE")
    if target:
        Path(target).write_text("\n".join(map(str, UPLOADED)))
