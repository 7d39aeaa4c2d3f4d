"""Error pages that must work when the database does not: they never touch the request's user."""

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponseServerError
from django.template import loader

DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 30


def server_error(request, template_name: str = "500.html") -> HttpResponse:
    """Django's handler500, except that a database outage answers 503 with a page saying so.

    Called while the exception is being handled, so ``sys.exc_info()`` tells which it was. The pages are
    rendered without the request (no user, no session), which would each need the database again.
    """
    error = sys.exc_info()[1]
    if isinstance(error, DATABASE_UNAVAILABLE):
        response = HttpResponse(loader.render_to_string("503.html"), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response["Cache-Control"] = "no-store"
        return response
    return HttpResponseServerError(loader.render_to_string(template_name))
