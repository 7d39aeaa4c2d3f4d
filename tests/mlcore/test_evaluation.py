"""Binary classifier metrics on hand-made predictions whose answers are known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from mlcore.core.evaluation import (
    _AucRanking,
    binary_metrics,
    calibration_bins,
    call_class,
    choose_threshold,
    class_metrics,
    evaluate,
    expected_calibration_error,
    is_confounded,
    jsonable,
    patient_bootstrap,
    predictive_value_ranges,
    predictive_values,
    proportion_with_interval,
    single_class_sources,
)

CLASS_NAMES = ["COVID", "NORMAL"]
Z95 = 1.959963984540054


def wilson(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval, written out."""
    p = successes / total
    denominator = 1 + z**2 / total
    centre = (p + z**2 / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z**2 / (4 * total**2)) / denominator
    return centre - half, centre + half


# 10 positives, 10 negatives. At threshold 0.5 (p >= 0.5 is positive):
# positives: 8 at or above (one exactly 0.5), 2 below -> TP 8, FN 2
# negatives: 7 below, 3 at or above (one exactly 0.5) -> TN 7, FP 3
Y = np.array([1] * 10 + [0] * 10)
P_POSITIVES = [0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.95, 0.85, 0.2, 0.49]
P_NEGATIVES = [0.1, 0.2, 0.3, 0.4, 0.45, 0.05, 0.15, 0.5, 0.6, 0.7]
P = np.array([*P_POSITIVES, *P_NEGATIVES])


def metrics_at(threshold: float = 0.5, y=Y, p=P) -> dict:
    return binary_metrics(y, p, threshold, class_names=CLASS_NAMES, positive_class="COVID")


def evaluate_two(*, y_positive, p_positive, **options) -> dict:
    """``evaluate`` on two classes given as 1 = COVID and P(COVID)."""
    y_positive, p_positive = np.asarray(y_positive), np.asarray(p_positive, dtype=float)
    return evaluate(
        labels=np.where(y_positive == 1, "COVID", "NORMAL"),
        probabilities=np.stack([p_positive, 1 - p_positive], axis=1),
        **options,
    )


# --- binary_metrics -------------------------------------------------------------------------------


def test_confusion_counts_and_labels():
    metrics = metrics_at()
    matrix = metrics["confusion_matrix"]
    assert matrix["labels"] == ["NORMAL", "COVID"]  # negative first, positive second
    assert matrix["counts"] == [[7, 3], [2, 8]]  # [[TN, FP], [FN, TP]]
    np.testing.assert_allclose(matrix["percent_of_true_class"], [[70.0, 30.0], [20.0, 80.0]])
    assert metrics["n"] == 20
    assert metrics["positives"] == 10
    assert metrics["negatives"] == 10
    assert metrics["threshold"] == 0.5


def test_confusion_labels_follow_the_positive_class():
    metrics = binary_metrics(Y, P, 0.5, class_names=["NORMAL", "COVID"], positive_class="NORMAL")
    assert metrics["confusion_matrix"]["labels"] == ["COVID", "NORMAL"]


def test_accuracy_is_the_diagonal_over_the_total():
    metrics = metrics_at()
    counts = np.array(metrics["confusion_matrix"]["counts"])
    assert metrics["accuracy"] == pytest.approx(np.trace(counts) / counts.sum())
    assert metrics["accuracy"] == pytest.approx(15 / 20)


def test_sensitivity_specificity_ppv_npv_with_wilson_intervals():
    metrics = metrics_at()
    expected = {
        "sensitivity": (8, 10),
        "specificity": (7, 10),
        "ppv": (8, 11),
        "npv": (7, 9),
    }
    for name, (successes, total) in expected.items():
        entry = metrics[name]
        low, high = wilson(successes, total)
        assert entry["count"] == successes, name
        assert entry["total"] == total, name
        assert entry["value"] == pytest.approx(successes / total), name
        assert entry["low"] == pytest.approx(low, abs=1e-9), name
        assert entry["high"] == pytest.approx(high, abs=1e-9), name
        assert entry["low"] < entry["value"] < entry["high"], name


