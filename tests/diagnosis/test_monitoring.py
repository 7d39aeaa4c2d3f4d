"""The staff monitoring page: a version's figures against doctors' reviews, overall, per month and per device."""

import datetime

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils.html import escape

from diagnosis.models import Review, Scan
from diagnosis.monitoring import VERIFICATION_BIAS, model_version_monitoring
from mlcore.models import ModelVersion

pytestmark = pytest.mark.django_db

MARCH = datetime.datetime(2026, 3, 10, 12, tzinfo=datetime.UTC)
APRIL = datetime.datetime(2026, 4, 2, 12, tzinfo=datetime.UTC)


@pytest.fixture
def version(db) -> ModelVersion:
    return ModelVersion.objects.create(name="watched-v1", status="succeeded", class_names=["COVID", "NORMAL"])


@pytest.fixture
def read(version, patient, doctor):
    """Make `count` scans read by the version, each reviewed with `finding` (None: not reviewed)."""

    def make(count=1, *, result="", finding=None, agrees=False, status=Scan.Status.DONE, at=MARCH, **fields):
        model_version = fields.pop("model_version", version)
        for _ in range(count):
            scan = Scan.objects.create(
                patient=patient,
                image="originals/x.png",
                file_type="PNG",
                uploaded_by=doctor,
                status=status,
                result=result,
                model_version=model_version,
                **fields,
            )
            if finding is not None:
                review = Review.objects.create(
                    scan=scan, agrees_with_model=agrees, final_finding=finding, reviewer=doctor
                )
                Review.objects.filter(pk=review.pk).update(reviewed_at=at)

    return make


@pytest.fixture
def reviewed(read):
    """15 scans read: 11 reviewed calls, one reviewed indeterminate result, two not assessable, one unreviewed."""
    read(3, result="positive", finding="COVID", agrees=True)
    read(1, result="negative", finding="COVID", at=APRIL)
    read(4, result="negative", finding="NORMAL", agrees=True, at=APRIL)
    read(2, result="positive", finding="OTHER")
    read(1, result="positive", finding="INDETERMINATE")
    read(1, result="indeterminate", finding="COVID")
    read(2, status=Scan.Status.NOT_ASSESSABLE)
    read(1, result="positive")


def test_sensitivity_and_specificity_are_against_the_doctors_final_findings(version, reviewed):
    overall = model_version_monitoring(version=version)["overall"]

    assert (overall["read"], overall["reviewed"], overall["reviewed_calls"]) == (15, 12, 11)
    assert (overall["sensitivity"]["count"], overall["sensitivity"]["total"]) == (3, 4)
    # Wilson 95% interval of 3/4, by hand: 0.3006-0.9544.
    assert overall["sensitivity"]["low"] == pytest.approx(0.3006, abs=1e-4)
    assert overall["sensitivity"]["text"] == "75.0% (95% CI 30.1% to 95.4%), 3 of 4"
    assert (overall["specificity"]["count"], overall["specificity"]["total"]) == (4, 6)


def test_other_findings_count_as_negative_and_are_shown_apart(version, reviewed):
    by_finding = model_version_monitoring(version=version)["overall"]["specificity_by_finding"]

    assert {name: (entry["count"], entry["total"]) for name, entry in by_finding.items()} == {
        "Normal": (4, 4),
        "Other finding": (0, 2),
    }


def test_other_pneumonia_is_negative_and_its_share_not_called_covid_is_shown_apart(read):
    three = ModelVersion.objects.create(
        name="watched-v3", status="succeeded", class_names=["COVID", "OTHER_PNEUMONIA", "NORMAL"]
    )
    read(3, result="negative", label="OTHER_PNEUMONIA", finding="OTHER_PNEUMONIA", agrees=True, model_version=three)
    read(1, result="positive", label="COVID", finding="OTHER_PNEUMONIA", model_version=three)
    read(2, result="positive", label="COVID", finding="COVID", agrees=True, model_version=three)

    monitoring = model_version_monitoring(version=three)
    overall = monitoring["overall"]

    assert (overall["sensitivity"]["count"], overall["sensitivity"]["total"]) == (2, 2)
    assert (overall["specificity"]["count"], overall["specificity"]["total"]) == (3, 4)
    by_finding = overall["specificity_by_finding"]
    assert {name: (entry["count"], entry["total"]) for name, entry in by_finding.items()} == {
        "Other pneumonia (not COVID-19)": (3, 4)
    }
    assert monitoring["positive_name"] == "COVID-19 pneumonia"


