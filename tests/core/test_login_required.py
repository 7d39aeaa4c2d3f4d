"""Every page needs a signed-in user, except the few that let one sign in, and the favicon."""

import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

pytestmark = pytest.mark.django_db

PUBLIC_URL_NAMES = {
    "accounts:login",
    "accounts:register",
    "accounts:registration_pending",
    "accounts:password_reset",
    "accounts:password_reset_done",
    "accounts:password_reset_confirm",
    "accounts:password_reset_complete",
    "admin:login",
    # Browsers ask for it on every page, the sign-in pages included; it shows nothing private.
    "favicon",
}
# Endpoints for other systems: they authenticate with an API token (tests/interop), never a session.
TOKEN_URL_NAMES = {"interop:fhir_diagnostic_report", "interop:fhir_diagnostic_report_search"}
DUMMY_VALUES = {"int": "1", "str": "x", "slug": "x", "path": "x", "uuid": str(uuid.uuid4())}


def walk(patterns, prefix="", namespace=None):
    """Yield (name, concrete path, view) for every URL pattern, with dummy values for converters."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace])) or None
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            route = prefix + str(pattern.pattern)
            for converter, value in DUMMY_VALUES.items():
                route = _fill(route, converter, value)
            name = ":".join(filter(None, [namespace, pattern.name])) or route
            yield name, "/" + route.lstrip("^").rstrip("$"), pattern.callback


def _fill(route, converter, value):
    import re

    route = re.sub(rf"<{converter}:\w+>", value, route)
    if converter == "str":
        route = re.sub(r"<\w+>", value, route)
        route = re.sub(r"\(\?P<\w+>[^)]*\)", value, route)
    return route


ALL_PATTERNS = [entry for entry in walk(get_resolver().url_patterns) if "(?" not in entry[1]]


def test_the_walk_covers_the_app_and_the_admin():
    names = {name for name, _, _ in ALL_PATTERNS}
    assert {"home", "accounts:profile", "accounts:password_change", "admin:index"} <= names
    assert CUSTOM_ADMIN_PAGES <= names


# Admin pages a ModelAdmin adds by hand (get_urls), with the permission each one checks itself.
CUSTOM_ADMIN_PAGES = {
    "admin:diagnosis_scan_monitoring",
    "admin:mlcore_modelversion_card",
    "admin:mlcore_modelversion_membership",
}
STANDARD_ADMIN_SUFFIXES = ("_changelist", "_add", "_change", "_delete", "_history")
STANDARD_ADMIN_NAMES = {
    "admin:index",
    "admin:login",
    "admin:logout",
    "admin:password_change",
    "admin:password_change_done",
    "admin:autocomplete",
    "admin:jsi18n",
    "admin:view_on_site",
    "admin:app_list",
}


def test_every_custom_admin_page_is_listed_so_someone_decided_who_may_open_it():
    custom = {
        name
        for name, _, _ in ALL_PATTERNS
        if name.startswith("admin:")
        and name not in STANDARD_ADMIN_NAMES
        and not name.endswith(STANDARD_ADMIN_SUFFIXES)
    }
    assert custom == CUSTOM_ADMIN_PAGES


@pytest.mark.parametrize(
    ("name", "path"), [(name, path) for name, path, _ in ALL_PATTERNS if name in CUSTOM_ADMIN_PAGES]
)
def test_custom_admin_pages_refuse_doctors_and_staff_without_permissions(client, make_doctor, make_staff, name, path):
    client.force_login(make_doctor())
    doctor = client.get(path)
    client.force_login(make_staff())
    staff = client.get(path)

    assert doctor.status_code == 302, f"{name} ({path}) answered a doctor {doctor.status_code}"
    assert doctor["Location"].startswith(reverse("admin:login") + "?next=")
    assert staff.status_code == 403, f"{name} ({path}) answered staff without permissions {staff.status_code}"


def test_only_the_sign_in_pages_the_favicon_and_the_token_endpoints_skip_the_sign_in():
    public = {name for name, _, view in ALL_PATTERNS if not getattr(view, "login_required", True)}
    assert public == PUBLIC_URL_NAMES | TOKEN_URL_NAMES


@pytest.mark.parametrize(("name", "path"), [(name, path) for name, path, _ in ALL_PATTERNS if name in TOKEN_URL_NAMES])
def test_token_endpoints_refuse_anonymous_users_and_browser_sessions(client, staff_user, name, path):
    anonymous = client.get(path)
    client.force_login(staff_user)
    signed_in = client.get(path)

    for response in (anonymous, signed_in):
        assert response.status_code == 401, f"{name} ({path}) answered {response.status_code}"
        assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("name", "path"),
    [(name, path) for name, path, view in ALL_PATTERNS if getattr(view, "login_required", True)],
)
def test_anonymous_user_is_sent_to_sign_in(client, name, path):
    response = client.get(path)

    assert response.status_code == 302, f"{name} ({path}) answered {response.status_code}"
    assert response["Location"].startswith((reverse("accounts:login") + "?next=", reverse("admin:login") + "?next="))
