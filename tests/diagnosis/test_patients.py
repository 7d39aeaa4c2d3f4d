"""Patient pages: search and pages, edit, detail with history and trend, sharing, and deleting patients and scans."""

import datetime
import re

import pytest
from auditlog.models import LogEntry
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from diagnosis.models import Patient, Review, Scan
from diagnosis.services.patients import UPLOADER_OR_CREATOR_ONLY, patient_share, patient_update

pytestmark = pytest.mark.django_db


def make_scan(patient, *, by=None, status="done", label="", probability=None, ago=None, finding=None, **fields):
    """A scan row as the worker leaves it (no image needed; its result follows from the label as the worker's
    does); `ago` backdates the upload, `finding` reviews it."""
    by = by or patient.created_by
    if status == "done" and label and "result" not in fields:
        version = fields.get("model_version")
        positive_class = version.positive_class if version else "COVID"
        fields["result"] = Scan.Result.POSITIVE if label == positive_class else Scan.Result.NEGATIVE
    scan = Scan.objects.create(
        patient=patient,
        image="originals/test.png",
        file_type="PNG",
        uploaded_by=by,
        status=status,
        label=label,
        probability=probability,
        threshold=0.5 if probability is not None else None,
        **fields,
    )
    if ago is not None:
        Scan.objects.filter(pk=scan.pk).update(uploaded_at=timezone.now() - ago)
        scan.refresh_from_db()
    if finding:
        Review.objects.create(scan=scan, agrees_with_model=finding == label, final_finding=finding, reviewer=by)
    return scan


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def last_message(response) -> str:
    """The message this response added (earlier, unread ones are still in the store)."""
    return [str(message) for message in get_messages(response.wsgi_request)][-1]


@pytest.fixture
def other_doctor(make_doctor):
    return make_doctor(email="other@hospital.example", full_name="Marie Curie")


@pytest.fixture
def colleague(make_doctor, patient):
    """A doctor the patient is shared with."""
    colleague = make_doctor(email="colleague@hospital.example", full_name="Niels Bohr")
    patient.shared_with.add(colleague)
    return colleague


def listed(response) -> list[str]:
    return [patient.mrn for patient in response.context["page"].object_list]


# The list: search, pages, scope


def test_search_by_mrn(doctor_client, doctor, patient):
    Patient.objects.create(mrn="MRN-0002", full_name="Grace Hopper", created_by=doctor)
    assert listed(doctor_client.get(reverse("diagnosis:patient_list"), {"q": " mrn-0002 "})) == ["MRN-0002"]


def test_search_by_part_of_the_name(doctor_client, doctor, patient):
    Patient.objects.create(mrn="MRN-0002", full_name="Grace Hopper", created_by=doctor)
    assert listed(doctor_client.get(reverse("diagnosis:patient_list"), {"q": "turi"})) == ["MRN-0001"]


def test_an_exact_mrn_comes_first(doctor_client, doctor):
    Patient.objects.create(mrn="A-10", full_name="Aaron Abel", created_by=doctor)
    Patient.objects.create(mrn="A-1", full_name="Zoe Zimmer", created_by=doctor)
    assert listed(doctor_client.get(reverse("diagnosis:patient_list"), {"q": "a-1"})) == ["A-1", "A-10"]


def test_thirty_patients_make_two_pages_and_the_search_is_kept(doctor_client, doctor):
    for number in range(30):
        Patient.objects.create(mrn=f"MRN-{number:04}", full_name=f"Patient {number:02}", created_by=doctor)

    first = doctor_client.get(reverse("diagnosis:patient_list"), {"q": "patient"})
    assert len(listed(first)) == 25
    assert first.context["page"].paginator.num_pages == 2
    assert 'href="?q=patient&amp;page=2"' in first.content.decode()
    second = doctor_client.get(reverse("diagnosis:patient_list"), {"q": "patient", "page": 2})
    assert listed(second) == [f"MRN-{number:04}" for number in range(25, 30)]
    assert 'value="patient"' in second.content.decode()


def test_the_search_stays_within_the_doctors_patients(doctor_client, patient, other_doctor):
    Patient.objects.create(mrn="MRN-9999", full_name="Alan Turing Jr", created_by=other_doctor)
    assert listed(doctor_client.get(reverse("diagnosis:patient_list"), {"q": "turing"})) == ["MRN-0001"]
    assert listed(doctor_client.get(reverse("diagnosis:patient_list"), {"q": "MRN-9999"})) == []


