import pytest
from django.urls import reverse

from diagnosis.models import Scan

pytestmark = pytest.mark.django_db


@pytest.fixture
def scans(patient, doctor):
    done = Scan.objects.create(
        patient=patient,
        image="originals/a.png",
        file_type="PNG",
        uploaded_by=doctor,
        status="done",
        result="positive",
        label="COVID",
        probability=0.9,
        preview="derived/p.png",
        heatmap="derived/h.png",
    )
    waiting = Scan.objects.create(patient=patient, image="originals/b.png", file_type="PNG", uploaded_by=doctor)
    return done, waiting


def test_staff_find_scans_by_mrn_and_status_with_thumbnails(staff_client, scans):
    done, waiting = scans
    url = reverse("admin:diagnosis_scan_changelist")

    by_mrn = staff_client.get(url, {"q": "MRN-0001"}).content.decode()
    by_status = staff_client.get(url, {"status__exact": "pending"})

    assert reverse("diagnosis:scan_image", args=[done.pk, "preview"]) in by_mrn
    assert list(by_status.context["cl"].result_list) == [waiting]


def test_staff_see_the_radiograph_and_heatmap_on_the_scan_page(staff_client, scans):
    done, _ = scans

    html = staff_client.get(reverse("admin:diagnosis_scan_change", args=[done.pk])).content.decode()

    assert reverse("diagnosis:scan_image", args=[done.pk, "preview"]) in html
    assert reverse("diagnosis:scan_image", args=[done.pk, "heatmap"]) in html


def test_staff_search_patients_by_name(staff_client, patient):
    response = staff_client.get(reverse("admin:diagnosis_patient_changelist"), {"q": "Turing"})

    assert list(response.context["cl"].result_list) == [patient]


def admin_patient_form(**fields) -> dict:
    return {
        "mrn": "MRN-0042",
        "full_name": " Rosalind Franklin ",
        "date_of_birth": "1920-07-25",
        "sex": "F",
        "contact": "",
        "notes": "",
        "scans-TOTAL_FORMS": "0",
        "scans-INITIAL_FORMS": "0",
        "scans-MIN_NUM_FORMS": "0",
        "scans-MAX_NUM_FORMS": "1000",
    } | fields


def test_staff_add_a_patient_in_the_admin_as_its_creator_and_share_it(staff_client, staff_user, doctor):
    from auditlog.models import LogEntry

    from diagnosis.models import Patient

    response = staff_client.post(reverse("admin:diagnosis_patient_add"), admin_patient_form(shared_with=[doctor.pk]))

    assert response.status_code == 302
    patient = Patient.objects.get(mrn="MRN-0042")
    assert patient.created_by == staff_user
    assert patient.full_name == "Rosalind Franklin", "the service strips names, as on the doctors' page"
    assert list(patient.shared_with.all()) == [doctor]
    assert LogEntry.objects.get_for_object(patient).filter(action=LogEntry.Action.CREATE).exists()


def test_a_patient_added_in_the_admin_with_a_taken_record_number_is_refused_in_words(staff_client, patient):
    from diagnosis.models import Patient

    response = staff_client.post(reverse("admin:diagnosis_patient_add"), admin_patient_form(mrn=patient.mrn))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["mrn"] == ["Patient with this Medical record number already exists."]
    assert Patient.objects.count() == 1


def test_staff_edit_a_patient_in_the_admin_through_the_service(staff_client, patient, doctor):
    url = reverse("admin:diagnosis_patient_change", args=[patient.pk])

    response = staff_client.post(url, admin_patient_form(mrn=" MRN-0001 ", full_name="Alan M. Turing "))

    assert response.status_code == 302
    patient.refresh_from_db()
    assert (patient.mrn, patient.full_name, patient.created_by) == ("MRN-0001", "Alan M. Turing", doctor)
