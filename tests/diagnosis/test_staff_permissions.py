"""Staff reach other doctors' patients only through model permissions, each granting just what it names.

Being staff grants nothing on the doctors' pages (tests/diagnosis/test_access.py walks every URL with
a staff account without permissions and one with only diagnosis.view_patient); here each permission is
shown to allow its own action and no other.
"""

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from diagnosis.models import Patient, Review, Scan
from diagnosis.services.patients import CARERS_ONLY, CREATOR_ONLY, patient_update
from diagnosis.services.scans import REVIEW_REFUSED, UPLOAD_REFUSED, scan_create, scan_review
from tests.diagnosis.conftest import xray_upload

pytestmark = pytest.mark.django_db

EDITED = {"mrn": "MRN-0001", "full_name": "A. M. Turing", "sex": "M"}
REVIEW = {"agrees_with_model": "yes", "final_finding": "COVID", "comment": "staff"}


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(client, name, *args, **data):
    response = client.get(reverse(name, args=args), data)
    assert response.status_code == 200
    return response.content.decode()


def refusal(response) -> str:
    """The message a refused request leaves for the next page."""
    return " ".join(str(message) for message in response.wsgi_request._messages)


@pytest.fixture
def auditor(make_staff):
    return make_staff("diagnosis.view_patient")


def test_a_view_only_account_is_offered_no_change_on_the_patient_or_scan_page(auditor, patient, diagnosed_scan):
    client = signed_in(auditor)

    patient_page = page(client, "diagnosis:patient_detail", patient.pk)
    scan_page = page(client, "diagnosis:scan_detail", diagnosed_scan.pk)

    assert patient.full_name in patient_page
    for url in (
        reverse("diagnosis:patient_update", args=[patient.pk]),
        reverse("diagnosis:patient_delete", args=[patient.pk]),
        reverse("diagnosis:patient_share", args=[patient.pk]),
        reverse("diagnosis:scan_upload", args=[patient.pk]),
        reverse("diagnosis:scan_delete", args=[diagnosed_scan.pk]),
    ):
        assert url not in patient_page
    assert reverse("diagnosis:scan_review", args=[diagnosed_scan.pk]) not in scan_page
    assert "Not reviewed yet" in scan_page


def test_a_view_only_account_is_told_why_each_change_is_refused(auditor, patient, diagnosed_scan):
    client = signed_in(auditor)

    edit = client.post(reverse("diagnosis:patient_update", args=[patient.pk]), EDITED)
    delete = client.post(reverse("diagnosis:patient_delete", args=[patient.pk]))
    share = client.post(reverse("diagnosis:patient_share", args=[patient.pk]), {"email": "x@hospital.example"})
    upload = client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": [xray_upload()]})
    upload_json = client.post(
        reverse("diagnosis:scan_upload", args=[patient.pk]),
        {"images": [xray_upload()]},
        headers={"X-Requested-With": "XMLHttpRequest"},
    )
    review = client.post(reverse("diagnosis:scan_review", args=[diagnosed_scan.pk]), REVIEW)

    assert CARERS_ONLY in refusal(edit)
    assert CREATOR_ONLY.format(action="delete it") in refusal(delete)
    assert CREATOR_ONLY.format(action="share it") in refusal(share)
    assert UPLOAD_REFUSED in refusal(upload)
    assert upload_json.status_code == 403
    assert upload_json.json() == {"errors": [UPLOAD_REFUSED]}
    assert REVIEW_REFUSED in refusal(review)
    patient.refresh_from_db()
    assert patient.full_name == "Alan Turing"
    assert list(Scan.objects.all()) == [diagnosed_scan]
    assert not Review.objects.exists()


def test_the_services_refuse_a_view_only_account_too(auditor, patient, diagnosed_scan):
    with pytest.raises(PermissionDenied):
        patient_update(patient=patient, updated_by=auditor, full_name="Changed")
    with pytest.raises(PermissionDenied):
        scan_create(patient=patient, image=xray_upload(), uploaded_by=auditor)
    with pytest.raises(PermissionDenied):
        scan_review(scan=diagnosed_scan, reviewer=auditor, agrees_with_model=True, final_finding="COVID")


