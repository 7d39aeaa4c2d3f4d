import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db

VALID = {
    "full_name": "Rosalind Franklin",
    "email": "R.Franklin@Hospital.example",
    "licence_number": "GMC-7654321",
    "hospital": "King's College Hospital",
    "password1": "Double-Helix-1953",
    "password2": "Double-Helix-1953",
}


def post_registration(client, **changes):
    return client.post(reverse("accounts:register"), VALID | changes)


def test_registration_creates_an_inactive_doctor_and_tells_staff(client, settings, django_capture_on_commit_callbacks):
    settings.ADMINS = [("Admissions", "it@hospital.example")]

    with django_capture_on_commit_callbacks(execute=True):
        response = post_registration(client)

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:registration_pending")
    doctor = User.objects.get()
    assert doctor.email == "r.franklin@hospital.example"
    assert not doctor.is_active
    assert not doctor.is_staff
    assert doctor.is_awaiting_approval
    assert doctor.licence_number == "GMC-7654321"
    assert doctor.hospital == "King's College Hospital"
    assert doctor.check_password("Double-Helix-1953")
    assert doctor.password.startswith("md5$")  # hashed (the test settings use a fast hasher)
    assert [m.to for m in mail.outbox] == [["it@hospital.example"]]
    assert "Rosalind Franklin" in mail.outbox[0].subject


def test_registration_page_renders_with_crispy_bootstrap_form(client):
    response = client.get(reverse("accounts:register"))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="licence_number"' in html
    assert "form-control" in html
    assert "csrfmiddlewaretoken" in html


@pytest.mark.parametrize("email", ["doctor@hospital.example", "DOCTOR@Hospital.Example"])
def test_duplicate_email_in_any_letter_case_is_refused(client, make_doctor, email):
    make_doctor(email="doctor@hospital.example")

    response = post_registration(client, email=email)

    assert response.status_code == 200
    assert "An account with this e-mail address already exists." in response.content.decode()
    assert User.objects.count() == 1


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"password1": "short", "password2": "short"}, "password1", "too short"),
        ({"password1": "password123", "password2": "password123"}, "password1", "too common"),
        ({"password1": "4815162342000", "password2": "4815162342000"}, "password1", "entirely numeric"),
        ({"password2": "Double-Helix-1954"}, "password2", "The two passwords differ."),
        ({"licence_number": ""}, "licence_number", "This field is required."),
        ({"licence_number": "   "}, "licence_number", "This field is required."),
        ({"email": "not-an-address"}, "email", "Enter a valid email address."),
        ({"hospital": ""}, "hospital", "This field is required."),
    ],
)
def test_bad_registration_shows_the_error_on_its_field_and_stores_nothing(client, changes, field, message):
    response = post_registration(client, **changes)

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors
    assert any(message in error for error in errors[field])
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not User.objects.exists()
    assert not mail.outbox


def test_signed_in_user_is_sent_home_from_registration(doctor_client):
    response = doctor_client.get(reverse("accounts:register"))

    assert response.status_code == 302
    assert response["Location"] == reverse("home")