def test_wilson_interval_for_eight_of_ten():
    entry = proportion_with_interval(8, 10)
    assert entry["low"] == pytest.approx(0.490, abs=5e-4)
    assert entry["high"] == pytest.approx(0.943, abs=5e-4)


def test_wilson_interval_at_the_extremes_stays_inside_zero_one():
    all_right = proportion_with_interval(10, 10)
    assert all_right["value"] == 1.0
    assert all_right["high"] == pytest.approx(1.0)
    assert all_right["low"] == pytest.approx(wilson(10, 10)[0], abs=1e-9)
    none_right = proportion_with_interval(0, 10)
    assert none_right["low"] == pytest.approx(0.0, abs=1e-12)
    assert none_right["high"] == pytest.approx(wilson(0, 10)[1], abs=1e-9)


def test_proportion_of_nothing_is_none():
    assert proportion_with_interval(0, 0) == {
        "value": None,
        "low": None,
        "high": None,
        "count": 0,
        "total": 0,
    }
    metrics = metrics_at(0.5, y=np.array([0, 0, 0]), p=np.array([0.1, 0.2, 0.3]))
    assert metrics["sensitivity"]["value"] is None  # no positives to be sensitive to
    assert metrics["specificity"]["value"] == 1.0
    assert metrics["auc"] is None
    assert "roc" not in metrics


def test_threshold_is_applied_as_greater_or_equal():
    at_half = metrics_at(0.5)["confusion_matrix"]["counts"]
    just_above = metrics_at(0.5 + 1e-9)["confusion_matrix"]["counts"]
    assert at_half == [[7, 3], [2, 8]]
    assert just_above == [[8, 2], [3, 7]]  # the two scores of exactly 0.5 flip to negative

    exact = metrics_at(0.7, y=np.array([1, 0]), p=np.array([0.7, 0.7]))
    assert exact["confusion_matrix"]["counts"] == [[0, 1], [0, 1]]


def test_auc_matches_the_pairwise_definition():
    positives, negatives = P[Y == 1], P[Y == 0]
    pairs = [(a > b) + 0.5 * (a == b) for a in positives for b in negatives]
    assert metrics_at()["auc"] == pytest.approx(np.mean(pairs))


def test_brier_score_matches_sklearn_and_its_definition():
    metrics = metrics_at()
    assert metrics["brier_score"] == pytest.approx(brier_score_loss(Y, P))
    assert metrics["brier_score"] == pytest.approx(np.mean((P - Y) ** 2))


def test_classification_report_uses_the_class_names():
    report = metrics_at()["classification_report"]
    assert report["COVID"]["recall"] == pytest.approx(0.8)
    assert report["NORMAL"]["recall"] == pytest.approx(0.7)
    assert report["COVID"]["support"] == 10


def test_roc_thresholds_are_json_safe():
    metrics = metrics_at()
    roc = metrics["roc"]
    assert len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"])
    assert all(math.isfinite(t) and 0.0 <= t <= 1.0 for t in roc["thresholds"])
    assert roc["fpr"][0] == 0.0
    assert roc["fpr"][-1] == 1.0
    assert roc["tpr"][-1] == 1.0
    json.dumps(roc, allow_nan=False)  # would raise on inf or NaN
    json.dumps(jsonable(metrics), allow_nan=False)


# --- evaluate and per-source breakdown ------------------------------------------------------------


def test_evaluate_gives_the_overall_metrics():
    overall = evaluate_two(y_positive=Y, p_positive=P, threshold=0.5, class_names=CLASS_NAMES, positive_class="COVID")
    assert overall["confusion_matrix"]["counts"] == [[7, 3], [2, 8]]
    assert "per_source" not in overall


