"""Sign-in throttling counts failures per account *and* client computer, tried two ways: clients that
reach the app directly, and clients behind a real nginx that the deployment declares (one proxy).

Each client is a separate computer with its own address; the attacker also forges X-Forwarded-For,
which must change nothing: directly it is ignored, behind nginx the app trusts only the hop nginx added.
"""

from functools import partial
from urllib.parse import urlsplit

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse

from tests.conftest import DOCTOR_PASSWORD
from tests.nginx import Computer, Nginx

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN_URL = reverse("accounts:login")
ADMIN_LOGIN_URL = reverse("admin:login")
WRONG_PASSWORD = "guess-1234567"
ATTACKER = "127.0.0.2"
VICTIM = "127.0.0.3"


class DirectComputer:
    """Django's test client, arriving from its own socket address."""

    def __init__(self, address: str):
        self.client = Client(REMOTE_ADDR=address)

    def post(self, path: str, data: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, str]:
        response = self.client.post(path, data, headers=headers)
        return response.status_code, response.content.decode()


@pytest.fixture(params=["direct", "behind nginx"])
def computer_at(request, settings, tmp_path):
    """Makes a client computer at a given address, reaching the app directly or through nginx."""
    if request.param == "direct":
        settings.TRUSTED_PROXY_COUNT = 0
        yield DirectComputer
        return
    live_server = request.getfixturevalue("live_server")
    settings.TRUSTED_PROXY_COUNT = 1
    nginx = Nginx(tmp_path, upstream_port=urlsplit(live_server.url).port)
    yield partial(Computer, nginx.port)
    nginx.stop()


def sign_in(computer, email, password=DOCTOR_PASSWORD, *, url=LOGIN_URL, forged_address=None) -> int:
    headers = {"X-Forwarded-For": forged_address} if forged_address else None
    status, _page = computer.post(url, {"username": email, "password": password}, headers=headers)
    return status


def test_five_wrong_passwords_lock_that_account_only_from_that_computer(computer_at, make_doctor, settings):
    victim = make_doctor(email="victim@hospital.example")
    colleague = make_doctor(email="colleague@hospital.example")
    attacker = computer_at(ATTACKER)

    guesses = [
        sign_in(attacker, victim.email, WRONG_PASSWORD, forged_address=f"198.51.100.{n}")
        for n in range(settings.AXES_FAILURE_LIMIT)
    ]

    assert guesses == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    assert sign_in(attacker, victim.email, forged_address=VICTIM) == 429
    assert sign_in(computer_at(ATTACKER), colleague.email) == 302
    assert sign_in(computer_at(VICTIM), victim.email) == 302
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}


def test_nobody_else_can_lock_an_admin_out(computer_at, staff_user, settings):
    attacker = computer_at(ATTACKER)
    guesses = [
        sign_in(attacker, staff_user.email, WRONG_PASSWORD, url=ADMIN_LOGIN_URL, forged_address=VICTIM)
        for _ in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert guesses[-1] == 429

    assert sign_in(computer_at(VICTIM), staff_user.email, url=ADMIN_LOGIN_URL) == 302


def test_signing_in_as_oneself_does_not_clear_failures_against_another_account(computer_at, make_doctor, settings):
    """The reported attack: an approved doctor guesses four times, signs in as themselves, repeats."""
    victim = make_doctor(email="victim@hospital.example")
    insider = make_doctor(email="insider@hospital.example")
    desk = computer_at(ATTACKER)
    guesses = []
    for _round in range(3):
        guesses += [sign_in(desk, victim.email, WRONG_PASSWORD) for _ in range(settings.AXES_FAILURE_LIMIT - 1)]
        assert sign_in(desk, insider.email) == 302
        desk.post(reverse("accounts:logout"), {})

    assert guesses[: settings.AXES_FAILURE_LIMIT] == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    assert sign_in(desk, victim.email) == 429
