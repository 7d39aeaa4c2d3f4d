"""A version's model card, as plain values for the printable admin page: what the model is for, what it
learnt from, how well it did, what could mislead it, and what reproduces it.

Parts a version lacks (older versions have no provenance or shortcut audit) come back as None, and the
page says "not recorded" rather than inventing them.
"""

from __future__ import annotations

from mlcore.core.classes import display_name
from mlcore.core.evaluation import single_class_sources
from mlcore.core.gate import VIEW_CHECK_NOT_FITTED
from mlcore.models import ModelVersion
from mlcore.reporting import INTERNAL_WARNING, confounding_text
from mlcore.selectors import evaluation_best_evidence

INTENDED_USE = (
    "Decision support for triage of adult frontal (PA or AP) chest radiographs: a reading that a doctor reviews "
    "beside the image, to put likely COVID-19 pneumonia first on a worklist. It is not a diagnosis, and a negative "
    "reading does not rule COVID-19 out."
)
NOT_FOR = (
    "CT, lateral views or any image other than a frontal chest radiograph (the input gate refuses most of them)",
    "children: the training data are adult radiographs",
    "deciding treatment or isolation without a doctor's review, or screening populations unlike the training data",
)
GENERAL_LIMITS = (
    "Trained and tested on retrospective public datasets; never validated prospectively in this hospital.",
    "Figures of the internal test split come from the same sources as the training data and overstate what a new "
    "hospital, scanner or population will see; a local evaluation is the evidence that counts.",
)
PATIENT_LABELS = {
    "patients": "patients",
    "unknown_patients": "images without a patient id (each counted as its own patient)",
    "patient_ids_from_dicom": "patient ids taken from the DICOM header",
    "near_duplicate_pairs": "near-duplicate image pairs found",
    "duplicate_groups_joined": "patient groups joined as near-duplicates (kept in one split)",
    "patients_in_joined_groups": "patients in joined groups",
    "joined_groups_with_two_labels": "joined groups holding two classes",
}


def model_version_card(*, version: ModelVersion) -> dict:
    """Everything the model card shows, read from the version and its evaluations."""
    evaluations = list(version.evaluations.all())
    evidence = evaluation_best_evidence(evaluations=evaluations, threshold=version.threshold)
    return {
        "version": version,
        "intended_use": INTENDED_USE,
        "not_for": NOT_FOR,
        "classes": [
            {"name": name, "display": display_name(name), "positive": name == version.positive_class}
            for name in version.class_names
        ],
        "network": network_description(version.model_summary or {}, version.hyperparameters or {}),
        "data": _data(version.dataset_summary or {}),
        "evidence": evidence,
        "evaluations": evaluations,
        "shortcut_audit": _flatten(version.shortcut_audit) if version.shortcut_audit else None,
        "provenance": _provenance(version.provenance) if version.provenance else None,
        "limits": _limits(version, evidence),
    }


def network_description(summary: dict, hyperparameters: dict) -> str | None:
    """What reads the images: the architecture, its input and initial weights, and, for an ensemble, how
    many networks' probabilities are averaged (a version interrupted part-way holds fewer than asked)."""
    if not summary:
        return None
    model = hyperparameters.get("model") or {}
    weights = model.get("weights")
    text = f"InceptionV3, {'x'.join(str(side) for side in summary.get('input_shape', [])[:2])} px input, " + (
        "trained from scratch" if weights in (None, "", "none") else f"initial weights: {weights}"
    )
    networks, asked = summary.get("members", 1), hyperparameters.get("members", 1)
    if networks > 1:
        text += f"; the mean of {networks} networks' probabilities"
    if asked != networks:
        text += f" ({asked} networks asked; the run was interrupted)"
    return text


