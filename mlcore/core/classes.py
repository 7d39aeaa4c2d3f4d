"""The classes a model can call and which of them is "positive": the one vocabulary every layer uses.

A version stores its own class names and positive class; these are the defaults for new training runs
and the names a doctor sees. Old two-class versions (COVID/NORMAL) use the same names.
"""

from __future__ import annotations

COVID, OTHER_PNEUMONIA, NORMAL = "COVID", "OTHER_PNEUMONIA", "NORMAL"
DEFAULT_POSITIVE_CLASS = COVID
DEFAULT_CLASSES = (COVID, OTHER_PNEUMONIA, NORMAL)

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


def display_name(class_name: str) -> str:
    """What a doctor reads for a class name; a class unknown here is shown as it was trained."""
    return DISPLAY_NAMES.get(class_name, class_name.replace("_", " ").capitalize())
