"""Plain-text summaries of metrics for the management commands, and which evidence figures come from."""

from pathlib import PurePath

from mlcore.core.classes import DEFAULT_POSITIVE_CLASS, short_name
from mlcore.core.evaluation import CONFOUNDED_SOURCE, single_class_sources
from mlcore.core.gate import VIEW_CHECK_NOT_FITTED
from mlcore.models import Evaluation


def interval(entry: dict | None) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    return f"{entry['value']:.3f} [{entry['low']:.3f}-{entry['high']:.3f}] ({entry['count']}/{entry['total']})"


def number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def patient_interval(metrics: dict, figure: str) -> str:
    """The patient-bootstrap interval of a figure ('' where the metrics have none: two-class versions' metrics)."""
    entry = (metrics.get("bootstrap") or {}).get(figure) or {}
    if entry.get("low") is None:
        return ""
    return f"[{entry['low']:.3f}-{entry['high']:.3f}] by patient"


def images_text(metrics: dict) -> str:
    """How many images of each class; positives and negatives for metrics stored before N classes."""
    counts = metrics.get("class_counts")
    if counts is None:
        return f"{metrics['n']} ({metrics['positives']} positive, {metrics['negatives']} negative)"
    return f"{metrics['n']} (" + ", ".join(f"{name} {count}" for name, count in counts.items()) + ")"


def called_positive_rows(metrics: dict) -> list[tuple[str, str]]:
    """For each true class in the set, the share called positive: on a folder of one class, what can be said."""
    positive = metrics.get("positive_class", "positive")
    called = (metrics.get("bootstrap") or {}).get("called_positive") or {}
    rows = []
    for name, part in (metrics.get("per_class") or {}).items():
        text = interval(part.get("called_positive"))
        if (called.get(name) or {}).get("low") is not None:
            text += f"; [{called[name]['low']:.3f}-{called[name]['high']:.3f}] by patient"
        rows.append((f"{name} called {positive}", text))
    return rows


def metrics_lines(metrics: dict) -> list[str]:
    auc_interval = patient_interval(metrics, "auc")
    lines = [
        f"  images {images_text(metrics)}, threshold {number(metrics['threshold'])}",
        f"  AUC {number(metrics.get('auc'))}{' ' + auc_interval if auc_interval else ''}   "
        f"accuracy {number(metrics.get('accuracy'))}   "
        f"Brier {number(metrics.get('brier_score'))}   "
        f"ECE {number(metrics.get('expected_calibration_error'))}",
    ]
    for figure in ("sensitivity", "specificity"):
        by_patient = patient_interval(metrics, figure)
        lines.append(f"  {figure} {interval(metrics.get(figure))}{'; ' + by_patient if by_patient else ''}")
    lines += [f"  {label}: {text}" for label, text in called_positive_rows(metrics)]
    matrix = metrics.get("confusion_matrix") or {}
    if matrix.get("labels") and len(matrix["labels"]) > 2:
        lines.append("  confusion matrix (rows true, columns called): " + " | ".join(matrix["labels"]))
        lines += [f"    {name}: {row}" for name, row in zip(matrix["labels"], matrix["counts"], strict=True)]
    if metrics.get("bootstrap", {}).get("method"):
        lines.append(f"  intervals 'by patient': {metrics['bootstrap']['method']}")
    single_class = single_class_sources(metrics)
    for source, part in (metrics.get("per_source") or {}).items():
        line = (
            f"  [{source}] n={part['n']} AUC {number(part.get('auc'))} "
            f"accuracy {number(part.get('accuracy'))} "
            f"sensitivity {interval(part.get('sensitivity'))} "
            f"specificity {interval(part.get('specificity'))}"
        )
        if source in single_class:
            line += f" -- {CONFOUNDED_SOURCE} (only {single_class[source]})"
        lines.append(line)
    return lines


def shortcut_audit_of(version) -> dict:
    """The version's shortcut audit ({} for versions trained before it)."""
    return version.shortcut_audit or {}


def shortcut_rows(audit: dict) -> list[tuple[str, str]]:
    """The model's AUC beside what thumbnails alone reach: how much the model adds, and whether sources show."""
    if not audit:
        return []
    positive = audit.get("positive_class", "positive")
    pixel = audit.get("pixel_baseline") or {}
    source = audit.get("source_classifier") or {}
    pixel_interval = pixel.get("auc_interval") or {}
    pixel_text = pixel.get("unavailable") or number(pixel.get("auc"))
    if pixel_interval.get("low") is not None:
        pixel_text += f" [{pixel_interval['low']:.3f}-{pixel_interval['high']:.3f}] by patient"
    if source.get("unavailable"):
        source_text = source["unavailable"]
    else:
        source_text = (
            f"accuracy {number(source.get('accuracy'))} (chance {number(source.get('chance_accuracy'))}), "
            f"balanced accuracy {number(source.get('balanced_accuracy'))} "
            f"(chance {number(source.get('chance_balanced_accuracy'))}) over {len(source.get('sources') or [])} "
            f"sources, {source.get('n_test')} test images"
        )
    return [
        (f"Model: {positive} AUC on the test split", number(audit.get("model_auc"))),
        (f"Pixel-only baseline: {positive} AUC", pixel_text),
        ("Source from the image", source_text),
        ("Method", audit.get("method", "")),
    ]


