"""The worklist on the home page: counts, newest first, what stands out, filters, and only one's own scans."""

import datetime

import pytest
from auditlog.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from diagnosis.models import Patient
from diagnosis.selectors import worklist_counts
from mlcore.models import ModelVersion
from tests.diagnosis.test_patients import make_scan

pytestmark = pytest.mark.django_db


@pytest.fixture
def worklist(patient):
    """One scan of each kind, uploaded a minute apart: index 0 is the newest."""
    minutes = iter(range(0, 60))
    return {
        "pending": make_scan(patient, status="pending", ago=datetime.timedelta(minutes=next(minutes))),
        "processing": make_scan(patient, status="processing", ago=datetime.timedelta(minutes=next(minutes))),
        "positive_unreviewed": make_scan(
            patient, label="COVID", probability=0.93, ago=datetime.timedelta(minutes=next(minutes))
        ),
        "negative_unreviewed": make_scan(
            patient, label="NORMAL", probability=0.12, ago=datetime.timedelta(minutes=next(minutes))
        ),
        "positive_reviewed": make_scan(
            patient, label="COVID", probability=0.81, finding="COVID", ago=datetime.timedelta(minutes=next(minutes))
        ),
        "negative_reviewed": make_scan(
            patient, label="NORMAL", probability=0.2, finding="OTHER", ago=datetime.timedelta(minutes=next(minutes))
        ),
        "failed": make_scan(patient, status="failed", ago=datetime.timedelta(minutes=next(minutes))),
    }


def listed(response) -> list[int]:
    return [scan.pk for scan in response.context["page"].object_list]


def test_home_is_the_worklist(doctor_client):
    response = doctor_client.get(reverse("home"))
    assert response.status_code == 200
    assert "diagnosis/dashboard.html" in [template.name for template in response.templates]


def test_counts_pending_positive_awaiting_and_reviewed_in_one_query(
    doctor_client, doctor, worklist, django_assert_num_queries
):
    since = timezone.now() - datetime.timedelta(days=14)
    doctor.get_all_permissions()  # read once per request, as for request.user; the counts are then one query
    with django_assert_num_queries(1):
        counts = worklist_counts(user=doctor, since=since)
    assert counts == {
        "pending": 2,
        "positive": 2,
        "awaiting_review": 2,
        "reviewed": 2,
        "indeterminate": 0,
        "not_assessable": 0,
    }

    response = doctor_client.get(reverse("home"))
    assert response.context["counts"] == counts
    assert '<div class="fs-3 fw-semibold" id="count-pending">2</div>' in response.content.decode()


def test_positive_means_the_model_versions_positive_class(doctor, patient):
    version = ModelVersion.objects.create(name="other-classes", class_names=["NEG", "POS"], positive_class="POS")
    make_scan(patient, label="POS", probability=0.9, model_version=version)
    make_scan(patient, label="COVID", probability=0.1, model_version=version)

    counts = worklist_counts(user=doctor, since=timezone.now() - datetime.timedelta(days=1))

    assert counts["positive"] == 1


def test_scans_are_listed_newest_first(doctor_client, worklist):
    response = doctor_client.get(reverse("home"))
    assert listed(response) == [scan.pk for scan in worklist.values()]


def test_positive_and_awaiting_review_rows_stand_out_in_words_not_only_colour(doctor_client, worklist):
    page = doctor_client.get(reverse("home")).content.decode()

    positive_row = page.split(f'data-scan="{worklist["positive_unreviewed"].pk}"')[0].rsplit("<tr", 1)[1]
    assert "worklist-positive" in positive_row
    awaiting_row = page.split(f'data-scan="{worklist["negative_unreviewed"].pk}"')[0].rsplit("<tr", 1)[1]
    assert "worklist-awaiting" in awaiting_row
    assert page.count('<span class="badge text-bg-danger">Positive</span>') == 2
    assert page.count('<span class="badge text-bg-warning">Awaiting review</span>') == 2
    assert "Reviewed: Other finding" in page


def test_readings_are_named_as_a_doctor_reads_them(doctor_client, worklist, patient):
    make_scan(patient, label="OTHER_PNEUMONIA", probability=0.3)

    page = doctor_client.get(reverse("home")).content.decode()

    assert page.count("COVID-19 pneumonia <span") == 2
    assert page.count("Normal <span") == 2
    assert "Other pneumonia (not COVID-19) <span" in page
    assert "OTHER_PNEUMONIA" not in page


def test_filter_awaiting_review(doctor_client, worklist):
    response = doctor_client.get(reverse("home"), {"show": "awaiting"})
    assert listed(response) == [worklist["positive_unreviewed"].pk, worklist["negative_unreviewed"].pk]


def test_filter_positive(doctor_client, worklist):
    response = doctor_client.get(reverse("home"), {"show": "positive"})
    assert listed(response) == [worklist["positive_unreviewed"].pk, worklist["positive_reviewed"].pk]


def test_an_unknown_filter_shows_everything(doctor_client, worklist):
    assert len(listed(doctor_client.get(reverse("home"), {"show": "nonsense"}))) == len(worklist)


