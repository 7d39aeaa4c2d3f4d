"""Find a labelled dataset on disk, split it by class and patient, and load its images."""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.preprocessing import LabelBinarizer

from mlcore.core.imaging import ImageDecodeError
from mlcore.core.preprocessing import PreprocessingSpec, load_image

POSITIVE, NEGATIVE = "COVID", "NORMAL"
DEFAULT_CLASS_ALIASES: dict[str, tuple[str, ...]] = {
    POSITIVE: ("covid", "covid19", "covid-19", "chest_covid", "positive", "pneumonia-covid"),
    NEGATIVE: ("normal", "non-covid", "noncovid", "non_covid", "chest_normal", "negative"),
}
MANIFEST_NAME = "manifest.csv"
SPLITS = ("train", "validation", "test")


class DatasetError(ValueError):
    """The folder cannot serve as a dataset; the message says why and what to change."""


@dataclass(frozen=True)
class DatasetItem:
    path: Path
    label: str
    patient_id: str | None = None
    source: str | None = None


@dataclass
class Dataset:
    root: Path
    class_names: list[str]
    items: list[DatasetItem]
    skipped: list[dict] = field(default_factory=list)

    def counts(self, indices=None) -> dict[str, int]:
        chosen = self.items if indices is None else [self.items[i] for i in indices]
        counts = Counter(item.label for item in chosen)
        return {name: counts.get(name, 0) for name in self.class_names}


def canonical(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def parse_class_aliases(text: str | None) -> dict[str, tuple[str, ...]]:
    """``"COVID=Chest_COVID,covid;NORMAL=Non-COVID"`` -> {"COVID": (...), "NORMAL": (...)}."""
    if not text:
        return DEFAULT_CLASS_ALIASES
    aliases: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (chunk.strip() for chunk in text.split(";"))):
        if "=" not in part:
            raise DatasetError(f"Class mapping {part!r} needs the form CLASS=folder1,folder2.")
        name, folders = part.split("=", 1)
        aliases[name.strip().upper()] = (name.strip(), *(f.strip() for f in folders.split(",") if f.strip()))
    if len(aliases) < 2:
        raise DatasetError("Give at least two classes, for example 'COVID=Chest_COVID;NORMAL=Non-COVID'.")
    return aliases


def class_for_name(name: str, aliases: dict[str, tuple[str, ...]]) -> str | None:
    wanted = canonical(name)
    for class_name, names in aliases.items():
        if wanted in {canonical(class_name), *(canonical(n) for n in names)}:
            return class_name
    return None


def discover_dataset(root: str | Path, *, class_aliases=None) -> Dataset:
    """One sub-folder per class (names matched case-insensitively), optionally a manifest.csv."""
    aliases = class_aliases or DEFAULT_CLASS_ALIASES
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"Dataset folder {root} does not exist or is not a folder.")
    folders: dict[str, Path] = {}
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        class_name = class_for_name(child.name, aliases)
        if class_name is None:
            known = ", ".join(f"{name} ({'/'.join(names[:3])})" for name, names in aliases.items())
            raise DatasetError(
                f"Unknown class folder {child.name!r} in {root}. Known classes: {known}. "
                "Rename the folder or map it with --classes."
            )
        if class_name in folders:
            raise DatasetError(f"Folders {folders[class_name].name!r} and {child.name!r} both mean {class_name}.")
        folders[class_name] = child
    missing = [name for name in aliases if name not in folders]
    if missing:
        raise DatasetError(f"No folder for class {', '.join(missing)} in {root}.")

    manifest = _read_manifest(root, aliases)
    items, skipped = [], []
    for class_name, folder in folders.items():
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
            row = manifest.get(path.resolve())
            if row and row["label"] and row["label"] != class_name:
                skipped.append({"path": str(path.relative_to(root)), "reason": "manifest label differs from folder"})
                continue
            items.append(
                DatasetItem(
                    path=path,
                    label=class_name,
                    patient_id=(row or {}).get("patient_id") or None,
                    source=(row or {}).get("source") or None,
                )
            )
    class_names = sorted(folders)
    dataset = Dataset(root=root, class_names=class_names, items=items, skipped=skipped)
    empty = [name for name, count in dataset.counts().items() if count == 0]
    if empty:
        raise DatasetError(f"Class {', '.join(empty)} has no images in {root}.")
    return dataset


