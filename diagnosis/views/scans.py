"""Scan pages: the result, its review, the status the page polls, and the images (access-checked)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from covidxray.audit import record_access
from diagnosis.forms import ReviewForm
from diagnosis.models import Review
from diagnosis.selectors import scan_get_for_user
from diagnosis.services.scans import scan_review


def scan_detail(request, pk: int, review_form: ReviewForm | None = None, status: int = 200):
    scan = scan_get_for_user(user=request.user, pk=pk)
    if request.method == "GET":
        record_access(scan, what="scan page")
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
    record_access(scan, what=f"{kind} image")
    response = FileResponse(field.open("rb"), content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response
