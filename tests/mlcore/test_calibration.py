"""Temperature scaling and the indeterminate band (mlcore.core.calibration)."""

import numpy as np
import pytest

from mlcore.core.calibration import (
    Band,
    apply_temperature,
    band_figures,
    choose_band,
    fit_temperature,
    negative_log_likelihood,
)
from mlcore.core.evaluation import expected_calibration_error


def overconfident(n=2000, seed=0):
    """Labels drawn from true probabilities, and a model that reports them far too sure (logits x4)."""
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(int)
    reported = 1 / (1 + np.exp(-4 * true_logit))
    probabilities = np.stack([reported, 1 - reported], axis=1)  # columns: positive, negative
    onehot = np.stack([y, 1 - y], axis=1)
    return onehot, probabilities


def test_temperature_undoes_overconfidence_and_lowers_the_calibration_error():
    onehot, probabilities = overconfident()

    temperature = fit_temperature(onehot, probabilities)
    calibrated = apply_temperature(probabilities, temperature)

    assert temperature == pytest.approx(4.0, rel=0.15)
    assert negative_log_likelihood(onehot, calibrated) < negative_log_likelihood(onehot, probabilities)
    before = expected_calibration_error(onehot[:, 0], probabilities[:, 0])
    after = expected_calibration_error(onehot[:, 0], calibrated[:, 0])
    assert after < before / 2


def test_temperature_keeps_the_ranking_and_each_row_sums_to_one():
    _, probabilities = overconfident(n=200)
    calibrated = apply_temperature(probabilities, 2.5)

    np.testing.assert_array_equal(np.argsort(calibrated[:, 0]), np.argsort(probabilities[:, 0]))
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)


def test_no_temperature_leaves_probabilities_unchanged():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8]])

    np.testing.assert_allclose(apply_temperature(probabilities, None), probabilities)


def test_one_class_in_validation_fits_no_temperature():
    assert fit_temperature(np.array([[1, 0], [1, 0]]), np.array([[0.9, 0.1], [0.6, 0.4]])) == 1.0


def test_the_band_covers_the_errors_near_the_threshold_and_no_more():
    # Far from 0.5 every call is right; the four nearest the threshold are half wrong.
    p = np.array([0.02, 0.05, 0.1, 0.45, 0.48, 0.52, 0.55, 0.9, 0.95, 0.98])
    y = np.array([0, 0, 0, 1, 0, 1, 0, 1, 1, 1])

    band = choose_band(y, p, 0.5, max_error=0.5)

    assert band.contains(0.45)
    assert band.contains(0.55)
    assert not band.contains(0.1)
    assert not band.contains(0.9)


def test_a_lower_error_rate_widens_the_band_to_keep_its_average_error_at_that_rate():
    p = np.array([0.02, 0.05, 0.1, 0.45, 0.48, 0.52, 0.55, 0.9, 0.95, 0.98])
    y = np.array([0, 0, 0, 1, 0, 1, 0, 1, 1, 1])

    band = choose_band(y, p, 0.5, max_error=0.25)

    assert band.contains(0.1)
    assert band.contains(0.9)
    assert not band.contains(0.05)


def test_no_band_when_validation_calls_are_all_right_at_a_threshold_of_one_half():
    p = np.array([0.1, 0.2, 0.8, 0.9])
    y = np.array([0, 0, 1, 1])

    band = choose_band(y, p, 0.5)

    assert band == Band(None, None)
    assert not band.contains(0.5)


def test_band_figures_give_the_share_inside_and_accuracy_outside():
    p = np.array([0.1, 0.45, 0.55, 0.9, 0.2, 0.8])
    y = np.array([0, 1, 0, 1, 1, 1])

    figures = band_figures(y, p, 0.5, Band(0.4, 0.6))

    assert figures["share_in_band"]["count"] == 2
    assert figures["share_in_band"]["total"] == 6
    assert figures["outside"]["sensitivity"]["count"] == 2  # 0.9 and 0.8 of the three positives outside
    assert figures["outside"]["sensitivity"]["total"] == 3
    assert figures["outside"]["specificity"]["value"] == 1.0


def test_between_one_half_and_the_threshold_the_call_contradicts_its_own_probability():
    """At threshold 0.7 a calibrated 0.6 would be called negative though COVID-19 is the likelier."""
    p = np.array([0.1, 0.2, 0.8, 0.9])
    y = np.array([0, 0, 1, 1])

    band = choose_band(y, p, 0.7)

    assert (band.low, band.high) == (0.5, 0.7)
    assert band.contains(0.6)
    assert not band.contains(0.45)
    assert choose_band(y, p, 0.3) == Band(0.3, 0.5)
