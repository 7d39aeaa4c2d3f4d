"""A database outage answers a clear 503 page, not a traceback, and the app recovers by itself."""

import urllib.error
import urllib.request

import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.test import Client

from tests.proxy import TcpProxy


@pytest.fixture
def unraising_client():
    """A test client that returns the error page, as a browser would see it, instead of raising."""
    return Client(raise_request_exception=False)


def test_a_database_error_answers_503_with_a_page_that_says_so(unraising_client, monkeypatch):
    def database_gone(*args, **kwargs):
        raise OperationalError(2006, "MySQL server has gone away")

    monkeypatch.setattr("django.contrib.sessions.backends.db.SessionStore.load", database_gone)
    unraising_client.cookies["sessionid"] = "a" * 32

    response = unraising_client.get("/patients/")

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    page = response.content.decode()
    assert "briefly unavailable" in page
    assert "Traceback" not in page
    assert "OperationalError" not in page


def test_any_other_error_answers_the_plain_500_page(unraising_client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("django.contrib.sessions.backends.db.SessionStore.load", broken)
    unraising_client.cookies["sessionid"] = "a" * 32

    response = unraising_client.get("/patients/")

    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()
    assert "a bug" not in response.content.decode()


def fetch(url: str, session_key: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={session_key}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.skipif(connection.vendor != "mysql", reason="cuts a real MariaDB connection")
@pytest.mark.django_db(transaction=True)
def test_mariadb_going_away_gives_503_and_the_app_recovers_when_it_is_back(live_server, client, doctor):
    """The live server handles requests as production does (connections checked at each request)."""
    client.force_login(doctor)
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    url = live_server.url + "/patients/"
    settings_dict = connection.settings_dict
    proxy = TcpProxy(settings_dict["HOST"] or "127.0.0.1", int(settings_dict["PORT"] or 3306)).start()
    saved = {key: settings_dict[key] for key in ("HOST", "PORT")}
    connection.close()
    settings_dict.update(HOST="127.0.0.1", PORT=str(proxy.port))
    try:
        assert fetch(url, session_key)[0] == 200

        proxy.stop()
        status, page = fetch(url, session_key)
        assert status == 503
        assert "briefly unavailable" in page
        assert "Traceback" not in page

        proxy.start()
        assert fetch(url, session_key)[0] == 200
    finally:
        proxy.stop()
        connection.close()
        settings_dict.update(saved)
