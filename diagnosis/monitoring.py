"""How a model version does at this hospital, measured against doctors' reviews (the hospital's own truth).

Which scans count:
- Read by the version: done or not assessable with this version. Not-assessable scans and indeterminate
  results are not calls: they get their own shares and are left out of agreement, sensitivity and
  specificity.
- The doctor's final finding is the reference, by mlcore.core.classes.finding_reference: the version's
  positive class (COVID-19) is positive; "Other pneumonia", "Normal" and "Other finding" are negative (the
  doctor found no COVID-19: another pneumonia is exactly what the model must not call COVID-19); a
  doctor's "Indeterminate" gives no reference and is counted apart.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.utils import timezone

from diagnosis.models import Review, Scan
from diagnosis.reading import percent
from mlcore.core.classes import RESULT_NEGATIVE, RESULT_POSITIVE, display_name, finding_reference
from mlcore.core.evaluation import proportion_with_interval
from mlcore.models import ModelVersion

VERIFICATION_BIAS = (
    "Reviewers saw the model's reading before giving their finding (verification bias), and only the scans "
    "they chose to review are counted, so agreement, sensitivity and specificity here are an upper bound."
)
COUNTING_RULES = (
    "Positive is a final finding of COVID-19; 'Other pneumonia', 'Normal' and 'Other finding' count as "
    "negative; a doctor's 'Indeterminate' has no reference and is left out. Not-assessable scans and "
    "indeterminate model results are not calls: they are counted as shares of all scans read, not in "
    "agreement, sensitivity or specificity."
)
UNKNOWN = "unknown"


@dataclass
class _Tally:
    """Counts for one group of scans (all, one month, one device)."""

    read: int = 0
    not_assessable: int = 0
    indeterminate: int = 0
    reviewed: int = 0
    reviewed_calls: int = 0
    agreed: int = 0
    doctor_positive: int = 0
    true_positive: int = 0
    doctor_negative: int = 0
    true_negative: int = 0
    doctor_indeterminate: int = 0
    by_finding: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    def add(self, row: dict, positive_class: str) -> None:
        self.read += 1
        if row["status"] == Scan.Status.NOT_ASSESSABLE:
            self.not_assessable += 1
        elif row["result"] == Scan.Result.INDETERMINATE:
            self.indeterminate += 1
        finding = row["review__final_finding"]
        if finding is None:
            return
        self.reviewed += 1
        call = _model_call(row)
        if call is None:
            return
        self.reviewed_calls += 1
        self.agreed += bool(row["review__agrees_with_model"])
        reference = finding_reference(finding, positive_class=positive_class)
        if reference is None:
            self.doctor_indeterminate += 1
        elif reference == RESULT_POSITIVE:
            self.doctor_positive += 1
            self.true_positive += call == Scan.Result.POSITIVE
        elif reference == RESULT_NEGATIVE:
            self.doctor_negative += 1
            self.true_negative += call == Scan.Result.NEGATIVE
            counts = self.by_finding[finding]
            counts[0] += call == Scan.Result.NEGATIVE
            counts[1] += 1

    def figures(self) -> dict:
        return {
            "read": self.read,
            "reviewed": self.reviewed,
            "reviewed_calls": self.reviewed_calls,
            "doctor_indeterminate": self.doctor_indeterminate,
            "not_assessable": _proportion(self.not_assessable, self.read),
            "indeterminate": _proportion(self.indeterminate, self.read),
            "agreement": _proportion(self.agreed, self.reviewed_calls),
            "sensitivity": _proportion(self.true_positive, self.doctor_positive),
            "specificity": _proportion(self.true_negative, self.doctor_negative),
            "specificity_by_finding": {
                Review.Finding(finding).label: _proportion(negative, total)
                for finding, (negative, total) in sorted(self.by_finding.items())
            },
        }


def _proportion(count: int, total: int) -> dict:
    """A proportion with its 95% Wilson interval and its text: '90.0% (95% CI 82.6% to 94.5%), 90 of 100'."""
    entry = proportion_with_interval(count, total)
    if entry["value"] is None:
        return entry | {"text": "none counted"}
    return entry | {
        "text": f"{percent(entry['value'])} (95% CI {percent(entry['low'])} to {percent(entry['high'])}), "
        f"{count} of {total}"
    }


def _model_call(row: dict) -> str | None:
    """The model's call on a scan, or None where it made none (not assessable, indeterminate, not read)."""
    if row["status"] != Scan.Status.DONE or row["result"] not in (Scan.Result.POSITIVE, Scan.Result.NEGATIVE):
        return None
    return row["result"]


def device_of(row: dict) -> str:
    """'Manufacturer / station' from the DICOM header, 'unknown' for what the header did not say."""
    return f"{row['manufacturer'] or UNKNOWN} / {row['station_name'] or UNKNOWN}"


def model_version_monitoring(*, version: ModelVersion) -> dict:
    """Every figure of the staff monitoring page for one version, overall, per month of review and per device."""
    rows = Scan.objects.filter(
        model_version=version, status__in=[Scan.Status.DONE, Scan.Status.NOT_ASSESSABLE]
    ).values(
        "status",
        "result",
        "manufacturer",
        "station_name",
        "review__final_finding",
        "review__agrees_with_model",
        "review__reviewed_at",
    )
    overall, months, devices = _Tally(), defaultdict(_Tally), defaultdict(_Tally)
    for row in rows:
        overall.add(row, version.positive_class)
        devices[device_of(row)].add(row, version.positive_class)
        if row["review__reviewed_at"] is not None:
            months[timezone.localtime(row["review__reviewed_at"]).strftime("%Y-%m")].add(row, version.positive_class)
    return {
        "version": version.name,
        "positive_class": version.positive_class,
        "positive_name": display_name(version.positive_class),
        "overall": overall.figures(),
        "per_month": [{"month": month} | months[month].figures() for month in sorted(months)],
        "per_device": [{"device": device} | devices[device].figures() for device in sorted(devices)],
        "verification_bias": VERIFICATION_BIAS,
        "counting_rules": COUNTING_RULES,
    }
