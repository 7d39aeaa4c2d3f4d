"""Reads for the FHIR endpoints: the scan page's access rules (diagnosis.selectors), final readings only."""

from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404

from diagnosis.models import Scan
from diagnosis.selectors import scan_get_for_user, scans_visible_to

REPORTED_STATUSES = (Scan.Status.DONE, Scan.Status.NOT_ASSESSABLE)


def fhir_report_scan_get(*, user, pk: int) -> Scan:
    """A scan with a final reading that `user` may see, or 404, whether it is hidden, missing or not read yet."""
    scan = scan_get_for_user(user=user, pk=pk)
    if scan.status not in REPORTED_STATUSES:
        raise Http404("This scan has no final reading yet.")
    return scan


def fhir_report_scans_for_patient(*, user, mrn: str, system: str = "") -> QuerySet[Scan]:
    """The patient's scans with a final reading, newest first; none for a patient `user` may not see.

    `system` is the identifier system the client named, if any: record numbers are this hospital's.
    """
    scans = scans_visible_to(user).filter(patient__mrn=mrn, status__in=REPORTED_STATUSES)
    if system and system != settings.COVIDXRAY_FHIR_MRN_SYSTEM:
        scans = scans.none()
    return scans.order_by("-uploaded_at", "-pk")
