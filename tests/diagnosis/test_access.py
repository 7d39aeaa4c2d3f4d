"""Every diagnosis URL, for every role: another doctor's patient is a 404 everywhere, whatever the method,
for a doctor and for a staff account without permissions alike; a staff account with only
diagnosis.view_patient reads every page of it and changes nothing.

The routes are found by walking the URL configuration, so a page added later is covered without being
listed here; only a new kind of URL parameter needs a decision (see VALUE_FOR).
"""

import pytest
from auditlog.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import get_resolver, resolve, reverse

from diagnosis.models import Patient, Review, Scan
from diagnosis.services.scans import scan_review
from tests.core.test_login_required import walk
from tests.diagnosis.conftest import xray_png

pytestmark = pytest.mark.django_db

MISSING_PK = 987654
OBJECT_PREFIXES = {"patients/": "patient", "scans/": "scan"}
# What each URL parameter stands for; a route with any other parameter fails the walk until it is added.
VALUE_FOR = {"pk", "kind", "doctor_pk"}
IMAGE_KINDS = ("preview", "heatmap")
KNOWN_NAMES = {
    "patient_list",
    "patient_create",
    "patient_detail",
    "patient_update",
    "patient_delete",
    "patient_share",
    "patient_unshare",
    "scan_upload",
    "dicom_header",
    "scan_detail",
    "scan_delete",
    "scan_review",
    "scan_report",
    "scan_report_pdf",
    "scan_status",
    "scan_image",
}
STAFF_PAGES = KNOWN_NAMES - {"patient_share", "patient_unshare", "dicom_header", "scan_review"}
# Pages that only show a patient or scan; every other page (or method) changes something.
READ_PAGES = {
    "patient_list",
    "patient_detail",
    "scan_detail",
    "scan_report",
    "scan_report_pdf",
    "scan_status",
    "scan_image",
}
OUTSIDERS = [pytest.param("b", id="another-doctor"), pytest.param("clerk", id="staff-without-permissions")]
WRITES = (LogEntry.Action.CREATE, LogEntry.Action.UPDATE, LogEntry.Action.DELETE)
# Answers about a patient or scan that are not logged as reads, and why; every other 200 or 400 answer is.
UNLOGGED_ANSWERS = {
    "scan_status": "the scan page polls it; the page's own read is logged",
    "dicom_header": "it reads the header of a file being uploaded, not the record",
}
# Routes a session's idle timer does not count, because pages call them by themselves.
PASSIVE_NAMES = {"scan_status"}


def diagnosis_routes():
    """(name, route, parameter names) of every pattern in the diagnosis namespace, by the shared walk()."""
    routes = []
    for name, path, _view in walk(get_resolver().url_patterns):
        if not name.startswith("diagnosis:"):
            continue
        match = resolve(path)
        assert match.view_name == name, f"{path} resolves to {match.view_name}, not {name}"
        routes.append((name.removeprefix("diagnosis:"), match.route, tuple(sorted(match.kwargs))))
    return routes


ROUTES = diagnosis_routes()


def cases():
    """One case per route, and one per image kind for a route with a `kind`."""
    for name, route, params in ROUTES:
        kinds = IMAGE_KINDS if "kind" in params else (None,)
        for kind in kinds:
            yield pytest.param(name, route, params, kind, id=f"{name}-{kind}" if kind else name)


OBJECT_CASES = [case for case in cases() if case.values[2]]
OBJECTLESS_NAMES = ["home"] + [f"diagnosis:{name}" for name, _, params in ROUTES if not params]


@pytest.fixture
def world(doctor, make_doctor, make_staff, patient, diagnosed_scan):
    """Doctor A's patient and reviewed scan, shared with doctor C; doctor B has no share. Two staff accounts:
    a clerk with no permission at all, an auditor who may only view patients."""
    colleague = make_doctor(email="c@hospital.example", full_name="Charles Babbage")
    patient.shared_with.add(colleague)
    scan_review(scan=diagnosed_scan, reviewer=doctor, agrees_with_model=True, final_finding="COVID", comment="A's")
    outsider = make_doctor(email="b@hospital.example", full_name="Mallory Outsider")
    return {
        "a": doctor,
        "b": outsider,
        "c": colleague,
        "clerk": make_staff(email="clerk@hospital.example"),
        "auditor": make_staff("diagnosis.view_patient", email="auditor@hospital.example"),
        "patient": patient,
        "scan": diagnosed_scan,
    }


