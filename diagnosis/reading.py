"""What a scan's result means: the model's validation figures and the predictive values at this hospital.

A test set's own PPV and NPV hold only at its mix of classes; a doctor needs them at the prevalence
among the patients scanned here (COVIDXRAY_PREVALENCE), so they are recomputed from sensitivity and
specificity. Numbers are given with their texts so that the page, its poller and the report agree.
"""

from django.conf import settings

from diagnosis.models import Scan
from mlcore.core.classes import short_name
from mlcore.core.evaluation import predictive_value_ranges, predictive_values
from mlcore.models import ModelVersion
from mlcore.reporting import evidence_description
from mlcore.selectors import evaluation_best_evidence, evaluation_figures, model_version_classes


def scan_reading_get(*, scan) -> dict:
    """JSON-ready validation figures and predictive values for a scan the caller may already see.

    The figures come from the version's best evidence (mlcore.selectors.evaluation_best_evidence), and
    ``evidence`` says which it is, with its caveats.
    """
    prevalence = settings.COVIDXRAY_PREVALENCE
    reading = {
        "prevalence": prevalence,
        "prevalence_text": percent(prevalence, digits=None),
        "available": False,
        "unavailable": "",
        "evidence": None,
    }
    version = scan.model_version
    if scan.status == Scan.Status.NOT_ASSESSABLE:
        return reading | {
            "unavailable": "Not assessable: the model did not read this image, so no sensitivity, specificity or "
            "predictive value applies."
        }
    if version is None:
        return reading | {"unavailable": "No model has read this scan yet."}
    if scan.result == Scan.Result.INDETERMINATE:
        return reading | {
            "unavailable": "Indeterminate: the model cannot separate this case, so it makes no call and no "
            "predictive value applies."
        }
    evaluations = list(version.evaluations.all())
    evaluation = evaluation_best_evidence(evaluations=evaluations, threshold=scan.threshold)
    if evaluation is None:
        return reading | {"unavailable": _no_evidence(version, evaluations, scan.threshold)}
    figures = evaluation_figures(metrics=evaluation.metrics)
    positive = short_name(model_version_classes(version=version).positive)
    sensitivity, specificity = figures["sensitivity"], figures["specificity"]
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
        "evidence": evidence_description(evaluation),
        "images": evaluation.metrics.get("n"),
        "sensitivity": _proportion(sensitivity, f"with {positive}"),
        "specificity": _proportion(specificity, f"without {positive}"),
        "ppv": _predictive(ppv, ranges["ppv"]),
        "npv": _predictive(npv, ranges["npv"]),
    }
    reading["explanation"] = _explanation(scan, reading, positive=positive)
    return reading


def _no_evidence(version: ModelVersion, evaluations: list, threshold: float | None) -> str:
    elsewhere = evaluation_best_evidence(evaluations=evaluations, threshold=None)
    if elsewhere is not None and threshold is not None:
        return (
            f"Model version {version.name} was validated at threshold {elsewhere.threshold:.3f}, "
            f"not at this scan's {threshold:.3f}, so its validation figures do not apply."
        )
    return (
        f"Model version {version.name} has no evaluation with both classes (local, external or its held-out "
        "test split), so its sensitivity, specificity and predictive values are not available."
    )


def percent(value: float | None, digits: int | None = 1) -> str:
    """0.667 as "66.7%"; with digits None as short as it can be ("5%", "12.5%")."""
    if value is None:
        return "n/a"
    return f"{value * 100:g}%" if digits is None else f"{value * 100:.{digits}f}%"


def _proportion(entry: dict, who: str) -> dict:
    text = (
        f"{percent(entry['value'])} (95% CI {percent(entry['low'])} to {percent(entry['high'])}), "
        f"{entry['count']} of {entry['total']} images {who}"
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


def _explanation(scan, reading: dict, *, positive: str) -> str | None:
    """One sentence: how many of 100 patients with this result have the positive class, at this prevalence."""
    if scan.result == Scan.Result.POSITIVE:
        share, low, high = (reading["ppv"][key] for key in ("value", "low", "high"))
    elif scan.result == Scan.Result.NEGATIVE:
        npv = reading["npv"]
        share, low, high = (None if value is None else 1 - value for value in (npv["value"], npv["high"], npv["low"]))
    else:
        return None
    if share is None:
        return None
    sentence = (
        f"Of patients with this result at a prevalence of {reading['prevalence_text']}, "
        f"{_per_100(share)} in 100 have {positive}"
    )
    if low is not None:
        sentence += (
            f" (between {round(low * 100)} and {round(high * 100)}, "
            "allowing for the uncertainty in sensitivity and specificity)"
        )
    return sentence + "."
