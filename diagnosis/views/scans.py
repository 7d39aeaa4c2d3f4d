"""Scan pages: the result, its review, the printable report, the status the page polls, and the images
(access-checked)."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from covidxray.audit import record_access
from covidxray.sessions import session_not_renewed
from diagnosis.forms import ReviewForm
from diagnosis.models import Review, Scan
from diagnosis.reading import scan_reading_get
from diagnosis.selectors import scan_can_review, scan_classes, scan_get_for_user, scan_is_positive
from diagnosis.services.report_pdf import scan_report_pdf_render
from diagnosis.services.scans import REVIEW_REFUSED, scan_review
from mlcore.core.classes import call_text, display_name, negative_rule_text, ordered_probabilities, short_name


def _review_of(scan) -> Review | None:
    return Review.objects.filter(scan=scan).select_related("reviewer").first()


@require_GET
def scan_detail(request, pk: int):
    scan = scan_get_for_user(user=request.user, pk=pk)
    review = _review_of(scan)
    initial = (
        {
            "agrees_with_model": "yes" if review.agrees_with_model else "no",
            "final_finding": review.final_finding,
            "comment": review.comment,
        }
        if review
        else {}
    )
    return _scan_page(request, scan, review=review, review_form=ReviewForm(initial=initial))


def _scan_page(request, scan, *, review: Review | None, review_form: ReviewForm, status: int = 200):
    """The scan page, shown on a read or with a refused review: either way the patient's scan was seen."""
    record_access(scan, what="scan page")
    context = {
        "scan": scan,
        "status": scan_status_data(scan),
        "review": review,
        "review_form": review_form,
        "can_review": scan_can_review(user=request.user, scan=scan),
        "poll_max_interval_ms": settings.SCAN_POLL_MAX_INTERVAL_SECONDS * 1000,
        "poll_stop_after_ms": settings.SCAN_POLL_STOP_AFTER_SECONDS * 1000,
    }
    return render(request, "diagnosis/scan_detail.html", context, status=status)


def _review_refused(request, scan):
    messages.error(request, REVIEW_REFUSED)
    return redirect("diagnosis:scan_detail", pk=scan.pk)


@require_POST
def scan_review_submit(request, pk: int):
    scan = scan_get_for_user(user=request.user, pk=pk)
    if not scan_can_review(user=request.user, scan=scan):
        return _review_refused(request, scan)
    form = ReviewForm(request.POST)
    if form.is_valid():
        try:
            scan_review(scan=scan, reviewer=request.user, **form.cleaned_data)
        except PermissionDenied:
            return _review_refused(request, scan)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Your review is saved.")
            return redirect("diagnosis:scan_detail", pk=scan.pk)
    return _scan_page(request, scan, review=_review_of(scan), review_form=form, status=400)


@require_GET
def scan_report(request, pk: int):
    """One printable page per scan; a scan without a result has none, and its page says only that."""
    scan = scan_get_for_user(user=request.user, pk=pk)
    if scan.status not in REPORTED:
        return render(request, "diagnosis/scan_report.html", {"scan": scan, "available": False}, status=404)
    record_access(scan, what="report")
    return render(request, "diagnosis/scan_report.html", scan_report_context(scan=scan, viewer=request.user))


def scan_report_context(*, scan, viewer) -> dict:
    """What the printable report shows; the page and its PDF (diagnosis.services.report_pdf) share it."""
    return {
        "scan": scan,
        "available": True,
        "status": scan_status_data(scan),
        "review": _review_of(scan),
        "viewer": viewer,
        "generated_at": timezone.now(),
    }


@require_GET
def scan_report_pdf(request, pk: int):
    """The printable report as a one-page PDF download, for a scan with a result."""
    scan = scan_get_for_user(user=request.user, pk=pk)
    if scan.status != scan.Status.DONE:
        raise Http404("This scan has no report yet.")
    pdf = scan_report_pdf_render(scan=scan, viewer=request.user)
    record_access(scan, what="report PDF")
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="covidxray-scan-{scan.pk}-report.pdf"'
    response["Cache-Control"] = "private, no-store"
    return response


@session_not_renewed
@require_GET
def scan_status(request, pk: int):
    """Polled by the scan page until the result, then the heatmap, are there; a poll is no user action."""
    return JsonResponse(scan_status_data(scan_get_for_user(user=request.user, pk=pk)))


