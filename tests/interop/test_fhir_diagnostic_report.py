"""FHIR DiagnosticReport of a scan: valid R4(B) resources, token access with the scan page's rules, audit."""

import base64
import datetime
import io
import json
from decimal import Decimal

import pypdf
import pytest
from auditlog.models import LogEntry
from django.test import Client
from django.urls import reverse
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.operationoutcome import OperationOutcome
from knox.models import AuthToken

from diagnosis.models import Patient, Review, Scan
from interop.services import api_tokens_revoke
from tests.conftest import THREE_CLASSES

pytestmark = pytest.mark.django_db


def read(scan_pk: int, token: str | None = None, **headers):
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return Client().get(reverse("interop:fhir_diagnostic_report", args=[scan_pk]), **headers)


def search(token: str, **params):
    url = reverse("interop:fhir_diagnostic_report_search")
    return Client().get(url, params, HTTP_AUTHORIZATION=f"Bearer {token}")


def contained(report: DiagnosticReport, resource_id: str):
    return next(resource for resource in report.contained if resource.id == resource_id)


@pytest.fixture
def read_scan(scan):
    """The diagnosis suite's scan, with the fields the worker now writes: result and every class's probability."""
    scan.result = Scan.Result.POSITIVE
    scan.probabilities = {"COVID": 0.91, "NORMAL": 0.09}
    scan.acquisition_date = datetime.date(2026, 3, 2)
    scan.save()
    return scan


def test_a_done_scan_is_a_valid_diagnostic_report_with_its_observations_device_and_pdf(read_scan, doctor, issue_token):
    response = read(read_scan.pk, issue_token(doctor))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    assert response["Cache-Control"] == "no-store"
    report = DiagnosticReport.model_validate_json(response.content)
    assert (report.id, report.status) == (str(read_scan.pk), "final")
    assert report.effectiveDateTime.isoformat() == "2026-03-02"
    assert (report.subject.identifier.system, report.subject.identifier.value) == ("urn:covidxray:mrn", "MRN-0001")
    assert report.subject.display == "Alan Turing"
    assert report.conclusion.startswith("Model reading: COVID-19 pneumonia (P(COVID-19) = 0.910, threshold 0.700).")

    device = contained(report, "model")
    assert device.get_resource_type() == "Device"
    assert device.version[0].value == "validated-v1"
    assert [reference.reference for reference in report.result] == [
        "#finding",
        "#called-class",
        "#probability-COVID",
        "#probability-NORMAL",
        "#threshold",
    ]
    finding = contained(report, "finding")
    assert (finding.valueCodeableConcept.coding[0].system, finding.valueCodeableConcept.coding[0].code) == (
        "http://snomed.info/sct",
        "10828004",
    )
    assert finding.interpretation[0].coding[0].code == "POS"
    assert finding.device.reference == "#model"
    called = contained(report, "called-class").valueCodeableConcept
    assert (called.coding[0].code, called.text) == ("COVID", "COVID-19 pneumonia")
    assert contained(report, "probability-COVID").code.text == "Calibrated probability of COVID-19 pneumonia"
    assert contained(report, "probability-COVID").valueQuantity.value == Decimal("0.91")
    assert contained(report, "probability-NORMAL").valueQuantity.value == Decimal("0.09")
    assert contained(report, "threshold").valueQuantity.value == Decimal("0.7")

    (form,) = report.presentedForm
    assert form.contentType == "application/pdf"
    pdf = base64.b64decode(json.loads(response.content)["presentedForm"][0]["data"], validate=True)
    assert pdf == form.data
    assert pdf.startswith(b"%PDF")
    assert "MRN-0001" in pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text()


def test_a_negative_reading_says_so(read_scan, doctor, issue_token):
    Scan.objects.filter(pk=read_scan.pk).update(result=Scan.Result.NEGATIVE, label="NORMAL", probability=0.2)

    report = DiagnosticReport.model_validate_json(read(read_scan.pk, issue_token(doctor)).content)

    assert report.conclusion.startswith(
        "Model reading: no COVID-19 pneumonia (P(COVID-19) = 0.200, threshold 0.700). "
    )
    assert "Called class" not in report.conclusion  # a two-class version's reading reads as it did
    assert contained(report, "finding").interpretation[0].coding[0].code == "NEG"


