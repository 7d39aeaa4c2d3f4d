"""Reads for the diagnosis app; every one is scoped to what the user may see."""

import datetime
from dataclasses import dataclass

from django.db.models import (
    BooleanField,
    Case,
    Count,
    ExpressionWrapper,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.shortcuts import get_object_or_404
from django.utils import timezone

from diagnosis.models import Patient, Review, Scan
from mlcore.core.classes import ClassSet, positive_names, short_name
from mlcore.selectors import model_version_active, model_version_classes


def _in_care_of(user) -> Q:
    """A doctor's own patients: created by them or shared with them."""
    return Q(created_by=user) | Q(shared_with=user)


def patients_visible_to(user) -> QuerySet[Patient]:
    """A doctor sees the patients they created or that were shared with them; anyone else's patients only
    with the model permission diagnosis.view_patient (given to staff who audit), never for being staff."""
    if user.has_perm("diagnosis.view_patient"):
        return Patient.objects.all()
    return Patient.objects.filter(_in_care_of(user)).distinct()


def patient_get_for_user(*, user, pk: int) -> Patient:
    """The patient, or 404 (not 403) so that other doctors' patients do not even show to exist."""
    return get_object_or_404(patients_visible_to(user), pk=pk)


def scans_visible_to(user) -> QuerySet[Scan]:
    """The scans of the patients the user sees; every scan with diagnosis.view_scan (as the admin's scan list)."""
    scans = Scan.objects.select_related("patient", "model_version")
    if user.has_perm("diagnosis.view_scan"):
        return scans.all()
    return scans.filter(patient__in=patients_visible_to(user))


def scan_get_for_user(*, user, pk: int) -> Scan:
    return get_object_or_404(scans_visible_to(user), pk=pk)


def patient_in_care_of(*, user, patient: Patient) -> bool:
    """The doctor created the patient or it is shared with them: they may work on it without any permission."""
    return patient.created_by_id == user.pk or patient.shared_with.filter(pk=user.pk).exists()


def patient_can_edit(*, user, patient: Patient) -> bool:
    """Every doctor caring for the patient may correct the record; others need diagnosis.change_patient."""
    return patient_in_care_of(user=user, patient=patient) or user.has_perm("diagnosis.change_patient")


def patient_can_share(*, user, patient: Patient) -> bool:
    """Whom a patient is shared with is the creator's decision, or needs diagnosis.change_patient."""
    return patient.created_by_id == user.pk or user.has_perm("diagnosis.change_patient")


def patient_can_delete(*, user, patient: Patient) -> bool:
    """Only the creator deletes a patient, or someone with diagnosis.delete_patient."""
    return patient.created_by_id == user.pk or user.has_perm("diagnosis.delete_patient")


def patient_can_upload(*, user, patient: Patient) -> bool:
    """Doctors caring for the patient add scans; others need diagnosis.add_scan."""
    return patient_in_care_of(user=user, patient=patient) or user.has_perm("diagnosis.add_scan")


def _can_delete_every_scan_of(*, user, patient: Patient) -> bool:
    return patient.created_by_id == user.pk or user.has_perm("diagnosis.delete_scan")


def scan_can_delete(*, user, scan: Scan) -> bool:
    """Whoever uploaded a scan may take it back; so may the patient's creator, or who has diagnosis.delete_scan."""
    return scan.uploaded_by_id == user.pk or _can_delete_every_scan_of(user=user, patient=scan.patient)


def scan_can_review(*, user, scan: Scan) -> bool:
    """Doctors caring for the patient review its scans; others need diagnosis.add_review, or
    diagnosis.change_review to revise an existing review."""
    if patient_in_care_of(user=user, patient=scan.patient):
        return True
    reviewed = Review.objects.filter(scan=scan).exists()
    return user.has_perm("diagnosis.change_review" if reviewed else "diagnosis.add_review")


@dataclass(frozen=True)
class PatientActions:
    """What the user may do on a patient's page, so the page offers only that."""

    edit: bool
    share: bool
    delete: bool
    upload: bool


def patient_actions_for(*, user, patient: Patient) -> PatientActions:
    return PatientActions(
        edit=patient_can_edit(user=user, patient=patient),
        share=patient_can_share(user=user, patient=patient),
        delete=patient_can_delete(user=user, patient=patient),
        upload=patient_can_upload(user=user, patient=patient),
    )


# "Positive" means one thing everywhere: a done reading whose result is positive, written by the worker from
# mlcore.core.classes.reading_call. Indeterminate and not-assessable scans are neither positive nor negative.
POSITIVE = Q(status=Scan.Status.DONE, result=Scan.Result.POSITIVE)
AWAITING_REVIEW = Q(status=Scan.Status.DONE, review__isnull=True)
WORKLIST_FILTERS = {"awaiting": AWAITING_REVIEW, "positive": POSITIVE}


def scan_is_positive(scan: Scan) -> bool:
    return scan.status == Scan.Status.DONE and scan.result == Scan.Result.POSITIVE


def scan_classes(scan: Scan) -> ClassSet:
    """The classes of the version that read the scan; a scan no version has read is COVID against NORMAL."""
    return model_version_classes(version=scan.model_version if scan.model_version_id else None)


def patient_list_for_user(*, user, query: str = "") -> QuerySet[Patient]:
    """Visible patients matching `query` (MRN or name), an exact MRN first, each with their latest scan."""
    patients = patients_visible_to(user)
    query = query.strip()
    if query:
        patients = patients.filter(Q(mrn__icontains=query) | Q(full_name__icontains=query))
    latest = Scan.objects.filter(patient=OuterRef("pk")).order_by("-uploaded_at", "-pk")
    patients = patients.annotate(
        last_scan_at=Subquery(latest.values("uploaded_at")[:1]),
        last_scan_status=Subquery(latest.values("status")[:1]),
        last_scan_label=Subquery(latest.values("label")[:1]),
        last_scan_result=Subquery(latest.values("result")[:1]),
        last_scan_probability=Subquery(latest.values("probability")[:1]),
    )
    exact_first = Case(When(mrn__iexact=query, then=0), default=1) if query else Value(1)
    return patients.order_by(exact_first, "full_name", "pk")


def worklist_for_user(*, user, since: datetime.datetime, show: str = "") -> QuerySet[Scan]:
    """Scans uploaded since `since` that the user may see, newest first, marked positive / awaiting review."""
    scans = (
        scans_visible_to(user)
        .filter(uploaded_at__gte=since)
        .select_related("review")
        .annotate(
            is_positive=ExpressionWrapper(POSITIVE, output_field=BooleanField()),
            awaiting_review=ExpressionWrapper(AWAITING_REVIEW, output_field=BooleanField()),
        )
    )
    if show in WORKLIST_FILTERS:
        scans = scans.filter(WORKLIST_FILTERS[show])
    return scans.order_by("-uploaded_at", "-pk")


def worklist_counts(*, user, since: datetime.datetime) -> dict[str, int]:
    """The worklist's cards, in one aggregate query."""
    return (
        scans_visible_to(user)
        .filter(uploaded_at__gte=since)
        .aggregate(
            pending=Count("pk", filter=Q(status__in=[Scan.Status.PENDING, Scan.Status.PROCESSING])),
            positive=Count("pk", filter=POSITIVE),
            indeterminate=Count("pk", filter=Q(status=Scan.Status.DONE, result=Scan.Result.INDETERMINATE)),
            not_assessable=Count("pk", filter=Q(status=Scan.Status.NOT_ASSESSABLE)),
            awaiting_review=Count("pk", filter=AWAITING_REVIEW),
            reviewed=Count("pk", filter=Q(review__isnull=False)),
        )
    )


def worklist_positive_name(*, user, since: datetime.datetime) -> str:
    """The class the worklist's positive count is of: the positive class of the versions that read its scans,
    else of the active version (what new scans will be read as)."""
    read = scans_visible_to(user).filter(uploaded_at__gte=since, model_version__isnull=False).order_by()
    positive_classes = set(read.values_list("model_version__positive_class", flat=True).distinct())
    return positive_names(positive_classes or [model_version_classes(version=model_version_active()).positive])


def patient_scan_history(*, patient: Patient, user) -> QuerySet[Scan]:
    """The patient's scans, newest first, each saying whether this user may delete it."""
    can_delete = Value(True) if _can_delete_every_scan_of(user=user, patient=patient) else Q(uploaded_by=user.pk)
    return (
        patient.scans.select_related("model_version", "review")
        .annotate(
            is_positive=ExpressionWrapper(POSITIVE, output_field=BooleanField()),
            can_delete=ExpressionWrapper(can_delete, output_field=BooleanField()),
        )
        .order_by("-uploaded_at", "-pk")
    )


@dataclass(frozen=True)
class TrendPoint:
    scan_id: int
    taken_at: datetime.datetime
    probability: float
    label: str
    positive: bool
    positive_name: str  # the reading version's positive class, inside "P(...)"
    x: float
    y: float


@dataclass(frozen=True)
class Trend:
    """P(positive class) of a patient's read scans over time, laid out for an inline SVG chart."""

    points: list[TrendPoint]
    positive_name: str  # of every point's version together (positive_names)
    threshold: float | None
    threshold_y: float | None
    y_ticks: list[tuple[float, float]]
    first_at: datetime.datetime
    last_at: datetime.datetime
    width: int = 640
    height: int = 240
    left: int = 44
    right: int = 624
    top: int = 16
    bottom: int = 204

    @property
    def polyline(self) -> str:
        return " ".join(f"{point.x:.1f},{point.y:.1f}" for point in self.points)


def patient_trend(*, patient: Patient) -> Trend | None:
    """One point per read scan, by acquisition date (upload time when not recorded), oldest first.

    The threshold line is the latest scan's: the one the current reading was judged against.
    """
    scans = list(
        patient.scans.filter(status=Scan.Status.DONE, probability__isnull=False).select_related("model_version")
    )
    if not scans:
        return None

    def taken_at(scan):
        if scan.acquisition_date:
            return timezone.make_aware(datetime.datetime.combine(scan.acquisition_date, datetime.time(12)))
        return scan.uploaded_at

    scans.sort(key=lambda scan: (taken_at(scan), scan.uploaded_at, scan.pk))
    first, last = taken_at(scans[0]), taken_at(scans[-1])
    span = (last - first).total_seconds()
    plot_width, plot_height = Trend.right - Trend.left, Trend.bottom - Trend.top

    def x_of(index, scan):
        if span > 0:
            return Trend.left + (taken_at(scan) - first).total_seconds() / span * plot_width
        if len(scans) == 1:
            return Trend.left + plot_width / 2
        return Trend.left + index / (len(scans) - 1) * plot_width

    def y_of(probability):
        return Trend.top + (1 - min(max(probability, 0.0), 1.0)) * plot_height

    points = [
        TrendPoint(
            scan_id=scan.pk,
            taken_at=taken_at(scan),
            probability=scan.probability,
            label=scan.label,
            positive=scan_is_positive(scan),
            positive_name=short_name(scan_classes(scan).positive),
            x=x_of(index, scan),
            y=y_of(scan.probability),
        )
        for index, scan in enumerate(scans)
    ]
    threshold = scans[-1].threshold
    return Trend(
        points=points,
        positive_name=positive_names(scan_classes(scan).positive for scan in scans),
        threshold=threshold,
        threshold_y=None if threshold is None else y_of(threshold),
        y_ticks=[(value, y_of(value)) for value in (0.0, 0.25, 0.5, 0.75, 1.0)],
        first_at=first,
        last_at=last,
    )