def test_per_source_breakdown_when_sources_are_given():
    y = np.array([1, 1, 0, 0, 1, 1, 1, 0])
    p = np.array([0.9, 0.4, 0.2, 0.6, 0.8, 0.7, 0.3, 0.1])
    sources = ["site-a", "site-a", "site-a", "site-a", "site-b", "site-b", None, None]
    metrics = evaluate_two(
        y_positive=y,
        p_positive=p,
        threshold=0.5,
        class_names=CLASS_NAMES,
        positive_class="COVID",
        sources=sources,
    )
    per_source = metrics["per_source"]
    assert set(per_source) == {"site-a", "site-b", "unknown"}

    site_a = per_source["site-a"]
    assert site_a["n"] == 4
    assert site_a["confusion_matrix"]["counts"] == [[1, 1], [1, 1]]
    assert site_a["auc"] == pytest.approx(0.75)  # pairs: 0.9>0.2, 0.9>0.6, 0.4>0.2, 0.4<0.6
    assert site_a["accuracy"] == pytest.approx(0.5)

    site_b = per_source["site-b"]  # positives only
    assert site_b["n"] == 2
    assert site_b["auc"] is None
    assert site_b["sensitivity"]["value"] == 1.0
    assert site_b["specificity"]["value"] is None

    assert per_source["unknown"]["n"] == 2
    assert sum(entry["n"] for entry in per_source.values()) == metrics["n"]
    # compact: the per-source entries leave out curves and reports
    assert "roc" not in site_a
    assert "classification_report" not in site_a


def test_sources_with_one_class_are_listed_with_that_class():
    y = np.array([1, 0, 1, 1, 0, 0, 1])
    p = np.array([0.9, 0.2, 0.8, 0.7, 0.1, 0.3, 0.6])
    sources = ["mixed", "mixed", "covid-only", "covid-only", "normal-only", "normal-only", "covid-only"]
    metrics = evaluate_two(
        y_positive=y, p_positive=p, threshold=0.5, class_names=CLASS_NAMES, positive_class="COVID", sources=sources
    )

    assert single_class_sources(metrics) == {"covid-only": "COVID", "normal-only": "NORMAL"}
    assert is_confounded(metrics) is True


def test_a_split_whose_every_source_has_both_classes_is_not_confounded():
    y = np.array([1, 0, 1, 0])
    sources = ["a", "a", "b", "b"]
    metrics = evaluate_two(
        y_positive=y,
        p_positive=y * 0.8,
        threshold=0.5,
        class_names=CLASS_NAMES,
        positive_class="COVID",
        sources=sources,
    )

    assert single_class_sources(metrics) == {}
    assert is_confounded(metrics) is False


def test_without_sources_nothing_is_known_to_be_confounded():
    assert single_class_sources(metrics_at()) == {}
    assert is_confounded({}) is False


def test_a_source_without_images_is_not_counted():
    metrics = {"per_source": {"empty": {"n": 0, "positives": 0, "negatives": 0}}}

    assert is_confounded(metrics) is False


@pytest.mark.parametrize("sources", [None, [None] * 20, [""] * 20])
def test_no_per_source_breakdown_without_sources(sources):
    metrics = evaluate_two(
        y_positive=Y,
        p_positive=P,
        threshold=0.5,
        class_names=CLASS_NAMES,
        positive_class="COVID",
        sources=sources,
    )
    assert "per_source" not in metrics


def test_evaluate_accepts_plain_lists():
    metrics = evaluate_two(
        y_positive=Y.tolist(),
        p_positive=P.tolist(),
        threshold=0.5,
        class_names=CLASS_NAMES,
        positive_class="COVID",
        sources=["a"] * 10 + ["b"] * 10,
    )
    assert metrics["per_source"]["a"]["positives"] == 10
    assert metrics["per_source"]["b"]["negatives"] == 10


# --- N classes: the call, the confusion matrix, subsets -------------------------------------------

THREE = ["COVID", "NORMAL", "OTHER_PNEUMONIA"]  # the model's column order (sorted folder names)


