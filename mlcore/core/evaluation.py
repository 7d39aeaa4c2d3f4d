"""Metrics of a classifier at a stored decision threshold on P(positive), overall and per data source,
with patient-level bootstrap intervals; for any number of classes, the positive one against the rest."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import (
    classification_report,
    roc_auc_score,
    roc_curve,
)

from mlcore.core.classes import called_classes, class_set

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


def call_class(probabilities, class_names: Sequence[str], positive_class: str, threshold: float):
    """The class a reading calls: the positive class when its probability reaches the threshold,
    otherwise the most probable of the other classes.

    The rule of mlcore.core.classes.called_classes (the worker's), without an indeterminate band: evaluation
    counts every image. ``probabilities`` holds one row per image (columns in
    ``class_names`` order) and gives an array of class names, or one row and gives one name.
    With two classes this is "positive when P(positive) >= threshold".
    """
    p = np.asarray(probabilities, dtype=float)
    single = p.ndim == 1
    p = np.atleast_2d(p)
    names = np.asarray(class_names, dtype=object)
    if p.shape[1] != len(names):
        raise ValueError(f"{p.shape[1]} probabilities per image for {len(names)} classes {list(class_names)}.")
    called = called_classes(p, classes=class_set(class_names, positive_class), threshold=threshold)
    return str(names[called[0]]) if single else names[called]


def display_order(class_names: Sequence[str], positive_class: str) -> list[str]:
    """Rows and columns of a confusion matrix: the other classes as the model orders them, the positive last
    (for two classes: negative, positive, as the two-class versions stored them)."""
    return [name for name in class_names if name != positive_class] + [positive_class]


def class_metrics(
    labels: Sequence[str],
    probabilities,
    threshold: float,
    *,
    class_names: Sequence[str],
    positive_class: str,
) -> dict:
    """Everything the version page shows for one set of labelled images, for any number of classes.

    Positive-vs-rest figures (AUC, sensitivity, specificity, PPV/NPV, calibration) are on the calibrated
    P(positive); the confusion matrix and the classification report are over every class, the calls made
    by ``call_class``. A set holding only some classes gets what those classes allow (no AUC without
    both positives and negatives).
    """
    labels = np.asarray(labels, dtype=object).reshape(-1)
    probabilities = np.asarray(probabilities, dtype=float).reshape(len(labels), len(class_names))
    unknown = sorted(set(labels.tolist()) - set(class_names))
    if unknown:
        raise ValueError(f"Labels {unknown} are not among the classes {list(class_names)}.")
    p_positive = probabilities[:, list(class_names).index(positive_class)]
    y_positive = (labels == positive_class).astype(int)
    called = call_class(probabilities, class_names, positive_class, threshold)
    called_positive = (called == positive_class).astype(int)
    tp = int(np.sum(called_positive & y_positive))
    fp = int(np.sum(called_positive & (1 - y_positive)))
    fn = int(np.sum((1 - called_positive) & y_positive))
    tn = int(np.sum((1 - called_positive) & (1 - y_positive)))
    both_classes = len(set(y_positive.tolist())) == 2
    order = display_order(class_names, positive_class)
    counts = [[int(np.sum((labels == true) & (called == call))) for call in order] for true in order]
    class_counts = {name: int(np.sum(labels == name)) for name in order}
    metrics = {
        "n": len(labels),
        "positives": int(y_positive.sum()),
        "negatives": int(len(y_positive) - y_positive.sum()),
        "class_names": list(class_names),
        "positive_class": positive_class,
        "class_counts": class_counts,
        "threshold": float(threshold),
        "accuracy": float((called == labels).mean()) if len(labels) else None,
        "auc": float(roc_auc_score(y_positive, p_positive)) if both_classes else None,
        "sensitivity": proportion_with_interval(tp, tp + fn),
        "specificity": proportion_with_interval(tn, tn + fp),
        "ppv": proportion_with_interval(tp, tp + fp),
        "npv": proportion_with_interval(tn, tn + fn),
        "confusion_matrix": {
            "labels": order,
            "counts": counts,
            "percent_of_true_class": _row_percent(counts),
        },
        "per_class": {
            name: {"called_positive": proportion_with_interval(int(np.sum(called_positive[labels == name])), count)}
            for name, count in class_counts.items()
            if count
        },
        "brier_score": float(np.mean((p_positive - y_positive) ** 2)) if len(labels) else None,
        "expected_calibration_error": expected_calibration_error(y_positive, p_positive),
        "calibration_bins": calibration_bins(y_positive, p_positive),
    }
    if len(labels):
        metrics["classification_report"] = classification_report(
            labels, called, labels=order, target_names=order, output_dict=True, zero_division=0
        )
    if both_classes:
        fpr, tpr, thresholds = roc_curve(y_positive, p_positive)
        metrics["roc"] = {
            "fpr": fpr.tolist(),
            "tpr": tpr.tolist(),
            "thresholds": np.clip(thresholds, 0, 1).tolist(),
        }
    return metrics


def binary_metrics(
    y_positive: np.ndarray,
    p_positive: np.ndarray,
    threshold: float,
    *,
    class_names: Sequence[str],
    positive_class: str,
) -> dict:
    """``class_metrics`` for two classes given as 1 = positive and P(positive)."""
    if len(class_names) != 2:
        raise ValueError(f"binary_metrics needs two classes, not {list(class_names)}.")
    negative_class = next(name for name in class_names if name != positive_class)
    y_positive = np.asarray(y_positive, dtype=int)
    p_positive = np.asarray(p_positive, dtype=float)
    labels = np.where(y_positive == 1, positive_class, negative_class).astype(object)
    columns = {positive_class: p_positive, negative_class: 1.0 - p_positive}
    probabilities = np.stack([columns[name] for name in class_names], axis=1) if len(p_positive) else np.zeros((0, 2))
    return class_metrics(labels, probabilities, threshold, class_names=class_names, positive_class=positive_class)


def _row_percent(counts) -> list[list[float | None]]:
    """Each row as a percentage of its true class; None for a class the set does not hold."""
    rows = []
    for row in counts:
        total = sum(row)
        rows.append([100.0 * value / total if total else None for value in row])
    return rows


BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_CONFIDENCE = 0.95
BOOTSTRAP_METHOD = (
    "Patient-level bootstrap: patients drawn with replacement (all images of a drawn patient go with "
    "them), {resamples} resamples, seed {seed}; {confidence:.0%} percentile intervals over the resamples "
    "in which the figure is defined."
)
_CHUNK = 250


def patient_bootstrap(
    *,
    y_positive,
    p_positive=None,
    called_positive=None,
    labels=None,
    patient_ids: Sequence[str | None] | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    confidence: float = BOOTSTRAP_CONFIDENCE,
) -> dict:
    """Percentile intervals for AUC (from ``p_positive``), sensitivity, specificity and the share of each
    class in ``labels`` called positive (from ``called_positive``), resampling patients, not images.

    Images of one patient are not independent: resampling them one by one makes intervals too narrow.
    Patient ids of None count as one patient each. Vectorised: each resample is a vector of how often each
    patient was drawn, and every figure is a weighted count.
    """
    y_positive = np.asarray(y_positive, dtype=int)
    n = len(y_positive)
    codes = _patient_codes(patient_ids, n)
    patients = int(codes.max()) + 1 if n else 0
    result = {
        "method": BOOTSTRAP_METHOD.format(resamples=resamples, seed=seed, confidence=confidence),
        "resamples": resamples,
        "seed": seed,
        "confidence": confidence,
        "patients": patients,
        "images": n,
    }
    if n == 0 or resamples <= 0:
        return result
    rng = np.random.default_rng(seed)
    ratios = {}
    if called_positive is not None:
        called_positive = np.asarray(called_positive, dtype=float)
        ratios["sensitivity"] = (called_positive * y_positive, y_positive.astype(float))
        ratios["specificity"] = ((1 - called_positive) * (1 - y_positive), (1 - y_positive).astype(float))
        if labels is not None:
            labels = np.asarray(labels, dtype=object)
            for name in sorted(set(labels.tolist())):
                member = (labels == name).astype(float)
                ratios[f"called_positive:{name}"] = (called_positive * member, member)
    ranking = _AucRanking(y_positive, p_positive) if p_positive is not None and 0 < y_positive.sum() < n else None
    draws: dict[str, list[np.ndarray]] = {name: [] for name in ratios}
    auc_draws: list[np.ndarray] = []
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        weights = rng.multinomial(patients, np.full(patients, 1.0 / patients), size=size).astype(float)[:, codes]
        for name, (numerator, denominator) in ratios.items():
            totals = weights @ denominator
            with np.errstate(invalid="ignore", divide="ignore"):
                draws[name].append(np.where(totals > 0, (weights @ numerator) / totals, np.nan))
        if ranking is not None:
            auc_draws.append(ranking.auc(weights))
    tail = 100 * (1 - confidence) / 2
    if ranking is not None:
        result["auc"] = _percentile_interval(np.concatenate(auc_draws), tail)
    per_class = {}
    for name, parts in draws.items():
        interval = _percentile_interval(np.concatenate(parts), tail)
        if name.startswith("called_positive:"):
            per_class[name.split(":", 1)[1]] = interval
        else:
            result[name] = interval
    if per_class:
        result["called_positive"] = per_class
    return result


def _patient_codes(patient_ids, n: int) -> np.ndarray:
    if patient_ids is None:
        return np.arange(n)
    if len(patient_ids) != n:
        raise ValueError(f"{len(patient_ids)} patient ids for {n} images.")
    keys = [f"patient:{pid}" if pid else f"image:{i}" for i, pid in enumerate(patient_ids)]
    return np.unique(np.asarray(keys, dtype=object), return_inverse=True)[1].reshape(-1)


def _percentile_interval(values: np.ndarray, tail: float) -> dict:
    defined = values[np.isfinite(values)]
    if len(defined) == 0:
        return {"low": None, "high": None, "resamples": 0}
    low, high = np.percentile(defined, [tail, 100 - tail])
    return {"low": float(low), "high": float(high), "resamples": len(defined)}


class _AucRanking:
    """The weighted Mann-Whitney AUC for many weight vectors at once: the scores are sorted once, and each
    positive counts the weight of negatives scored below it plus half of those tied with it."""

    def __init__(self, y_positive: np.ndarray, p_positive) -> None:
        p_positive = np.asarray(p_positive, dtype=float)
        self.order = np.argsort(p_positive, kind="stable")
        scores = p_positive[self.order]
        self.positive = y_positive[self.order].astype(float)
        starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])
        group = np.cumsum(np.r_[True, scores[1:] != scores[:-1]]) - 1
        ends = np.r_[starts[1:], len(scores)]
        self.first, self.after = starts[group], ends[group]

    def auc(self, weights: np.ndarray) -> np.ndarray:
        weights = weights[:, self.order]
        positive_weights = weights * self.positive
        negative_weights = weights - positive_weights
        cumulative = np.concatenate([np.zeros((len(weights), 1)), np.cumsum(negative_weights, axis=1)], axis=1)
        below = cumulative[:, self.first]
        tied = cumulative[:, self.after] - below
        pairs = positive_weights.sum(axis=1) * negative_weights.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pairs > 0, (positive_weights * (below + 0.5 * tied)).sum(axis=1) / pairs, np.nan)


def evaluate(
    *,
    labels: Sequence[str],
    probabilities,
    threshold: float,
    class_names: Sequence[str],
    positive_class: str,
    sources: Sequence[str | None] | None = None,
    patient_ids: Sequence[str | None] | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict:
    """Overall metrics with patient-level bootstrap intervals, plus the same per source when sources are known.

    ``patient_ids`` None: each image its own patient.
    """
    labels = np.asarray(labels, dtype=object).reshape(-1)
    probabilities = np.asarray(probabilities, dtype=float).reshape(len(labels), len(class_names))
    patient_ids = None if patient_ids is None else list(patient_ids)

    def measured(members: np.ndarray) -> dict:
        chosen = labels[members]
        metrics = class_metrics(
            chosen, probabilities[members], threshold, class_names=class_names, positive_class=positive_class
        )
        metrics["bootstrap"] = patient_bootstrap(
            y_positive=(chosen == positive_class).astype(int),
            p_positive=probabilities[members, list(class_names).index(positive_class)],
            called_positive=call_class(probabilities[members], class_names, positive_class, threshold)
            == positive_class,
            labels=chosen,
            patient_ids=None if patient_ids is None else [patient_ids[i] for i in np.flatnonzero(members)],
            resamples=resamples,
            seed=seed,
        )
        return metrics

    metrics = measured(np.ones(len(labels), dtype=bool))
    if sources is not None and any(sources):
        names = np.array([s or "unknown" for s in sources], dtype=object)
        metrics["per_source"] = {source: _compact(measured(names == source)) for source in sorted(set(names.tolist()))}
    return metrics


def _compact(metrics: dict) -> dict:
    keep = (
        "n",
        "positives",
        "negatives",
        "class_counts",
        "accuracy",
        "auc",
        "sensitivity",
        "specificity",
        "per_class",
        "confusion_matrix",
        "bootstrap",
    )
    return {key: metrics[key] for key in keep if key in metrics}


CONFOUNDED_SOURCE = "confounded: this source cannot show discrimination"


def single_class_sources(metrics: dict) -> dict[str, str]:
    """Sources in ``metrics["per_source"]`` whose images are all of one class, with that class's name.

    Within such a source the model only has to recognise the source (its scanner, its text marks)
    to be right, so the figures it adds say nothing about telling the classes apart. Reads both the
    per-class counts of N-class evaluations and the positives/negatives of two-class versions' metrics.
    """
    single = {}
    for source, part in (metrics.get("per_source") or {}).items():
        if not part.get("n"):
            continue
        counts = part.get("class_counts")
        if counts is not None:
            present = [name for name, count in counts.items() if count]
            if len(present) == 1:
                single[source] = present[0]
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