def test_today_only_and_the_recent_window(doctor_client, patient):
    now = timezone.localtime()
    today = make_scan(patient, label="COVID", probability=0.9, ago=now - now.replace(hour=0, minute=0, second=1))
    yesterday = make_scan(patient, label="COVID", probability=0.9, ago=datetime.timedelta(days=1, minutes=1))
    make_scan(patient, label="COVID", probability=0.9, ago=datetime.timedelta(days=15))

    assert listed(doctor_client.get(reverse("home"))) == [today.pk, yesterday.pk]
    today_only = doctor_client.get(reverse("home"), {"period": "today"})
    assert listed(today_only) == [today.pk]
    assert today_only.context["counts"]["positive"] == 1


def test_only_scans_of_visible_patients_are_listed_and_counted(client, make_doctor, doctor, patient):
    mine = make_scan(patient, label="COVID", probability=0.9)
    other = make_doctor(email="other@hospital.example")
    theirs = Patient.objects.create(mrn="MRN-OTHER", full_name="Marie Curie", created_by=other)
    make_scan(theirs, label="COVID", probability=0.99)
    shared = Patient.objects.create(mrn="MRN-SHARED", full_name="Niels Bohr", created_by=other)
    shared.shared_with.add(doctor)
    shared_scan = make_scan(shared, status="pending")

    client.force_login(doctor)
    response = client.get(reverse("home"))

    assert listed(response) == [shared_scan.pk, mine.pk]
    assert response.context["counts"] == {
        "pending": 1,
        "positive": 1,
        "awaiting_review": 1,
        "reviewed": 0,
        "indeterminate": 0,
        "not_assessable": 0,
    }
    assert "Marie Curie" not in response.content.decode()


def test_staff_see_every_doctors_scans(staff_client, patient):
    scan = make_scan(patient, label="COVID", probability=0.9)
    assert listed(staff_client.get(reverse("home"))) == [scan.pk]


def test_the_worklist_pages_by_25_and_keeps_the_filter(doctor_client, patient):
    for _ in range(27):
        make_scan(patient, label="COVID", probability=0.9)

    first = doctor_client.get(reverse("home"), {"show": "positive"})
    assert len(listed(first)) == 25
    assert "?show=positive&amp;page=2" in first.content.decode()
    assert len(listed(doctor_client.get(reverse("home"), {"show": "positive", "page": 2}))) == 2


def test_a_new_doctor_is_invited_to_create_a_patient(doctor_client):
    page = doctor_client.get(reverse("home")).content.decode()
    assert "Create your first patient" in page
    assert reverse("diagnosis:patient_create") in page


def test_a_doctor_with_patients_but_no_recent_scans_is_told_so(doctor_client, patient):
    page = doctor_client.get(reverse("home")).content.decode()
    assert "Create your first patient" not in page
    assert "No scans" in page
    assert "in the last 14 days" in page


def test_the_scans_shown_are_logged_as_read(doctor_client, doctor, patient):
    scan = make_scan(patient, label="COVID", probability=0.9)
    doctor_client.get(reverse("home"))
    entry = LogEntry.objects.get_for_object(scan).get(action=LogEntry.Action.ACCESS)
    assert (entry.actor, entry.additional_data) == (doctor, {"read": "worklist"})


def test_the_navbar_links_to_the_worklist(doctor_client):
    page = doctor_client.get(reverse("diagnosis:patient_list")).content.decode()
    assert f'<a class="nav-link" href="{reverse("home")}">Worklist</a>' in page


def positive_card_title(client) -> str:
    page = client.get(reverse("home")).content.decode()
    return page.split('id="positive-card-title">')[1].split("</div>")[0]


def test_the_positive_card_names_the_positive_class_of_the_versions_that_read_the_scans(doctor_client, patient):
    covid = ModelVersion.objects.create(name="covid", class_names=["COVID", "NORMAL"], positive_class="COVID")
    tuberculosis = ModelVersion.objects.create(
        name="tb", class_names=["TUBERCULOSIS", "NORMAL"], positive_class="TUBERCULOSIS"
    )
    assert positive_card_title(doctor_client) == "Positive (COVID-19)"  # nothing read, no active version

    make_scan(patient, label="TUBERCULOSIS", probability=0.9, model_version=tuberculosis)
    assert positive_card_title(doctor_client) == "Positive (Tuberculosis)"

    make_scan(patient, label="COVID", probability=0.9, model_version=covid)
    assert positive_card_title(doctor_client) == "Positive (COVID-19 / Tuberculosis)"


def test_with_nothing_read_the_positive_card_names_the_active_versions_positive_class(doctor_client, make_version):
    version = make_version()
    assert positive_card_title(doctor_client) == "Positive (COVID-19)"

    ModelVersion.objects.filter(pk=version.pk).update(
        class_names=["TUBERCULOSIS", "NORMAL"], positive_class="TUBERCULOSIS"
    )
    assert positive_card_title(doctor_client) == "Positive (Tuberculosis)"