def url_for(name, route, params, kind, world, *, pk=None):
    kwargs = {}
    for param in params:
        if param == "pk":
            about = [thing for prefix, thing in OBJECT_PREFIXES.items() if route.startswith(prefix)]
            assert about, f"{name} ({route}) has a pk but is neither a patients/ nor a scans/ route"
            kwargs["pk"] = pk or world[about[0]].pk
        elif param == "kind":
            kwargs["kind"] = kind
        elif param == "doctor_pk":
            kwargs["doctor_pk"] = world["c"].pk
        else:
            pytest.fail(f"{name} ({route}) has a parameter {param!r} this walk does not know: decide what it is")
    return reverse(f"diagnosis:{name}", kwargs=kwargs)


def attack_data(world):
    """Fields that would change A's data if a view skipped the access check (edit, share, review, upload)."""
    return {
        "mrn": "MRN-STOLEN",
        "full_name": "Changed By Outsider",
        "sex": "U",
        "email": world["b"].email,
        "agrees_with_model": "no",
        "final_finding": "NORMAL",
        "comment": "changed by B",
        "images": SimpleUploadedFile("chest.png", xray_png(seed=9), content_type="image/png"),
        "header": SimpleUploadedFile("head.dcm", b"\x00" * 128 + b"DICM", content_type="application/dicom"),
    }


def snapshot(world):
    """Everything of A's an outsider's request could change, including the stored files."""
    scan = world["scan"]
    return {
        "patients": list(Patient.objects.values()),
        "scans": list(Scan.objects.values()),
        "reviews": list(Review.objects.values()),
        "shared_with": set(world["patient"].shared_with.values_list("pk", flat=True)),
        "files": [field.storage.exists(field.name) for field in (scan.image, scan.preview, scan.heatmap)],
        "log": LogEntry.objects.count(),
    }


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_walk_covers_every_known_diagnosis_page():
    assert {name for name, _, _ in ROUTES} >= KNOWN_NAMES


def test_every_route_parameter_has_a_known_meaning():
    unknown = {(name, param) for name, _, params in ROUTES for param in params if param not in VALUE_FOR}
    assert not unknown, f"Decide what these URL parameters stand for in tests/diagnosis/test_access.py: {unknown}"


def test_every_pk_route_says_whether_it_is_about_a_patient_or_a_scan():
    for name, route, params in ROUTES:
        if "pk" in params:
            assert route.startswith(tuple(OBJECT_PREFIXES)), f"{name} ({route}): pk of what?"


@pytest.mark.parametrize(("name", "route", "params", "kind"), OBJECT_CASES)
@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("role", OUTSIDERS)
def test_an_outsider_gets_404_and_changes_nothing(world, role, name, route, params, kind, method):
    outsider = signed_in(world[role])
    before = snapshot(world)
    send = getattr(outsider, method)

    response = send(url_for(name, route, params, kind, world), attack_data(world) if method == "post" else None)
    missing = send(url_for(name, route, params, kind, world, pk=MISSING_PK), None)

    assert response.status_code in (404, 405), f"{method.upper()} {name} answered {response.status_code}"
    assert response.status_code == missing.status_code, "the answer must not tell that A's record exists"
    assert snapshot(world) == before
    assert not LogEntry.objects.filter(actor=world[role]).exists()


@pytest.mark.parametrize("name", OBJECTLESS_NAMES)
@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("role", OUTSIDERS)
def test_pages_without_an_object_show_an_outsider_none_of_a_patients(world, role, name, method):
    outsider = signed_in(world[role])
    before = snapshot(world)

    response = getattr(outsider, method)(reverse(name))

    assert response.status_code < 500
    html = response.content.decode()
    for secret in (world["patient"].mrn, world["patient"].full_name):
        assert secret not in html, f"{method.upper()} {name} shows {secret!r} to {role}"
    assert snapshot(world) == before
    assert not LogEntry.objects.filter(actor=world[role]).exists()


@pytest.mark.parametrize("name", ["home", "diagnosis:patient_list"])
def test_the_owner_does_see_the_patient_on_those_pages(world, name):
    html = signed_in(world["a"]).get(reverse(name)).content.decode()

    assert world["patient"].mrn in html
    assert world["patient"].full_name in html


@pytest.mark.parametrize(("name", "route", "params", "kind"), list(cases()))
@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_users_are_sent_to_sign_in(client, world, name, route, params, kind, method):
    before = snapshot(world)

    response = getattr(client, method)(url_for(name, route, params, kind, world))

    if response.status_code != 405:
        assert response.status_code == 302, f"{method.upper()} {name} answered {response.status_code}"
        assert response["Location"].startswith(reverse("accounts:login") + "?next=")
    assert snapshot(world) == before


