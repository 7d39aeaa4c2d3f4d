"""API tokens for systems that read results (FHIR), and the FHIR DiagnosticReport of a scan.

Tokens are django-rest-knox's: only a SHA-512 digest is stored, so a copy of the database holds no
usable token, and each token belongs to a user whose access rules it carries.
"""

import datetime
from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from knox.models import AuthToken, get_digest_token
from knox.settings import CONSTANTS

from diagnosis.models import Scan
from diagnosis.services.report_pdf import scan_report_pdf_render
from interop.fhir import diagnostic_report_build


def api_token_issue(*, user, valid_for: datetime.timedelta | None) -> tuple[AuthToken, str]:
    """A new token for `user`, expiring after `valid_for` (never when None).

    Only the digest is stored: the returned text is the one chance to read the token.
    """
    if not user.is_active:
        raise ValidationError("Tokens are only issued to active accounts.")
    digest, token = get_digest_token()
    issued = AuthToken(
        digest=digest,
        token_key=token[: CONSTANTS.TOKEN_KEY_LENGTH],
        user=user,
        expiry=timezone.now() + valid_for if valid_for else None,
    )
    issued.full_clean()
    issued.save()
    return issued, token


def api_tokens_revoke(*, tokens: QuerySet[AuthToken]) -> int:
    """Revoke tokens at once: the next request with any of them is refused (401)."""
    count, _ = tokens.delete()
    return count


def scan_fhir_report(*, scan: Scan, viewer) -> DiagnosticReport:
    """The scan's DiagnosticReport, with the printable report as PDF when the model made a reading.

    The caller has checked that `viewer` may see the scan; the PDF names them as who generated it.
    """
    pdf = scan_report_pdf_render(scan=scan, viewer=viewer) if scan.status == Scan.Status.DONE else None
    return diagnostic_report_build(scan=scan, pdf=pdf)


MATCH = {"mode": "match"}


def scans_fhir_search_bundle(
    *, scans: list[Scan], viewer, total: int, links: list[dict], full_url: Callable[[Scan], str]
) -> Bundle:
    """One page of search results: a searchset Bundle of the scans' reports, each with its PDF."""
    entries = [
        {"fullUrl": full_url(scan), "resource": scan_fhir_report(scan=scan, viewer=viewer), "search": MATCH}
        for scan in scans
    ]
    return Bundle.model_validate(
        {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links, "entry": entries}
    )
