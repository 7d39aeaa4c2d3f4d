"""What a result means at this hospital: validation figures of the version and PPV/NPV at the set prevalence."""

import pytest

from diagnosis.reading import percent, scan_reading_get
from mlcore.core.evaluation import binary_metrics, jsonable
from mlcore.models import Evaluation

pytestmark = pytest.mark.django_db


def test_sensitivity_and_specificity_come_with_their_intervals_and_counts(scan):
    reading = scan_reading_get(scan=scan)

    assert reading["available"] is True
    assert reading["test_images"] == 300
    assert reading["sensitivity"]["value"] == pytest.approx(0.9)
    # Wilson 95% interval of 90/100 and of 190/200, by hand: 0.8256-0.9448 and 0.9104-0.9726.
    assert reading["sensitivity"]["text"] == "90.0% (95% CI 82.6% to 94.5%), 90 of 100 test images with COVID-19"
    assert reading["specificity"]["text"] == "95.0% (95% CI 91.0% to 97.3%), 190 of 200 test images without COVID-19"


def test_predictive_values_follow_the_configured_prevalence(scan, settings):
    settings.COVIDXRAY_PREVALENCE = 0.05
    low = scan_reading_get(scan=scan)
    settings.COVIDXRAY_PREVALENCE = 0.1
    high = scan_reading_get(scan=scan)

    # 0.9 * 0.05 / (0.9 * 0.05 + 0.05 * 0.95) and 0.09 / 0.135.
    assert low["ppv"]["value"] == pytest.approx(0.4865, abs=1e-4)
    assert high["ppv"]["value"] == pytest.approx(0.6667, abs=1e-4)
    assert high["npv"]["value"] == pytest.approx(0.9884, abs=1e-4)
    assert (low["prevalence_text"], high["prevalence_text"]) == ("5%", "10%")
    assert high["ppv"]["text"] == "66.7% (range 50.6% to 79.3%)"


def test_a_positive_result_is_explained_by_the_ppv(scan, settings):
    settings.COVIDXRAY_PREVALENCE = 0.1

    assert scan_reading_get(scan=scan)["explanation"] == (
        "Of patients with this result at a prevalence of 10%, about 67 in 100 have COVID-19 "
        "(between 51 and 79, allowing for the uncertainty in sensitivity and specificity)."
    )


def test_a_negative_result_is_explained_by_one_minus_the_npv(scan, settings):
    settings.COVIDXRAY_PREVALENCE = 0.3
    scan.label, scan.probability = "NORMAL", 0.2

    # NPV = 0.95 * 0.7 / (0.665 + 0.1 * 0.3) = 0.9568: about 4 in 100 negatives are ill.
    assert "about 4 in 100 have COVID-19" in scan_reading_get(scan=scan)["explanation"]


def test_a_very_rare_miss_reads_fewer_than_one_in_a_hundred(scan, settings):
    settings.COVIDXRAY_PREVALENCE = 0.001
    scan.label = "NORMAL"

    assert "a prevalence of 0.1%, fewer than 1 in 100 have COVID-19" in scan_reading_get(scan=scan)["explanation"]


def test_a_scan_without_a_version_has_no_validation(diagnosed_scan):
    reading = scan_reading_get(scan=diagnosed_scan)

    assert reading["available"] is False
    assert reading["unavailable"] == "No model has read this scan yet."


def test_a_version_without_a_test_split_evaluation_is_not_available(scan, validated_version):
    validated_version.evaluations.update(kind=Evaluation.Kind.EXTERNAL)

    reading = scan_reading_get(scan=scan)

    assert reading["available"] is False
    assert "validated-v1 has no evaluation on a held-out test split" in reading["unavailable"]
    assert "ppv" not in reading


def test_a_test_split_without_one_class_is_not_available(scan, validated_version):
    metrics = binary_metrics([0, 0], [0.1, 0.9], 0.7, class_names=["COVID", "NORMAL"], positive_class="COVID")
    validated_version.evaluations.update(metrics=jsonable(metrics))

    assert scan_reading_get(scan=scan)["available"] is False


def test_figures_at_another_threshold_do_not_apply(scan):
    scan.threshold = 0.5

    reading = scan_reading_get(scan=scan)

    assert reading["available"] is False
    assert "validated at threshold 0.700, not at this scan's 0.500" in reading["unavailable"]


def test_the_latest_test_split_evaluation_counts(scan, validated_version):
    metrics = binary_metrics(
        [1, 1, 0, 0], [0.9, 0.1, 0.1, 0.1], 0.7, class_names=["COVID", "NORMAL"], positive_class="COVID"
    )
    Evaluation.objects.create(
        version=validated_version, kind="test_split", data_dir="/data/again", threshold=0.7, metrics=jsonable(metrics)
    )

    assert scan_reading_get(scan=scan)["sensitivity"]["count"] == 1


@pytest.mark.parametrize(
    ("value", "digits", "text"), [(0.6667, 1, "66.7%"), (0.05, None, "5%"), (0.125, None, "12.5%"), (None, 1, "n/a")]
)
def test_percent(value, digits, text):
    assert percent(value, digits=digits) == text
