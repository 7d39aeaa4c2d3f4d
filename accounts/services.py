"""Writes to doctor accounts: registration and staff approval."""

from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.mail import mail_admins, send_mail
from django.db import transaction
from django.utils import timezone

from accounts.models import User, normalize_email_address


@transaction.atomic
def doctor_register(*, email: str, full_name: str, licence_number: str, hospital: str, password: str) -> User:
    """Create an inactive doctor account; staff are told that it waits for their approval."""
    doctor = User(
        email=normalize_email_address(email),
        full_name=full_name.strip(),
        licence_number=licence_number.strip(),
        hospital=hospital.strip(),
        is_active=False,
    )
    doctor.full_clean(exclude=["password"])
    validate_password(password, user=doctor)
    doctor.set_password(password)
    doctor.save()
    transaction.on_commit(lambda: _notify_staff_of_registration(doctor))
    return doctor


def _notify_staff_of_registration(doctor: User) -> None:
    mail_admins(
        subject=f"Doctor awaiting approval: {doctor.full_name}",
        message=(
            f"{doctor.full_name} <{doctor.email}>, licence {doctor.licence_number}, "
            f"{doctor.hospital}, registered and waits for approval in the admin (Users)."
        ),
        fail_silently=True,
    )


@transaction.atomic
def doctors_approve(*, doctors: Iterable[User], approved_by: User) -> int:
    """Activate the given accounts that await approval (others are left alone); returns how many."""
    approved = 0
    now = timezone.now()
    for doctor in doctors:
        if not doctor.is_awaiting_approval:
            continue
        doctor.is_active = True
        doctor.approved_at = now
        doctor.approved_by = approved_by
        doctor.full_clean(exclude=["password"])
        doctor.save(update_fields=["is_active", "approved_at", "approved_by"])
        transaction.on_commit(lambda doctor=doctor: _notify_doctor_of_approval(doctor))
        approved += 1
    return approved


def _notify_doctor_of_approval(doctor: User) -> None:
    send_mail(
        subject="Your CovidXray account is approved",
        message=f"Dear {doctor.full_name},\n\nyour account is approved; you can sign in now.",
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[doctor.email],
        fail_silently=True,
    )