def test_call_class_is_positive_from_the_threshold_and_otherwise_the_likeliest_other_class():
    probabilities = np.array(
        [
            [0.40, 0.35, 0.25],  # P(COVID) reaches the threshold 0.4
            [0.30, 0.25, 0.45],  # below the threshold: the likelier of the others
            [0.39, 0.50, 0.11],
            [0.20, 0.10, 0.70],
            [0.45, 0.05, 0.50],  # OTHER_PNEUMONIA is the argmax, but P(COVID) >= 0.4 decides
        ]
    )
    called = call_class(probabilities, THREE, "COVID", 0.4)
    assert called.tolist() == ["COVID", "OTHER_PNEUMONIA", "NORMAL", "OTHER_PNEUMONIA", "COVID"]
    assert call_class(probabilities[1], THREE, "COVID", 0.4) == "OTHER_PNEUMONIA"
    assert call_class(probabilities[4], THREE, "COVID", 0.46) == "OTHER_PNEUMONIA"


def test_call_class_on_two_classes_is_the_old_threshold_rule():
    p = np.array([0.1, 0.49, 0.5, 0.9])
    called = call_class(np.stack([p, 1 - p], axis=1), CLASS_NAMES, "COVID", 0.5)
    assert called.tolist() == ["NORMAL", "NORMAL", "COVID", "COVID"]


def test_call_class_refuses_a_row_of_the_wrong_width():
    with pytest.raises(ValueError, match="3 probabilities per image for 2 classes"):
        call_class(np.array([[0.2, 0.3, 0.5]]), CLASS_NAMES, "COVID", 0.5)


# Nine images: 3 COVID, 3 NORMAL, 3 OTHER_PNEUMONIA; columns COVID, NORMAL, OTHER_PNEUMONIA; threshold 0.5.
LABELS = ["COVID"] * 3 + ["NORMAL"] * 3 + ["OTHER_PNEUMONIA"] * 3
PROBABILITIES = np.array(
    [
        [0.8, 0.1, 0.1],  # COVID -> COVID
        [0.6, 0.3, 0.1],  # COVID -> COVID
        [0.3, 0.2, 0.5],  # COVID -> OTHER_PNEUMONIA (missed)
        [0.1, 0.8, 0.1],  # NORMAL -> NORMAL
        [0.1, 0.7, 0.2],  # NORMAL -> NORMAL
        [0.2, 0.3, 0.5],  # NORMAL -> OTHER_PNEUMONIA
        [0.7, 0.0, 0.3],  # OTHER_PNEUMONIA -> COVID (a false positive)
        [0.2, 0.1, 0.7],  # OTHER_PNEUMONIA -> OTHER_PNEUMONIA
        [0.4, 0.1, 0.5],  # OTHER_PNEUMONIA -> OTHER_PNEUMONIA
    ]
)


def three_class(**options) -> dict:
    return class_metrics(LABELS, PROBABILITIES, 0.5, class_names=THREE, positive_class="COVID", **options)


def test_the_confusion_matrix_covers_every_class_with_the_positive_last():
    matrix = three_class()["confusion_matrix"]
    assert matrix["labels"] == ["NORMAL", "OTHER_PNEUMONIA", "COVID"]
    assert matrix["counts"] == [[2, 1, 0], [0, 2, 1], [0, 1, 2]]
    np.testing.assert_allclose(
        np.array(matrix["percent_of_true_class"]) * 3, [[200, 100, 0], [0, 200, 100], [0, 100, 200]]
    )


def test_covid_against_the_rest_and_per_class_figures():
    metrics = three_class()
    assert (metrics["n"], metrics["positives"], metrics["negatives"]) == (9, 3, 6)
    assert metrics["class_counts"] == {"NORMAL": 3, "OTHER_PNEUMONIA": 3, "COVID": 3}
    assert (metrics["sensitivity"]["count"], metrics["sensitivity"]["total"]) == (2, 3)
    assert (metrics["specificity"]["count"], metrics["specificity"]["total"]) == (5, 6)
    assert metrics["accuracy"] == pytest.approx(6 / 9)
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0])
    assert metrics["auc"] == pytest.approx(roc_auc_score(y, PROBABILITIES[:, 0]))
    assert metrics["per_class"]["OTHER_PNEUMONIA"]["called_positive"]["value"] == pytest.approx(1 / 3)
    assert metrics["per_class"]["NORMAL"]["called_positive"]["value"] == 0.0
    report = metrics["classification_report"]
    assert report["OTHER_PNEUMONIA"]["recall"] == pytest.approx(2 / 3)
    assert report["OTHER_PNEUMONIA"]["precision"] == pytest.approx(2 / 4)
    assert report["NORMAL"]["precision"] == pytest.approx(1.0)


