"""The address of the client that sent a request: one definition for sign-in throttling (django-axes)
and the audit log, so both name the same computer.

Each reverse proxy appends the address it received the request from to ``X-Forwarded-For``. Behind
``TRUSTED_PROXY_COUNT`` declared proxies the client is the entry the outermost one appended, that many
places from the right; whatever the client wrote itself further left is ignored, so it cannot choose
its address. With no declared proxy the header is ignored and the socket's peer is the client.
"""

from django.conf import settings
from django.http import HttpRequest
from ipware import get_client_ip


def client_address(request: HttpRequest) -> str | None:
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        # django-ipware counts the proxies named in the header; the innermost one is the socket's peer.
        address, _routable = get_client_ip(
            request,
            proxy_count=proxies - 1,
            request_header_order=["HTTP_X_FORWARDED_FOR"],
            strict=False,
        )
        if address:
            return address
    return request.META.get("REMOTE_ADDR")
