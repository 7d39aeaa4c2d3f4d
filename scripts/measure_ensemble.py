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
    from mlcore.core.dataset import (
        PatientRule,
        binarize,
        discover_dataset,
        group_patients,
        load_images,
        resolve_patients,
        split_dataset,
    )
    from mlcore.core.evaluation import choose_threshold, evaluate
    from mlcore.core.gradcam import readout_function, run_readout
    from mlcore.core.inference import load_model
    from mlcore.core.pipeline import recorded_split_seed
    from mlcore.core.preprocessing import PreprocessingSpec
    from mlcore.core.provenance import split_membership
    from mlcore.models import ModelVersion

    versions = [ModelVersion.objects.get(name=name) for name in args.version]
    first = versions[0]
    spec = PreprocessingSpec.from_stored(first.preprocessing)
    rule = PatientRule.recorded(first.hyperparameters)
    dataset = resolve_patients(discover_dataset(args.data), rule)
    images, items, _ = load_images(dataset.items, spec, root=dataset.root)
    labels = [item.label for item in items]
    patients = group_patients(items, rule=rule, images=images).keys
    split = split_dataset(labels, patients, seed=recorded_split_seed(first.hyperparameters)).as_dict()
    membership = split_membership([item.path for item in items], split, dataset.roots)
    for version in versions:
        if version.provenance["data"]["splits"] != membership:
            raise SystemExit(f"{version.name} was not trained on this split of these folders.")

    positive = dataset.class_names.index(first.positive_class)
    y = binarize(labels, dataset.class_names)[:, positive]
    readings = {}  # (version, mirrored) -> softmax of every image
    for version in versions:
        model = load_model(version.model_file.path)
        readout = readout_function(model, positive_index=positive, image_size=spec.image_size)
        readings[version.name, False] = run_readout(readout, images)[0]
        readings[version.name, True] = run_readout(readout, images[:, :, ::-1, :].copy())[0]
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
