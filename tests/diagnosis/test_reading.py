"""What a result means at this hospital: validation figures of the version and PPV/NPV at the set prevalence."""

import pytest

from diagnosis.models import Scan
from diagnosis.reading import percent, scan_reading_get
from mlcore.core.evaluation import binary_metrics, evaluate, jsonable, proportion_with_interval
from mlcore.models import Evaluation
from mlcore.reporting import evidence_description

pytestmark = pytest.mark.django_db


def add_evaluation(version, kind, *, positives=(8, 10), negatives=(9, 10), threshold=0.7, sources=None, **fields):
    """An evaluation whose sensitivity is positives[0] of positives[1] and specificity negatives[0] of negatives[1]."""
    (tp, p_total), (tn, n_total) = positives, negatives
    y = [1] * p_total + [0] * n_total
    p = [0.9] * tp + [0.1] * (p_total - tp) + [0.1] * tn + [0.9] * (n_total - tn)
    metrics = evaluate(
        labels=["COVID" if positive else "NORMAL" for positive in y],
        probabilities=[[value, 1 - value] for value in p],
        threshold=threshold,
        class_names=["COVID", "NORMAL"],
        positive_class="COVID",
        sources=sources,
    )
    return Evaluation.objects.create(
        version=version,
        kind=kind,
        data_dir=fields.pop("data_dir", "/data/hospital/labelled"),
        threshold=threshold,
        metrics=jsonable(metrics | fields),
    )


def test_sensitivity_and_specificity_come_with_their_intervals_and_counts(scan):
    reading = scan_reading_get(scan=scan)

    assert reading["available"] is True
    assert reading["images"] == 300
    assert reading["sensitivity"]["value"] == pytest.approx(0.9)
    # Wilson 95% interval of 90/100 and of 190/200, by hand: 0.8256-0.9448 and 0.9104-0.9726.
    assert reading["sensitivity"]["text"] == "90.0% (95% CI 82.6% to 94.5%), 90 of 100 images with COVID-19"
    assert reading["specificity"]["text"] == "95.0% (95% CI 91.0% to 97.3%), 190 of 200 images without COVID-19"


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
    scan.result, scan.label, scan.probability = Scan.Result.NEGATIVE, "NORMAL", 0.2

    # NPV = 0.95 * 0.7 / (0.665 + 0.1 * 0.3) = 0.9568: about 4 in 100 negatives are ill.
    assert "about 4 in 100 have COVID-19" in scan_reading_get(scan=scan)["explanation"]


def test_a_very_rare_miss_reads_fewer_than_one_in_a_hundred(scan, settings):
    settings.COVIDXRAY_PREVALENCE = 0.001
    scan.result, scan.label = Scan.Result.NEGATIVE, "NORMAL"

    assert "a prevalence of 0.1%, fewer than 1 in 100 have COVID-19" in scan_reading_get(scan=scan)["explanation"]


def test_a_scan_without_a_version_has_no_validation(diagnosed_scan):
    reading = scan_reading_get(scan=diagnosed_scan)

    assert reading["available"] is False
    assert reading["unavailable"] == "No model has read this scan yet."


def test_a_version_without_any_evaluation_is_not_available(scan, validated_version):
    validated_version.evaluations.all().delete()

    reading = scan_reading_get(scan=scan)

    assert reading["available"] is False
    assert "validated-v1 has no evaluation with both classes" in reading["unavailable"]
    assert "ppv" not in reading


def test_a_test_split_without_one_class_is_not_available(scan, validated_version):
    metrics = binary_metrics([0, 0], [0.1, 0.9], 0.7, class_names=["COVID", "NORMAL"], positive_class="COVID")
    validated_version.evaluations.update(metrics=jsonable(metrics))

    reading = scan_reading_get(scan=scan)

    assert reading["available"] is False
    assert "has no evaluation with both classes" in reading["unavailable"]


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


def test_the_internal_test_split_is_quoted_with_a_plain_warning(scan):
    evidence = scan_reading_get(scan=scan)["evidence"]

    assert evidence["kind"] == "test_split"
    assert evidence["text"] == "the internal test split of 300 images"
    assert evidence["warning"] == (
        "Internal test split: same sources as training; overstates what a new hospital will see."
    )


def test_an_external_validation_is_preferred_to_the_test_split(scan, validated_version):
    add_evaluation(validated_version, Evaluation.Kind.EXTERNAL, positives=(7, 10), data_dir="/data/cxr-other")

    reading = scan_reading_get(scan=scan)

    assert reading["evidence"]["text"] == "external validation on 20 images in cxr-other"
    assert reading["evidence"]["warning"] == ""
    assert reading["sensitivity"]["text"].startswith("70.0%")
    assert reading["images"] == 20


