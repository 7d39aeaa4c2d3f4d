"""No browser or proxy keeps a copy of a page or JSON answer: patient data must not outlive the session on
a shared ward computer (disk cache, back button). One middleware (covidxray/caching.py) marks every response;
this walk finds every route, so a page added later is covered without being listed here."""

import pytest
from django.test import Client

from covidxray.caching import NoStoreMiddleware
from tests.core.test_login_required import ALL_PATTERNS

pytestmark = pytest.mark.django_db

# Views allowed to be cached, because they show nothing private.
CACHEABLE_URL_NAMES = {"favicon"}


def test_only_the_favicon_may_be_cached():
    cacheable = {name for name, _, view in ALL_PATTERNS if getattr(view, "cacheable", False)}

    assert cacheable == CACHEABLE_URL_NAMES


@pytest.mark.parametrize(
    ("name", "path"), [(name, path) for name, path, _view in ALL_PATTERNS if name not in CACHEABLE_URL_NAMES]
)
@pytest.mark.parametrize("who", ["anonymous", "staff"])
def test_every_answer_is_no_store(staff_user, name, path, who):
    client = Client()
    if who == "staff":
        client.force_login(staff_user)

    response = client.get(path)

    assert "no-store" in response.get("Cache-Control", ""), f"{name} ({path}) answered {response.status_code}"


def test_a_view_that_asked_for_caching_of_patient_data_gets_no_store_anyway(rf):
    """A view's own max-age (a plot of patients' radiographs once had one) cannot outlast the rule."""
    from django.http import HttpResponse

    def view(request):
        response = HttpResponse("radiographs")
        response["Cache-Control"] = "private, max-age=3600"
        return response

    middleware = NoStoreMiddleware(view)
    request = rf.get("/")
    middleware.process_view(request, view, (), {})

    cache_control = middleware(request)["Cache-Control"]

    assert "no-store" in cache_control
    assert "max-age=0" in cache_control


def test_static_files_keep_their_own_caching(client):
    from django.templatetags.static import static

    response = client.get(static("css/app.css"))

    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