def test_the_list_shows_the_latest_scan_and_its_result(doctor_client, patient):
    make_scan(patient, label="NORMAL", probability=0.1, ago=datetime.timedelta(days=2))
    make_scan(patient, label="COVID", probability=0.876)
    response = doctor_client.get(reverse("diagnosis:patient_list"))
    row = response.context["page"].object_list[0]
    assert (row.last_scan_label, row.last_scan_probability, row.last_scan_result) == ("COVID", 0.876, "positive")
    assert 'COVID-19 pneumonia <span class="text-body-secondary">(0.876)</span>' in response.content.decode()


# Create and edit


def test_creating_a_patient_with_a_taken_mrn_says_so(doctor_client, patient):
    response = doctor_client.post(
        reverse("diagnosis:patient_create"), {"mrn": "MRN-0001", "full_name": "X", "sex": "U"}
    )
    assert response.status_code == 400
    assert "Another patient already has this medical record number." in response.content.decode()


def test_editing_a_patient_saves_and_logs_the_values_before_and_after(doctor_client, doctor, patient):
    response = doctor_client.post(
        reverse("diagnosis:patient_update", args=[patient.pk]),
        {"mrn": "MRN-0001", "full_name": " Alan M. Turing ", "sex": "M", "date_of_birth": "1912-06-23"},
    )
    assert response.status_code == 302
    patient.refresh_from_db()
    assert (patient.full_name, str(patient.date_of_birth)) == ("Alan M. Turing", "1912-06-23")
    entry = LogEntry.objects.get_for_object(patient).get(action=LogEntry.Action.UPDATE)
    assert entry.actor == doctor
    assert entry.changes_dict["full_name"] == ["Alan Turing", "Alan M. Turing"]


def test_the_edit_form_is_filled_in_and_its_reading_logged(doctor_client, patient):
    response = doctor_client.get(reverse("diagnosis:patient_update", args=[patient.pk]))
    assert response.status_code == 200
    assert 'value="MRN-0001"' in response.content.decode()
    entry = LogEntry.objects.get_for_object(patient).get(action=LogEntry.Action.ACCESS)
    assert entry.additional_data == {"read": "patient edit page"}


def test_editing_to_another_patients_mrn_shows_the_error_and_changes_nothing(doctor_client, doctor, patient):
    Patient.objects.create(mrn="MRN-0002", full_name="Grace Hopper", created_by=doctor)
    response = doctor_client.post(
        reverse("diagnosis:patient_update", args=[patient.pk]), {"mrn": "MRN-0002", "full_name": "Alan", "sex": "M"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Another patient already has this medical record number." in page
    assert "Edit Alan Turing (MRN-0001)" in page
    patient.refresh_from_db()
    assert (patient.mrn, patient.full_name) == ("MRN-0001", "Alan Turing")


def test_a_doctor_it_is_shared_with_may_edit(colleague, patient):
    response = signed_in(colleague).post(
        reverse("diagnosis:patient_update", args=[patient.pk]),
        {"mrn": "MRN-0001", "full_name": "A. Turing", "sex": "M"},
    )
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.full_name == "A. Turing"


def test_the_update_service_refuses_fields_outside_the_form(patient, doctor, other_doctor):
    with pytest.raises(ValueError, match="created_by"):
        patient_update(patient=patient, updated_by=doctor, created_by=other_doctor)


# Another doctor's patient does not exist for them


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("get", "diagnosis:patient_detail"),
        ("get", "diagnosis:patient_update"),
        ("post", "diagnosis:patient_update"),
        ("get", "diagnosis:patient_delete"),
        ("post", "diagnosis:patient_delete"),
        ("post", "diagnosis:patient_share"),
    ],
)
def test_another_doctor_gets_404(other_doctor, patient, method, name):
    response = getattr(signed_in(other_doctor), method)(reverse(name, args=[patient.pk]), {"email": "x@example.org"})
    assert response.status_code == 404
    assert Patient.objects.filter(pk=patient.pk, full_name="Alan Turing").exists()


