"""Single networks, their mirror test-time augmentation, and their mean: measured on the split they share.

    .venv/bin/python scripts/measure_ensemble.py --data ../shared/data/cxr-dev \
        --data ../shared/data/cxr-other-dev --version ens-s42-i42 --version ens-s42-i142 ...

The versions must share one patient split (``train_model --split-seed S`` with different ``--seed``); the
script redraws that split from the folders, checks it against every version's stored membership, and
reads validation and test images with each network, as is and mirrored. Every row keeps the raw softmax
(no temperature), so rows compare like with like; its threshold is chosen on the validation split by the
rule versions use (Youden's J), and its intervals are the versions' patient bootstrap. Prints one JSON
object per row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from itertools import combinations
from pathlib import Path

import django
import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--version", action="append", required=True)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "covidxray.settings.local")
    django.setup()
    from mlcore.core.dataset import PatientRule, binarize
    from mlcore.core.evaluation import choose_threshold, evaluate
    from mlcore.core.gradcam import readout_function, run_readout
    from mlcore.core.inference import load_model
    from mlcore.core.pipeline import recorded_split, redraw_split
    from mlcore.core.preprocessing import PreprocessingSpec
    from mlcore.core.provenance import split_membership
    from mlcore.models import ModelVersion
    from mlcore.services import local_model_file

    versions = [ModelVersion.objects.get(name=name) for name in args.version]
    first = versions[0]
    spec = PreprocessingSpec.from_stored(first.preprocessing)
    drawn = redraw_split(
        args.data,
        preprocessing=spec,
        patients=PatientRule.recorded(first.hyperparameters),
        **recorded_split(first.hyperparameters),
        log=lambda message: print(message, file=sys.stderr),  # stdout holds only the JSON rows
    )
    dataset, items, labels, split = drawn.dataset, drawn.items, drawn.labels, drawn.split.as_dict()
    membership = split_membership([item.path for item in items], split, dataset.roots)
    for version in versions:
        if version.provenance["data"]["splits"] != membership:
            raise SystemExit(f"{version.name} was not trained on this split of these folders.")

    positive = dataset.class_names.index(first.positive_class)
    y = binarize(labels, dataset.class_names)[:, positive]
    read = np.zeros(len(items), dtype=bool)  # only validation and test images are read
    read[split["validation"] + split["test"]] = True
    images = drawn.images[read]
    readings = {}  # (version, mirrored) -> softmax of every image (zeros for training images)
    for version in versions:
        with local_model_file(version) as path:
            model = load_model(path)
        readout = readout_function(model, positive_index=positive, image_size=spec.image_size)
        for mirrored, pixels in ((False, images), (True, images[:, :, ::-1, :].copy())):
            readings[version.name, mirrored] = np.zeros((len(items), len(dataset.class_names)), np.float32)
            readings[version.name, mirrored][read] = run_readout(readout, pixels)[0]
    validation, test = split["validation"], split["test"]

    def row(name: str, members: list[str], tta: bool) -> dict:
        views = (False, True) if tta else (False,)
        probabilities = np.mean([readings[member, view] for member in members for view in views], axis=0)
        threshold = choose_threshold(y[validation], probabilities[validation, positive])
        metrics = evaluate(
            labels=[labels[i] for i in test],
            probabilities=probabilities[test],
            threshold=threshold,
            class_names=dataset.class_names,
            positive_class=first.positive_class,
            patient_ids=[items[i].patient_id for i in test],
        )
        auc = metrics["bootstrap"]["auc"]
        other = metrics["per_class"].get("OTHER_PNEUMONIA", {}).get("called_positive", {})
        return {
            "row": name,
            "members": len(members),
            "tta": tta,
            "val_auc": round(float(roc_auc_score(y[validation], probabilities[validation, positive])), 4),
            "test_auc": round(metrics["auc"], 4),
            "test_auc_interval": [round(auc["low"], 3), round(auc["high"], 3)],
            "threshold": round(threshold, 4),
            "sensitivity": fraction(metrics["sensitivity"]),
            "specificity": fraction(metrics["specificity"]),
            "other_not_covid": f"{other['total'] - other['count']}/{other['total']}" if other else None,
        }

    names = [version.name for version in versions]
    rows = [row(name, [name], tta) for name in names for tta in (False, True)]
    rows += [row("+".join(pair), list(pair), False) for pair in combinations(names, 2)] if len(names) > 2 else []
    rows += [row("mean of all", names, tta) for tta in (False, True)]
    for result in rows:
        print(json.dumps(result))


def fraction(proportion: dict) -> str:
    return f"{proportion['count']}/{proportion['total']}"


if __name__ == "__main__":
    main()
