"""What reproduces a training run: the code's commit, the bytes of every file, the split, the libraries, the seeds.

Stored with each model version, so that a version can be retrained (or its data audited) later: two runs with
the same ``data.digest`` saw the same files in the same splits.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path

CODE_DIR = Path(__file__).resolve().parents[2]
# Distributions whose versions change what is trained or how images are decoded; alternatives in a tuple.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos"),
    "keras": ("keras",),
    "numpy": ("numpy",),
    "scikit-learn": ("scikit-learn",),
    "scipy": ("scipy",),
    "pillow": ("pillow",),
    "pydicom": ("pydicom",),
    "imagehash": ("ImageHash",),
    "h5py": ("h5py",),
    "django": ("Django",),
}
# Environment variables that change TensorFlow's arithmetic or threads, recorded when set.
ENVIRONMENT_VARIABLES = (
    "TF_DETERMINISTIC_OPS",
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "PYTHONHASHSEED",
)
CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """Streamed in 1 MiB chunks: the images were just decoded, so this reads them from the page cache."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def git_state(code_dir: Path = CODE_DIR) -> dict:
    """The commit checked out and whether tracked files differ from it; None where there is no git."""
    try:
        commit = _git(code_dir, "rev-parse", "HEAD").strip()
        changed = _git(code_dir, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError) as error:
        return {"commit": None, "dirty": None, "error": f"git unavailable: {error}"}
    return {
        "commit": commit,
        "dirty": bool(changed),
        "changed_files": [line for line in changed.splitlines() if line][:50],
    }


def _git(code_dir: Path, *arguments: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(code_dir), *arguments], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


def library_versions(libraries: Mapping[str, Sequence[str]] = LIBRARIES) -> dict[str, str | None]:
    """Installed versions by package metadata (nothing is imported); None for one not installed."""
    versions = {}
    for name, distributions in libraries.items():
        versions[name] = None
        for distribution in distributions:
            try:
                versions[name] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def relative_name(path: Path, roots: Sequence[Path]) -> str:
    """The path below its dataset folder; with several folders, prefixed by that folder's name."""
    resolved = Path(path).resolve()
    for root in roots:
        try:
            below = resolved.relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            continue
        return below if len(roots) == 1 else f"{Path(root).name}/{below}"
    return resolved.as_posix()


def split_membership(paths: Sequence[Path], split: Mapping[str, Iterable[int]], roots: Sequence[Path]) -> dict:
    """Every file of every split as ``[relative path, sha256]``, sorted by path; each file hashed once."""
    hashes: dict[int, str] = {}
    members = {}
    for name, indices in split.items():
        rows = []
        for index in indices:
            if index not in hashes:
                hashes[index] = file_sha256(paths[index])
            rows.append([relative_name(paths[index], roots), hashes[index]])
        members[name] = sorted(rows)
    return members


def membership_digest(members: Mapping[str, Sequence[Sequence[str]]]) -> str:
    """One sha256 over the split names, paths and file hashes: equal digests, equal data and splits."""
    digest = hashlib.sha256()
    for name in sorted(members):
        for path, file_hash in members[name]:
            digest.update(f"{name}\t{path}\t{file_hash}\n".encode())
    return digest.hexdigest()


MEMBERSHIP_COLUMNS = ("split", "path", "sha256")
SPLIT_ORDER = ("train", "validation", "test")


def stored_membership(provenance: Mapping | None) -> dict[str, list]:
    """The split membership a version's stored record holds ({} for a version from before it was stored)."""
    return dict(((provenance or {}).get("data") or {}).get("splits") or {})


def membership_rows(members: Mapping[str, Sequence[Sequence[str]]]) -> Iterator[tuple[str, str, str]]:
    """One (split, path, sha256) per file: train, validation and test first, any other split after them."""
    names = [name for name in SPLIT_ORDER if name in members] + sorted(set(members) - set(SPLIT_ORDER))
    for name in names:
        for path, file_hash in members[name]:
            yield name, path, file_hash


def run_provenance(
    *,
    paths: Sequence[Path],
    split: Mapping[str, Iterable[int]],
    roots: Sequence[Path],
    seeds: Mapping[str, int],
    code_dir: Path = CODE_DIR,
) -> dict:
    """The whole record for one run; ``paths[i]`` is the file of image ``i`` in ``split``."""
    members = split_membership(paths, split, roots)
    return {
        "code": git_state(code_dir),
        "libraries": library_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "environment_variables": {name: os.environ[name] for name in ENVIRONMENT_VARIABLES if name in os.environ},
        "seeds": dict(seeds),
        "data": {
            "roots": [str(root) for root in roots],
            "files": sum(len(rows) for rows in members.values()),
            "digest": membership_digest(members),
            "splits": members,
        },
    }
