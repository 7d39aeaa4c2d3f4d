"""FHIR endpoints for systems that hold an API token (django-rest-knox), with the scan page's access rules.

A token acts as the user it was issued to: a scan that user may not see is 404, as on the scan page.
Answers are application/fhir+json, never cached, and every report handed out is in the audit log.
"""

import json

from django.core.paginator import EmptyPage, Paginator
from django.urls import reverse
from django.utils.http import urlencode
from knox.auth import TokenAuthentication
from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from covidxray.audit import record_access
from interop.fhir import operation_outcome_build
from interop.selectors import fhir_report_scan_get, fhir_report_scans_for_patient
from interop.services import scan_fhir_report, scans_fhir_search_bundle

SEARCH_PAGE_SIZE = 10
SEARCH_MAX_PAGE_SIZE = 50
# FHIR's IssueType for each error status this API answers.
ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported"}


class FhirJsonRenderer(JSONRenderer):
    media_type = "application/fhir+json"
    format = "fhir"


class FhirJsonOnly(BaseContentNegotiation):
    """FHIR JSON whatever the client asks for (application/json, */*, or nothing)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def fhir_json(resource) -> dict:
    """The resource as fhir.resources writes it (FHIR's own JSON: no empty elements, FHIR dates)."""
    return json.loads(resource.model_dump_json())


def fhir_exception_handler(exc, context):
    """Errors as FHIR OperationOutcomes, keeping the status and WWW-Authenticate that DRF chose."""
    response = exception_handler(exc, context)
    if response is not None:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        outcome = operation_outcome_build(
            code=ISSUE_CODES.get(response.status_code, "processing"), diagnostics=str(detail)
        )
        response.data = fhir_json(outcome)
    return response


class FhirView(APIView):
    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [FhirJsonRenderer]
    content_negotiation_class = FhirJsonOnly

    def get_exception_handler(self):
        return fhir_exception_handler

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response


class DiagnosticReportReadView(FhirView):
    """GET /fhir/DiagnosticReport/<scan id>: the report of one scan, with its PDF."""

    def get(self, request, pk: int):
        scan = fhir_report_scan_get(user=request.user, pk=pk)
        report = scan_fhir_report(scan=scan, viewer=request.user)
        record_access(scan, what="FHIR DiagnosticReport", actor=request.user)
        return Response(fhir_json(report))


class DiagnosticReportSearchView(FhirView):
    """GET /fhir/DiagnosticReport?subject:identifier=[system|]MRN: a patient's reports, newest first, paged."""

    def get(self, request):
        system, mrn = self._subject_identifier(request)
        try:
            count = min(max(int(request.query_params.get("_count", SEARCH_PAGE_SIZE)), 1), SEARCH_MAX_PAGE_SIZE)
            page_number = int(request.query_params.get("page", 1))
        except ValueError as error:
            raise exceptions.ParseError("_count and page are whole numbers.") from error
        paginator = Paginator(fhir_report_scans_for_patient(user=request.user, mrn=mrn, system=system), count)
        try:
            page = paginator.page(page_number)
        except EmptyPage:
            page = None
        scans = list(page.object_list) if page else []
        bundle = scans_fhir_search_bundle(
            scans=scans,
            viewer=request.user,
            total=paginator.count,
            links=self._links(request, page, count),
            full_url=lambda scan: request.build_absolute_uri(
                reverse("interop:fhir_diagnostic_report", args=[scan.pk])
            ),
        )
        for scan in scans:
            record_access(scan, what="FHIR DiagnosticReport (search)", actor=request.user)
        return Response(fhir_json(bundle))

    @staticmethod
    def _subject_identifier(request) -> tuple[str, str]:
        token = request.query_params.get("subject:identifier", "").strip()
        system, _, mrn = token.rpartition("|")
        if not mrn:
            raise exceptions.ParseError("Search by the patient's record number: subject:identifier=[system|]MRN.")
        return system, mrn

    @staticmethod
    def _links(request, page, count: int) -> list[dict]:
        def url(number: int) -> str:
            query = {"subject:identifier": request.query_params["subject:identifier"], "_count": count, "page": number}
            return request.build_absolute_uri(f"{request.path}?{urlencode(query)}")

        number = page.number if page else int(request.query_params.get("page", 1))
        links = [{"relation": "self", "url": url(number)}]
        if page and page.has_next():
            links.append({"relation": "next", "url": url(page.next_page_number())})
        if page and page.has_previous():
            links.append({"relation": "previous", "url": url(page.previous_page_number())})
        return links
