"""Find a labelled dataset on disk (one or several folders), group its images by patient, split it by
class and patient, and load its images."""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image
from sklearn.model_selection import StratifiedGroupKFold

from mlcore.core.classes import COVID, DEFAULT_CLASS_ALIASES, DEFAULT_CLASSES, NORMAL
from mlcore.core.imaging import DICOM, ImageDecodeError, read_dicom_header, sniff_format
from mlcore.core.preprocessing import PreprocessingSpec, load_image

POSITIVE, NEGATIVE = COVID, NORMAL  # the classes of two-class (COVID/NORMAL) datasets and exports
MANIFEST_NAME = "manifest.csv"
SPLITS = ("train", "validation", "test")
# Perceptual hashes (64 bits) this close are one picture re-encoded or resized (measured: see PatientRule).
DUPLICATE_DISTANCE = 2
HASH_SIZE = 8


class DatasetError(ValueError):
    """The folder cannot serve as a dataset; the message says why and what to change."""


@dataclass(frozen=True)
class DatasetItem:
    path: Path
    label: str
    patient_id: str | None = None
    source: str | None = None
    folder: Path | None = None  # the dataset folder (one --data) the image came from
    patient_origin: str = ""  # "manifest", "dicom" (the file's PatientID) or "" (unknown: its own patient)

    def shown(self) -> str:
        """The path as staff know it: relative to its dataset folder."""
        if self.folder is None:
            return str(self.path)
        return str(self.path.relative_to(self.folder))


@dataclass
class Dataset:
    root: Path  # the first (often the only) folder
    class_names: list[str]
    items: list[DatasetItem]
    skipped: list[dict] = field(default_factory=list)
    roots: list[Path] = field(default_factory=list)

    def __post_init__(self):
        self.roots = self.roots or [self.root]

    @property
    def location(self) -> str:
        """The folder, or the folders joined by " + ", as a run or an evaluation records where its data was."""
        return " + ".join(str(root) for root in self.roots)

    def counts(self, indices=None) -> dict[str, int]:
        chosen = self.items if indices is None else [self.items[i] for i in indices]
        counts = Counter(item.label for item in chosen)
        return {name: counts.get(name, 0) for name in self.class_names}


