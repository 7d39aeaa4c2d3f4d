"""Fitting what a version knows about trusting itself, on its own splits: calibration, threshold,
indeterminate band, input gate and heatmap scale; and measuring them on labelled images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlcore.core.calibration import (
    BAND_MAX_ERROR,
    BAND_RULE,
    Band,
    apply_temperature,
    band_figures,
    choose_band,
    fit_temperature,
)
from mlcore.core.evaluation import choose_threshold, expected_calibration_error, proportion_with_interval
from mlcore.core.gate import DEFAULT_QUANTILE, FeatureGate
from mlcore.core.gradcam import SCALE_PERCENTILE, heatmap_scale


@dataclass
class FittedReliability:
    temperature: float
    threshold: float
    band: Band
    gate: FeatureGate
    heatmap_scale: float | None
    summary: dict


def fit_reliability(
    *,
    y_validation: np.ndarray,
    raw_validation: np.ndarray,
    gate_train: dict[str, np.ndarray],
    train_labels: np.ndarray,
    train_groups: list | None = None,
    gate_validation: dict[str, np.ndarray],
    cams_validation: np.ndarray,
    positive_index: int,
    gate_quantile: float = DEFAULT_QUANTILE,
    band_max_error: float = BAND_MAX_ERROR,
    refuse: dict[str, np.ndarray] | None = None,
) -> FittedReliability:
    """Everything on the validation split (the gate's statistics on the training split, its limits on
    both; ``train_groups``: the training images' patients, so its folds hold out whole patients).

    The threshold is chosen on calibrated probabilities, so the stored threshold and the probability
    a doctor sees are on the same scale.
    """
    y_positive = np.asarray(y_validation)[:, positive_index]
    temperature = fit_temperature(y_validation, raw_validation)
    calibrated = apply_temperature(raw_validation, temperature)[:, positive_index]
    threshold = choose_threshold(y_positive, calibrated)
    band = choose_band(y_positive, calibrated, threshold, max_error=band_max_error)
    gate = FeatureGate.fit(
        train=gate_train,
        train_labels=train_labels,
        train_groups=train_groups,
        validation=gate_validation,
        quantile=gate_quantile,
        refuse=refuse,
    )
    scale = heatmap_scale(cams_validation)
    summary = {
        "calibration": {
            "method": "Temperature scaling (one temperature for every logit) fitted on the validation split "
            "by minimum negative log-likelihood.",
            "temperature": temperature,
            "validation_ece_before": expected_calibration_error(y_positive, raw_validation[:, positive_index]),
            "validation_ece_after": expected_calibration_error(y_positive, calibrated),
        },
        "indeterminate_band": {
            "rule": BAND_RULE.format(max_error=band_max_error),
            "max_error": band_max_error,
            "low": band.low,
            "high": band.high,
        },
        "gate": gate.summary(),
        "heatmap": {
            "rule": f"Grad-CAM maps divided by the {SCALE_PERCENTILE:.0f}th percentile of the validation maps' "
            "peaks, each cell placed on its receptive field's centre.",
            "scale": scale,
        },
    }
    return FittedReliability(temperature, threshold, band, gate, scale, summary)


def reliability_figures(
    *,
    y_positive: np.ndarray,
    raw_positive: np.ndarray,
    calibrated_positive: np.ndarray,
    threshold: float,
    band: Band,
    refused: np.ndarray,
    labels: list[str],
) -> dict:
    """What staff need beside a split's metrics: calibration before/after, the band, the gate's refusals."""
    refused = np.asarray(refused, dtype=bool)
    per_class = {
        name: proportion_with_interval(
            int(refused[[label == name for label in labels]].sum()), sum(1 for label in labels if label == name)
        )
        for name in sorted(set(labels))
    }
    return {
        "calibration": {
            "ece_before": expected_calibration_error(y_positive, raw_positive),
            "ece_after": expected_calibration_error(y_positive, calibrated_positive),
        },
        "abstention": band_figures(y_positive, calibrated_positive, threshold, band),
        "gate": {"refused": proportion_with_interval(int(refused.sum()), len(refused)), "per_class": per_class},
    }
