"""Writes for patients: create, edit, share, delete; and deleting a scan uploaded to the wrong patient.

Every change goes through ``save()``/``delete()`` on instances (never ``QuerySet.update``) so that
django-auditlog records it with the values before and after.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from accounts.models import normalize_email_address
from diagnosis.models import Patient, Scan
from diagnosis.selectors import patient_can_delete, patient_can_edit, patient_can_share, scan_can_delete

EDITABLE_FIELDS = ("mrn", "full_name", "date_of_birth", "sex", "contact", "notes")
CREATOR_ONLY = "Only the doctor who created this patient can {action}."
CARERS_ONLY = "Only the doctors caring for this patient can edit the record."
UPLOADER_OR_CREATOR_ONLY = "Only the doctor who uploaded this scan, or who created the patient, can delete it."


def patient_create(*, created_by, mrn: str, full_name: str, **fields) -> Patient:
    patient = Patient(created_by=created_by, mrn=mrn.strip(), full_name=full_name.strip(), **fields)
    patient.full_clean()
    patient.save()
    return patient


def patient_update(*, patient: Patient, updated_by, **fields) -> Patient:
    """Change the patient's record: any doctor caring for the patient may correct it (see patient_can_edit)."""
    if not patient_can_edit(user=updated_by, patient=patient):
        raise PermissionDenied(CARERS_ONLY)
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Not editable: {', '.join(sorted(unknown))}")
    for name, value in fields.items():
        setattr(patient, name, value.strip() if isinstance(value, str) else value)
    patient.full_clean()
    patient.save()
    return patient


def _require_sharer(*, patient: Patient, user, action: str) -> None:
    if not patient_can_share(user=user, patient=patient):
        raise PermissionDenied(CREATOR_ONLY.format(action=action))


def patient_share(*, patient: Patient, shared_by, doctor=None, doctor_email: str = ""):
    """Let another approved doctor see and work on the patient; only the creator may (see patient_can_share).

    Returns the doctor, found by `doctor_email` when no `doctor` is given.
    """
    _require_sharer(patient=patient, user=shared_by, action="share it")
    if doctor is None:
        doctor = (
            get_user_model()
            .objects.filter(email=normalize_email_address(doctor_email), is_active=True, is_staff=False)
            .first()
        )
        if doctor is None:
            raise ValidationError({"email": "No approved doctor has this e-mail address."}, code="unknown_doctor")
    if not doctor.is_active or doctor.is_staff:
        raise ValidationError({"email": "Patients are shared with approved doctors only."}, code="not_a_doctor")
    if doctor.pk == patient.created_by_id:
        raise ValidationError({"email": "This doctor created the patient."}, code="creator")
    if patient.shared_with.filter(pk=doctor.pk).exists():
        raise ValidationError({"email": f"{patient} is already shared with {doctor.email}."}, code="already")
    patient.shared_with.add(doctor)
    return doctor


def patient_unshare(*, patient: Patient, doctor, shared_by) -> Patient:
    """Stop sharing: the doctor no longer sees the patient (their past uploads and reviews stay)."""
    _require_sharer(patient=patient, user=shared_by, action="stop sharing it")
    patient.shared_with.remove(doctor)
    return patient


def _delete_files_after_commit(scans) -> None:
    """The stored images go too, but only once the rows are gone for good (a rollback keeps them)."""
    files = [
        (field.storage, field.name) for scan in scans for field in (scan.image, scan.preview, scan.heatmap) if field
    ]

    def delete():
        for storage, name in files:
            storage.delete(name)

    transaction.on_commit(delete)


@transaction.atomic
def patient_delete(*, patient: Patient, deleted_by) -> None:
    """Delete the patient with all their scans and reviews; only the creator may (see patient_can_delete)."""
    if not patient_can_delete(user=deleted_by, patient=patient):
        raise PermissionDenied(CREATOR_ONLY.format(action="delete it"))
    _delete_files_after_commit(list(patient.scans.all()))
    patient.delete()


@transaction.atomic
def scan_delete(*, scan: Scan, deleted_by) -> None:
    """Delete a scan, e.g. one uploaded to the wrong patient: by its uploader or the patient's creator.

    A worker reading it at the time finds it gone and discards its result.
    """
    if not scan_can_delete(user=deleted_by, scan=scan):
        raise PermissionDenied(UPLOADER_OR_CREATOR_ONLY)
    _delete_files_after_commit([scan])
    scan.delete()
