"""The right to change accounts grants no more than the editor holds: no superusers, no permissions or
groups beyond the editor's own, no taking over an account with more rights."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.conftest import DOCTOR_PASSWORD

pytestmark = pytest.mark.django_db


def permission(name: str) -> Permission:
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


@pytest.fixture
def editor(make_staff):
    """Staff who may change accounts and view patients, and nothing else."""
    rights = ("accounts.view_user", "accounts.change_user", "diagnosis.view_patient")
    return make_staff(*rights, email="editor@hospital.example")


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def change_url(user) -> str:
    return reverse("admin:accounts_user_change", args=[user.pk])


def change_form(user, **changes) -> dict:
    """What the admin's change form posts for `user` as it is, with `changes`; unticked boxes are left out."""
    data = {
        "email": user.email,
        "full_name": user.full_name,
        "licence_number": user.licence_number,
        "hospital": user.hospital,
        "user_permissions": list(user.user_permissions.values_list("pk", flat=True)),
        "groups": list(user.groups.values_list("pk", flat=True)),
        **{flag: "on" for flag in ("is_active", "is_staff", "is_superuser") if getattr(user, flag)},
    }
    return data | changes


def test_an_editor_cannot_make_anyone_superuser_themselves_included(editor, doctor):
    client = signed_in(editor)

    for account in (doctor, editor):
        response = client.post(change_url(account), change_form(account, is_superuser="on"))

        assert response.status_code == 302
        account.refresh_from_db()
        assert not account.is_superuser


def test_an_editor_grants_only_permissions_they_hold(editor, doctor):
    client = signed_in(editor)
    held, not_held = permission("diagnosis.view_patient"), permission("diagnosis.delete_patient")

    refused = client.post(change_url(doctor), change_form(doctor, user_permissions=[not_held.pk]))
    for_themselves = client.post(change_url(editor), change_form(editor, user_permissions=[not_held.pk]))
    granted = client.post(change_url(doctor), change_form(doctor, user_permissions=[held.pk]))

    message = "You can grant only permissions you hold yourself; not: diagnosis.delete_patient."
    assert refused.status_code == for_themselves.status_code == 200
    assert message in refused.content.decode()
    assert message in for_themselves.content.decode()
    assert granted.status_code == 302
    assert set(User.objects.get(pk=doctor.pk).get_all_permissions()) == {"diagnosis.view_patient"}
    assert not User.objects.get(pk=editor.pk).has_perm("diagnosis.delete_patient")


def test_an_editor_cannot_put_anyone_in_a_group_with_rights_they_lack(editor, doctor):
    admins = Group.objects.create(name="Administrators")
    admins.permissions.add(permission("accounts.delete_user"), permission("diagnosis.view_patient"))
    client = signed_in(editor)

    for account in (doctor, editor):
        response = client.post(change_url(account), change_form(account, groups=[admins.pk]))

        assert "not: accounts.delete_user." in response.content.decode()
        assert not account.groups.exists()


def test_an_editor_cannot_change_a_superuser_or_an_account_with_more_rights(editor, staff_user, make_staff):
    stronger = make_staff("accounts.change_user", "diagnosis.delete_patient", email="stronger@hospital.example")
    stronger.is_active = False  # an inactive account keeps its rights for when it is activated again
    stronger.save()
    client = signed_in(editor)

    for account in (staff_user, stronger):
        edit = client.post(change_url(account), change_form(account, email="taken-over@hospital.example"))
        password = client.post(
            reverse("admin:auth_user_password_change", args=[account.pk]),
            {"password1": "Taken-Over-2026!", "password2": "Taken-Over-2026!"},
        )
        delete = client.post(reverse("admin:accounts_user_delete", args=[account.pk]), {"post": "yes"})

        assert (edit.status_code, password.status_code, delete.status_code) == (403, 403, 403)
        account.refresh_from_db()
        assert account.email != "taken-over@hospital.example"
        assert account.check_password(DOCTOR_PASSWORD)


def test_a_group_editor_grants_a_group_only_permissions_they_hold(make_staff):
    group_editor = make_staff("auth.view_group", "auth.change_group", email="groups@hospital.example")
    clerks = Group.objects.create(name="Clerks")
    group_editor.groups.add(clerks)
    url = reverse("admin:auth_group_change", args=[clerks.pk])

    response = signed_in(group_editor).post(
        url, {"name": "Clerks", "permissions": [permission("diagnosis.delete_patient").pk]}
    )

    assert "not: diagnosis.delete_patient." in response.content.decode()
    assert not clerks.permissions.exists()


def test_a_superuser_still_grants_anything(staff_client, doctor):
    rights = [permission("diagnosis.delete_patient").pk, permission("accounts.approve_doctor").pk]

    response = staff_client.post(change_url(doctor), change_form(doctor, is_superuser="on", user_permissions=rights))

    assert response.status_code == 302
    doctor.refresh_from_db()
    assert doctor.is_superuser
    assert doctor.user_permissions.count() == 2
