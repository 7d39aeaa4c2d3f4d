"""Which evaluation a reading quotes: a plain function of the evaluations, tried on unsaved rows."""

import datetime

import pytest

from mlcore.core.evaluation import proportion_with_interval
from mlcore.models import Evaluation
from mlcore.reporting import evidence_description
from mlcore.selectors import evaluation_best_evidence, evaluation_figures

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
BOTH_CLASSES = {
    "n": 20,
    "sensitivity": proportion_with_interval(8, 10),
    "specificity": proportion_with_interval(9, 10),
}


def evaluation(pk, kind, *, day=0, threshold=0.5, metrics=BOTH_CLASSES, data_dir="/data/folder"):
    return Evaluation(
        pk=pk,
        kind=kind,
        threshold=threshold,
        metrics=metrics,
        data_dir=data_dir,
        created_at=START + datetime.timedelta(days=day),
    )


def test_local_comes_before_external_before_the_test_split():
    split = evaluation(1, Evaluation.Kind.TEST_SPLIT, day=3)
    external = evaluation(2, Evaluation.Kind.EXTERNAL, day=2)
    local = evaluation(3, Evaluation.Kind.LOCAL, day=1)

    assert evaluation_best_evidence(evaluations=[split, external, local], threshold=0.5) is local
    assert evaluation_best_evidence(evaluations=[split, external], threshold=0.5) is external
    assert evaluation_best_evidence(evaluations=[split], threshold=0.5) is split


def test_the_latest_of_a_kind_wins_and_the_higher_id_breaks_a_tie():
    older, newer = evaluation(1, Evaluation.Kind.LOCAL, day=1), evaluation(2, Evaluation.Kind.LOCAL, day=5)
    same_time = evaluation(3, Evaluation.Kind.LOCAL, day=5)

    assert evaluation_best_evidence(evaluations=[newer, older], threshold=0.5) is newer
    assert evaluation_best_evidence(evaluations=[older, same_time, newer], threshold=0.5) is same_time


def test_an_evaluation_at_another_threshold_does_not_apply():
    local = evaluation(1, Evaluation.Kind.LOCAL, threshold=0.3)
    split = evaluation(2, Evaluation.Kind.TEST_SPLIT)

    assert evaluation_best_evidence(evaluations=[local, split], threshold=0.5) is split
    assert evaluation_best_evidence(evaluations=[local], threshold=0.5) is None
    assert evaluation_best_evidence(evaluations=[local, split], threshold=None) is local


def test_an_evaluation_without_both_classes_does_not_apply():
    positives_only = BOTH_CLASSES | {"specificity": proportion_with_interval(0, 0)}

    assert (
        evaluation_best_evidence(evaluations=[evaluation(1, "local", metrics=positives_only)], threshold=0.5) is None
    )


def test_figures_outside_the_indeterminate_band_replace_the_overall_ones():
    outside = {"sensitivity": proportion_with_interval(5, 6), "specificity": proportion_with_interval(7, 8)}
    metrics = BOTH_CLASSES | {"abstention": {"low": 0.4, "high": 0.6, "outside": outside}}

    figures = evaluation_figures(metrics=metrics)

    assert figures["sensitivity"]["count"] == 5
    assert figures["specificity"]["total"] == 8
    assert figures["abstention"]["low"] == 0.4


def test_a_band_that_leaves_one_class_without_calls_gives_no_figures():
    outside = {"sensitivity": proportion_with_interval(0, 0), "specificity": proportion_with_interval(7, 8)}

    assert (
        evaluation_figures(metrics=BOTH_CLASSES | {"abstention": {"low": 0.4, "high": 0.6, "outside": outside}})
        is None
    )


@pytest.mark.parametrize(
    ("kind", "text", "warning"),
    [
        ("local", "local evaluation on 20 images of this hospital", ""),
        ("external", "external validation on 20 images in cxr-other-dev", ""),
        ("test_split", "the internal test split of 20 images", "Internal test split: same sources as training"),
    ],
)
def test_each_kind_of_evidence_is_named(kind, text, warning):
    description = evidence_description(evaluation(1, kind, data_dir="/srv/exports/cxr-other-dev/"))

    assert description["text"] == text
    assert description["warning"].startswith(warning)
    assert bool(description["warning"]) == (kind == "test_split")
