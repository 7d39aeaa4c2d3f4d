"""Reads of doctor accounts."""

from django.db.models import QuerySet

from accounts.models import AWAITING_APPROVAL, User, normalize_email_address


def doctors_awaiting_approval(*, among: QuerySet[User] | None = None) -> QuerySet[User]:
    """Doctors whose registration waits for staff (`among` narrows the accounts, e.g. the admin's list)."""
    users = User.objects.all() if among is None else among
    return users.filter(**AWAITING_APPROVAL).order_by("date_joined")


def doctor_awaiting_approval_with_password(*, email: str, password: str) -> User | None:
    """The account behind a failed sign-in, if it awaits approval and the password was right."""
    user = doctors_awaiting_approval().filter(email=normalize_email_address(email)).first()
    if user is not None and user.check_password(password):
        return user
    return None