def test_a_set_of_one_class_gives_the_share_called_positive_and_no_auc():
    other = [6, 7, 8]
    metrics = evaluate(
        labels=[LABELS[i] for i in other],
        probabilities=PROBABILITIES[other],
        threshold=0.5,
        class_names=THREE,
        positive_class="COVID",
    )
    assert metrics["auc"] is None
    assert "roc" not in metrics
    assert metrics["sensitivity"]["value"] is None
    assert metrics["specificity"]["value"] == pytest.approx(2 / 3)
    assert metrics["per_class"] == {"OTHER_PNEUMONIA": {"called_positive": proportion_with_interval(1, 3)}}
    assert metrics["confusion_matrix"]["percent_of_true_class"][0] == [None, None, None]  # no NORMAL images
    bootstrap = metrics["bootstrap"]
    assert "auc" not in bootstrap
    assert (
        bootstrap["called_positive"]["OTHER_PNEUMONIA"]["low"]
        <= 1 / 3
        <= bootstrap["called_positive"]["OTHER_PNEUMONIA"]["high"]
    )
    json.dumps(jsonable(metrics), allow_nan=False)


def test_a_label_the_model_does_not_know_is_refused():
    with pytest.raises(ValueError, match="not among the classes"):
        class_metrics(["FLU"], [[0.2, 0.3, 0.5]], 0.5, class_names=THREE, positive_class="COVID")


# --- patient-level bootstrap ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_the_weighted_auc_equals_the_auc_of_the_images_repeated_by_their_weights(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 30)
    y[:2] = [0, 1]
    p = rng.integers(0, 6, 30) / 5  # many ties
    weights = rng.integers(0, 4, size=(5, 30))
    weights[:, :2] = 1
    expected = [roc_auc_score(np.repeat(y, w), np.repeat(p, w)) for w in weights]
    np.testing.assert_allclose(_AucRanking(y, p).auc(weights.astype(float)), expected)


def agreeing_patients(patients: int = 30, images_each: int = 8) -> dict:
    """Each patient's images share one label and one score: a patient is one observation, repeated."""
    rng = np.random.default_rng(7)
    y_patient = np.arange(patients) % 2
    p_patient = np.clip(0.5 + 0.15 * (2 * y_patient - 1) + 0.2 * rng.standard_normal(patients), 0, 1)
    return {
        "y_positive": np.repeat(y_patient, images_each),
        "p_positive": np.repeat(p_patient, images_each),
        "called_positive": np.repeat(p_patient >= 0.4, images_each),
        "patient_ids": [f"p{i}" for i in np.repeat(np.arange(patients), images_each)],
    }


def width(interval: dict) -> float:
    return interval["high"] - interval["low"]


def test_resampling_patients_gives_wider_intervals_than_resampling_images_when_a_patients_images_agree():
    data = agreeing_patients()
    by_patient = patient_bootstrap(**data, resamples=1000)
    by_image = patient_bootstrap(**(data | {"patient_ids": None}), resamples=1000)
    assert (by_patient["patients"], by_image["patients"]) == (30, 240)
    for figure in ("auc", "sensitivity", "specificity"):
        assert width(by_patient[figure]) > 1.8 * width(by_image[figure]), figure


def test_the_bootstrap_is_seeded_and_its_intervals_hold_the_estimate():
    data = agreeing_patients()
    first, again = patient_bootstrap(**data, seed=3), patient_bootstrap(**data, seed=3)
    assert first == again
    assert first["resamples"] == first["auc"]["resamples"] == 2000
    auc = roc_auc_score(data["y_positive"], data["p_positive"])
    assert first["auc"]["low"] <= auc <= first["auc"]["high"]
    other = patient_bootstrap(**data, seed=4, resamples=50)
    assert other["auc"] != patient_bootstrap(**data, seed=3, resamples=50)["auc"]


