"""Reads of doctor accounts, and of the rights accounts hold."""

from collections.abc import Iterable

from django.contrib.auth.models import Permission
from django.db.models import Q, QuerySet

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


def permission_names(user) -> set[str]:
    """Every permission ("app.codename") the account holds, directly or through a group, whether it is
    active or not (the auth backend reports none for an inactive account, which could be re-activated)."""
    permissions = Permission.objects.all()
    if not user.is_superuser:
        permissions = permissions.filter(Q(user=user) | Q(group__user=user))
    pairs = permissions.values_list("content_type__app_label", "codename").distinct()
    return {f"{app_label}.{codename}" for app_label, codename in pairs}


def permissions_not_held(*, user, permissions: Iterable[Permission]) -> list[Permission]:
    """Those of `permissions` that `user` does not hold: what they may not grant."""
    held = permission_names(user)
    return [p for p in permissions if f"{p.content_type.app_label}.{p.codename}" not in held]


def user_can_administer(*, editor, account) -> bool:
    """Whoever changes an account (its address, password, rights) can take it over, so only an editor who
    holds every right the account has may: never a superuser's, unless the editor is one."""
    if editor.is_superuser:
        return True
    if account.is_superuser:
        return False
    return permission_names(account) <= permission_names(editor)
