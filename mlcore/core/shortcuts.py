"""A shortcut audit: how far the images alone, with no network, tell the classes and the sources apart.

A pixel-only baseline (logistic regression on 32x32 grayscale thumbnails) that scores nearly as well as
the model says the test split can be solved by brightness, framing or text marks; a classifier that tells
the source from the same thumbnails says the sources look different, so a model that learns "which
source" instead of "which disease" would score well wherever the classes come from different sources.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlcore.core.evaluation import patient_bootstrap

THUMBNAIL_SIZE = 32
REGULARISATION = 0.1  # scikit-learn's C: strong enough that 1,024 pixels do not memorise a small training split
METHOD = (
    "Logistic regression (L2, C={c}) on standardised {size}x{size} grayscale thumbnails (area means) of the "
    "preprocessed images, fitted on the training split and measured on the test split."
)


def thumbnails(images: np.ndarray, *, size: int = THUMBNAIL_SIZE, chunk: int = 256) -> np.ndarray:
    """(n, size*size) grayscale area means of (n, height, width[, channels]) images, a chunk at a time."""
    images = np.asarray(images)
    height, width = images.shape[1:3]
    if min(height, width) < size:
        raise ValueError(f"Images of {height}x{width} px are smaller than {size}x{size} thumbnails.")
    rows = np.linspace(0, height, size + 1).astype(int)
    columns = np.linspace(0, width, size + 1).astype(int)
    area = np.outer(np.diff(rows), np.diff(columns)).astype(np.float32)
    result = np.empty((len(images), size * size), dtype=np.float32)
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk].astype(np.float32)
        gray = part.mean(axis=-1) if part.ndim == 4 else part
        sums = np.add.reduceat(np.add.reduceat(gray, rows[:-1], axis=1), columns[:-1], axis=2)
        result[start : start + len(part)] = (sums / area).reshape(len(part), -1)
    return result


def _classifier(seed: int):
    return make_pipeline(StandardScaler(), LogisticRegression(C=REGULARISATION, max_iter=2000, random_state=seed))


def pixel_baseline(
    *,
    x_train: np.ndarray,
    labels_train: Sequence[str],
    x_test: np.ndarray,
    labels_test: Sequence[str],
    positive_class: str,
    patient_ids_test: Sequence[str | None] | None = None,
    seed: int = 0,
) -> dict:
    """The positive class's AUC on the test split of a classifier that sees only the thumbnails."""
    labels_train, labels_test = np.asarray(labels_train, dtype=object), np.asarray(labels_test, dtype=object)
    if len(set(labels_train.tolist())) < 2:
        return {"unavailable": "The training split holds one class: nothing to fit."}
    model = _classifier(seed).fit(x_train, labels_train)
    classes = list(model.classes_)
    y_test = (labels_test == positive_class).astype(int)
    result = {"n_test": len(labels_test), "auc": None, "accuracy": None}
    if len(labels_test):
        probabilities = model.predict_proba(x_test)
        result["accuracy"] = float((model.predict(x_test) == labels_test).mean())
        if positive_class in classes and 0 < y_test.sum() < len(y_test):
            p_positive = probabilities[:, classes.index(positive_class)]
            result["auc"] = float(roc_auc_score(y_test, p_positive))
            result["auc_interval"] = patient_bootstrap(
                y_positive=y_test, p_positive=p_positive, patient_ids=patient_ids_test, seed=seed
            ).get("auc")
    return result


def source_classifier(
    *,
    x_train: np.ndarray,
    sources_train: Sequence[str | None],
    x_test: np.ndarray,
    sources_test: Sequence[str | None],
    seed: int = 0,
) -> dict:
    """How well the thumbnails tell the source, on test images from sources seen in training, beside chance."""
    sources_train = np.asarray([s or "" for s in sources_train], dtype=object)
    sources_test = np.asarray([s or "" for s in sources_test], dtype=object)
    known = sources_train != ""
    if len(set(sources_train[known].tolist())) < 2:
        return {"unavailable": "Fewer than two sources recorded in the training split: nothing to tell apart."}
    model = _classifier(seed).fit(x_train[known], sources_train[known])
    seen = np.isin(sources_test, model.classes_)
    result = {
        "sources": sorted(model.classes_.tolist()),
        "n_test": int(seen.sum()),
        "unseen_sources_left_out": int((~seen & (sources_test != "")).sum()),
        "accuracy": None,
        "balanced_accuracy": None,
    }
    if not seen.any():
        return result
    truth = sources_test[seen]
    predicted = model.predict(x_test[seen])
    shares = np.unique(truth, return_counts=True)[1] / len(truth)
    result |= {
        "accuracy": float((predicted == truth).mean()),
        "chance_accuracy": float(shares.max()),  # always guessing the commonest test source
        "balanced_accuracy": float(balanced_accuracy_score(truth, predicted)),
        "chance_balanced_accuracy": 1.0 / len(shares),
    }
    return result


def shortcut_audit(
    *,
    images: np.ndarray,
    labels: Sequence[str],
    sources: Sequence[str | None],
    patient_ids: Sequence[str | None] | None,
    split: dict[str, Sequence[int]],
    positive_class: str,
    model_auc: float | None = None,
    seed: int = 0,
) -> dict:
    """Both baselines on a run's own train/test split, beside the model's test AUC."""
    train, test = list(split["train"]), list(split["test"])
    x = thumbnails(images[train + test])
    x_train, x_test = x[: len(train)], x[len(train) :]
    labels, sources = np.asarray(labels, dtype=object), np.asarray(list(sources), dtype=object)
    return {
        "method": METHOD.format(c=REGULARISATION, size=THUMBNAIL_SIZE),
        "positive_class": positive_class,
        "model_auc": model_auc,
        "pixel_baseline": pixel_baseline(
            x_train=x_train,
            labels_train=labels[train],
            x_test=x_test,
            labels_test=labels[test],
            positive_class=positive_class,
            patient_ids_test=None if patient_ids is None else [patient_ids[i] for i in test],
            seed=seed,
        ),
        "source_classifier": source_classifier(
            x_train=x_train, sources_train=sources[train], x_test=x_test, sources_test=sources[test], seed=seed
        ),
    }