def test_change_patient_edits_and_shares_another_doctors_patient_but_does_not_delete_it(
    make_staff, make_doctor, patient
):
    client = signed_in(make_staff("diagnosis.view_patient", "diagnosis.change_patient"))
    colleague = make_doctor(email="c@hospital.example", full_name="Charles Babbage")

    edited = client.post(reverse("diagnosis:patient_update", args=[patient.pk]), EDITED)
    shared = client.post(reverse("diagnosis:patient_share", args=[patient.pk]), {"email": colleague.email})
    deleted = client.post(reverse("diagnosis:patient_delete", args=[patient.pk]))

    assert edited.status_code == shared.status_code == 302
    patient.refresh_from_db()
    assert patient.full_name == "A. M. Turing"
    assert list(patient.shared_with.all()) == [colleague]
    assert CREATOR_ONLY.format(action="delete it") in refusal(deleted)
    assert Patient.objects.filter(pk=patient.pk).exists()


def test_delete_patient_deletes_another_doctors_patient(make_staff, patient):
    client = signed_in(make_staff("diagnosis.view_patient", "diagnosis.delete_patient"))

    response = client.post(reverse("diagnosis:patient_delete", args=[patient.pk]))

    assert response["Location"] == reverse("diagnosis:patient_list")
    assert not Patient.objects.filter(pk=patient.pk).exists()


def test_add_scan_uploads_and_delete_scan_deletes_for_another_doctors_patient(make_staff, patient, diagnosed_scan):
    uploader = signed_in(make_staff("diagnosis.view_patient", "diagnosis.add_scan"))
    remover = signed_in(make_staff("diagnosis.view_patient", "diagnosis.delete_scan", email="r@hospital.example"))

    uploaded = uploader.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": [xray_upload()]})
    refused = uploader.post(reverse("diagnosis:scan_delete", args=[diagnosed_scan.pk]))
    deleted = remover.post(reverse("diagnosis:scan_delete", args=[diagnosed_scan.pk]))

    assert uploaded.status_code == 302
    assert "delete" in refusal(refused)
    assert deleted["Location"] == reverse("diagnosis:patient_detail", args=[patient.pk])
    assert Scan.objects.get().uploaded_by.email == "clerk@hospital.example"


def test_add_review_reviews_a_scan_and_only_change_review_revises_a_review(make_staff, diagnosed_scan):
    adder = make_staff("diagnosis.view_patient", "diagnosis.add_review")
    reviser = make_staff("diagnosis.view_patient", "diagnosis.change_review", email="r@hospital.example")
    url = reverse("diagnosis:scan_review", args=[diagnosed_scan.pk])

    signed_in(adder).post(url, REVIEW)
    second = signed_in(adder).post(url, REVIEW | {"comment": "again"})
    revised = signed_in(reviser).post(url, REVIEW | {"comment": "revised"})

    assert REVIEW_REFUSED in refusal(second)
    assert revised.status_code == 302
    review = Review.objects.get()
    assert (review.comment, review.reviewer) == ("revised", reviser)


def test_view_scan_opens_any_scan_but_not_its_patients_pages(make_staff, patient, diagnosed_scan):
    client = signed_in(make_staff("diagnosis.view_scan"))

    scan_page = client.get(reverse("diagnosis:scan_detail", args=[diagnosed_scan.pk]))
    patient_page = client.get(reverse("diagnosis:patient_detail", args=[patient.pk]))

    assert scan_page.status_code == 200
    assert patient_page.status_code == 404


def test_a_superuser_holds_every_permission(staff_client, patient, diagnosed_scan):
    html = page(staff_client, "diagnosis:patient_detail", patient.pk)

    assert reverse("diagnosis:patient_delete", args=[patient.pk]) in html
    assert reverse("diagnosis:patient_share", args=[patient.pk]) in html
