"""What reproduces a version: the commit, the sha256 of every file per split, the libraries and the seeds."""

import hashlib
import subprocess

import numpy as np
import pytest

from mlcore.core import provenance
from mlcore.core.provenance import (
    file_sha256,
    git_state,
    library_versions,
    membership_digest,
    membership_rows,
    run_provenance,
    split_membership,
    stored_membership,
)


def git(folder, *arguments):
    subprocess.run(["git", "-C", str(folder), *arguments], check=True, capture_output=True)


@pytest.fixture
def repository(tmp_path):
    folder = tmp_path / "code"
    folder.mkdir()
    git(folder, "init", "-q")
    (folder / "train.py").write_text("print('train')\n")
    git(folder, "add", "train.py")
    git(folder, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "first")
    return folder


@pytest.fixture
def files(tmp_path):
    root = tmp_path / "data"
    paths = []
    for index, folder in enumerate(["COVID", "COVID", "NORMAL", "NORMAL"]):
        (root / folder).mkdir(parents=True, exist_ok=True)
        path = root / folder / f"image_{index}.png"
        path.write_bytes(bytes([index]) * (100 + index))
        paths.append(path)
    return root, paths


def test_a_file_is_hashed_in_chunks_to_the_sha256_of_its_bytes(tmp_path):
    path = tmp_path / "large.dcm"
    content = np.random.default_rng(0).bytes(3 * provenance.CHUNK + 17)
    path.write_bytes(content)

    assert file_sha256(path) == hashlib.sha256(content).hexdigest()


def test_the_commit_is_recorded_and_a_changed_tracked_file_marks_the_tree_dirty(repository):
    head = subprocess.run(["git", "-C", str(repository), "rev-parse", "HEAD"], capture_output=True, text=True)

    clean = git_state(repository)
    (repository / "notes.txt").write_text("untracked files do not count\n")
    still_clean = git_state(repository)
    (repository / "train.py").write_text("print('changed')\n")
    dirty = git_state(repository)

    assert clean["commit"] == head.stdout.strip()
    assert clean["dirty"] is False
    assert still_clean["dirty"] is False
    assert dirty["dirty"] is True
    assert dirty["changed_files"] == [" M train.py"]


def test_a_folder_outside_git_records_no_commit_instead_of_failing(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))

    state = git_state(tmp_path)

    assert state["commit"] is None
    assert state["dirty"] is None
    assert "git unavailable" in state["error"]


def test_library_versions_come_from_package_metadata():
    versions = library_versions()

    assert versions["numpy"] == np.__version__
    assert {"tensorflow", "keras", "scikit-learn", "pillow", "pydicom", "django"} <= set(versions)
    assert library_versions({"missing": ("no-such-distribution-here",)}) == {"missing": None}


def test_every_file_of_every_split_is_listed_with_its_hash_below_its_folder(files):
    root, paths = files

    members = split_membership(paths, {"train": [3, 0], "validation": [1], "test": [2]}, [root])

    assert members["train"] == [
        ["COVID/image_0.png", file_sha256(paths[0])],
        ["NORMAL/image_3.png", file_sha256(paths[3])],
    ]
    assert members["validation"] == [["COVID/image_1.png", file_sha256(paths[1])]]
    assert members["test"] == [["NORMAL/image_2.png", file_sha256(paths[2])]]


def test_with_several_folders_a_path_is_named_with_its_folder(files, tmp_path):
    root, paths = files
    other = tmp_path / "other"
    (other / "NORMAL").mkdir(parents=True)
    extra = other / "NORMAL" / "x.png"
    extra.write_bytes(b"x")

    members = split_membership([paths[0], extra], {"train": [0, 1]}, [root, other])

    assert [path for path, _ in members["train"]] == ["data/COVID/image_0.png", "other/NORMAL/x.png"]


def test_membership_rows_list_train_validation_and_test_first_whatever_order_they_were_stored_in():
    members = {"test": [["c.png", "cc"]], "holdout": [["d.png", "dd"]], "train": [["a.png", "aa"], ["b.png", "bb"]]}

    assert list(membership_rows(members)) == [
        ("train", "a.png", "aa"),
        ("train", "b.png", "bb"),
        ("test", "c.png", "cc"),
        ("holdout", "d.png", "dd"),
    ]


def test_a_record_from_before_membership_was_stored_has_none():
    assert stored_membership({}) == {}
    assert stored_membership(None) == {}
    assert stored_membership({"data": {"files": 3}}) == {}
    assert stored_membership({"data": {"splits": {"train": [["a.png", "aa"]]}}}) == {"train": [["a.png", "aa"]]}


def test_the_digest_changes_with_a_files_bytes_or_its_split_and_nothing_else(files):
    root, paths = files
    split = {"train": [0, 1], "validation": [2], "test": [3]}
    first = membership_digest(split_membership(paths, split, [root]))
    again = membership_digest(split_membership(paths, split, [root]))
    moved = membership_digest(split_membership(paths, {"train": [0], "validation": [1, 2], "test": [3]}, [root]))
    paths[0].write_bytes(b"one changed pixel")
    changed = membership_digest(split_membership(paths, split, [root]))

    assert first == again
    assert len({first, moved, changed}) == 3


def test_a_run_records_code_libraries_seeds_and_data(files, monkeypatch):
    root, paths = files
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")

    record = run_provenance(
        paths=paths, split={"train": [0, 2], "validation": [1], "test": [3]}, roots=[root], seeds={"training": 5}
    )

    assert record["seeds"] == {"training": 5}
    assert record["data"]["files"] == 4
    assert record["data"]["roots"] == [str(root)]
    assert record["data"]["digest"] == membership_digest(record["data"]["splits"])
    assert record["libraries"]["numpy"] == np.__version__
    assert record["environment_variables"]["TF_NUM_INTRAOP_THREADS"] == "1"
    assert len(record["code"]["commit"]) == 40  # this checkout is a git repository


@pytest.mark.training
@pytest.mark.xdist_group("stored-run")
def test_a_trained_version_stores_provenance_and_beats_each_epoch(trained, stored_run):
    from mlcore.models import ModelVersion

    version = ModelVersion.objects.get(name="tiny")
    data = stored_run.data

    record = version.provenance
    assert stored_run.epoch_beats == [0, 1]  # the service's heartbeat hook, called after every epoch
    assert (version.heartbeat_at - version.created_at).total_seconds() > 1  # beaten during the run, kept
    assert record["seeds"] == {"training": 42, "split": 42}
    assert record["data"]["files"] == version.dataset_summary["images"] == 48
    splits = record["data"]["splits"]
    assert {name: len(rows) for name, rows in splits.items()} == version.dataset_summary["counts"]
    for path, file_hash in splits["test"]:
        assert file_hash == file_sha256(data / path)
    assert record["code"]["commit"]