@pytest.mark.parametrize(("name", "route", "params", "kind"), list(cases()))
def test_staff_open_every_page(world, staff_client, name, route, params, kind):
    response = staff_client.get(url_for(name, route, params, kind, world))

    if name in STAFF_PAGES:
        assert response.status_code == 200, f"{name} answered {response.status_code}"
    else:
        assert response.status_code in (200, 405), f"{name} answered {response.status_code}"
        if response.status_code == 405:
            assert "GET" not in response["Allow"]
    assert "no-store" in response["Cache-Control"], f"{name} may be cached"


def access_reads(user) -> int:
    return LogEntry.objects.filter(actor=user, action=LogEntry.Action.ACCESS).count()


@pytest.mark.parametrize(("name", "route", "params", "kind"), OBJECT_CASES)
@pytest.mark.parametrize("method", ["get", "post"])
def test_every_answer_about_a_patient_is_logged_as_a_read_and_never_cached(world, name, route, params, kind, method):
    """A GET that shows the record, and a POST whose refused form shows it again, both log the read.

    The POST sends an empty form: views that write either refuse it (and show the page again) or redirect;
    a view that only reads must answer 405 rather than render without its audit entry.
    """
    owner = signed_in(world["a"])
    before = access_reads(world["a"])

    response = getattr(owner, method)(url_for(name, route, params, kind, world))

    assert response.status_code != 500
    assert "no-store" in response["Cache-Control"], f"{method.upper()} {name} may be cached"
    if response.status_code in (200, 400) and name not in UNLOGGED_ANSWERS:
        assert access_reads(world["a"]) > before, f"{method.upper()} {name} showed the record without logging it"


@pytest.mark.parametrize("name", ["scan_detail", "scan_report", "scan_status", "scan_image"])
def test_reads_of_a_scan_answer_only_get(world, name):
    """The scan page is a read; its review is posted to its own URL (scan_review)."""
    route_params = {name: (route, params) for name, route, params in ROUTES}
    route, params = route_params[name]

    response = signed_in(world["a"]).post(url_for(name, route, params, "preview", world), {"comment": "x"})

    assert response.status_code == 405
    assert "POST" not in response["Allow"]
    assert access_reads(world["a"]) == 0


def test_only_the_status_poll_leaves_the_idle_timer_running():
    passive = {name for name, _, params in ROUTES if getattr(resolve_view(name), "renews_session", True) is False}

    assert passive == PASSIVE_NAMES


def resolve_view(name):
    return next(view for full_name, _, view in walk(get_resolver().url_patterns) if full_name == f"diagnosis:{name}")


def without_log(state: dict) -> dict:
    return {key: value for key, value in state.items() if key != "log"}


@pytest.mark.parametrize(("name", "route", "params", "kind"), OBJECT_CASES)
def test_view_only_staff_read_every_page_and_are_refused_every_change(world, name, route, params, kind):
    auditor = signed_in(world["auditor"])
    before = snapshot(world)

    response = auditor.get(url_for(name, route, params, kind, world))

    if name in READ_PAGES:
        assert response.status_code == 200, f"{name} answered {response.status_code}"
    else:
        assert response.status_code in (302, 405), f"{name} answered {response.status_code}"
        if response.status_code == 302:
            assert response["Location"] == reverse("diagnosis:patient_detail", args=[world["patient"].pk])
    assert without_log(snapshot(world)) == without_log(before)


@pytest.mark.parametrize(("name", "route", "params", "kind"), OBJECT_CASES)
def test_view_only_staff_change_nothing_whatever_they_post(world, name, route, params, kind):
    auditor = signed_in(world["auditor"])
    before = snapshot(world)

    response = auditor.post(url_for(name, route, params, kind, world), attack_data(world))

    assert response.status_code in (200, 302, 403, 405), f"POST {name} answered {response.status_code}"
    assert without_log(snapshot(world)) == without_log(before)
    assert not LogEntry.objects.filter(actor=world["auditor"], action__in=WRITES).exists()


@pytest.mark.parametrize("name", ["home", "diagnosis:patient_list"])
def test_view_only_staff_see_every_doctors_patient_on_the_lists(world, name):
    html = signed_in(world["auditor"]).get(reverse(name)).content.decode()

    assert world["patient"].mrn in html