def canonical(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def parse_class_aliases(text: str | None) -> dict[str, tuple[str, ...]]:
    """``"COVID=Positives;NORMAL=Negatives,Healthy"``: more folder names for classes of the vocabulary.

    The classes named take these folder names besides their usual spellings (which another class loses
    if the mapping gives it away); the other classes keep theirs. A class is named by its name or any
    usual spelling ("pneumonia=Pneumonie" is OTHER_PNEUMONIA); a name outside the vocabulary is refused.
    """
    if not text:
        return DEFAULT_CLASS_ALIASES
    aliases = {name: list(names) for name, names in DEFAULT_CLASS_ALIASES.items()}
    for part in filter(None, (chunk.strip() for chunk in text.split(";"))):
        if "=" not in part:
            raise DatasetError(f"Class mapping {part!r} needs the form CLASS=folder1,folder2.")
        name, folders = part.split("=", 1)
        class_name = class_for_name(name.strip(), DEFAULT_CLASS_ALIASES)
        if class_name is None:
            raise DatasetError(
                f"Unknown class {name.strip()!r} in the class mapping. Known classes: {', '.join(DEFAULT_CLASSES)}."
            )
        given = [folder.strip() for folder in folders.split(",") if folder.strip()]
        if not given:
            raise DatasetError(f"Class mapping {part!r} names no folder: use CLASS=folder1,folder2.")
        taken = {canonical(folder) for folder in given}
        for other, names in aliases.items():
            if other != class_name:
                aliases[other] = [n for n in names if canonical(n) not in taken]
                if canonical(other) in taken:
                    raise DatasetError(f"Folder name {other!r} is the class {other}; it cannot mean {class_name}.")
        aliases[class_name] += given
    return {name: tuple(names) for name, names in aliases.items()}


def class_for_name(name: str, aliases: dict[str, tuple[str, ...]]) -> str | None:
    wanted = canonical(name)
    for class_name, names in aliases.items():
        if wanted in {canonical(class_name), *(canonical(n) for n in names)}:
            return class_name
    return None


def data_folders(data: str | Path | Sequence[str | Path]) -> list[Path]:
    """One folder or several (``--data A --data B``), each given once."""
    folders = [Path(data)] if isinstance(data, str | Path) else [Path(folder) for folder in data]
    folders = [folder.expanduser() for folder in folders]
    if not folders:
        raise DatasetError("Give at least one dataset folder (--data).")
    seen: dict[Path, Path] = {}
    for folder in folders:
        if folder.resolve() in seen:
            raise DatasetError(f"Dataset folder {folder} is given twice.")
        seen[folder.resolve()] = folder
    return folders


def discover_dataset(data: str | Path | Sequence[str | Path], *, class_aliases=None, min_classes: int = 2) -> Dataset:
    """One sub-folder per class in each folder (names matched case-insensitively), each optionally with
    a manifest.csv; several folders are merged (a folder may hold one class, the whole at least
    ``min_classes``). Class names are sorted, the order every stored version's columns follow.

    Patient ids of one folder form one name space, as they always have. Across several folders a patient
    is (source, id) where the manifest names the source, else (folder, id): the same NIH patient listed
    in two folders' manifests is one patient and lands in one split; ids that merely look alike in
    folders without sources stay apart.
    """
    aliases = class_aliases or DEFAULT_CLASS_ALIASES
    roots = data_folders(data)
    items, skipped, present = [], [], set()
    for index, root in enumerate(roots):
        found, lost = _discover_folder(root, aliases)
        if len(roots) > 1:
            found = [replace(item, patient_id=_namespaced(item, index)) for item in found]
        items += found
        skipped += lost
        present |= {item.label for item in found}
    class_names = sorted(present)
    if len(class_names) < min_classes:
        where = roots[0] if len(roots) == 1 else " + ".join(map(str, roots))
        known = ", ".join(f"{name} ({'/'.join(names[:2])})" for name, names in aliases.items())
        raise DatasetError(
            f"Only {len(class_names)} class ({', '.join(class_names) or 'none'}) in {where}: this needs "
            f"folders for at least {min_classes} of the classes {known}. Add class folders or another --data "
            "folder, or map folder names with --classes."
        )
    return Dataset(root=roots[0], class_names=class_names, items=items, skipped=skipped, roots=roots)


def _discover_folder(root: Path, aliases) -> tuple[list[DatasetItem], list[dict]]:
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
    if not folders:
        raise DatasetError(f"No class folders in {root}: put each class's images in a sub-folder named after it.")

    manifest = _read_manifest(root, aliases)
    items, skipped = [], []
    for class_name, folder in folders.items():
        paths = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not paths:
            raise DatasetError(f"Class {class_name} has no images in {root} (folder {folder.name!r} is empty).")
        for path in paths:
            row = manifest.get(path.resolve()) or {}
            if row.get("label") and row["label"] != class_name:
                skipped.append({"path": str(path.relative_to(root)), "reason": "manifest label differs from folder"})
                continue
            patient_id = row.get("patient_id") or None
            items.append(
                DatasetItem(
                    path=path,
                    label=class_name,
                    patient_id=patient_id,
                    source=row.get("source") or None,
                    folder=root,
                    patient_origin="manifest" if patient_id else "",
                )
            )
    if not items:
        raise DatasetError(f"Every image in {root} was skipped: the manifest's labels contradict the folders.")
    return items, skipped


def _namespaced(item: DatasetItem, folder_index: int) -> str | None:
    if not item.patient_id:
        return None
    if item.source:
        return f"{item.source}/{item.patient_id}"
    return f"folder{folder_index}:{item.folder.name}/{item.patient_id}"


def discover_image_folders(root: str | Path) -> Dataset:
    """Any sub-folders of images, each its own group, whatever their names (images to refuse, for one)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"Folder {root} does not exist or is not a folder.")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    items = [
        DatasetItem(path=path, label=folder.name, folder=root)
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


# --- patients ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatientRule:
    """How images are grouped into patients before the split; stored with a version (hyperparameters
    "patients") so that its split can be drawn again.

    ``duplicate_distance``: images whose perceptual hashes differ in at most this many of 64 bits are put
    with each other's patient (None: not looked for). Measured on cxr-dev + cxr-other-dev (898 images that
    their curator had de-duplicated by correlation): a JPEG re-encode (quality 70) or a half-size copy of
    an image lies 0-2 bits from it; the closest images of different patients lie 4 bits apart (3 of some
    400,000 pairs) or 6 (12 pairs), so 2 joins copies and no strangers. Crops of 4% or more move the hash
    by 4-18 bits: they are not caught.
    """

    allow_unknown: bool = False  # images without a patient id: refused (False) or their own patient
    dicom_patient_ids: bool = True  # with allow_unknown, a DICOM's PatientID stands in for the missing id
    duplicate_distance: int | None = DUPLICATE_DISTANCE

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def recorded(cls, hyperparameters: dict | None) -> PatientRule:
        """The rule a stored version was split by; versions from before it split as they did then."""
        stored = (hyperparameters or {}).get("patients")
        return cls(**stored) if stored else LEGACY_PATIENT_RULE


# Versions trained before PatientRule: every image without an id its own patient, no DICOM ids, no hashes.
LEGACY_PATIENT_RULE = PatientRule(allow_unknown=True, dicom_patient_ids=False, duplicate_distance=None)


def resolve_patients(dataset: Dataset, rule: PatientRule) -> Dataset:
    """Refuse images without a patient id unless the rule allows them; then take the DICOM PatientID
    where a file has one. Reads DICOM headers only, never pixels."""
    unknown = [item for item in dataset.items if not item.patient_id]
    if not unknown:
        return dataset
    if not rule.allow_unknown:
        folders = sorted({str(item.folder or dataset.root) for item in unknown})
        raise DatasetError(
            f"{len(unknown)} of {len(dataset.items)} images have no patient id (first: {unknown[0].shown()}), "
            f"in {', '.join(folders)}. Without patient ids one patient's images can land in both the training and "
            "the test split. Add a manifest.csv (path,label,patient_id,source) to the folder, or pass "
            "--allow-unknown-patients to use each DICOM's PatientID and count every other image as its own patient."
        )
    if not rule.dicom_patient_ids:
        return dataset
    several = len(dataset.roots) > 1
    items = []
    for item in dataset.items:
        patient_id = None if item.patient_id else _dicom_patient_id(item.path)
        if patient_id:
            key = f"dicom/{item.folder.name if several and item.folder else ''}/{patient_id}"
            item = replace(item, patient_id=key, patient_origin="dicom")
        items.append(item)
    return replace(dataset, items=items)


def _dicom_patient_id(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            if sniff_format(handle.read(132)) != DICOM:
                return None
        return read_dicom_header(path).patient_id.strip() or None
    except (ImageDecodeError, OSError):
        return None


def image_hashes(images: np.ndarray) -> np.ndarray:
    """A 64-bit perceptual (DCT) hash of each preprocessed image, as unsigned integers; the hash is taken on
    a 32x32 thumbnail, so it costs little beside decoding."""
    hashes = np.zeros(len(images), dtype=np.uint64)
    for i, image in enumerate(images):
        gray = image[..., 0] if image.ndim == 3 else image
        low, high = float(gray.min()), float(gray.max())
        scaled = (gray - low) / (high - low) if high > low else np.zeros_like(gray)
        bits = imagehash.phash(Image.fromarray((scaled * 255).astype(np.uint8)), hash_size=HASH_SIZE).hash
        hashes[i] = np.packbits(bits.ravel()).view(">u8")[0]
    return hashes


def near_duplicate_pairs(hashes: np.ndarray, max_distance: int, *, chunk: int = 1024) -> list[tuple[int, int]]:
    """Pairs (i < j) whose hashes differ in at most ``max_distance`` bits (numpy, a block of rows at a time)."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    pairs = []
    for start in range(0, len(hashes), chunk):
        distances = np.bitwise_count(hashes[start : start + chunk, None] ^ hashes[None, :])
        rows, columns = np.nonzero(distances <= max_distance)
        pairs += [(int(r) + start, int(c)) for r, c in zip(rows, columns, strict=True) if r + start < c]
    return pairs


