"""Evaluation figures as PNG bytes (matplotlib's object API: no global pyplot state, safe in workers)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def roc_png(metrics: dict, *, title: str = "ROC curve") -> bytes:
    figure = Figure(figsize=(5, 5))
    axes = figure.subplots()
    roc = metrics.get("roc")
    if roc:
        interval = (metrics.get("bootstrap") or {}).get("auc") or {}
        label = f"AUC = {metrics['auc']:.3f}"
        if interval.get("low") is not None:
            label += f" [{interval['low']:.3f}-{interval['high']:.3f}]"
        axes.plot(roc["fpr"], roc["tpr"], lw=2, label=label)
        sens, spec = metrics["sensitivity"]["value"], metrics["specificity"]["value"]
        if sens is not None and spec is not None:
            axes.plot(
                [1 - spec],
                [sens],
                "o",
                color="crimson",
                label=f"threshold {metrics['threshold']:.3f}",
            )
    axes.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    axes.set(
        xlabel="False positive rate (1 - specificity)",
        ylabel="True positive rate (sensitivity)",
        xlim=(0, 1),
        ylim=(0, 1.01),
        title=title,
    )
    axes.legend(loc="lower right")
    return _png(figure)


def confusion_png(metrics: dict, *, percent: bool) -> bytes:
    """Any number of classes; a row of a class the set does not hold stays blank in percent."""
    matrix = metrics["confusion_matrix"]
    rows = matrix["percent_of_true_class"] if percent else matrix["counts"]
    values = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
    labels = matrix["labels"]
    side = 3.2 + 1.0 * len(labels)
    figure = Figure(figsize=(side + 0.6, side))
    axes = figure.subplots()
    top = np.nanmax(values) if np.isfinite(values).any() else 1
    image = axes.imshow(values, cmap="Blues", vmin=0, vmax=100 if percent else max(top, 1))
    figure.colorbar(image, ax=axes, fraction=0.046)
    for (row, column), value in np.ndenumerate(values):
        if not np.isfinite(value):
            continue
        text = f"{value:.1f}%" if percent else f"{int(value)}"
        dark = value > (50 if percent else top / 2)
        axes.text(column, row, text, ha="center", va="center", color="white" if dark else "black", fontsize=12)
    axes.set_xticks(range(len(labels)), labels, rotation=20 if len(labels) > 2 else 0, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set(
        xlabel="Predicted",
        ylabel="True",
        title="Confusion matrix (% of true class)" if percent else "Confusion matrix (counts)",
    )
    return _png(figure)


def called_positive_png(metrics: dict) -> bytes:
    """For each true class, the share called positive with its patient-bootstrap interval (Wilson without one):
    the sensitivity for the positive class, one minus the specificity for each other class."""
    positive = metrics.get("positive_class", "positive")
    per_class = metrics["per_class"]
    bootstrap = (metrics.get("bootstrap") or {}).get("called_positive") or {}
    names = list(per_class)
    shares = np.array([per_class[name]["called_positive"]["value"] for name in names], dtype=float)
    low, high = [], []
    for name, share in zip(names, shares, strict=True):
        interval = bootstrap.get(name) or per_class[name]["called_positive"]
        low.append(share - (interval["low"] if interval.get("low") is not None else share))
        high.append((interval["high"] if interval.get("high") is not None else share) - share)
    figure = Figure(figsize=(6, 1.2 + 0.6 * len(names)))
    axes = figure.subplots()
    colours = ["crimson" if name == positive else "steelblue" for name in names]
    axes.barh(range(len(names)), shares, xerr=[low, high], color=colours, capsize=4)
    for row, share in enumerate(shares):
        axes.text(min(share + high[row] + 0.02, 0.88), row, f"{100 * share:.1f}%", va="center")
    axes.set_yticks(range(len(names)), [f"{name} (n={per_class[name]['called_positive']['total']})" for name in names])
    axes.set(xlim=(0, 1), xlabel=f"Share called {positive} (95% interval)", title=f"Called {positive}, per true class")
    return _png(figure)


def history_png(history: dict, *, metric: str) -> bytes:
    """Training and validation per epoch; an ensemble's networks each get a colour, epochs restarting at 1."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    train, validation = history.get(metric, []), history.get(f"val_{metric}", [])
    networks = history.get("member") or [0] * len(train)
    several = len(set(networks)) > 1
    for colour, network in enumerate(sorted(set(networks))):
        rows = [row for row, member in enumerate(networks) if member == network]
        epochs = np.arange(1, len(rows) + 1)
        name = f"network {network + 1}, " if several else ""
        axes.plot(epochs, [train[r] for r in rows], marker="o", ms=3, color=f"C{2 * colour}", label=f"{name}training")
        if validation:
            axes.plot(
                epochs,
                [validation[r] for r in rows],
                marker="o",
                ms=3,
                ls="--" if several else "-",
                color=f"C{2 * colour + 1}",
                label=f"{name}validation",
            )
        phases = [history["phase"][r] for r in rows] if history.get("phase") else []
        for epoch in range(1, len(phases)):
            if phases[epoch] != phases[epoch - 1]:
                axes.axvline(epoch + 0.5, color="grey", ls=":", lw=1)
    axes.set(xlabel="Epoch", ylabel=metric, title=f"{metric.capitalize()}: training vs validation")
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    return _png(figure)


def calibration_png(metrics: dict) -> bytes:
    figure = Figure(figsize=(5, 5))
    axes = figure.subplots()
    bins = [b for b in metrics["calibration_bins"] if b["count"]]
    axes.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfect calibration")
    axes.plot(
        [b["mean_predicted"] for b in bins],
        [b["fraction_positive"] for b in bins],
        marker="o",
        label="model",
    )
    axes.set(
        xlabel="Mean predicted probability of the positive class",
        ylabel="Fraction of positives",
        xlim=(0, 1),
        ylim=(0, 1),
        title=(f"Reliability: Brier {metrics['brier_score']:.3f}, ECE {metrics['expected_calibration_error']:.3f}"),
    )
    axes.legend(loc="upper left")
    return _png(figure)


def image_grid_png(images: Sequence[np.ndarray], titles: Sequence[str], *, columns: int = 8, title: str = "") -> bytes:
    """Grayscale [0, 1] images in a grid with a caption under each."""
    count = max(len(images), 1)
    rows = int(np.ceil(count / columns))
    figure = Figure(figsize=(columns * 1.6, rows * 1.8 + (0.4 if title else 0)))
    axes_grid = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for axes in axes_grid:
        axes.axis("off")
    for axes, image, caption in zip(axes_grid, images, titles, strict=False):
        axes.imshow(image, cmap="gray", vmin=0, vmax=1)
        axes.set_title(caption, fontsize=7)
    if title:
        figure.suptitle(title)
    return _png(figure)
