"""Finding a labelled dataset on disk, splitting it by class and patient, and loading its images."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlcore.core.dataset import (
    DEFAULT_CLASS_ALIASES,
    DatasetError,
    DatasetItem,
    binarize,
    discover_dataset,
    load_images,
    parse_class_aliases,
    split_dataset,
)
from mlcore.core.preprocessing import PreprocessingSpec
from tests.mlcore.synthetic import write_dataset

SPEC = PreprocessingSpec(image_size=75)


# --- discover_dataset -----------------------------------------------------------------------------


def test_discovers_default_covid_and_normal_folders(tmp_path):
    write_dataset(tmp_path, per_class=5, patients_per_class=3)
    dataset = discover_dataset(tmp_path)
    assert dataset.root == tmp_path
    assert dataset.class_names == ["COVID", "NORMAL"]
    assert dataset.counts() == {"COVID": 5, "NORMAL": 5}
    assert len(dataset.items) == 10
    assert dataset.skipped == []
    for item in dataset.items:
        assert item.path.parent.name == item.label
        assert item.path.suffix == ".png"
    # manifest.csv at the root is not an image
    assert all(item.path.name != "manifest.csv" for item in dataset.items)


def test_alias_folder_names_are_matched_case_insensitively(tmp_path):
    write_dataset(tmp_path, per_class=4, patients_per_class=2, folders={"COVID": "Chest_COVID", "NORMAL": "Non-COVID"})
    dataset = discover_dataset(tmp_path)
    assert dataset.counts() == {"COVID": 4, "NORMAL": 4}
    for item in dataset.items:
        expected = "COVID" if item.path.parent.name == "Chest_COVID" else "NORMAL"
        assert item.label == expected
    # the manifest still applies to the renamed folders
    assert all(item.patient_id for item in dataset.items)


@pytest.mark.parametrize(("covid", "normal"), [("covid", "normal"), ("Covid-19", "NEGATIVE"), ("COVID19", "nonCOVID")])
def test_other_spellings_of_the_default_classes(tmp_path, covid, normal):
    write_dataset(
        tmp_path,
        per_class=2,
        patients_per_class=2,
        folders={"COVID": covid, "NORMAL": normal},
        manifest=False,
    )
    dataset = discover_dataset(tmp_path)
    assert dataset.counts() == {"COVID": 2, "NORMAL": 2}
    labels = {item.path.parent.name: item.label for item in dataset.items}
    assert labels == {covid: "COVID", normal: "NORMAL"}


def test_custom_class_mapping(tmp_path):
    write_dataset(tmp_path, per_class=3, patients_per_class=3, folders={"COVID": "Positives", "NORMAL": "Negatives"})
    with pytest.raises(DatasetError, match=r"Unknown class folder '(Negatives|Positives)'"):
        discover_dataset(tmp_path)  # not a default name
    aliases = parse_class_aliases("COVID=Positives;NORMAL=Negatives")
    assert set(aliases) == {"COVID", "NORMAL"}
    assert "Positives" in aliases["COVID"]
    assert "Negatives" in aliases["NORMAL"]
    dataset = discover_dataset(tmp_path, class_aliases=aliases)
    assert dataset.counts() == {"COVID": 3, "NORMAL": 3}
    assert {item.path.parent.name for item in dataset.items if item.label == "COVID"} == {"Positives"}
    assert {item.path.parent.name for item in dataset.items if item.label == "NORMAL"} == {"Negatives"}


def test_parse_class_aliases_forms():
    assert parse_class_aliases(None) == DEFAULT_CLASS_ALIASES
    assert parse_class_aliases("") == DEFAULT_CLASS_ALIASES
    aliases = parse_class_aliases(" covid = Chest_COVID, covid ; NORMAL=Non-COVID ;")
    assert set(aliases) == {"COVID", "NORMAL"}
    assert {"Chest_COVID", "covid"} <= set(aliases["COVID"])
    with pytest.raises(DatasetError, match="CLASS=folder"):
        parse_class_aliases("COVID")
    with pytest.raises(DatasetError, match="at least two"):
        parse_class_aliases("COVID=a")
    assert set(parse_class_aliases("A=a;B=b;C=c")) == {"A", "B", "C"}


def test_unknown_class_folder_is_named_in_the_error(tmp_path):
    write_dataset(tmp_path, per_class=2, patients_per_class=2)
    (tmp_path / "Lung_Opacity").mkdir()
    with pytest.raises(DatasetError, match="Lung_Opacity"):
        discover_dataset(tmp_path)


def test_hidden_folders_are_ignored(tmp_path):
    write_dataset(tmp_path, per_class=2, patients_per_class=2)
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "junk.png").write_bytes(b"junk")
    assert len(discover_dataset(tmp_path).items) == 4


def test_missing_class_folder(tmp_path):
    write_dataset(tmp_path, per_class=2, patients_per_class=2, folders={"COVID": "COVID"}, manifest=False)
    with pytest.raises(DatasetError, match="NORMAL"):
        discover_dataset(tmp_path)


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        discover_dataset(tmp_path / "nowhere")


def test_two_folders_for_one_class(tmp_path):
    write_dataset(tmp_path, per_class=2, patients_per_class=2, manifest=False)
    (tmp_path / "positive").mkdir()
    with pytest.raises(DatasetError, match="both mean COVID"):
        discover_dataset(tmp_path)


def test_class_folder_without_files(tmp_path):
    write_dataset(tmp_path, per_class=2, patients_per_class=2, folders={"COVID": "COVID"}, manifest=False)
    (tmp_path / "NORMAL").mkdir()
    (tmp_path / "NORMAL" / ".DS_Store").write_bytes(b"hidden")
    with pytest.raises(DatasetError, match="has no images") as error:
        discover_dataset(tmp_path)
    assert "NORMAL" in str(error.value)


def test_manifest_patient_and_source_are_attached(tmp_path):
    write_dataset(tmp_path, per_class=6, patients_per_class=3, sources=("site-a", "site-b"))
    dataset = discover_dataset(tmp_path)
    by_name = {item.path.name: item for item in dataset.items}
    # write_dataset: image n of a class belongs to patient <L><n % patients> from source n % 2
    assert by_name["covid_000.png"].patient_id == "C000"
    assert by_name["covid_004.png"].patient_id == "C001"
    assert by_name["normal_005.png"].patient_id == "N002"
    assert by_name["covid_000.png"].source == "site-a"
    assert by_name["normal_003.png"].source == "site-b"
    assert {item.patient_id for item in dataset.items if item.label == "COVID"} == {"C000", "C001", "C002"}


def test_without_manifest_patient_and_source_are_none(tmp_path):
    write_dataset(tmp_path, per_class=2, patients_per_class=2, manifest=False)
    dataset = discover_dataset(tmp_path)
    assert all(item.patient_id is None and item.source is None for item in dataset.items)


def test_manifest_label_that_contradicts_the_folder_is_skipped(tmp_path):
    write_dataset(tmp_path, per_class=3, patients_per_class=3)
    manifest = tmp_path / "manifest.csv"
    text = manifest.read_text()
    manifest.write_text(text.replace("COVID/covid_001.png,COVID", "COVID/covid_001.png,NORMAL"))
    dataset = discover_dataset(tmp_path)
    assert dataset.counts() == {"COVID": 2, "NORMAL": 3}
    assert [entry["path"] for entry in dataset.skipped] == ["COVID/covid_001.png"]


def test_load_images_skips_a_corrupt_file(tmp_path):
    write_dataset(tmp_path, per_class=3, patients_per_class=3)
    (tmp_path / "COVID" / "x.png").write_bytes(b"\x00garbage, not an image" * 10)
    dataset = discover_dataset(tmp_path)
    assert len(dataset.items) == 7  # discovery does not decode

    batch, loaded, skipped = load_images(dataset.items, SPEC, root=dataset.root)
    assert batch.shape == (6, 75, 75, 3)
    assert batch.dtype == np.float32
    assert len(loaded) == 6
    assert all(item.path.name != "x.png" for item in loaded)
    assert len(skipped) == 1
    assert skipped[0]["path"] == "COVID/x.png"
    assert "Not a PNG" in skipped[0]["reason"]


def test_load_images_skips_missing_and_truncated_files(tmp_path):
    write_dataset(tmp_path, per_class=2, patients_per_class=2)
    dataset = discover_dataset(tmp_path)
    first, second = dataset.items[0].path, dataset.items[1].path
    second.write_bytes(second.read_bytes()[:60])  # truncated PNG
    first.unlink()  # vanished after discovery
    batch, loaded, skipped = load_images(dataset.items, SPEC)
    assert len(batch) == len(loaded) == 2
    assert {entry["path"] for entry in skipped} == {str(first), str(second)}
    assert all(entry["reason"] for entry in skipped)


def test_load_images_with_nothing_loadable_returns_an_empty_batch(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"hello" * 100)
    batch, loaded, skipped = load_images([DatasetItem(path=bad, label="COVID")], SPEC)
    assert batch.shape == (0, 75, 75, 3)
    assert batch.dtype == np.float32
    assert loaded == []
    assert len(skipped) == 1


# --- split_dataset --------------------------------------------------------------------------------


@st.composite
def labelled_patients(draw):
    """Two classes of >= 12 images; patients of 1-4 images share one label; some images have no id."""
    labels: list[str] = []
    patient_ids: list[str | None] = []
    for class_name in ("COVID", "NORMAL"):
        target = draw(st.integers(min_value=12, max_value=40))
        count = patient = 0
        while count < target:
            if draw(st.booleans()) and draw(st.booleans()):  # about a quarter without a patient id
                labels.append(class_name)
                patient_ids.append(None)
                count += 1
            else:
                size = draw(st.integers(min_value=1, max_value=4))
                labels.extend([class_name] * size)
                patient_ids.extend([f"{class_name}-{patient}"] * size)
                count += size
                patient += 1
    order = draw(st.permutations(range(len(labels))))
    return [labels[i] for i in order], [patient_ids[i] for i in order]


@settings(max_examples=40, deadline=None)
@given(data=labelled_patients(), seed=st.integers(min_value=0, max_value=10_000))
def test_split_is_a_stratified_patient_grouped_partition(data, seed):
    labels, patient_ids = data
    split = split_dataset(labels, patient_ids, seed=seed)
    parts = split.as_dict()
    assert set(parts) == {"train", "validation", "test"}

    # disjoint, and together every index exactly once
    everything = split.train + split.validation + split.test
    assert sorted(everything) == list(range(len(labels)))
    assert len(set(everything)) == len(everything)

    # no patient in two splits
    patients_in = {
        name: {patient_ids[i] for i in indices if patient_ids[i] is not None} for name, indices in parts.items()
    }
    assert not patients_in["train"] & patients_in["validation"]
    assert not patients_in["train"] & patients_in["test"]
    assert not patients_in["validation"] & patients_in["test"]

    # both classes in every split
    for indices in parts.values():
        assert {labels[i] for i in indices} == {"COVID", "NORMAL"}

    # reproducible by seed
    again = split_dataset(labels, patient_ids, seed=seed)
    assert again.as_dict() == parts


def test_split_fractions_are_roughly_respected():
    labels = ["COVID"] * 100 + ["NORMAL"] * 100
    patient_ids = [f"p{i}" for i in range(200)]
    split = split_dataset(labels, patient_ids, validation_fraction=0.15, test_fraction=0.15, seed=1)
    assert 20 <= len(split.test) <= 40
    assert 20 <= len(split.validation) <= 40
    assert len(split.train) >= 120


def test_different_seeds_give_different_splits():
    labels = ["COVID"] * 40 + ["NORMAL"] * 40
    patient_ids = [f"p{i // 2}" for i in range(80)]
    first = split_dataset(labels, patient_ids, seed=1).as_dict()
    assert split_dataset(labels, patient_ids, seed=1).as_dict() == first
    others = [split_dataset(labels, patient_ids, seed=seed).as_dict() for seed in (2, 3, 4)]
    assert any(other != first for other in others)


def test_images_without_patient_id_count_as_their_own_patient():
    labels = ["COVID"] * 15 + ["NORMAL"] * 15
    split = split_dataset(labels, [None] * 30, seed=0)
    assert sorted(split.train + split.validation + split.test) == list(range(30))
    assert all(len(part) >= 2 for part in split.as_dict().values())


def test_too_few_images_to_split():
    labels = ["COVID", "COVID", "NORMAL", "NORMAL"]
    with pytest.raises(DatasetError, match="Too few images"):
        split_dataset(labels, [None, None, None, None])


def test_one_patient_per_class_is_too_few():
    labels = ["COVID"] * 10 + ["NORMAL"] * 10
    patient_ids = ["a"] * 10 + ["b"] * 10
    with pytest.raises(DatasetError, match="Too few images"):
        split_dataset(labels, patient_ids)


@pytest.mark.parametrize(("validation", "test"), [(0, 0.15), (0.15, 0), (0.5, 0.15), (0.15, 0.6)])
def test_split_fractions_must_lie_between_zero_and_half(validation, test):
    labels = ["COVID"] * 20 + ["NORMAL"] * 20
    with pytest.raises(DatasetError, match=r"between 0 and 0\.5"):
        split_dataset(labels, [None] * 40, validation_fraction=validation, test_fraction=test)


# --- binarize -------------------------------------------------------------------------------------


def test_binarize_gives_one_hot_columns_in_class_names_order():
    class_names = ["COVID", "NORMAL"]
    encoded = binarize(["COVID", "NORMAL", "NORMAL", "COVID"], class_names)
    assert encoded.dtype == np.float32
    assert encoded.shape == (4, 2)
    np.testing.assert_array_equal(encoded, [[1, 0], [0, 1], [0, 1], [1, 0]])
    assert np.all(encoded.sum(axis=1) == 1)
    # column j is class_names[j]
    for row, label in zip(encoded, ["COVID", "NORMAL", "NORMAL", "COVID"], strict=True):
        assert class_names[int(row.argmax())] == label


def test_binarize_with_other_class_names():
    encoded = binarize(["b", "a", "b"], ["a", "b"])
    np.testing.assert_array_equal(encoded, [[0, 1], [1, 0], [0, 1]])


def test_binarize_of_a_single_class_batch_still_has_two_columns():
    np.testing.assert_array_equal(binarize(["NORMAL", "NORMAL"], ["COVID", "NORMAL"]), [[0, 1], [0, 1]])
    np.testing.assert_array_equal(binarize(["COVID"], ["COVID", "NORMAL"]), [[1, 0]])
