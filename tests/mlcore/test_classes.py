"""The one owner of "positive": which class a reading calls, what a call and a doctor's finding count as."""

import numpy as np
import pytest

from mlcore.core.classes import (
    INDETERMINATE_TEXT,
    NOT_CALLED,
    RESULT_INDETERMINATE,
    RESULT_NEGATIVE,
    RESULT_POSITIVE,
    ClassSet,
    ClassSetError,
    call_text,
    called_classes,
    class_result,
    class_set,
    display_name,
    finding_agrees,
    finding_reference,
    finding_training_class,
    negative_rule_text,
    ordered_probabilities,
    positive_names,
    reading_call,
    short_name,
)

THREE = class_set(["COVID", "OTHER_PNEUMONIA", "NORMAL"], "COVID")
TWO = class_set(["COVID", "NORMAL"], "COVID")


def test_a_version_without_stored_class_names_is_covid_against_normal():
    assert class_set() == ClassSet(names=("COVID", "NORMAL"), positive="COVID")
    assert class_set([], "") == TWO


@pytest.mark.parametrize(
    ("names", "positive", "message"),
    [
        (["COVID"], "COVID", "at least two"),
        (["COVID", "COVID"], "COVID", "repeat"),
        (["COVID", "NORMAL"], "PNEUMONIA", "not among"),
    ],
)
def test_class_sets_that_cannot_make_a_classifier_are_refused(names, positive, message):
    with pytest.raises(ClassSetError, match=message):
        class_set(names, positive)


def test_the_positive_class_is_called_at_the_threshold_or_above():
    call = reading_call({"COVID": 0.5, "OTHER_PNEUMONIA": 0.3, "NORMAL": 0.2}, classes=THREE, threshold=0.5)

    assert call.class_name == "COVID"
    assert call.result == RESULT_POSITIVE


def test_below_the_threshold_the_most_probable_other_class_is_called_even_if_covid_is_more_probable():
    call = reading_call({"COVID": 0.45, "OTHER_PNEUMONIA": 0.35, "NORMAL": 0.2}, classes=THREE, threshold=0.6)

    assert call.class_name == "OTHER_PNEUMONIA"
    assert call.result == RESULT_NEGATIVE


def test_inside_the_band_there_is_no_call_even_above_the_threshold():
    probabilities = {"COVID": 0.55, "OTHER_PNEUMONIA": 0.05, "NORMAL": 0.4}

    call = reading_call(probabilities, classes=THREE, threshold=0.5, band=(0.45, 0.6))

    assert call.class_name == ""
    assert call.result == RESULT_INDETERMINATE


def test_the_order_of_the_probabilities_given_does_not_matter():
    shuffled = {"NORMAL": 0.7, "COVID": 0.1, "OTHER_PNEUMONIA": 0.2}

    assert reading_call(shuffled, classes=THREE, threshold=0.5).class_name == "NORMAL"


def test_rows_are_called_at_once_with_not_called_inside_the_band():
    calibrated = np.array(
        [
            [0.8, 0.1, 0.1],  # positive
            [0.3, 0.6, 0.1],  # other pneumonia
            [0.3, 0.1, 0.6],  # normal
            [0.5, 0.4, 0.1],  # in the band
        ]
    )

    called = called_classes(calibrated, classes=THREE, threshold=0.7, band=(0.45, 0.55))

    assert called.tolist() == [0, 1, 2, NOT_CALLED]


def test_a_positive_class_that_is_not_the_first_output_is_found_by_name():
    classes = class_set(["NORMAL", "COVID"], "COVID")

    assert called_classes(np.array([[0.2, 0.8], [0.9, 0.1]]), classes=classes, threshold=0.5).tolist() == [1, 0]


def test_two_class_versions_call_as_before():
    assert reading_call({"COVID": 0.9, "NORMAL": 0.1}, classes=TWO, threshold=0.7).class_name == "COVID"
    assert reading_call({"COVID": 0.6, "NORMAL": 0.4}, classes=TWO, threshold=0.7).class_name == "NORMAL"


def test_only_the_positive_class_is_a_positive_result():
    assert class_result("COVID", classes=THREE) == RESULT_POSITIVE
    assert class_result("OTHER_PNEUMONIA", classes=THREE) == RESULT_NEGATIVE
    assert class_result("NORMAL", classes=THREE) == RESULT_NEGATIVE
    assert class_result("", classes=THREE) == RESULT_INDETERMINATE


@pytest.mark.parametrize(
    ("finding", "reference"),
    [
        ("COVID", RESULT_POSITIVE),
        ("OTHER_PNEUMONIA", RESULT_NEGATIVE),
        ("NORMAL", RESULT_NEGATIVE),
        ("OTHER", RESULT_NEGATIVE),
        ("INDETERMINATE", None),
    ],
)
def test_a_doctors_finding_is_positive_only_for_the_positive_class(finding, reference):
    assert finding_reference(finding, positive_class="COVID") == reference


@pytest.mark.parametrize(
    ("finding", "folder"),
    [
        ("COVID", "COVID"),
        ("OTHER_PNEUMONIA", "OTHER_PNEUMONIA"),
        ("NORMAL", "NORMAL"),
        ("OTHER", None),
        ("INDETERMINATE", None),
    ],
)
def test_findings_that_are_classes_train_under_their_class(finding, folder):
    assert finding_training_class(finding) == folder


def test_a_finding_agrees_with_the_model_when_it_names_the_called_class():
    assert finding_agrees("OTHER_PNEUMONIA", "OTHER_PNEUMONIA")
    assert not finding_agrees("NORMAL", "OTHER_PNEUMONIA")
    assert not finding_agrees("INDETERMINATE", "")


def test_names_a_doctor_reads():
    assert display_name("OTHER_PNEUMONIA") == "Other pneumonia (not COVID-19)"
    assert display_name("LUNG_OPACITY") == "Lung opacity"
    assert short_name("COVID") == "COVID-19"
    assert short_name("NORMAL") == "Normal"
    assert call_text("NORMAL") == "Normal"
    assert call_text("") == INDETERMINATE_TEXT


def test_probabilities_are_listed_positive_first_then_in_the_versions_order():
    stored = {"NORMAL": 0.2, "COVID": 0.5, "OTHER_PNEUMONIA": 0.3, "EXTRA": 0.0}

    assert ordered_probabilities(stored, classes=THREE) == [
        ("COVID", 0.5),
        ("OTHER_PNEUMONIA", 0.3),
        ("NORMAL", 0.2),
        ("EXTRA", 0.0),
    ]


def test_the_rule_below_the_threshold_is_said_only_where_there_is_a_choice():
    assert negative_rule_text(TWO) == ""
    assert negative_rule_text(THREE) == "below it, the more probable of Other pneumonia (not COVID-19) and Normal"


def test_readings_of_several_versions_name_their_positive_class_once_or_each_in_turn():
    assert positive_names(["COVID", "COVID"]) == "COVID-19"
    assert positive_names([]) == "COVID-19"
    assert positive_names(["TUBERCULOSIS"]) == "Tuberculosis"
    assert positive_names(["TUBERCULOSIS", "COVID", "COVID"]) == "COVID-19 / Tuberculosis"
