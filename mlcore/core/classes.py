"""The classes a model can call and which of them is "positive": the one vocabulary every layer uses.

A version stores its own class names and positive class; these are the defaults for new training runs
and the names a doctor sees. Old two-class versions (COVID/NORMAL) use the same names.
"""

from __future__ import annotations

COVID, OTHER_PNEUMONIA, NORMAL = "COVID", "OTHER_PNEUMONIA", "NORMAL"
DEFAULT_POSITIVE_CLASS = COVID
DEFAULT_CLASSES = (COVID, OTHER_PNEUMONIA, NORMAL)

DISPLAY_NAMES = {
    COVID: "COVID-19 pneumonia",
    OTHER_PNEUMONIA: "Other pneumonia (not COVID-19)",
    NORMAL: "Normal",
}


def display_name(class_name: str) -> str:
    """What a doctor reads for a class name; a class unknown here is shown as it was trained."""
    return DISPLAY_NAMES.get(class_name, class_name.replace("_", " ").capitalize())