def shortcut_lines(audit: dict) -> list[str]:
    return [f"  {label}: {text}" for label, text in shortcut_rows(audit)]


def reliability_lines(metrics: dict) -> list[str]:
    """Calibration, the indeterminate band and the input gate, where the metrics have them."""
    lines = []
    calibration = metrics.get("calibration")
    if calibration:
        lines.append(
            f"  ECE before calibration {number(calibration.get('ece_before'))}, "
            f"after {number(calibration.get('ece_after'))}"
        )
    abstention = metrics.get("abstention")
    if abstention:
        band = "none"
        if abstention.get("low") is not None:
            band = f"{number(abstention['low'])}-{number(abstention['high'])}"
        outside = abstention.get("outside") or {}
        lines.append(
            f"  indeterminate band {band}: {interval(abstention.get('share_in_band'))} of images in it; outside it "
            f"sensitivity {interval(outside.get('sensitivity'))}, specificity {interval(outside.get('specificity'))}"
        )
    if metrics.get("gate"):
        lines += refusal_lines(metrics)
    return lines


def refusal_lines(metrics: dict) -> list[str]:
    gate = metrics.get("gate") or {}
    lines = [f"  input gate: {gate['unavailable']}"] if gate.get("unavailable") else []
    lines.append(f"  input gate refused {interval(gate.get('refused'))}")
    for name, part in (gate.get("per_class") or {}).items():
        refused = part.get("refused", part)
        line = f"    {name}: refused {interval(refused)}"
        if "refused_by_view_check" in part and gate.get("view_check_fitted"):
            line += f" (view check alone {interval(part['refused_by_view_check'])})"
        if "called_positive_if_not_refused" in part:
            line += f"; of the rest, called positive {interval(part['called_positive_if_not_refused'])}"
        lines.append(line)
    return lines


def view_check_line(gate_summary: dict) -> str:
    """Whether the version's gate has a view check, on how many examples per kind, and what it refuses."""
    view = gate_summary.get("view_check") or {}
    if not view.get("fitted"):
        return f"  view check: {VIEW_CHECK_NOT_FITTED}"
    examples = ", ".join(f"{kind} {count}" for kind, count in (view.get("examples") or {}).items())
    return (
        f"  view check: fitted on {examples}; refuses {100 * (view.get('validation_refused') or 0):.1f}% "
        "of frontal validation images"
    )


INTERNAL_WARNING = "Internal test split: same sources as training; overstates what a new hospital will see."


def evidence_description(evaluation) -> dict:
    """Which evidence an evaluation's figures are, in words for doctors and staff, with its caveats."""
    metrics = evaluation.metrics
    images = metrics.get("n")
    if evaluation.kind == Evaluation.Kind.LOCAL:
        text = f"local evaluation on {images} images of this hospital"
    elif evaluation.kind == Evaluation.Kind.EXTERNAL:
        text = f"external validation on {images} images in {PurePath(evaluation.data_dir).name or evaluation.data_dir}"
    else:
        text = f"the internal test split of {images} images"
    return {
        "kind": evaluation.kind,
        "text": text,
        "warning": INTERNAL_WARNING if evaluation.kind == Evaluation.Kind.TEST_SPLIT else "",
        "confounded": confounding_text(single_class_sources(metrics)),
        "band": band_text(metrics.get("abstention"), positive_class=metrics.get("positive_class")),
    }


def confounding_text(single_class: dict[str, str]) -> str:
    """'' when no source holds one class only."""
    if not single_class:
        return ""
    sources = ", ".join(f"{source} (only {label})" for source, label in single_class.items())
    return (
        f"Confounded: {sources}. A source with one class cannot show discrimination, so these figures may "
        "reward recognising the source rather than the disease."
    )


def band_text(abstention: dict | None, *, positive_class: str | None) -> str:
    """'' without an indeterminate band; otherwise what the figures leave out. Metrics stored before they
    named their positive class (None) are COVID's."""
    if not abstention:
        return ""
    share = abstention.get("share_in_band") or {}
    held = ""
    if share.get("total"):
        held = f", which held {share['value'] * 100:.1f}% ({share['count']} of {share['total']}) of these images"
    return (
        f"For decisive readings only: figures outside the indeterminate band "
        f"(P({short_name(positive_class or DEFAULT_POSITIVE_CLASS)}) {abstention['low']:.3f} to "
        f"{abstention['high']:.3f}){held}."
    )
