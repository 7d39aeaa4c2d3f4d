"""Plain-text summaries of metrics for the management commands, and which evidence figures come from."""

from pathlib import PurePath

from mlcore.core.evaluation import single_class_sources
from mlcore.core.gate import VIEW_CHECK_NOT_FITTED
from mlcore.models import Evaluation


def interval(entry: dict | None) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    return f"{entry['value']:.3f} [{entry['low']:.3f}-{entry['high']:.3f}] ({entry['count']}/{entry['total']})"


def number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def metrics_lines(metrics: dict) -> list[str]:
    lines = [
        f"  images {metrics['n']} ({metrics['positives']} positive, {metrics['negatives']} negative), "
        f"threshold {number(metrics['threshold'])}",
        f"  AUC {number(metrics.get('auc'))}   accuracy {number(metrics.get('accuracy'))}   "
        f"Brier {number(metrics.get('brier_score'))}   "
        f"ECE {number(metrics.get('expected_calibration_error'))}",
        f"  sensitivity {interval(metrics.get('sensitivity'))}",
        f"  specificity {interval(metrics.get('specificity'))}",
    ]
    lines += reliability_lines(metrics)
    for source, part in (metrics.get("per_source") or {}).items():
        lines.append(
            f"  [{source}] n={part['n']} AUC {number(part.get('auc'))} "
            f"accuracy {number(part.get('accuracy'))} "
            f"sensitivity {interval(part.get('sensitivity'))} "
            f"specificity {interval(part.get('specificity'))}"
        )
    return lines


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
        "band": band_text(metrics.get("abstention")),
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


def band_text(abstention: dict | None) -> str:
    """'' without an indeterminate band; otherwise what the figures leave out."""
    if not abstention:
        return ""
    share = abstention.get("share_in_band") or {}
    held = ""
    if share.get("total"):
        held = f", which held {share['value'] * 100:.1f}% ({share['count']} of {share['total']}) of these images"
    return (
        f"For decisive readings only: figures outside the indeterminate band "
        f"(P(COVID-19) {abstention['low']:.3f} to {abstention['high']:.3f}){held}."
    )