def test_images_without_a_patient_id_are_their_own_patients():
    data = agreeing_patients(patients=4, images_each=2)
    ids = data["patient_ids"][:4] + [None] * 4
    assert patient_bootstrap(**(data | {"patient_ids": ids}), resamples=10)["patients"] == 2 + 4


def test_evaluate_stores_patient_intervals_overall_and_per_source():
    data = agreeing_patients()
    sources = ["mixed"] * 200 + ["covid-only"] * 40
    y = data["y_positive"].copy()
    y[200:] = 1
    metrics = evaluate_two(
        y_positive=y,
        p_positive=data["p_positive"],
        threshold=0.5,
        class_names=CLASS_NAMES,
        positive_class="COVID",
        sources=sources,
        patient_ids=data["patient_ids"],
        resamples=200,
    )
    assert metrics["bootstrap"]["patients"] == 30
    assert metrics["bootstrap"]["auc"]["low"] <= metrics["auc"] <= metrics["bootstrap"]["auc"]["high"]
    mixed, covid_only = metrics["per_source"]["mixed"], metrics["per_source"]["covid-only"]
    assert mixed["bootstrap"]["patients"] == 25
    assert mixed["bootstrap"]["auc"]["low"] <= mixed["auc"] <= mixed["bootstrap"]["auc"]["high"]
    assert covid_only["auc"] is None
    assert "auc" not in covid_only["bootstrap"]
    assert single_class_sources(metrics) == {"covid-only": "COVID"}


def test_a_source_of_one_class_among_three_is_confounded_and_one_with_two_is_not():
    sources = ["a", "a", "b", "b", "b", "a", "c", "c", "c"]
    metrics = evaluate(
        labels=LABELS,
        probabilities=PROBABILITIES,
        threshold=0.5,
        class_names=THREE,
        positive_class="COVID",
        sources=sources,
        resamples=50,
    )
    # a: COVID x2 + NORMAL; b: COVID + NORMAL x2; c: OTHER_PNEUMONIA only
    assert single_class_sources(metrics) == {"c": "OTHER_PNEUMONIA"}
    assert metrics["per_source"]["c"]["class_counts"] == {"NORMAL": 0, "OTHER_PNEUMONIA": 3, "COVID": 0}
    assert metrics["per_source"]["a"]["auc"] is not None


def test_two_class_versions_stored_metrics_are_still_read_for_confounding():
    stored = {
        "per_source": {
            "nih": {"n": 5, "positives": 0, "negatives": 5, "confusion_matrix": {"labels": ["NORMAL", "COVID"]}},
            "mixed": {"n": 4, "positives": 2, "negatives": 2, "confusion_matrix": {"labels": ["NORMAL", "COVID"]}},
        }
    }
    assert single_class_sources(stored) == {"nih": "NORMAL"}


# --- choose_threshold -----------------------------------------------------------------------------


def test_choose_threshold_on_perfectly_separated_scores():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    assert choose_threshold(y, p) == pytest.approx(0.6)  # the lowest score that keeps specificity at 1


def test_choose_threshold_maximises_youden_and_breaks_ties_low():
    # thresholds 0.5 (sens 2/3, spec 1) and 0.3 (sens 1, spec 2/3) both give J = 2/3;
    # the rule takes the lower one, which favours sensitivity
    y = np.array([0, 0, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.9])
    assert choose_threshold(y, p) == pytest.approx(0.3)


def _brute_force_youden(y: np.ndarray, p: np.ndarray) -> float:
    best, chosen = -np.inf, None
    for t in sorted(set(p.tolist()), reverse=True):
        predicted = p >= t
        j = predicted[y == 1].mean() - predicted[y == 0].mean()
        if j > best + 1e-9:
            best, chosen = j, t
        elif abs(j - best) <= 1e-9:
            chosen = t  # equal J at a lower threshold
    return chosen


@pytest.mark.parametrize("seed", range(8))
def test_choose_threshold_agrees_with_a_brute_force_search(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 40)
    y[:2] = [0, 1]
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 40), 0, 1).round(2)
    assert choose_threshold(y, p) == pytest.approx(_brute_force_youden(y, p))