def test_the_latest_local_evaluation_is_preferred_to_everything_else(scan, validated_version):
    add_evaluation(validated_version, Evaluation.Kind.LOCAL, positives=(5, 10))
    add_evaluation(validated_version, Evaluation.Kind.LOCAL, positives=(6, 10), negatives=(40, 50))
    add_evaluation(validated_version, Evaluation.Kind.EXTERNAL, positives=(7, 10))

    reading = scan_reading_get(scan=scan)

    assert reading["evidence"] == {
        "kind": "local",
        "text": "local evaluation on 60 images of this hospital",
        "warning": "",
        "confounded": "",
        "band": "",
    }
    assert reading["sensitivity"]["count"] == 6


def test_a_local_evaluation_at_another_threshold_gives_way_to_the_next_best(scan, validated_version):
    add_evaluation(validated_version, Evaluation.Kind.LOCAL, threshold=0.5)

    assert scan_reading_get(scan=scan)["evidence"]["kind"] == "test_split"


def test_a_local_evaluation_with_one_class_gives_way_to_the_next_best(scan, validated_version):
    add_evaluation(validated_version, Evaluation.Kind.LOCAL, negatives=(0, 0))

    assert scan_reading_get(scan=scan)["evidence"]["kind"] == "test_split"


def test_a_confounded_test_split_says_so_beside_the_figures(scan, validated_version):
    validated_version.evaluations.all().delete()
    sources = ["ieee8023"] * 10 + ["nih"] * 10
    add_evaluation(validated_version, Evaluation.Kind.TEST_SPLIT, sources=sources)

    evidence = scan_reading_get(scan=scan)["evidence"]

    assert evidence["confounded"].startswith("Confounded: ieee8023 (only COVID), nih (only NORMAL).")
    assert "cannot show discrimination" in evidence["confounded"]


def test_with_an_indeterminate_band_the_figures_outside_it_apply(scan, validated_version):
    outside = {
        "sensitivity": proportion_with_interval(45, 50),
        "specificity": proportion_with_interval(98, 100),
    }
    abstention = {"low": 0.4, "high": 0.8, "share_in_band": proportion_with_interval(30, 300), "outside": outside}
    evaluation = validated_version.evaluations.get()
    evaluation.metrics = evaluation.metrics | {"abstention": jsonable(abstention)}
    evaluation.save()

    reading = scan_reading_get(scan=scan)

    assert reading["sensitivity"]["count"] == 45
    assert reading["specificity"]["text"].startswith("98.0%")
    assert reading["evidence"]["band"] == (
        "For decisive readings only: figures outside the indeterminate band (P(COVID-19) 0.400 to 0.800), "
        "which held 10.0% (30 of 300) of these images."
    )


def test_an_indeterminate_result_has_no_predictive_values(scan):
    scan.result = Scan.Result.INDETERMINATE

    reading = scan_reading_get(scan=scan)

    assert reading["available"] is False
    assert "ppv" not in reading
    assert reading["unavailable"].startswith("Indeterminate: the model cannot separate this case")


def test_a_not_assessable_scan_has_no_predictive_values(scan):
    scan.status, scan.result, scan.label = Scan.Status.NOT_ASSESSABLE, "", ""

    reading = scan_reading_get(scan=scan)

    assert reading["available"] is False
    assert "npv" not in reading
    assert reading["unavailable"].startswith("Not assessable: the model did not read this image")


@pytest.mark.parametrize(
    ("value", "digits", "text"), [(0.6667, 1, "66.7%"), (0.05, None, "5%"), (0.125, None, "12.5%"), (None, 1, "n/a")]
)
def test_percent(value, digits, text):
    assert percent(value, digits=digits) == text


def test_the_band_is_of_the_positive_class_the_evaluation_names(scan, validated_version):
    evaluation = validated_version.evaluations.get()
    abstention = {"low": 0.4, "high": 0.8, "outside": {}}
    evaluation.metrics = evaluation.metrics | {"abstention": abstention, "positive_class": "TUBERCULOSIS"}
    evaluation.save()

    assert evidence_description(evaluation)["band"] == (
        "For decisive readings only: figures outside the indeterminate band (P(Tuberculosis) 0.400 to 0.800)."
    )
    evaluation.metrics = {key: value for key, value in evaluation.metrics.items() if key != "positive_class"}
    assert "(P(COVID-19) 0.400 to 0.800)" in evidence_description(evaluation)["band"]  # metrics before N classes
