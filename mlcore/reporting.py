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
    for source, part in (metrics.get("per_source") or {}).items():
        lines.append(
            f"  [{source}] n={part['n']} AUC {number(part.get('auc'))} "
            f"accuracy {number(part.get('accuracy'))} "
            f"sensitivity {interval(part.get('sensitivity'))} "
            f"specificity {interval(part.get('specificity'))}"
        )
    return lines
