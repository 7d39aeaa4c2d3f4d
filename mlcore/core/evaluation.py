"""Metrics of a binary classifier at a stored decision threshold, overall and per data source."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import (
    brier_score_loss,
    classification_report,
    confusion_matrix,
    roc_auc_score,
    roc_curve,
)

THRESHOLD_RULE = (
    "Youden's J on the validation split: the threshold on P(positive) that maximises "
    "sensitivity + specificity - 1; among equal values the lowest, which favours sensitivity."
)


def choose_threshold(y_positive: np.ndarray, p_positive: np.ndarray) -> float:
    """The decision threshold by THRESHOLD_RULE; 0.5 when the split lacks a class."""
    y_positive = np.asarray(y_positive, dtype=int)
    if len(set(y_positive.tolist())) < 2:
        return 0.5
    fpr, tpr, thresholds = roc_curve(y_positive, p_positive)
    youden = tpr - fpr
    candidates = np.flatnonzero(np.isclose(youden, youden.max()))
    threshold = float(np.min(thresholds[candidates]))
    return float(np.clip(threshold, 0.0, 1.0))


def proportion_with_interval(successes: int, total: int) -> dict:
    """A proportion and its 95% Wilson score interval (None when nothing was counted)."""
    if total == 0:
        return {"value": None, "low": None, "high": None, "count": 0, "total": 0}
    interval = binomtest(successes, total).proportion_ci(confidence_level=0.95, method="wilson")
    return {
        "value": successes / total,
        "low": float(interval.low),
        "high": float(interval.high),
        "count": int(successes),
        "total": int(total),
    }


def expected_calibration_error(y_positive, p_positive, bins: int = 10) -> float:
    y_positive, p_positive = np.asarray(y_positive, dtype=float), np.asarray(p_positive, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p_positive, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(p_positive[members].mean() - y_positive[members].mean())
    return float(error)


def calibration_bins(y_positive, p_positive, bins: int = 10) -> list[dict]:
    y_positive, p_positive = np.asarray(y_positive, dtype=float), np.asarray(p_positive, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p_positive, edges[1:-1]), 0, bins - 1)
    return [
        {
            "low": float(edges[b]),
            "high": float(edges[b + 1]),
            "count": int((which == b).sum()),
            "mean_predicted": float(p_positive[which == b].mean()) if (which == b).any() else None,
            "fraction_positive": float(y_positive[which == b].mean()) if (which == b).any() else None,
        }
        for b in range(bins)
    ]


def binary_metrics(
    y_positive: np.ndarray,
    p_positive: np.ndarray,
    threshold: float,
    *,
    class_names: Sequence[str],
    positive_class: str,
) -> dict:
    """Everything the model version page shows for one set of labelled predictions."""
    y_positive = np.asarray(y_positive, dtype=int)
    p_positive = np.asarray(p_positive, dtype=float)
    predicted = (p_positive >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y_positive, predicted, labels=[0, 1]).ravel().tolist()
    negative_class = next(name for name in class_names if name != positive_class)
    both_classes = len(set(y_positive.tolist())) == 2
    metrics = {
        "n": len(y_positive),
        "positives": int(y_positive.sum()),
        "negatives": int(len(y_positive) - y_positive.sum()),
        "threshold": float(threshold),
        "accuracy": float((predicted == y_positive).mean()) if len(y_positive) else None,
        "auc": float(roc_auc_score(y_positive, p_positive)) if both_classes else None,
        "sensitivity": proportion_with_interval(tp, tp + fn),
        "specificity": proportion_with_interval(tn, tn + fp),
        "ppv": proportion_with_interval(tp, tp + fp),
        "npv": proportion_with_interval(tn, tn + fn),
        "confusion_matrix": {
            "labels": [negative_class, positive_class],
            "counts": [[tn, fp], [fn, tp]],
            "percent_of_true_class": _row_percent([[tn, fp], [fn, tp]]),
        },
        "brier_score": float(brier_score_loss(y_positive, p_positive)) if len(y_positive) else None,
        "expected_calibration_error": expected_calibration_error(y_positive, p_positive),
        "calibration_bins": calibration_bins(y_positive, p_positive),
    }
    if len(y_positive):
        names = [negative_class, positive_class]
        metrics["classification_report"] = classification_report(
            y_positive, predicted, labels=[0, 1], target_names=names, output_dict=True, zero_division=0
        )
    if both_classes:
        fpr, tpr, thresholds = roc_curve(y_positive, p_positive)
        metrics["roc"] = {
            "fpr": fpr.tolist(),
            "tpr": tpr.tolist(),
            "thresholds": np.clip(thresholds, 0, 1).tolist(),
        }
    return metrics


def _row_percent(counts) -> list[list[float]]:
    rows = []
    for row in counts:
        total = sum(row)
        rows.append([100.0 * value / total if total else 0.0 for value in row])
    return rows


def evaluate(
    *,
    y_positive: np.ndarray,
    p_positive: np.ndarray,
    threshold: float,
    class_names: Sequence[str],
    positive_class: str,
    sources: Sequence[str | None] | None = None,
) -> dict:
    """Overall metrics, plus the same per source when sources are known."""
    metrics = binary_metrics(y_positive, p_positive, threshold, class_names=class_names, positive_class=positive_class)
    if sources is not None and any(sources):
        names = np.array([s or "unknown" for s in sources])
        metrics["per_source"] = {
            source: _compact(
                binary_metrics(
                    np.asarray(y_positive)[names == source],
                    np.asarray(p_positive)[names == source],
                    threshold,
                    class_names=class_names,
                    positive_class=positive_class,
                )
            )
            for source in sorted(set(names.tolist()))
        }
    return metrics


def _compact(metrics: dict) -> dict:
    keep = (
        "n",
        "positives",
        "negatives",
        "accuracy",
        "auc",
        "sensitivity",
        "specificity",
        "confusion_matrix",
    )
    return {key: metrics[key] for key in keep if key in metrics}


CONFOUNDED_SOURCE = "confounded: this source cannot show discrimination"


def single_class_sources(metrics: dict) -> dict[str, str]:
    """Sources in ``metrics["per_source"]`` whose images are all of one class, with that class's name.

    Within such a source the model only has to recognise the source (its scanner, its text marks)
    to be right, so the figures it adds say nothing about telling the classes apart.
    """
    single = {}
    for source, part in (metrics.get("per_source") or {}).items():
        if not part.get("n"):
            continue
        negative_class, positive_class = (part.get("confusion_matrix") or {}).get("labels") or ("negative", "positive")
        if not part.get("negatives"):
            single[source] = positive_class
        elif not part.get("positives"):
            single[source] = negative_class
    return single


def is_confounded(metrics: dict) -> bool:
    """A split is confounded when any source with images holds only one class."""
    return bool(single_class_sources(metrics))


def jsonable(value):
    """Plain Python types for JSON columns (NumPy scalars and arrays included; NaN becomes None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return value


def predictive_values(
    *, sensitivity: float, specificity: float, prevalence: float
) -> tuple[float | None, float | None]:
    """PPV and NPV by Bayes' rule at a prevalence: the test set's own PPV/NPV hold only at its class mix.

    A value is None where it is undefined (no positive, or no negative, results at all).
    """
    for name, value in (("sensitivity", sensitivity), ("specificity", specificity)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie between 0 and 1, not {value}")
    if not 0.0 < prevalence < 1.0:
        raise ValueError(f"prevalence must lie strictly between 0 and 1, not {prevalence}")
    true_positive = sensitivity * prevalence
    false_positive = (1.0 - specificity) * (1.0 - prevalence)
    true_negative = specificity * (1.0 - prevalence)
    false_negative = (1.0 - sensitivity) * prevalence
    ppv = true_positive / (true_positive + false_positive) if true_positive + false_positive > 0 else None
    npv = true_negative / (true_negative + false_negative) if true_negative + false_negative > 0 else None
    return ppv, npv


def predictive_value_ranges(
    *, sensitivity: tuple[float, float], specificity: tuple[float, float], prevalence: float
) -> dict[str, tuple[float, float] | None]:
    """The PPV and NPV over every sensitivity and specificity inside their (low, high) intervals.

    Both rise with sensitivity and with specificity, so the corners bound them. Two 95% intervals
    taken together make this range conservative, not a 95% interval of its own. A range is None
    where a corner leaves the value undefined: near it the value could be anything.
    """
    corners = [
        predictive_values(sensitivity=sens, specificity=spec, prevalence=prevalence)
        for sens in sensitivity
        for spec in specificity
    ]
    ranges = {}
    for key, values in (("ppv", [c[0] for c in corners]), ("npv", [c[1] for c in corners])):
        ranges[key] = None if None in values else (min(values), max(values))
    return ranges
