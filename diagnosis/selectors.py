"""Reads for the diagnosis app; every one is scoped to what the user may see."""

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from diagnosis.models import Patient, Scan


def patients_visible_to(user) -> QuerySet[Patient]:
    """A doctor sees the patients they created or that were shared with them; staff see all."""
    if user.is_staff:
        return Patient.objects.all()
    return Patient.objects.filter(Q(created_by=user) | Q(shared_with=user)).distinct()


def patient_get_for_user(*, user, pk: int) -> Patient:
    """The patient, or 404 (not 403) so that other doctors' patients do not even show to exist."""
    return get_object_or_404(patients_visible_to(user), pk=pk)


def scans_visible_to(user) -> QuerySet[Scan]:
    return Scan.objects.filter(patient__in=patients_visible_to(user)).select_related("patient", "model_version")


def scan_get_for_user(*, user, pk: int) -> Scan:
    return get_object_or_404(scans_visible_to(user), pk=pk)
