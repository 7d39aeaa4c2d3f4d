"""What a scan's result means: the model's validation figures and the predictive values at this hospital.

A test set's own PPV and NPV hold only at its mix of classes; a doctor needs them at the prevalence
among the patients scanned here (COVIDXRAY_PREVALENCE), so they are recomputed from sensitivity and
specificity. Numbers are given with their texts so that the page, its poller and the report agree.
"""

import math

from django.conf import settings

from mlcore.core.evaluation import predictive_value_ranges, predictive_values
from mlcore.models import Evaluation, ModelVersion


def model_version_test_evaluation(*, version: ModelVersion) -> Evaluation | None:
    """The latest evaluation on the version's own held-out test split (external ones are other populations)."""
    return version.evaluations.filter(kind=Evaluation.Kind.TEST_SPLIT).order_by("-created_at", "-pk").first()


def scan_reading_get(*, scan) -> dict:
    """JSON-ready validation figures and predictive values for a scan the caller may already see."""
    prevalence = settings.COVIDXRAY_PREVALENCE
    reading = {
        "prevalence": prevalence,
        "prevalence_text": percent(prevalence, digits=None),
        "available": False,
        "unavailable": "",
    }
    version = scan.model_version
    if version is None:
        return reading | {"unavailable": "No model has read this scan yet."}
    if scan.status == scan.Status.NOT_ASSESSABLE:
        return reading | {"unavailable": "Not assessable: the model gives no reading, so no figures apply."}
    if scan.result == scan.Result.INDETERMINATE:
        return reading | {
            "unavailable": "Indeterminate: the model makes no call on this scan, so no predictive values apply."
        }
    evaluation = model_version_test_evaluation(version=version)
    metrics = evaluation.metrics if evaluation else {}
    sensitivity, specificity = metrics.get("sensitivity") or {}, metrics.get("specificity") or {}
    if sensitivity.get("value") is None or specificity.get("value") is None:
        return reading | {
            "unavailable": f"Model version {version.name} has no evaluation on a held-out test split with both "
            "classes, so its sensitivity, specificity and predictive values are not available."
        }
    if scan.threshold is not None and not math.isclose(evaluation.threshold, scan.threshold, abs_tol=1e-9):
        return reading | {
            "unavailable": f"Model version {version.name} was validated at threshold {evaluation.threshold:.3f}, "
            f"not at this scan's {scan.threshold:.3f}, so its validation figures do not apply."
        }
    ppv, npv = predictive_values(
        sensitivity=sensitivity["value"], specificity=specificity["value"], prevalence=prevalence
    )
    ranges = predictive_value_ranges(
        sensitivity=(sensitivity["low"], sensitivity["high"]),
        specificity=(specificity["low"], specificity["high"]),
        prevalence=prevalence,
    )
    reading |= {
        "available": True,
        "test_images": metrics.get("n"),
        "sensitivity": _proportion(sensitivity, "with COVID-19"),
        "specificity": _proportion(specificity, "without COVID-19"),
        "ppv": _predictive(ppv, ranges["ppv"]),
        "npv": _predictive(npv, ranges["npv"]),
    }
    reading["explanation"] = _explanation(scan, version, reading)
    return reading


def percent(value: float | None, digits: int | None = 1) -> str:
    """0.667 as "66.7%"; with digits None as short as it can be ("5%", "12.5%")."""
    if value is None:
        return "n/a"
    return f"{value * 100:g}%" if digits is None else f"{value * 100:.{digits}f}%"


def _proportion(entry: dict, who: str) -> dict:
    text = (
        f"{percent(entry['value'])} (95% CI {percent(entry['low'])} to {percent(entry['high'])}), "
        f"{entry['count']} of {entry['total']} test images {who}"
    )
    return {key: entry[key] for key in ("value", "low", "high", "count", "total")} | {"text": text}


def _predictive(value: float | None, bounds: tuple[float, float] | None) -> dict:
    low, high = bounds or (None, None)
    text = percent(value)
    if bounds:
        text += f" (range {percent(low)} to {percent(high)})"
    return {"value": value, "low": low, "high": high, "text": text}


def _per_100(share: float) -> str:
    count = round(share * 100)
    return "fewer than 1" if count == 0 else f"about {count}"


def _explanation(scan, version: ModelVersion, reading: dict) -> str | None:
    """One sentence: how many of 100 patients with this result have COVID-19, at this prevalence."""
    if not scan.label:
        return None
    if scan.label == version.positive_class:
        share, low, high = (reading["ppv"][key] for key in ("value", "low", "high"))
    else:
        npv = reading["npv"]
        share, low, high = (None if value is None else 1 - value for value in (npv["value"], npv["high"], npv["low"]))
    if share is None:
        return None
    sentence = (
        f"Of patients with this result at a prevalence of {reading['prevalence_text']}, "
        f"{_per_100(share)} in 100 have COVID-19"
    )
    if low is not None:
        sentence += (
            f" (between {round(low * 100)} and {round(high * 100)}, "
            "allowing for the uncertainty in sensitivity and specificity)"
        )
    return sentence + "."