def discover_image_folders(root: str | Path) -> Dataset:
    """Any sub-folders of images, each its own group, whatever their names (images to refuse, for one)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"Folder {root} does not exist or is not a folder.")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    items = [
        DatasetItem(path=path, label=folder.name)
        for folder in folders
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    ]
    if not items:
        raise DatasetError(f"No files in sub-folders of {root}: put each kind of image in a folder of its own.")
    return Dataset(root=root, class_names=[folder.name for folder in folders], items=items)


def _read_manifest(root: Path, aliases) -> dict[Path, dict]:
    path = root / MANIFEST_NAME
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise DatasetError(f"{path} needs a 'path' column (relative to the dataset folder).")
        rows = {}
        for row in reader:
            label = class_for_name(row.get("label") or "", aliases) if row.get("label") else None
            rows[(root / row["path"]).resolve()] = {
                "label": label,
                "patient_id": (row.get("patient_id") or "").strip(),
                "source": (row.get("source") or "").strip(),
            }
    return rows


@dataclass
class Split:
    train: list[int]
    validation: list[int]
    test: list[int]

    def as_dict(self) -> dict[str, list[int]]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


def split_dataset(
    labels: list[str],
    patient_ids: list[str | None],
    *,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 42,
) -> Split:
    """Stratified by class and grouped by patient (no patient in two splits); reproducible by seed.

    Images without a patient id count as their own patient.
    """
    if not 0 < test_fraction < 0.5 or not 0 < validation_fraction < 0.5:
        raise DatasetError("Validation and test fractions must each lie between 0 and 0.5.")
    groups = np.array([pid if pid else f"__image_{i}" for i, pid in enumerate(patient_ids)], dtype=object)
    y = np.array(labels)
    indices = np.arange(len(labels))
    rest, test = _one_fold(indices, y, groups, fraction=test_fraction, seed=seed)
    train, validation = _one_fold(
        rest, y[rest], groups[rest], fraction=validation_fraction / (1 - test_fraction), seed=seed + 1
    )
    split = Split(train=sorted(train.tolist()), validation=sorted(validation.tolist()), test=sorted(test.tolist()))
    for name, part in split.as_dict().items():
        present = set(y[part]) if part else set()
        if present != set(y):
            raise DatasetError(
                f"Too few images to split: the {name} split would hold no "
                f"{', '.join(sorted(set(y) - present))} image. Add images or patients."
            )
    return split


def _one_fold(indices, y, groups, *, fraction, seed):
    n_splits = max(2, round(1 / fraction))
    smallest = min(len(set(groups[y == label])) for label in set(y))
    if smallest < n_splits:
        if smallest < 2:
            raise DatasetError("Too few images to split: every class needs patients in all three splits.")
        n_splits = smallest
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    keep, held_out = next(splitter.split(indices, y, groups))
    return indices[keep], indices[held_out]


def binarize(labels: list[str], class_names: list[str]) -> np.ndarray:
    """One-hot targets through scikit-learn's LabelBinarizer (two columns for two classes)."""
    binarizer = LabelBinarizer().fit(class_names)
    encoded = binarizer.transform(labels).astype(np.float32)
    if encoded.shape[1] == 1:
        encoded = np.hstack([1.0 - encoded, encoded])
    return encoded


def load_images(items: list[DatasetItem], spec: PreprocessingSpec, *, root: Path | None = None):
    """Decode and preprocess every item; unreadable files are skipped and listed, never fatal.

    Returns (array of shape (n, size, size, 3), the items that loaded, the skipped entries).
    """
    arrays, loaded, skipped = [], [], []
    for item in items:
        try:
            arrays.append(load_image(item.path, spec))
            loaded.append(item)
        except (ImageDecodeError, OSError) as error:
            shown = item.path.relative_to(root) if root else item.path
            skipped.append({"path": str(shown), "reason": str(error)})
    size = spec.image_size
    stacked = np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.float32)
    return stacked.astype(np.float32, copy=False), loaded, skipped