def test_a_three_class_reading_carries_every_class_and_the_called_one_in_words(
    read_scan, doctor, issue_token, make_version
):
    version = make_version("tiny-3", activate=False, class_names=THREE_CLASSES)
    Scan.objects.filter(pk=read_scan.pk).update(
        model_version=version,
        result=Scan.Result.NEGATIVE,
        label="OTHER_PNEUMONIA",
        probability=0.3,
        probabilities={"NORMAL": 0.1, "OTHER_PNEUMONIA": 0.6, "COVID": 0.3},
    )

    report = DiagnosticReport.model_validate_json(read(read_scan.pk, issue_token(doctor)).content)

    assert [reference.reference for reference in report.result] == [
        "#finding",
        "#called-class",
        "#probability-COVID",
        "#probability-OTHER-PNEUMONIA",  # FHIR ids have no underscore
        "#probability-NORMAL",
        "#threshold",
    ]
    assert contained(report, "finding").interpretation[0].coding[0].code == "NEG"
    assert contained(report, "called-class").valueCodeableConcept.text == "Other pneumonia (not COVID-19)"
    other = contained(report, "probability-OTHER-PNEUMONIA")
    assert other.code.coding[0].display == "Probability of Other pneumonia (not COVID-19)"
    assert other.valueQuantity.value == Decimal("0.6")
    assert report.conclusion.startswith(
        "Model reading: no COVID-19 pneumonia (P(COVID-19) = 0.300, threshold 0.700). "
        "Called class: Other pneumonia (not COVID-19)."
    )


def test_an_indeterminate_reading_says_the_model_cannot_separate_the_case(read_scan, doctor, issue_token):
    Scan.objects.filter(pk=read_scan.pk).update(result=Scan.Result.INDETERMINATE, probability=0.69)

    report = DiagnosticReport.model_validate_json(read(read_scan.pk, issue_token(doctor)).content)

    assert report.conclusion.startswith("Indeterminate: the model cannot separate this case")
    finding = contained(report, "finding")
    assert finding.valueCodeableConcept.coding[0].code == "82334004"
    assert finding.interpretation[0].coding[0].code == "IND"


def test_a_not_assessable_scan_is_a_report_saying_so_with_the_reason_and_no_reading(read_scan, doctor, issue_token):
    Scan.objects.filter(pk=read_scan.pk).update(
        status=Scan.Status.NOT_ASSESSABLE,
        status_message="a lateral view, not a frontal chest radiograph",
        result="",
        label="",
        probability=None,
        probabilities={},
        threshold=None,
    )

    response = read(read_scan.pk, issue_token(doctor))

    assert response.status_code == 200
    report = DiagnosticReport.model_validate_json(response.content)
    assert report.status == "final"
    assert report.conclusion.startswith(
        "Not assessable: a lateral view, not a frontal chest radiograph. The model made no reading."
    )
    assert [reference.reference for reference in report.result] == ["#finding"]
    finding = contained(report, "finding")
    assert finding.valueCodeableConcept is None
    assert finding.dataAbsentReason.coding[0].code == "not-performed"
    assert "a lateral view" in finding.dataAbsentReason.text
    assert report.presentedForm is None


def test_the_doctors_review_is_in_the_conclusion(read_scan, doctor, issue_token):
    Review.objects.create(
        scan=read_scan, agrees_with_model=False, final_finding="OTHER", comment="Atelectasis.", reviewer=doctor
    )

    report = DiagnosticReport.model_validate_json(read(read_scan.pk, issue_token(doctor)).content)

    assert "Reviewed by Ada Lovelace on " in report.conclusion
    assert "Other finding (disagrees with the model)." in report.conclusion


