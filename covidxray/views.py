"""Site-wide views: the favicon, and error pages that must work when the database does not (they never
touch the request's user)."""

import sys

from django.contrib.auth.decorators import login_not_required
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponseServerError
from django.shortcuts import redirect
from django.template import loader
from django.templatetags.static import static
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_safe

from covidxray.caching import cacheable

DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 30
FAVICON_CACHE_SECONDS = 24 * 60 * 60


@login_not_required
@cacheable
@require_safe
def favicon(request) -> HttpResponse:
    """Pages that name no icon (the admin's) make browsers ask for /favicon.ico: it is the SVG in static/."""
    response = redirect(static("favicon.svg"))
    patch_cache_control(response, public=True, max_age=FAVICON_CACHE_SECONDS)
    return response


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