@pytest.mark.parametrize("y", [[0, 0, 0], [1, 1, 1, 1], []])
def test_choose_threshold_is_half_when_a_class_is_missing(y):
    p = np.linspace(0.1, 0.9, len(y))
    assert choose_threshold(np.array(y), p) == 0.5


def test_useless_scores_give_the_lowest_threshold():
    # anti-correlated scores: no threshold beats J = 0, which "everyone positive" reaches at the
    # lowest score (and "no one positive" at +inf); the tie goes to the lower, finite threshold
    y = np.array([0, 1, 0, 1])
    p = np.array([0.9, 0.1, 0.8, 0.2])
    threshold = choose_threshold(y, p)
    assert math.isfinite(threshold)
    assert threshold == pytest.approx(0.1)


# --- calibration ----------------------------------------------------------------------------------


def test_ece_is_zero_for_perfectly_calibrated_bins():
    # bin [0.2, 0.3): four at 0.25 with one positive; bin [0.7, 0.8): four at 0.75 with three positives
    p = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)
    assert metrics_at(0.5, y=y, p=p)["expected_calibration_error"] == pytest.approx(0.0, abs=1e-12)


def test_ece_is_positive_for_miscalibrated_predictions():
    p = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 1, 1, 0, 1, 0, 0, 0])  # 3/4 positive at 0.25, 1/4 positive at 0.75
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)

    overconfident = np.array([0.9] * 10)
    assert expected_calibration_error(np.zeros(10, int), overconfident) == pytest.approx(0.9)


def test_ece_weighs_bins_by_their_share_of_samples():
    p = np.array([0.05] * 6 + [0.95] * 2)
    y = np.array([0] * 6 + [0, 0])  # the 0.05 bin is off by 0.05, the 0.95 bin by 0.95
    assert expected_calibration_error(y, p) == pytest.approx(6 / 8 * 0.05 + 2 / 8 * 0.95)


def test_ece_puts_probability_one_in_the_last_bin():
    p = np.array([1.0, 1.0, 0.0, 0.0])
    y = np.array([1, 1, 0, 0])
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)


def test_calibration_bins_count_and_average():
    p = np.array([0.05, 0.15, 0.12, 0.95, 1.0])
    y = np.array([0, 0, 1, 1, 1])
    bins = calibration_bins(y, p)
    assert len(bins) == 10
    assert [b["count"] for b in bins] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert bins[1]["mean_predicted"] == pytest.approx(0.135)
    assert bins[1]["fraction_positive"] == pytest.approx(0.5)
    assert bins[2]["mean_predicted"] is None
    assert bins[0]["low"] == 0.0
    assert bins[9]["high"] == 1.0


# --- jsonable -------------------------------------------------------------------------------------


def test_jsonable_converts_numpy_values_to_plain_python():
    value = {
        "int": np.int64(3),
        "small_int": np.int32(-2),
        "float": np.float32(0.25),
        "double": np.float64(1.5),
        "array": np.array([[1, 2], [3, 4]], dtype=np.int16),
        "float_array": np.array([0.5, np.nan]),
        "tuple": (np.int8(1), 2.0),
        7: "seven",
    }
    result = jsonable(value)
    assert result == {
        "int": 3,
        "small_int": -2,
        "float": 0.25,
        "double": 1.5,
        "array": [[1, 2], [3, 4]],
        "float_array": [0.5, None],
        "tuple": [1, 2.0],
        "7": "seven",
    }
    assert type(result["int"]) is int
    assert type(result["small_int"]) is int
    assert type(result["float"]) is float
    assert type(result["double"]) is float
    assert type(result["array"][0][0]) is int
    json.dumps(result, allow_nan=False)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), np.float32("nan"), np.float64("inf")])
def test_jsonable_turns_non_finite_numbers_into_none(value):
    assert jsonable(value) is None
    assert jsonable({"x": [value]}) == {"x": [None]}


def test_jsonable_leaves_plain_values_alone():
    assert jsonable("text") == "text"
    assert jsonable(None) is None
    assert jsonable(True) is True
    assert jsonable(5) == 5
    assert jsonable(0.1) == 0.1