def test_another_doctor_gets_404_for_unsharing_and_scan_deletion(other_doctor, colleague, patient):
    client = signed_in(other_doctor)
    scan = make_scan(patient)
    assert client.post(reverse("diagnosis:patient_unshare", args=[patient.pk, colleague.pk])).status_code == 404
    assert client.get(reverse("diagnosis:scan_delete", args=[scan.pk])).status_code == 404
    assert client.post(reverse("diagnosis:scan_delete", args=[scan.pk])).status_code == 404
    assert patient.shared_with.filter(pk=colleague.pk).exists()
    assert Scan.objects.filter(pk=scan.pk).exists()


# Sharing


def test_sharing_gives_the_other_doctor_access_and_is_logged(doctor_client, doctor, patient, other_doctor):
    other = signed_in(other_doctor)
    assert other.get(reverse("diagnosis:patient_detail", args=[patient.pk])).status_code == 404

    response = doctor_client.post(
        reverse("diagnosis:patient_share", args=[patient.pk]), {"email": " Other@Hospital.example"}
    )

    assert response.status_code == 302
    assert last_message(response) == "Alan Turing is now shared with other@hospital.example."
    assert other.get(reverse("diagnosis:patient_detail", args=[patient.pk])).status_code == 200
    entry = LogEntry.objects.get_for_object(patient).filter(action=LogEntry.Action.UPDATE).get()
    assert entry.actor == doctor
    assert entry.changes_dict["shared_with"]["operation"] == "add"


def test_stopping_sharing_takes_access_away(doctor_client, patient, colleague):
    assert signed_in(colleague).get(reverse("diagnosis:patient_detail", args=[patient.pk])).status_code == 200

    response = doctor_client.post(reverse("diagnosis:patient_unshare", args=[patient.pk, colleague.pk]))

    assert response.status_code == 302
    assert signed_in(colleague).get(reverse("diagnosis:patient_detail", args=[patient.pk])).status_code == 404


def test_the_creator_sees_whom_it_is_shared_with_and_the_share_form(doctor_client, patient, colleague):
    page = doctor_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()
    assert "colleague@hospital.example" in page
    assert reverse("diagnosis:patient_unshare", args=[patient.pk, colleague.pk]) in page
    assert reverse("diagnosis:patient_share", args=[patient.pk]) in page
    assert reverse("diagnosis:patient_delete", args=[patient.pk]) in page


def test_a_doctor_it_is_shared_with_sees_no_share_or_delete_controls(patient, colleague):
    page = signed_in(colleague).get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()
    assert reverse("diagnosis:patient_share", args=[patient.pk]) not in page
    assert reverse("diagnosis:patient_delete", args=[patient.pk]) not in page
    assert reverse("diagnosis:patient_update", args=[patient.pk]) in page
    assert "who decides whom it is shared with" in page


def test_a_doctor_it_is_shared_with_cannot_share_or_unshare(patient, colleague, other_doctor):
    client = signed_in(colleague)
    shared = client.post(reverse("diagnosis:patient_share", args=[patient.pk]), {"email": other_doctor.email})
    assert shared.status_code == 302
    assert shared["Location"] == reverse("diagnosis:patient_detail", args=[patient.pk])
    assert last_message(shared) == "Only the doctor who created this patient can share it."
    unshared = client.post(reverse("diagnosis:patient_unshare", args=[patient.pk, colleague.pk]))
    assert last_message(unshared) == "Only the doctor who created this patient can stop sharing it."
    assert list(patient.shared_with.all()) == [colleague]


@pytest.mark.parametrize(
    ("email", "error"),
    [
        ("nobody@hospital.example", "No approved doctor has this e-mail address."),
        ("waiting@hospital.example", "No approved doctor has this e-mail address."),
        ("staff@hospital.example", "No approved doctor has this e-mail address."),
        ("doctor@hospital.example", "This doctor created the patient."),
        ("colleague@hospital.example", "is already shared with colleague@hospital.example"),
        ("not an address", "Enter a valid email address."),
    ],
)
def test_sharing_only_with_approved_doctors_once(
    doctor_client, make_doctor, staff_user, patient, colleague, email, error
):
    make_doctor(email="waiting@hospital.example", active=False)
    doctor_client.force_login(patient.created_by)

    response = doctor_client.post(reverse("diagnosis:patient_share", args=[patient.pk]), {"email": email})

    assert response.status_code == 400
    assert error in response.content.decode()
    assert list(patient.shared_with.all()) == [colleague]


