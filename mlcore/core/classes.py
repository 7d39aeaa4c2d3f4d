"""The classes a model can call and which of them is "positive": the one vocabulary every layer uses.

A version stores its own class names and positive class; these are the defaults for new training runs
and the names a doctor sees. Old two-class versions (COVID/NORMAL) use the same names.

This module owns the meaning of "positive" everywhere: which class a reading calls (:func:`called_classes`,
:func:`reading_call`), whether a called class or a doctor's final finding counts as positive or negative
(:func:`class_result`, :func:`finding_reference`), which findings are training classes
(:func:`finding_training_class`) and how each is named for a person (:func:`display_name`, :func:`short_name`,
:func:`positive_names`, :func:`call_text`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

COVID, OTHER_PNEUMONIA, NORMAL = "COVID", "OTHER_PNEUMONIA", "NORMAL"
DEFAULT_POSITIVE_CLASS = COVID
DEFAULT_CLASSES = (COVID, OTHER_PNEUMONIA, NORMAL)
# Versions trained before class names were stored on them read COVID (positive) against NORMAL.
LEGACY_CLASSES = (COVID, NORMAL)

# Folder (and manifest label) spellings of each class, compared without case or punctuation ("Covid-19" is
# "covid19"). "non-COVID" alone means NORMAL, as it did for two-class datasets; "non-COVID pneumonia" does not.
DEFAULT_CLASS_ALIASES: dict[str, tuple[str, ...]] = {
    COVID: (
        "covid",
        "covid19",
        "covid-19",
        "covid_pneumonia",
        "covid-19 pneumonia",
        "chest_covid",
        "sars-cov-2",
        "positive",
        "pneumonia-covid",
    ),
    OTHER_PNEUMONIA: (
        "other_pneumonia",
        "other pneumonia",
        "pneumonia",
        "viral pneumonia",
        "bacterial pneumonia",
        "viral",
        "bacterial",
        "non-covid pneumonia",
        "non_covid_pneumonia",
        "pneumonia (not covid)",
        "chest_pneumonia",
    ),
    NORMAL: (
        "normal",
        "no_finding",
        "no finding",
        "healthy",
        "non-covid",
        "noncovid",
        "non_covid",
        "chest_normal",
        "negative",
    ),
}

DISPLAY_NAMES = {
    COVID: "COVID-19 pneumonia",
    OTHER_PNEUMONIA: "Other pneumonia (not COVID-19)",
    NORMAL: "Normal",
}
# The short form inside "P(...)"; a class without one is shown by its display name.
SHORT_NAMES = {COVID: "COVID-19"}

RESULT_POSITIVE, RESULT_NEGATIVE, RESULT_INDETERMINATE = "positive", "negative", "indeterminate"
INDETERMINATE_TEXT = "Indeterminate: the model cannot separate this case"

# A doctor's final finding: one of the classes, or a finding no model is trained on, or none at all.
OTHER_FINDING, INDETERMINATE_FINDING = "OTHER", "INDETERMINATE"
FINDINGS = {
    COVID: DISPLAY_NAMES[COVID],
    OTHER_PNEUMONIA: DISPLAY_NAMES[OTHER_PNEUMONIA],
    NORMAL: DISPLAY_NAMES[NORMAL],
    OTHER_FINDING: "Other finding",
    INDETERMINATE_FINDING: "Indeterminate",
}
NOT_CALLED = -1  # called_classes' index for an indeterminate reading


class ClassSetError(ValueError):
    """Class names and a positive class that cannot make a classifier; the message says why."""


@dataclass(frozen=True)
class ClassSet:
    """A version's classes, in the order of its network's outputs, and the one that is positive."""

    names: tuple[str, ...]
    positive: str

    def __post_init__(self):
        if len(self.names) < 2:
            raise ClassSetError(f"A model needs at least two classes, not {list(self.names)}.")
        if len(set(self.names)) != len(self.names):
            raise ClassSetError(f"Class names repeat: {list(self.names)}.")
        if self.positive not in self.names:
            raise ClassSetError(f"The positive class {self.positive} is not among {list(self.names)}.")

    @property
    def positive_index(self) -> int:
        return self.names.index(self.positive)

    @property
    def negatives(self) -> tuple[str, ...]:
        return tuple(name for name in self.names if name != self.positive)


def class_set(class_names: Iterable[str] | None = None, positive_class: str | None = None) -> ClassSet:
    """A version's ClassSet from what it stored; a version that stored no class names is a legacy one."""
    return ClassSet(names=tuple(class_names or LEGACY_CLASSES), positive=positive_class or DEFAULT_POSITIVE_CLASS)


