"""The client's address: the socket's peer, or behind declared proxies the hop the outermost one added;
the sign-in throttle (django-axes) and the audit log get the same answer."""

import pytest
from axes.helpers import get_client_ip_address
from django.test import RequestFactory

from covidxray.client_address import client_address


def request_from(remote_addr, forwarded_for=None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote_addr, headers=headers)


@pytest.mark.parametrize(
    ("proxies", "remote_addr", "forwarded_for", "client"),
    [
        # Direct: a forged header is ignored.
        (0, "192.0.2.10", "203.0.113.99", "192.0.2.10"),
        # One proxy (nginx appends its peer): whatever the client wrote to the left is ignored.
        (1, "127.0.0.1", "192.0.2.10", "192.0.2.10"),
        (1, "127.0.0.1", "203.0.113.99, 192.0.2.10", "192.0.2.10"),
        (1, "127.0.0.1", "not-an-address, 192.0.2.10", "192.0.2.10"),
        # A proxy on a public address with a client on the hospital's private network.
        (1, "81.2.69.160", "10.20.30.40", "10.20.30.40"),
        # Two proxies: the outer one appended the client, the inner one the outer proxy.
        (2, "127.0.0.1", "203.0.113.99, 192.0.2.10, 10.0.0.7", "192.0.2.10"),
        # Fewer hops than declared (the outer proxy was bypassed): the nearest peer, not a forgeable entry.
        (2, "10.0.0.7", "192.0.2.10", "10.0.0.7"),
        (1, "10.0.0.7", None, "10.0.0.7"),
    ],
)
def test_client_address(settings, proxies, remote_addr, forwarded_for, client):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = request_from(remote_addr, forwarded_for)

    assert client_address(request) == client
    assert get_client_ip_address(request) == client