def test_the_share_service_takes_a_doctor_too_and_refuses_non_creators(patient, doctor, colleague, other_doctor):
    patient_share(patient=patient, doctor=other_doctor, shared_by=doctor)
    assert set(patient.shared_with.all()) == {colleague, other_doctor}
    with pytest.raises(PermissionDenied):
        patient_share(patient=patient, doctor=other_doctor, shared_by=colleague)
    with pytest.raises(ValidationError):
        patient_share(patient=patient, doctor_email="", shared_by=doctor)


def test_sharing_is_post_only(doctor_client, patient):
    assert doctor_client.get(reverse("diagnosis:patient_share", args=[patient.pk])).status_code == 405


# Deleting a patient


def test_the_delete_page_asks_first_and_says_how_many_scans_go(doctor_client, patient):
    make_scan(patient)
    make_scan(patient)
    response = doctor_client.get(reverse("diagnosis:patient_delete", args=[patient.pk]))
    assert response.status_code == 200
    assert "<strong>2 scans</strong>" in response.content.decode()
    assert Patient.objects.filter(pk=patient.pk).exists()


def test_deleting_a_patient_removes_the_scans_and_their_files_and_is_logged(
    doctor_client, doctor, patient, diagnosed_scan, django_capture_on_commit_callbacks
):
    files = [diagnosed_scan.image, diagnosed_scan.preview, diagnosed_scan.heatmap]
    assert all(field.storage.exists(field.name) for field in files)

    with django_capture_on_commit_callbacks(execute=True):
        response = doctor_client.post(reverse("diagnosis:patient_delete", args=[patient.pk]))

    assert response.status_code == 302
    assert response["Location"] == reverse("diagnosis:patient_list")
    assert not Patient.objects.filter(pk=patient.pk).exists()
    assert not Scan.objects.filter(pk=diagnosed_scan.pk).exists()
    assert not any(field.storage.exists(field.name) for field in files)
    deleted = LogEntry.objects.filter(action=LogEntry.Action.DELETE, actor=doctor)
    assert set(deleted.values_list("content_type__model", "object_pk")) == {
        ("patient", str(patient.pk)),
        ("scan", str(diagnosed_scan.pk)),
    }


def test_a_doctor_it_is_shared_with_cannot_delete_the_patient(patient, colleague):
    client = signed_in(colleague)
    page = client.get(reverse("diagnosis:patient_delete", args=[patient.pk]))
    assert page.status_code == 302
    assert last_message(page) == "Only the doctor who created this patient can delete it."
    deleted = client.post(reverse("diagnosis:patient_delete", args=[patient.pk]))
    assert last_message(deleted) == "Only the doctor who created this patient can delete it."
    assert Patient.objects.filter(pk=patient.pk).exists()


def test_staff_may_delete_any_patient(staff_client, patient):
    assert staff_client.post(reverse("diagnosis:patient_delete", args=[patient.pk])).status_code == 302
    assert not Patient.objects.filter(pk=patient.pk).exists()


# Deleting a scan uploaded to the wrong patient


def test_the_uploader_deletes_a_scan_with_its_files_and_it_is_logged(
    patient, colleague, diagnosed_scan, django_capture_on_commit_callbacks
):
    Scan.objects.filter(pk=diagnosed_scan.pk).update(uploaded_by=colleague)
    client = signed_in(colleague)
    assert client.get(reverse("diagnosis:scan_delete", args=[diagnosed_scan.pk])).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("diagnosis:scan_delete", args=[diagnosed_scan.pk]))

    assert response["Location"] == reverse("diagnosis:patient_detail", args=[patient.pk])
    assert not Scan.objects.filter(pk=diagnosed_scan.pk).exists()
    assert not diagnosed_scan.image.storage.exists(diagnosed_scan.image.name)
    entry = LogEntry.objects.get(action=LogEntry.Action.DELETE, object_pk=str(diagnosed_scan.pk))
    assert entry.actor == colleague
    assert Patient.objects.filter(pk=patient.pk).exists()


def test_the_patients_creator_deletes_a_scan_another_doctor_uploaded(doctor_client, patient, colleague):
    scan = make_scan(patient, by=colleague)
    assert doctor_client.post(reverse("diagnosis:scan_delete", args=[scan.pk])).status_code == 302
    assert not Scan.objects.filter(pk=scan.pk).exists()