def test_jsonable_turns_numpy_booleans_into_json_booleans():
    import json

    assert json.dumps(jsonable({"flag": np.bool_(True)})) == '{"flag": true}'


def test_calibration_helpers_accept_plain_lists():
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0
    assert calibration_bins([0, 1], [0.05, 0.95])[0]["count"] == 1


# --- predictive values at a prevalence ------------------------------------------------------------


def test_predictive_values_by_bayes_rule():
    # Of 1000 patients at prevalence 0.1: 100 ill, 90 test positive; 900 well, 45 test positive.
    ppv, npv = predictive_values(sensitivity=0.9, specificity=0.95, prevalence=0.1)
    assert ppv == pytest.approx(90 / 135)  # 0.6667
    assert npv == pytest.approx(855 / 865)  # 0.9884
    assert (round(ppv, 4), round(npv, 4)) == (0.6667, 0.9884)


def test_predictive_values_equal_sensitivity_and_specificity_at_even_odds():
    assert predictive_values(sensitivity=0.8, specificity=0.8, prevalence=0.5) == pytest.approx((0.8, 0.8))


def test_predictive_values_fall_and_rise_with_prevalence():
    rare = predictive_values(sensitivity=0.9, specificity=0.95, prevalence=0.01)
    common = predictive_values(sensitivity=0.9, specificity=0.95, prevalence=0.5)
    assert rare[0] < common[0]
    assert rare[1] > common[1]


def test_a_predictive_value_without_any_such_result_is_undefined():
    # Never positive: no PPV; every negative is right for the healthy and wrong for the ill.
    ppv, npv = predictive_values(sensitivity=0.0, specificity=1.0, prevalence=0.2)
    assert ppv is None
    assert npv == pytest.approx(0.8)
    ppv, npv = predictive_values(sensitivity=1.0, specificity=0.0, prevalence=0.2)
    assert (ppv, npv) == (pytest.approx(0.2), None)


@pytest.mark.parametrize(
    "arguments",
    [
        {"sensitivity": 0.9, "specificity": 0.9, "prevalence": 0.0},
        {"sensitivity": 0.9, "specificity": 0.9, "prevalence": 1.0},
        {"sensitivity": 0.9, "specificity": 0.9, "prevalence": -0.1},
        {"sensitivity": 1.2, "specificity": 0.9, "prevalence": 0.1},
        {"sensitivity": 0.9, "specificity": -0.01, "prevalence": 0.1},
    ],
)
def test_predictive_values_refuse_values_outside_their_range(arguments):
    with pytest.raises(ValueError, match="between 0 and 1"):
        predictive_values(**arguments)


def test_predictive_value_ranges_come_from_the_interval_corners():
    ranges = predictive_value_ranges(sensitivity=(0.8, 0.95), specificity=(0.9, 0.99), prevalence=0.1)
    assert ranges["ppv"] == pytest.approx((0.08 / 0.17, 0.095 / 0.104))  # 0.4706, 0.9135
    assert ranges["npv"] == pytest.approx((0.81 / 0.83, 0.891 / 0.896))  # 0.9759, 0.9944


def test_predictive_value_ranges_bound_every_value_inside_the_intervals():
    ranges = predictive_value_ranges(sensitivity=(0.7, 0.9), specificity=(0.6, 0.95), prevalence=0.3)
    for sensitivity in np.linspace(0.7, 0.9, 9):
        for specificity in np.linspace(0.6, 0.95, 9):
            ppv, npv = predictive_values(sensitivity=sensitivity, specificity=specificity, prevalence=0.3)
            assert ranges["ppv"][0] - 1e-12 <= ppv <= ranges["ppv"][1] + 1e-12
            assert ranges["npv"][0] - 1e-12 <= npv <= ranges["npv"][1] + 1e-12


def test_a_predictive_value_range_with_an_undefined_corner_is_none():
    ranges = predictive_value_ranges(sensitivity=(0.0, 0.3), specificity=(0.9, 1.0), prevalence=0.1)
    assert ranges["ppv"] is None
    assert ranges["npv"] is not None
