import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import User
from accounts.selectors import doctors_awaiting_approval
from accounts.services import doctors_approve

pytestmark = pytest.mark.django_db


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