@pytest.mark.parametrize("status", [Scan.Status.PENDING, Scan.Status.PROCESSING, Scan.Status.FAILED])
def test_a_scan_without_a_final_reading_is_404_like_a_missing_one(read_scan, doctor, issue_token, status):
    Scan.objects.filter(pk=read_scan.pk).update(status=status)
    token = issue_token(doctor)

    response = read(read_scan.pk, token)

    assert response.status_code == read(987654, token).status_code == 404
    OperationOutcome.model_validate_json(response.content)


def unauthorised(response) -> bool:
    outcome = OperationOutcome.model_validate_json(response.content)
    return (
        response.status_code == 401
        and response["WWW-Authenticate"] == "Bearer"
        and response["Content-Type"] == "application/fhir+json"
        and outcome.issue[0].code == "login"
    )


def test_without_a_token_the_answer_is_401(read_scan):
    assert unauthorised(read(read_scan.pk))


def test_a_wrong_token_is_401(read_scan, doctor, issue_token):
    issue_token(doctor)

    assert unauthorised(read(read_scan.pk, "not-a-token"))
    assert unauthorised(read(read_scan.pk, "0" * 64))


def test_a_revoked_token_is_401(read_scan, doctor, issue_token):
    token = issue_token(doctor)
    assert read(read_scan.pk, token).status_code == 200

    api_tokens_revoke(tokens=AuthToken.objects.filter(user=doctor))

    assert unauthorised(read(read_scan.pk, token))


def test_an_expired_token_is_401(read_scan, doctor, issue_token):
    token = issue_token(doctor)
    AuthToken.objects.update(expiry=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))

    assert unauthorised(read(read_scan.pk, token))


def test_a_token_of_a_deactivated_account_is_401(read_scan, doctor, issue_token):
    token = issue_token(doctor)
    type(doctor).objects.filter(pk=doctor.pk).update(is_active=False)

    assert unauthorised(read(read_scan.pk, token))


def test_a_signed_in_browser_session_is_not_a_token(read_scan, doctor):
    browser = Client()
    browser.force_login(doctor)

    assert unauthorised(browser.get(reverse("interop:fhir_diagnostic_report", args=[read_scan.pk])))


def test_another_doctors_token_gets_404_and_nothing_is_logged(read_scan, make_doctor, issue_token):
    outsider = make_doctor(email="other@hospital.example")

    response = read(read_scan.pk, issue_token(outsider))

    assert response.status_code == 404
    assert OperationOutcome.model_validate_json(response.content).issue[0].code == "not-found"
    assert "Alan Turing" not in response.content.decode()
    assert not LogEntry.objects.filter(action=LogEntry.Action.ACCESS).exists()


def test_a_colleague_the_patient_is_shared_with_reads_it(read_scan, make_doctor, issue_token):
    colleague = make_doctor(email="colleague@hospital.example")
    read_scan.patient.shared_with.add(colleague)

    assert read(read_scan.pk, issue_token(colleague)).status_code == 200


def test_a_read_is_in_the_audit_log_with_the_tokens_user_and_address(read_scan, doctor, issue_token):
    read(read_scan.pk, issue_token(doctor), REMOTE_ADDR="10.20.30.40")

    entry = LogEntry.objects.get_for_object(read_scan).get(action=LogEntry.Action.ACCESS)
    assert (entry.actor, entry.remote_addr, entry.additional_data) == (
        doctor,
        "10.20.30.40",
        {"read": "FHIR DiagnosticReport"},
    )