@dataclass
class PatientGroups:
    keys: list[str | None]  # per image, what split_dataset groups by (None: the image is its own patient)
    summary: dict


def group_patients(items: Sequence[DatasetItem], *, rule: PatientRule, images: np.ndarray | None = None):
    """Patients as split_dataset takes them, with near-duplicate images (by perceptual hash of the loaded
    ``images``) joined into one group so that copies of a picture never sit on both sides of a split."""
    keys = [item.patient_id or None for item in items]
    summary = {
        "patients": len({key for key in keys if key}),
        "patient_ids_from_dicom": sum(item.patient_origin == "dicom" for item in items),
        "unknown_patients": sum(key is None for key in keys),
        "duplicate_distance": rule.duplicate_distance,
    }
    if rule.duplicate_distance is None or images is None or len(items) < 2:
        return PatientGroups(keys=keys, summary=summary)
    base = [key or f"__image_{i}" for i, key in enumerate(keys)]
    parent = {key: key for key in base}

    def find(key):
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    close = near_duplicate_pairs(image_hashes(images), rule.duplicate_distance)
    pairs = [(i, j) for i, j in close if base[i] != base[j]]
    for i, j in pairs:
        first, second = sorted((find(base[i]), find(base[j])))
        parent[second] = first
    members: dict[str, set[str]] = {}
    for key in set(base):
        members.setdefault(find(key), set()).add(key)
    joined = {root for root, group in members.items() if len(group) > 1}
    labels: dict[str, set[str]] = {}
    for item, key in zip(items, base, strict=True):
        labels.setdefault(find(key), set()).add(item.label)
    summary |= {
        "near_duplicate_pairs": len(pairs),
        "duplicate_groups_joined": len(joined),
        "patients_in_joined_groups": sum(len(members[root]) for root in joined),
        "joined_groups_with_two_labels": sum(len(labels[root]) > 1 for root in joined),
    }
    grouped = [find(key) if find(key) in joined else original for key, original in zip(base, keys, strict=True)]
    return PatientGroups(keys=grouped, summary=summary)


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
    patients = {label: len(set(groups[y == label])) for label in sorted(set(y))}
    smallest = min(patients.values())
    if smallest < n_splits:
        if smallest < 2:
            fewest = min(patients, key=patients.get)
            raise DatasetError(
                f"Too few images to split: class {fewest} has too few patients ({smallest} left for this split); "
                "every class needs patients in all three splits (train, validation, test). Add images of more "
                "patients."
            )
        n_splits = smallest
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    keep, held_out = next(splitter.split(indices, y, groups))
    return indices[keep], indices[held_out]


def binarize(labels: list[str], class_names: list[str]) -> np.ndarray:
    """One-hot targets whose column j is ``class_names[j]``, in the order given (never re-sorted)."""
    column = {name: j for j, name in enumerate(class_names)}
    encoded = np.zeros((len(labels), len(class_names)), dtype=np.float32)
    encoded[np.arange(len(labels)), [column[label] for label in labels]] = 1.0
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
            if root is None:
                shown = item.path
            else:
                shown = item.path.relative_to(root) if item.path.is_relative_to(root) else item.shown()
            skipped.append({"path": str(shown), "reason": str(error)})
    size = spec.image_size
    stacked = np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.float32)
    return stacked.astype(np.float32, copy=False), loaded, skipped
