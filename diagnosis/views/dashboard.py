"""The worklist: the scans a doctor should look at, with counts of what is pending, positive and reviewed."""

import datetime

from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils import timezone

from covidxray.audit import record_access
from diagnosis.selectors import (
    WORKLIST_FILTERS,
    patients_visible_to,
    worklist_counts,
    worklist_for_user,
    worklist_positive_name,
)

RECENT_DAYS = 14
SCANS_PER_PAGE = 25


def dashboard(request):
    """Scans of the last two weeks (or today), newest first; `show` narrows them to those needing attention."""
    period = "today" if request.GET.get("period") == "today" else "recent"
    show = request.GET.get("show", "")
    show = show if show in WORKLIST_FILTERS else ""
    now = timezone.localtime()
    if period == "today":
        since = now.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        since = now - datetime.timedelta(days=RECENT_DAYS)
    page = Paginator(worklist_for_user(user=request.user, since=since, show=show), SCANS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    for scan in page:
        record_access(scan, what="worklist")
    context = {
        "page": page,
        "counts": worklist_counts(user=request.user, since=since),
        "positive_name": worklist_positive_name(user=request.user, since=since),
        "period": period,
        "show": show,
        "recent_days": RECENT_DAYS,
        "has_patients": bool(page.object_list) or patients_visible_to(request.user).exists(),
    }
    return render(request, "diagnosis/dashboard.html", context)
