"""One meaning of "awaiting approval" (accounts.models.AWAITING_APPROVAL) for the account itself, the selector,
the admin's filter, the sign-in message and the approval action; it once had a different one in each."""

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.selectors import doctors_awaiting_approval
from accounts.services import doctors_approve
from tests.conftest import DOCTOR_PASSWORD

pytestmark = pytest.mark.django_db

ACCOUNTS = {
    # name: (is_active, approved before, is_staff, awaits approval)
    "registered doctor": (False, False, False, True),
    "approved doctor": (True, True, False, False),
    "deactivated doctor": (False, True, False, False),
    "staff": (True, False, True, False),
    "deactivated staff": (False, False, True, False),
}


@pytest.fixture
def accounts(make_doctor) -> dict[str, User]:
    made = {}
    for name, (active, approved, staff, _) in ACCOUNTS.items():
        email = f"{name.replace(' ', '-')}-account@hospital.example"
        account = make_doctor(email=email, active=active, is_staff=staff)
        if approved:
            User.objects.filter(pk=account.pk).update(approved_at=timezone.now())
            account.refresh_from_db()
        made[name] = account
    return made


def expected(name: str) -> bool:
    return ACCOUNTS[name][3]


@pytest.mark.parametrize("name", ACCOUNTS)
def test_the_account_the_selector_and_the_admin_filter_agree(accounts, staff_client, name):
    account = accounts[name]
    listed = staff_client.get(reverse("admin:accounts_user_changelist"), {"approval": "waiting"})

    assert account.is_awaiting_approval is expected(name)
    assert doctors_awaiting_approval().filter(pk=account.pk).exists() is expected(name)
    assert (account in listed.context["cl"].result_list) is expected(name)


@pytest.mark.parametrize("name", ACCOUNTS)
def test_only_an_account_awaiting_approval_is_told_so_at_sign_in(accounts, client, name):
    response = client.post(reverse("accounts:login"), {"username": accounts[name].email, "password": DOCTOR_PASSWORD})

    told = "awaiting approval" in response.content.decode()
    assert told is expected(name)


@pytest.mark.parametrize("name", ACCOUNTS)
def test_the_approval_action_approves_only_accounts_awaiting_it(accounts, staff_user, name):
    account = accounts[name]
    before = (account.is_active, account.approved_at)

    approved = doctors_approve(doctors=[account], approved_by=staff_user)

    account.refresh_from_db()
    assert approved == int(expected(name))
    if expected(name):
        assert (account.is_active, account.approved_by) == (True, staff_user)
    else:
        assert (account.is_active, account.approved_at) == before
