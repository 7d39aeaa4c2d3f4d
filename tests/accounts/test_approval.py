import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.selectors import doctors_awaiting_approval
from accounts.services import doctors_approve
from tests.conftest import DOCTOR_PASSWORD

pytestmark = pytest.mark.django_db

APPROVALS_URL = reverse("admin:accounts_doctorregistration_changelist")


@pytest.fixture
def approver(make_staff):
    """Staff who may approve doctors, and do nothing else."""
    return make_staff("accounts.approve_doctor", email="approver@hospital.example")


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_admin_action_approves_many_doctors_at_once(
    staff_client, staff_user, make_doctor, django_capture_on_commit_callbacks
):
    waiting = [make_doctor(email=f"doctor{n}@hospital.example", active=False) for n in range(3)]
    untouched = make_doctor(email="later@hospital.example", active=False)

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("admin:accounts_user_changelist"),
            {"action": "approve_selected", "_selected_action": [d.pk for d in waiting]},
            follow=True,
        )

    assert response.status_code == 200
    assert "Approved 3 account(s)" in response.content.decode()
    for doctor in waiting:
        doctor.refresh_from_db()
        assert doctor.is_active
        assert doctor.approved_by == staff_user
        assert doctor.approved_at is not None
    untouched.refresh_from_db()
    assert not untouched.is_active
    assert sorted(m.to[0] for m in mail.outbox) == sorted(d.email for d in waiting)


def test_approving_an_active_account_changes_nothing(staff_user, doctor):
    assert doctors_approve(doctors=[doctor], approved_by=staff_user) == 0
    doctor.refresh_from_db()
    assert doctor.approved_at is None
    assert not mail.outbox


def test_admin_lists_doctors_awaiting_approval(staff_client, make_doctor):
    make_doctor(email="waiting@hospital.example", active=False)
    make_doctor(email="approved@hospital.example", active=True)

    response = staff_client.get(reverse("admin:accounts_user_changelist"), {"approval": "waiting"})

    html = response.content.decode()
    assert "waiting@hospital.example" in html
    assert "approved@hospital.example" not in html
    assert [u.email for u in doctors_awaiting_approval()] == ["waiting@hospital.example"]


def test_doctor_without_staff_status_cannot_use_the_admin(doctor_client):
    response = doctor_client.get(reverse("admin:accounts_user_changelist"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_can_create_an_account_in_the_admin(staff_client):
    response = staff_client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "New.Staff@Hospital.example",
            "full_name": "New Staff",
            "password1": "Another-Strong-Pass-1",
            "password2": "Another-Strong-Pass-1",
        },
    )

    assert response.status_code == 302
    assert User.objects.filter(email="new.staff@hospital.example").exists()


def test_an_approver_approves_waiting_doctors_on_a_page_of_their_own(
    approver, make_doctor, django_capture_on_commit_callbacks
):
    waiting = [make_doctor(email=f"doctor{n}@hospital.example", active=False) for n in range(2)]
    make_doctor(email="active@hospital.example")
    client = signed_in(approver)

    page = client.get(APPROVALS_URL).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            APPROVALS_URL, {"action": "approve_selected", "_selected_action": [d.pk for d in waiting]}, follow=True
        )

    assert "doctor0@hospital.example" in page
    assert "active@hospital.example" not in page
    assert reverse("admin:accounts_user_change", args=[waiting[0].pk]) not in page
    assert "Approved 2 account(s)" in response.content.decode()
    for doctor in waiting:
        doctor.refresh_from_db()
        assert (doctor.is_active, doctor.approved_by) == (True, approver)
    assert sorted(m.to[0] for m in mail.outbox) == sorted(d.email for d in waiting)


def test_an_approver_can_neither_open_nor_change_any_account(approver, doctor, staff_user, make_doctor):
    client = signed_in(approver)
    waiting = make_doctor(email="waiting@hospital.example", active=False)
    before = list(User.objects.order_by("pk").values())

    pages = [
        reverse("admin:accounts_user_changelist"),
        reverse("admin:accounts_user_add"),
        reverse("admin:accounts_user_change", args=[approver.pk]),
        reverse("admin:accounts_user_change", args=[doctor.pk]),
        reverse("admin:auth_user_password_change", args=[staff_user.pk]),
        reverse("admin:auth_group_changelist"),
        reverse("admin:diagnosis_patient_changelist"),
    ]
    hacks = {
        reverse("admin:accounts_user_change", args=[approver.pk]): {"email": approver.email, "is_superuser": "on"},
        reverse("admin:auth_user_password_change", args=[staff_user.pk]): {
            "password1": DOCTOR_PASSWORD + "x",
            "password2": DOCTOR_PASSWORD + "x",
        },
        reverse("admin:accounts_doctorregistration_change", args=[waiting.pk]): {
            "email": "mine@hospital.example",
            "full_name": "Taken Over",
        },
        reverse("admin:accounts_doctorregistration_delete", args=[waiting.pk]): {"post": "yes"},
    }

    for url in pages:
        assert client.get(url).status_code == 403, url
    for url, data in hacks.items():
        assert client.post(url, data).status_code == 403, url
    assert list(User.objects.order_by("pk").values()) == before


def test_approving_activates_only_doctors_awaiting_approval(approver, make_doctor):
    deactivated = make_doctor(email="left@hospital.example", active=False)
    deactivated.approved_at = deactivated.date_joined
    deactivated.save()
    inactive_staff = User.objects.create_user(
        email="old-admin@hospital.example", password=DOCTOR_PASSWORD, full_name="Old Admin", is_staff=True
    )
    inactive_staff.is_superuser = True
    inactive_staff.save()

    approved = doctors_approve(doctors=[deactivated, inactive_staff, approver], approved_by=approver)

    assert approved == 0
    for account in (deactivated, inactive_staff):
        account.refresh_from_db()
        assert not account.is_active
    assert not mail.outbox


def test_approving_needs_the_approve_permission_not_the_right_to_change_accounts(make_staff, make_doctor):
    user_editor = make_staff("accounts.view_user", "accounts.change_user")
    waiting = make_doctor(email="waiting@hospital.example", active=False)
    client = signed_in(user_editor)

    page = client.get(reverse("admin:accounts_user_changelist")).content.decode()
    client.post(
        reverse("admin:accounts_user_changelist"), {"action": "approve_selected", "_selected_action": [waiting.pk]}
    )

    assert "approve_selected" not in page
    assert client.get(APPROVALS_URL).status_code == 403
    with pytest.raises(PermissionDenied):
        doctors_approve(doctors=[waiting], approved_by=user_editor)
    waiting.refresh_from_db()
    assert not waiting.is_active