def test_staff_issue_a_token_in_the_admin_that_is_shown_once_and_revoke_it(
    read_scan, doctor, staff_user, staff_client
):
    response = staff_client.post(
        reverse("admin:interop_apitoken_add"), {"user": doctor.pk, "valid_days": 30}, follow=True
    )

    assert response.status_code == 200
    (message,) = [str(message) for message in response.context["messages"] if "Copy it now" in str(message)]
    token = message.split(": ", 1)[1].split()[0]
    issued = AuthToken.objects.get(user=doctor)
    assert token not in {issued.digest, issued.token_key}
    assert datetime.timedelta(days=29) < issued.expiry - issued.created <= datetime.timedelta(days=30)
    assert read(read_scan.pk, token).status_code == 200
    assert token not in staff_client.get(reverse("admin:interop_apitoken_changelist")).content.decode()

    staff_client.post(reverse("admin:interop_apitoken_delete", args=[issued.pk]), {"post": "yes"})

    assert unauthorised(read(read_scan.pk, token))


def test_the_admin_refuses_a_token_for_an_inactive_account(staff_client, make_doctor):
    waiting = make_doctor(email="waiting@hospital.example", active=False)

    response = staff_client.post(reverse("admin:interop_apitoken_add"), {"user": waiting.pk, "valid_days": 30})

    assert response.status_code == 200
    assert not AuthToken.objects.exists()


def test_search_by_mrn_gives_the_patients_reports_that_the_token_may_see(read_scan, doctor, issue_token):
    other = Patient.objects.create(mrn="MRN-0002", full_name="Grace Hopper", created_by=doctor)
    Scan.objects.filter(pk=read_scan.pk).update(status=Scan.Status.NOT_ASSESSABLE, status_message="a CT slice")
    token = issue_token(doctor)

    response = search(token, **{"subject:identifier": "MRN-0001"})

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    bundle = Bundle.model_validate_json(response.content)
    assert (bundle.type, bundle.total) == ("searchset", 1)
    (entry,) = bundle.entry
    assert entry.resource.id == str(read_scan.pk)
    assert entry.fullUrl == f"http://testserver/fhir/DiagnosticReport/{read_scan.pk}"
    assert other.mrn not in response.content.decode()
    assert LogEntry.objects.get(action=LogEntry.Action.ACCESS).additional_data == {
        "read": "FHIR DiagnosticReport (search)"
    }


def test_search_with_the_mrn_system_matches_and_with_another_system_does_not(read_scan, doctor, issue_token):
    token = issue_token(doctor)

    same = Bundle.model_validate_json(search(token, **{"subject:identifier": "urn:covidxray:mrn|MRN-0001"}).content)
    other = Bundle.model_validate_json(search(token, **{"subject:identifier": "urn:oid:1.2.3|MRN-0001"}).content)

    assert (same.total, other.total) == (1, 0)


def test_search_by_another_doctor_finds_nothing(read_scan, make_doctor, issue_token):
    token = issue_token(make_doctor(email="other@hospital.example"))

    response = search(token, **{"subject:identifier": "MRN-0001"})

    bundle = Bundle.model_validate_json(response.content)
    assert (bundle.total, bundle.entry) == (0, None)
    assert "Alan Turing" not in response.content.decode()
    assert not LogEntry.objects.filter(action=LogEntry.Action.ACCESS).exists()


def test_search_pages_newest_first(read_scan, doctor, issue_token):
    newer = Scan.objects.get(pk=read_scan.pk)
    newer.pk = None
    newer.save()
    token = issue_token(doctor)

    first = Bundle.model_validate_json(search(token, **{"subject:identifier": "MRN-0001", "_count": 1}).content)
    links = {link.relation: link.url for link in first.link}
    second = Bundle.model_validate_json(Client().get(links["next"], HTTP_AUTHORIZATION=f"Bearer {token}").content)

    assert first.total == second.total == 2
    assert [entry.resource.id for entry in first.entry + second.entry] == [str(newer.pk), str(read_scan.pk)]
    assert "next" not in {link.relation for link in second.link}


@pytest.mark.parametrize("params", [{}, {"subject:identifier": ""}, {"subject:identifier": "MRN-0001", "_count": "x"}])
def test_a_search_without_a_record_number_is_400(doctor, issue_token, params):
    response = search(issue_token(doctor), **params)

    assert response.status_code == 400
    assert OperationOutcome.model_validate_json(response.content).issue[0].code == "invalid"