def called_classes(
    calibrated: np.ndarray,
    *,
    classes: ClassSet,
    threshold: float,
    band: tuple[float | None, float | None] = (None, None),
) -> np.ndarray:
    """The index of the class each row of calibrated probabilities calls, NOT_CALLED where indeterminate.

    Positive when P(positive) >= threshold; indeterminate when P(positive) is inside the band (which wins);
    otherwise the most probable of the other classes.
    """
    calibrated = np.atleast_2d(np.asarray(calibrated, dtype=np.float64))
    positive = calibrated[:, classes.positive_index]
    others = calibrated.copy()
    others[:, classes.positive_index] = -np.inf
    called = np.where(positive >= threshold, classes.positive_index, np.argmax(others, axis=1))
    low, high = band
    if low is not None and high is not None:
        called = np.where((positive >= low) & (positive <= high), NOT_CALLED, called)
    return called.astype(int)


@dataclass(frozen=True)
class Call:
    class_name: str  # the class called, "" when indeterminate
    result: str  # RESULT_POSITIVE, RESULT_NEGATIVE or RESULT_INDETERMINATE


def reading_call(
    probabilities: Mapping[str, float],
    *,
    classes: ClassSet,
    threshold: float,
    band: tuple[float | None, float | None] = (None, None),
) -> Call:
    """One reading's call from its calibrated probability of every class (by name), by called_classes' rule."""
    row = np.array([probabilities[name] for name in classes.names], dtype=np.float64)
    index = int(called_classes(row, classes=classes, threshold=threshold, band=band)[0])
    name = "" if index == NOT_CALLED else classes.names[index]
    return Call(class_name=name, result=class_result(name, classes=classes))


def class_result(class_name: str, *, classes: ClassSet) -> str:
    """Whether a called class is a positive or a negative result; no class ("") is indeterminate."""
    if not class_name:
        return RESULT_INDETERMINATE
    return RESULT_POSITIVE if class_name == classes.positive else RESULT_NEGATIVE


def finding_reference(finding: str, *, positive_class: str) -> str | None:
    """A doctor's final finding as the reference: positive for the positive class, None for "Indeterminate"
    (no reference), negative for everything else: another pneumonia is what the model must not call COVID-19."""
    if finding == INDETERMINATE_FINDING:
        return None
    return RESULT_POSITIVE if finding == positive_class else RESULT_NEGATIVE


def finding_training_class(finding: str) -> str | None:
    """The class folder a reviewed scan trains under; "Other finding" and "Indeterminate" train none."""
    return finding if finding in DEFAULT_CLASSES else None


def finding_agrees(finding: str, class_name: str) -> bool:
    """Whether a doctor's final finding is the class the model called (findings are named as classes)."""
    return bool(class_name) and finding == class_name


def display_name(class_name: str) -> str:
    """What a doctor reads for a class name; a class unknown here is shown as it was trained."""
    return DISPLAY_NAMES.get(class_name, class_name.replace("_", " ").capitalize())


def short_name(class_name: str) -> str:
    """The class inside "P(...)": "P(COVID-19)"."""
    return SHORT_NAMES.get(class_name, display_name(class_name))


def positive_names(positive_classes: Iterable[str]) -> str:
    """The positive class, as short_name gives it, of readings by several versions: the one they share, each
    in turn (" / ") where versions differ, the default positive class's where there are no readings."""
    names = sorted({short_name(name) for name in positive_classes}) or [short_name(DEFAULT_POSITIVE_CLASS)]
    return " / ".join(names)


def call_text(class_name: str) -> str:
    """A reading's call in words: the called class's display name, or that the model made no call."""
    return display_name(class_name) if class_name else INDETERMINATE_TEXT


def ordered_probabilities(probabilities: Mapping[str, float], *, classes: ClassSet) -> list[tuple[str, float]]:
    """Every class's probability, the positive class first, then the version's order; names the version
    does not know (none, normally) last. Stored JSON need not keep its order (MariaDB sorts keys)."""
    order = [classes.positive, *classes.negatives]
    known = [(name, float(probabilities[name])) for name in order if name in probabilities]
    return known + [(name, float(value)) for name, value in probabilities.items() if name not in order]


def negative_rule_text(classes: ClassSet) -> str:
    """What the model calls below the threshold, where that is a choice (three classes or more)."""
    if len(classes.negatives) < 2:
        return ""
    names = [display_name(name) for name in classes.negatives]
    which = "more" if len(names) == 2 else "most"
    return f"below it, the {which} probable of {', '.join(names[:-1])} and {names[-1]}"