def duration_text(milliseconds: float | None) -> str:
    """Milliseconds as a person reads them: "120 ms", "4.2 s", "3 min 5 s"."""
    if milliseconds is None:
        return "—"
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    if milliseconds < 60_000:
        return f"{milliseconds / 1000:.1f} s"
    minutes, seconds = divmod(round(milliseconds / 1000), 60)
    return f"{minutes} min {seconds} s"


def _percent_of_bar(value: float | None, *, margin: float = 0.0) -> float | None:
    """Where on the 0-1 bar a value sits, in percent; `margin` keeps a centred label inside the bar."""
    if value is None:
        return None
    return round(min(max(value * 100, margin), 100 - margin), 1)


THRESHOLD_LABEL_MARGIN = 12.0
REPORTED = (Scan.Status.DONE, Scan.Status.NOT_ASSESSABLE)


def _band_percent(version) -> dict | None:
    """The indeterminate band on the probability bar, when the version has one."""
    if version.indeterminate_low is None or version.indeterminate_high is None:
        return None
    left = _percent_of_bar(version.indeterminate_low)
    return {"left": left, "width": round(_percent_of_bar(version.indeterminate_high) - left, 1)}


def scan_status_data(scan) -> dict:
    """What the scan page, its poller and the report show, in one place (JSON-ready)."""
    version = scan.model_version
    classes = scan_classes(scan)
    not_assessable = scan.status == scan.Status.NOT_ASSESSABLE
    indeterminate = scan.status == scan.Status.DONE and scan.result == scan.Result.INDETERMINATE
    timings = {
        "queue_wait": scan.queue_wait_ms,
        "preprocess": scan.preprocess_ms,
        "network": scan.network_ms,
        "total": scan.total_ms,
    }
    return {
        "id": scan.pk,
        "status": scan.status,
        "status_display": scan.get_status_display(),
        "message": scan.status_message,
        "label": scan.label or None,
        "result": scan.result or None,
        "result_display": call_text(scan.label) if scan.status == scan.Status.DONE else None,
        "indeterminate": indeterminate,
        "not_assessable": not_assessable,
        "not_assessable_reason": scan.status_message if not_assessable else None,
        "gate_warning": (scan.gate or {}).get("warning"),
        "class_probabilities": [
            {
                "name": name,
                "display": display_name(name),
                "probability": value,
                "percent": _percent_of_bar(value),
                "called": name == scan.label,
            }
            for name, value in ordered_probabilities(scan.probabilities or {}, classes=classes)
        ],
        "positive_class": classes.positive,
        "positive_name": short_name(classes.positive),
        "negative_rule": negative_rule_text(classes),
        "band_percent": _band_percent(version) if version and scan.probability is not None else None,
        "probability": scan.probability,
        "threshold": scan.threshold,
        "model_version": version.name if version else None,
        "timings_ms": timings,
        "timings_text": {key: duration_text(value) for key, value in timings.items()},
        "batch_size": scan.batch_size,
        "probability_percent": _percent_of_bar(scan.probability),
        "threshold_percent": _percent_of_bar(scan.threshold),
        "threshold_label_percent": _percent_of_bar(scan.threshold, margin=THRESHOLD_LABEL_MARGIN),
        "positive": None if scan.status != scan.Status.DONE else scan_is_positive(scan),
        "reading": scan_reading_get(scan=scan),
        "report_url": reverse("diagnosis:scan_report", args=[scan.pk]) if scan.status in REPORTED else None,
        "preview_url": reverse("diagnosis:scan_image", args=[scan.pk, "preview"]) if scan.preview else None,
        "heatmap_url": reverse("diagnosis:scan_image", args=[scan.pk, "heatmap"]) if scan.heatmap else None,
        "finished": scan.status in (scan.Status.FAILED, scan.Status.NOT_ASSESSABLE) or bool(scan.heatmap),
    }


@require_GET
def scan_image(request, pk: int, kind: str):
    """Patient images only through here: access is checked for every request."""
    scan = scan_get_for_user(user=request.user, pk=pk)
    field = {"preview": scan.preview, "heatmap": scan.heatmap}.get(kind)
    if not field:
        raise Http404("No such image for this scan.")
    record_access(scan, what=f"{kind} image")
    return FileResponse(field.open("rb"), content_type="image/png")
