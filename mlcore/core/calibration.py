"""Calibrated probabilities (temperature scaling) and the indeterminate band around the threshold.

Class weights and early stopping on AUC leave a network's softmax over- or under-confident; one
temperature fitted on the validation split (Guo et al., 2017) rescales every logit and keeps the
ranking, so AUC is unchanged and the probability a doctor sees means what it says. The band is where,
on validation, the model's calls near the threshold are wrong too often to be shown as calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

EPSILON = 1e-7
BAND_MAX_ERROR = 0.5  # calls no better than a coin toss
BAND_RULE = (
    "Indeterminate: (1) between 0.5 and the threshold, where the calibrated probability itself says the call "
    "is more likely wrong than right; and (2) the widest band around the threshold, symmetric in log-odds, "
    "inside which at least {max_error:.0%} of the validation split's calls are wrong. The band is the span of "
    "both; (2) adds nothing when fewer validation calls near the threshold are wrong."
)


def logits_of(probabilities: np.ndarray) -> np.ndarray:
    """Softmax outputs back to logits (up to a per-row constant, which the softmax ignores)."""
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1.0))


def apply_temperature(probabilities: np.ndarray, temperature: float | None) -> np.ndarray:
    """Softmax probabilities calibrated by a temperature (None or 1: unchanged)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if temperature is None or temperature == 1.0:
        return probabilities
    scaled = logits_of(probabilities) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=-1, keepdims=True)


def negative_log_likelihood(y_onehot: np.ndarray, probabilities: np.ndarray) -> float:
    chosen = np.sum(np.asarray(y_onehot) * np.clip(probabilities, EPSILON, 1.0), axis=-1)
    return float(-np.mean(np.log(chosen)))


def fit_temperature(y_onehot: np.ndarray, probabilities: np.ndarray) -> float:
    """The temperature that minimises the validation negative log-likelihood (searched on log scale)."""
    y_onehot = np.asarray(y_onehot)
    if len(y_onehot) == 0 or len(set(y_onehot.argmax(axis=1).tolist())) < 2:
        return 1.0
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(y_onehot, apply_temperature(probabilities, float(np.exp(log_t)))),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
    )
    return float(np.exp(result.x))


@dataclass(frozen=True)
class Band:
    """Calibrated P(positive) in [low, high] is indeterminate; None when no band was warranted."""

    low: float | None
    high: float | None

    def contains(self, probability: float) -> bool:
        return self.low is not None and self.high is not None and self.low <= probability <= self.high


def _log_odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPSILON, 1.0 - EPSILON)
    return np.log(p / (1.0 - p))


def _probability(log_odds: float) -> float:
    return float(1.0 / (1.0 + np.exp(-log_odds)))


def choose_band(
    y_positive: np.ndarray, p_positive: np.ndarray, threshold: float, *, max_error: float = BAND_MAX_ERROR
) -> Band:
    """The indeterminate band by BAND_RULE, from validation labels and calibrated P(positive)."""
    y_positive = np.asarray(y_positive, dtype=int)
    p_positive = np.asarray(p_positive, dtype=float)
    disagreeing = (min(threshold, 0.5), max(threshold, 0.5)) if not np.isclose(threshold, 0.5) else None
    empirical = _empirical_band(y_positive, p_positive, threshold, max_error=max_error)
    edges = [edge for edge in (disagreeing, empirical) if edge is not None]
    if not edges:
        return Band(None, None)
    return Band(min(low for low, _ in edges), max(high for _, high in edges))


def _empirical_band(y_positive, p_positive, threshold: float, *, max_error: float) -> tuple[float, float] | None:
    """Part (2) of BAND_RULE: where validation calls near the threshold are wrong too often."""
    if len(y_positive) == 0:
        return None
    centre = _log_odds(threshold)
    distance = np.abs(_log_odds(p_positive) - centre)
    wrong = (p_positive >= threshold).astype(int) != y_positive
    order = np.argsort(distance, kind="stable")
    error_inside = np.cumsum(wrong[order]) / np.arange(1, len(order) + 1)
    qualifying = np.flatnonzero(error_inside >= max_error)
    if len(qualifying) == 0:
        return None
    width = float(distance[order][qualifying[-1]])
    return _probability(centre - width), _probability(centre + width)


def band_figures(y_positive: np.ndarray, p_positive: np.ndarray, threshold: float, band: Band) -> dict:
    """Share of images in the band, and sensitivity/specificity of the calls outside it (with intervals)."""
    from mlcore.core.evaluation import proportion_with_interval

    y_positive = np.asarray(y_positive, dtype=int)
    p_positive = np.asarray(p_positive, dtype=float)
    inside = np.array([band.contains(p) for p in p_positive], dtype=bool)
    outside = ~inside
    called = p_positive >= threshold
    tp = int(np.sum(outside & called & (y_positive == 1)))
    fn = int(np.sum(outside & ~called & (y_positive == 1)))
    tn = int(np.sum(outside & ~called & (y_positive == 0)))
    fp = int(np.sum(outside & called & (y_positive == 0)))
    return {
        "low": band.low,
        "high": band.high,
        "share_in_band": proportion_with_interval(int(inside.sum()), len(y_positive)),
        "outside": {
            "sensitivity": proportion_with_interval(tp, tp + fn),
            "specificity": proportion_with_interval(tn, tn + fp),
        },
    }
