"""Plain-text summaries of metrics for the management commands."""


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
        if "called_positive_if_not_refused" in part:
            line += f"; of the rest, called positive {interval(part['called_positive_if_not_refused'])}"
        lines.append(line)
    return lines