def test_a_doctors_indeterminate_finding_is_left_out_of_sensitivity_and_specificity(version, reviewed):
    overall = model_version_monitoring(version=version)["overall"]

    assert overall["doctor_indeterminate"] == 1
    assert overall["sensitivity"]["total"] + overall["specificity"]["total"] == overall["reviewed_calls"] - 1


def test_agreement_is_over_reviewed_calls(version, reviewed):
    agreement = model_version_monitoring(version=version)["overall"]["agreement"]

    assert (agreement["count"], agreement["total"]) == (7, 11)


def test_not_assessable_and_indeterminate_are_shares_of_all_scans_read_not_calls(version, reviewed):
    overall = model_version_monitoring(version=version)["overall"]

    assert (overall["not_assessable"]["count"], overall["not_assessable"]["total"]) == (2, 15)
    assert (overall["indeterminate"]["count"], overall["indeterminate"]["total"]) == (1, 15)


def test_reviews_are_counted_per_month_of_review(version, reviewed):
    months = model_version_monitoring(version=version)["per_month"]

    assert [(month["month"], month["reviewed"]) for month in months] == [("2026-03", 7), ("2026-04", 5)]
    assert (months[1]["agreement"]["count"], months[1]["agreement"]["total"]) == (4, 5)
    assert (months[1]["sensitivity"]["count"], months[1]["sensitivity"]["total"]) == (0, 1)


def test_figures_are_given_per_device_with_unknown_where_the_header_said_nothing(version, read):
    read(2, result="positive", finding="COVID", agrees=True, manufacturer="Agfa", station_name="WARD-3")
    read(1, result="negative", finding="COVID", manufacturer="Agfa")
    read(1, status=Scan.Status.NOT_ASSESSABLE)

    devices = {entry["device"]: entry for entry in model_version_monitoring(version=version)["per_device"]}

    assert set(devices) == {"Agfa / WARD-3", "Agfa / unknown", "unknown / unknown"}
    assert devices["Agfa / WARD-3"]["sensitivity"]["text"].startswith("100.0%")
    assert devices["Agfa / unknown"]["sensitivity"]["count"] == 0
    assert devices["unknown / unknown"]["not_assessable"]["count"] == 1


def test_only_this_versions_finished_readings_count(version, read):
    other = ModelVersion.objects.create(name="other-v2", status="succeeded")
    read(1, result="positive", finding="COVID", model_version=other)
    read(1, status=Scan.Status.FAILED)
    read(1, status=Scan.Status.PENDING)
    read(1, result="negative")

    assert model_version_monitoring(version=version)["overall"]["read"] == 1


def test_a_version_without_readings_has_nothing_counted(version):
    monitoring = model_version_monitoring(version=version)

    assert monitoring["overall"]["read"] == 0
    assert monitoring["overall"]["sensitivity"]["text"] == "none counted"
    assert monitoring["per_month"] == monitoring["per_device"] == []


def monitoring_url(version) -> str:
    return reverse("admin:diagnosis_scan_monitoring", args=[version.pk])


def test_staff_see_the_page_with_the_verification_bias_statement(staff_client, version, reviewed):
    response = staff_client.get(monitoring_url(version))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Monitoring of model version watched-v1" in html
    assert escape(VERIFICATION_BIAS) in html
    assert '<td id="overall-sensitivity">75.0% (95% CI 30.1% to 95.4%), 3 of 4</td>' in html
    assert '<th scope="row">2026-04</th><td>5</td>' in html
    assert "unknown / unknown" in html


def test_a_doctor_cannot_open_the_page(doctor_client, version):
    response = doctor_client.get(monitoring_url(version))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_permission_to_view_scans_are_refused(client, make_doctor, version):
    clerk = make_doctor(email="clerk@hospital.example", is_staff=True)
    client.force_login(clerk)
    assert client.get(monitoring_url(version)).status_code == 403

    clerk.user_permissions.add(Permission.objects.get(codename="view_scan"))
    assert client.get(monitoring_url(version)).status_code == 200


def test_the_page_only_reads(staff_client, version):
    assert staff_client.post(monitoring_url(version)).status_code == 405


def test_an_unknown_version_is_not_found(staff_client):
    assert staff_client.get(reverse("admin:diagnosis_scan_monitoring", args=[987654])).status_code == 404


def test_the_model_version_page_links_to_its_monitoring(staff_client, version):
    html = staff_client.get(reverse("admin:mlcore_modelversion_change", args=[version.pk])).content.decode()

    assert f'href="{monitoring_url(version)}"' in html
