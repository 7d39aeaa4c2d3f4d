"""Uploading chest X-rays for a patient: each image becomes a scan queued for inference."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import redirect, render
from django.views import View

from diagnosis.forms import ScanUploadForm
from diagnosis.selectors import patient_get_for_user
from diagnosis.services.scans import scan_create


class ScanUploadView(View):
    def get(self, request, pk: int):
        patient = patient_get_for_user(user=request.user, pk=pk)
        return self._render(request, patient, ScanUploadForm())

    def post(self, request, pk: int):
        """Upload one or several images; if any is refused, none is stored and each error is shown."""
        patient = patient_get_for_user(user=request.user, pk=pk)
        form = ScanUploadForm(request.POST, request.FILES)
        if not form.is_valid():
            return self._render(request, patient, form, status=400)
        try:
            with transaction.atomic():
                scans = [
                    self._create(request, patient, upload, form.cleaned_data) for upload in form.cleaned_data["images"]
                ]
        except ValidationError as error:
            form.add_error("images", error)
            return self._render(request, patient, form, status=400)
        messages.success(request, f"{len(scans)} scan(s) uploaded and queued for analysis.")
        if len(scans) == 1:
            return redirect("diagnosis:scan_detail", pk=scans[0].pk)
        return redirect("diagnosis:patient_detail", pk=patient.pk)

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
    def _render(request, patient, form, status=200):
        context = {"patient": patient, "upload_form": form}
        return render(request, "diagnosis/scan_upload.html", context, status=status)
