"""Reads of doctor accounts."""

from django.db.models import QuerySet

from accounts.models import User, normalize_email_address


def doctors_awaiting_approval() -> QuerySet[User]:
    return User.objects.filter(is_active=False, approved_at__isnull=True, is_staff=False).order_by("date_joined")


def inactive_user_with_password(*, email: str, password: str) -> User | None:
    """The not-yet-approved account behind a failed login, if the password was right."""
    user = User.objects.filter(email=normalize_email_address(email), is_active=False).first()
    if user is not None and user.check_password(password):
        return user
    return None
