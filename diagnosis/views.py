"""Thin views for patients and scans: selectors read (scoped to the user), services write."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from django.views.decorators.http import require_GET, require_POST

from diagnosis.forms import PatientForm, ReviewForm, ScanUploadForm
from diagnosis.models import Review
from diagnosis.selectors import patient_get_for_user, patients_visible_to, scan_get_for_user
from diagnosis.services.scans import patient_create, scan_create, scan_review


def patient_list(request):
    patients = patients_visible_to(request.user).order_by("full_name")
    return render(request, "diagnosis/patient_list.html", {"patients": patients})


class PatientCreateView(View):
    def get(self, request):
        return render(request, "diagnosis/patient_form.html", {"form": PatientForm()})

    def post(self, request):
        form = PatientForm(request.POST)
        if form.is_valid():
            try:
                patient = patient_create(created_by=request.user, **form.cleaned_data)
            except ValidationError as error:
                form.add_error(None, error)
            else:
                return redirect("diagnosis:patient_detail", pk=patient.pk)
        return render(request, "diagnosis/patient_form.html", {"form": form})


class PatientDetailView(View):
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
        scans = patient.scans.select_related("model_version")
        context = {"patient": patient, "scans": scans, "form": form}
        return render(request, "diagnosis/patient_detail.html", context, status=status)


def scan_detail(request, pk: int, review_form: ReviewForm | None = None, status: int = 200):
    scan = scan_get_for_user(user=request.user, pk=pk)
    review = Review.objects.filter(scan=scan).select_related("reviewer").first()
    if review_form is None:
        initial = (
            {
                "agrees_with_model": "yes" if review.agrees_with_model else "no",
                "final_finding": review.final_finding,
                "comment": review.comment,
            }
            if review
            else {}
        )
        review_form = ReviewForm(initial=initial)
    context = {"scan": scan, "status": scan_status_data(scan), "review": review, "review_form": review_form}
    return render(request, "diagnosis/scan_detail.html", context, status=status)


@require_POST
def scan_review_submit(request, pk: int):
    scan = scan_get_for_user(user=request.user, pk=pk)
    form = ReviewForm(request.POST)
    if form.is_valid():
        try:
            scan_review(scan=scan, reviewer=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Your review is saved.")
            return redirect("diagnosis:scan_detail", pk=scan.pk)
    return scan_detail(request, pk, review_form=form, status=400)


@require_GET
def scan_status(request, pk: int):
    """Polled by the scan page until the result, then the heatmap, are there."""
    return JsonResponse(scan_status_data(scan_get_for_user(user=request.user, pk=pk)))


def scan_status_data(scan) -> dict:
    version = scan.model_version
    return {
        "id": scan.pk,
        "status": scan.status,
        "status_display": scan.get_status_display(),
        "message": scan.status_message,
        "label": scan.label or None,
        "probability": scan.probability,
        "threshold": scan.threshold,
        "model_version": version.name if version else None,
        "timings_ms": {
            "queue_wait": scan.queue_wait_ms,
            "preprocess": scan.preprocess_ms,
            "network": scan.network_ms,
            "total": scan.total_ms,
        },
        "batch_size": scan.batch_size,
        "preview_url": reverse("diagnosis:scan_image", args=[scan.pk, "preview"]) if scan.preview else None,
        "heatmap_url": reverse("diagnosis:scan_image", args=[scan.pk, "heatmap"]) if scan.heatmap else None,
        "finished": scan.status == scan.Status.FAILED or bool(scan.heatmap),
    }


@require_GET
def scan_image(request, pk: int, kind: str):
    """Patient images only through here: access is checked for every request."""
    scan = scan_get_for_user(user=request.user, pk=pk)
    field = {"preview": scan.preview, "heatmap": scan.heatmap}.get(kind)
    if not field:
        raise Http404("No such image for this scan.")
    response = FileResponse(field.open("rb"), content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response
