"""Uploading chest X-rays for a patient: each image becomes a scan queued for inference.

The upload form works as a plain HTML form; upload.js posts the same form by XMLHttpRequest for a progress
bar and gets JSON back, and reads DICOM headers through dicom_header before anything is uploaded.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.views import View
from django.views.decorators.http import require_POST

from covidxray.audit import record_access
from diagnosis.forms import ScanUploadForm
from diagnosis.selectors import patient_can_upload, patient_get_for_user
from diagnosis.services.scans import UPLOAD_REFUSED, scan_create
from mlcore.core.imaging import ImageDecodeError, read_dicom_header

DICOM_HEADER_MAX_BYTES = 1024 * 1024


def wants_json(request) -> bool:
    """upload.js says so; a browser's own form submission prefers HTML."""
    return (
        request.headers.get("X-Requested-With") == "XMLHttpRequest"
        or request.get_preferred_type(["text/html", "application/json"]) == "application/json"
    )


def _upload_refused(request, patient):
    """Someone who may see the patient but not add scans: told so before any file is read."""
    if wants_json(request):
        return JsonResponse({"errors": [UPLOAD_REFUSED]}, status=403)
    messages.error(request, UPLOAD_REFUSED)
    return redirect("diagnosis:patient_detail", pk=patient.pk)


class ScanUploadView(View):
    def get(self, request, pk: int):
        patient = patient_get_for_user(user=request.user, pk=pk)
        if not patient_can_upload(user=request.user, patient=patient):
            return _upload_refused(request, patient)
        return self._render(request, patient, ScanUploadForm())

    def post(self, request, pk: int):
        """Upload one or several images; if any is refused, none is stored and each error is shown."""
        patient = patient_get_for_user(user=request.user, pk=pk)
        if not patient_can_upload(user=request.user, patient=patient):
            return _upload_refused(request, patient)
        form = ScanUploadForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                with transaction.atomic():
                    scans = [
                        self._create(request, patient, upload, form.cleaned_data)
                        for upload in form.cleaned_data["images"]
                    ]
            except ValidationError as error:
                form.add_error("images", error)
            else:
                return self._uploaded(request, patient, scans)
        if wants_json(request):
            return JsonResponse({"errors": self._error_list(form)}, status=400)
        return self._render(request, patient, form, status=400)

    @staticmethod
    def _create(request, patient, upload, data):
        try:
            return scan_create(
                patient=patient,
                image=upload,
                uploaded_by=request.user,
                view=data.get("view") or "",
                acquisition_date=data.get("acquisition_date"),
            )
        except ValidationError as error:
            raise ValidationError(f"{upload.name}: {'; '.join(error.messages)}") from error

    @staticmethod
    def _uploaded(request, patient, scans):
        messages.success(request, f"{len(scans)} scan(s) uploaded and queued for analysis.")
        if len(scans) == 1:
            destination = reverse("diagnosis:scan_detail", args=[scans[0].pk])
        else:
            destination = reverse("diagnosis:patient_detail", args=[patient.pk])
        if not wants_json(request):
            return redirect(destination)
        uploaded = [
            {
                "id": scan.pk,
                "url": reverse("diagnosis:scan_detail", args=[scan.pk]),
                "original_filename": scan.original_filename,
            }
            for scan in scans
        ]
        return JsonResponse({"scans": uploaded, "redirect": destination}, status=201)

    @staticmethod
    def _error_list(form) -> list[str]:
        """Errors about the images already name the file; the others say which field they are about."""
        errors = []
        for name, messages_ in form.errors.items():
            prefix = "" if name in ("images", "__all__") else f"{form.fields[name].label}: "
            errors.extend(prefix + message for message in messages_)
        return errors

    @staticmethod
    def _render(request, patient, form, status=200):
        record_access(patient, what="upload page")
        context = {"patient": patient, "upload_form": form}
        return render(request, "diagnosis/scan_upload.html", context, status=status)


@require_POST
def dicom_header(request, pk: int):
    """What the start of a DICOM file says, so the form can offer its view and date and spot a wrong patient."""
    patient = patient_get_for_user(user=request.user, pk=pk)
    if not patient_can_upload(user=request.user, patient=patient):
        return JsonResponse({"error": UPLOAD_REFUSED}, status=403)
    part = request.FILES.get("header")
    if part is None:
        return JsonResponse({"error": "Send the start of a DICOM file as 'header'."}, status=400)
    if part.size > DICOM_HEADER_MAX_BYTES:
        limit = filesizeformat(DICOM_HEADER_MAX_BYTES)
        return JsonResponse({"error": f"Send only the start of the file, at most {limit}."}, status=400)
    try:
        header = read_dicom_header(part)
    except ImageDecodeError as error:
        return JsonResponse({"error": str(error)}, status=400)
    return JsonResponse(
        {
            "patient_name": header.patient_name,
            "patient_id": header.patient_id,
            "study_date": header.study_date.isoformat() if header.study_date else None,
            "view_position": header.view_position,
            "modality": header.modality,
            "body_part": header.body_part,
            "matches_patient": bool(header.patient_id) and same_mrn(header.patient_id, patient.mrn),
        }
    )


def same_mrn(first: str, second: str) -> bool:
    """Record numbers are compared the way people type them: spaces around and letter case do not count."""
    return first.strip().casefold() == second.strip().casefold()