def test_a_doctor_it_is_shared_with_cannot_delete_someone_elses_scan(patient, colleague):
    scan = make_scan(patient)
    client = signed_in(colleague)
    page = client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()
    assert reverse("diagnosis:scan_delete", args=[scan.pk]) not in page
    response = client.post(reverse("diagnosis:scan_delete", args=[scan.pk]))
    assert last_message(response) == UPLOADER_OR_CREATOR_ONLY
    assert Scan.objects.filter(pk=scan.pk).exists()


# The detail page: scan history and trend


def test_the_history_lists_scans_newest_first_with_the_review(doctor_client, patient):
    older = make_scan(patient, label="COVID", probability=0.8, finding="COVID", ago=datetime.timedelta(days=3))
    newer = make_scan(patient, status="pending", view="PA")
    response = doctor_client.get(reverse("diagnosis:patient_detail", args=[patient.pk]))
    assert [scan.pk for scan in response.context["scans"]] == [newer.pk, older.pk]
    page = response.content.decode()
    assert "COVID-19 pneumonia" in page
    assert reverse("diagnosis:scan_delete", args=[older.pk]) in page
    assert 'action="' + reverse("diagnosis:scan_upload", args=[patient.pk]) in page


def test_the_trend_has_one_point_per_read_scan_and_the_threshold(doctor_client, patient):
    for days, probability in ((9, 0.2), (5, 0.55), (1, 0.9)):
        make_scan(
            patient,
            label="COVID" if probability > 0.5 else "NORMAL",
            probability=probability,
            ago=datetime.timedelta(days=days),
        )
    make_scan(patient, status="pending")
    make_scan(patient, status="failed")

    page = doctor_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()
    svg = page[page.index("<svg") : page.index("</svg>")]

    assert len(re.findall(r'<circle class="trend-point', svg)) == 3
    assert len(re.findall(r"trend-point-positive", svg)) == 2
    assert '<line class="trend-threshold"' in svg
    assert '<title id="trend-title">' in svg
    assert "3 read scans" in svg
    ys = [float(y) for y in re.findall(r'cy="([\d.]+)"', svg)]
    assert ys == sorted(ys, reverse=True)  # rising probability is drawn higher, oldest on the left
    xs = [float(x) for x in re.findall(r'cx="([\d.]+)"', svg)]
    assert xs == sorted(xs)


def test_no_trend_before_a_scan_is_read(doctor_client, patient):
    make_scan(patient, status="pending")
    page = doctor_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()
    assert "<svg" not in page
    assert "The trend appears once a scan has been read." in page


def test_the_trend_and_history_name_the_positive_class_of_the_versions_that_read_the_scans(doctor_client, patient):
    from mlcore.models import ModelVersion

    covid = ModelVersion.objects.create(name="covid", class_names=["COVID", "NORMAL"], positive_class="COVID")
    tuberculosis = ModelVersion.objects.create(
        name="tb", class_names=["TUBERCULOSIS", "NORMAL"], positive_class="TUBERCULOSIS"
    )
    url = reverse("diagnosis:patient_detail", args=[patient.pk])
    read_by_covid = make_scan(patient, label="COVID", probability=0.8, model_version=covid, ago=datetime.timedelta(1))

    page = doctor_client.get(url).content.decode()

    assert '<div class="card-header">Trend of P(COVID-19)</div>' in page
    assert f'<title id="trend-title">Probability of COVID-19 over time for {patient.full_name}</title>' in page
    assert re.search(r"<title>[^<]+: P\(COVID-19\) 0.800, COVID-19 pneumonia</title>", page)
    assert '<th scope="col">P(COVID-19)</th>' in page

    read_by_covid.delete()
    make_scan(patient, label="TUBERCULOSIS", probability=0.7, model_version=tuberculosis)
    page = doctor_client.get(url).content.decode()

    assert '<div class="card-header">Trend of P(Tuberculosis)</div>' in page
    assert f'<title id="trend-title">Probability of Tuberculosis over time for {patient.full_name}</title>' in page
    assert re.search(r"<title>[^<]+: P\(Tuberculosis\) 0.700, Tuberculosis</title>", page)
    assert '<th scope="col">P(Tuberculosis)</th>' in page
    assert "COVID-19" not in page


def test_a_patient_without_read_scans_has_the_default_column_name(doctor_client, patient):
    page = doctor_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()

    assert '<th scope="col">P(COVID-19)</th>' in page
