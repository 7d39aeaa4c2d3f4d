import pytest
from django.urls import reverse

from diagnosis.models import Review, Scan
from tests.conftest import THREE_CLASSES

pytestmark = pytest.mark.django_db


@pytest.fixture
def diagnosed(patient, doctor):
    return Scan.objects.create(
        patient=patient,
        image="originals/a.png",
        file_type="PNG",
        uploaded_by=doctor,
        status="done",
        result="positive",
        label="COVID",
        probability=0.91,
        threshold=0.7,
    )


def review(client, scan, **data):
    return client.post(reverse("diagnosis:scan_review", args=[scan.pk]), data)


def test_a_doctor_records_and_then_revises_a_review(doctor_client, doctor, diagnosed):
    first = review(doctor_client, diagnosed, agrees_with_model="yes", final_finding="COVID", comment=" bilateral ")
    assert first.status_code == 302

    saved = Review.objects.get(scan=diagnosed)
    assert saved.agrees_with_model is True
    assert saved.final_finding == "COVID"
    assert saved.comment == "bilateral"
    assert saved.reviewer == doctor

    review(doctor_client, diagnosed, agrees_with_model="no", final_finding="OTHER", comment="atelectasis")

    revised = Review.objects.get(scan=diagnosed)
    assert (revised.agrees_with_model, revised.final_finding) == (False, "OTHER")
    page = doctor_client.get(reverse("diagnosis:scan_detail", args=[diagnosed.pk])).content.decode()
    assert "Other finding" in page
    assert "disagrees with the model" in page


def test_agreeing_with_the_model_while_naming_another_finding_is_refused(doctor_client, diagnosed):
    response = review(doctor_client, diagnosed, agrees_with_model="yes", final_finding="NORMAL")

    assert response.status_code == 400
    assert "whose reading is COVID" in response.content.decode()
    assert not Review.objects.exists()


def test_a_scan_without_a_result_cannot_be_reviewed(doctor_client, diagnosed):
    Scan.objects.filter(pk=diagnosed.pk).update(status="pending")

    response = review(doctor_client, diagnosed, agrees_with_model="no", final_finding="NORMAL")

    assert response.status_code == 400
    assert "Only a scan with a result can be reviewed." in response.content.decode()
    assert not Review.objects.exists()


def test_another_doctor_cannot_review(client, make_doctor, diagnosed):
    client.force_login(make_doctor(email="other@hospital.example"))

    response = review(client, diagnosed, agrees_with_model="yes", final_finding="COVID")

    assert response.status_code == 404
    assert not Review.objects.exists()


def test_staff_read_reviews_in_the_admin(doctor_client, staff_user, diagnosed):
    from django.test import Client

    review(doctor_client, diagnosed, agrees_with_model="yes", final_finding="COVID")
    staff_client = Client()
    staff_client.force_login(staff_user)

    response = staff_client.get(reverse("admin:diagnosis_review_changelist"), {"q": "MRN-0001"})

    assert len(response.context["cl"].result_list) == 1


def test_a_doctor_records_other_pneumonia_agreeing_with_a_three_class_reading(doctor_client, diagnosed, make_version):
    Scan.objects.filter(pk=diagnosed.pk).update(
        model_version=make_version("tiny-3", activate=False, class_names=THREE_CLASSES),
        result="negative",
        label="OTHER_PNEUMONIA",
    )

    response = review(doctor_client, diagnosed, agrees_with_model="yes", final_finding="OTHER_PNEUMONIA")

    assert response.status_code == 302
    assert Review.objects.get(scan=diagnosed).get_final_finding_display() == "Other pneumonia (not COVID-19)"
    page = doctor_client.get(reverse("diagnosis:scan_detail", args=[diagnosed.pk])).content.decode()
    assert '<option value="OTHER_PNEUMONIA" selected>Other pneumonia (not COVID-19)</option>' in page


def test_agreeing_names_the_called_class_in_words(doctor_client, diagnosed):
    Scan.objects.filter(pk=diagnosed.pk).update(result="negative", label="OTHER_PNEUMONIA")

    response = review(doctor_client, diagnosed, agrees_with_model="yes", final_finding="NORMAL")

    assert response.status_code == 400
    assert "whose reading is Other pneumonia (not COVID-19)" in response.content.decode()