def _data(summary: dict) -> dict | None:
    if not summary.get("per_split"):
        return None
    classes = summary["class_names"]
    per_split = [
        {"split": split, "counts": [counts.get(name, 0) for name in classes], "total": sum(counts.values())}
        for split, counts in summary["per_split"].items()
    ]
    per_source = [
        {
            "source": source,
            "counts": [sum(by_split[split].get(name, 0) for split in by_split) for name in classes],
            "splits": {split: sum(counts.values()) for split, counts in by_split.items()},
        }
        for source, by_split in (summary.get("per_source") or {}).items()
    ]
    patients = summary.get("patients") or {}
    patient_rows = [(label, patients[key]) for key, label in PATIENT_LABELS.items() if key in patients]
    if "unknown_patients" not in patients and "patients_known" in summary:
        patient_rows.append((PATIENT_LABELS["unknown_patients"], summary["images"] - summary["patients_known"]))
    return {
        "roots": summary.get("roots") or [summary.get("root", "")],
        "classes": classes,
        "images": summary.get("images"),
        "per_split": per_split,
        "splits": list(summary["per_split"]),
        "per_source": per_source,
        "patients": patient_rows,
        "skipped": len(summary.get("skipped") or []),
    }


def _provenance(provenance: dict) -> dict:
    code = provenance.get("code") or {}
    data = provenance.get("data") or {}
    return {
        "commit": code.get("commit"),
        "dirty": code.get("dirty"),
        "code_error": code.get("error", ""),
        "python": provenance.get("python"),
        "platform": provenance.get("platform"),
        "libraries": sorted((provenance.get("libraries") or {}).items()),
        "environment_variables": sorted((provenance.get("environment_variables") or {}).items()),
        "seeds": list((provenance.get("seeds") or {}).items()),
        "roots": data.get("roots") or [],
        "files": data.get("files"),
        "digest": data.get("digest"),
        "files_per_split": [(split, len(rows)) for split, rows in (data.get("splits") or {}).items()],
    }


def _flatten(value, prefix: str = "") -> list[tuple[str, str]]:
    """Nested figures as (path, text) rows, whatever the audit's layout: numbers to three places."""
    if isinstance(value, dict):
        rows = []
        for key, part in value.items():
            rows += _flatten(part, f"{prefix} / {key}" if prefix else str(key))
        return rows
    if isinstance(value, float):
        return [(prefix, f"{value:.3f}")]
    if isinstance(value, list) and all(isinstance(v, float) for v in value) and value:
        return [(prefix, ", ".join(f"{v:.3f}" for v in value))]
    return [(prefix, "—" if value is None else str(value))]


def _limits(version: ModelVersion, evidence) -> list[str]:
    """What this version's own records say could mislead a reader, then the limits every version shares."""
    limits = []
    single_class = single_class_sources(version.metrics or {}) | single_class_sources(
        evidence.metrics if evidence else {}
    )
    if single_class:
        limits.append(confounding_text(single_class))
    if evidence is None:
        limits.append("No evaluation with both classes at this version's threshold: scan pages quote no figures.")
    elif evidence.kind == evidence.Kind.TEST_SPLIT:
        limits.append(INTERNAL_WARNING)
    names = set(version.class_names)
    if names and len(names) < 3:
        limits.append(
            f"Trained on {', '.join(version.class_names)} only: pneumonia of another cause was never shown to it, "
            "and it may call such images COVID-19."
        )
    summary = version.dataset_summary or {}
    unknown = (summary.get("patients") or {}).get("unknown_patients")
    if unknown is None and "patients_known" in summary:
        unknown = summary["images"] - summary["patients_known"]
    if unknown:
        limits.append(
            f"{unknown} training image(s) had no patient id: images of one patient may sit in two splits, "
            "which flatters the test figures."
        )
    if not version.reliability:
        limits.append("Trained before calibration, the indeterminate band and the input gate existed.")
    elif not ((version.reliability.get("gate") or {}).get("view_check") or {}).get("fitted"):
        limits.append(f"View check: {VIEW_CHECK_NOT_FITTED}")
    if not version.shortcut_audit:
        limits.append("No shortcut audit recorded: how much the model adds over pixel or source baselines is unknown.")
    code = (version.provenance or {}).get("code") or {}
    if not version.provenance:
        limits.append("No provenance recorded: the exact code and files it was trained on are unknown.")
    elif code.get("dirty") or not code.get("commit"):
        limits.append(
            "Trained from code that differs from any commit (or no commit known): it may not be reproducible."
        )
    return limits + list(GENERAL_LIMITS)
