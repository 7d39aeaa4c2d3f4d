"""The shortcut audit on generated images whose answers are known: brightness that gives the class away, or not."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.core.shortcuts import pixel_baseline, shortcut_audit, source_classifier, thumbnails


def test_thumbnails_are_area_means_of_the_gray_image():
    image = np.zeros((1, 64, 64, 3), np.float32)
    image[0, :32, :32] = 1.0  # the top-left quarter is white
    image[0, 32:, 32:, 0] = 0.9  # the bottom-right quarter is dim red: gray 0.3

    thumb = thumbnails(image, size=2)

    np.testing.assert_allclose(thumb.reshape(2, 2), [[1.0, 0.0], [0.0, 0.3]], atol=1e-6)
    assert thumbnails(np.zeros((5, 75, 75, 3)), chunk=2).shape == (5, 32 * 32)


def test_thumbnails_refuse_images_smaller_than_the_thumbnail():
    with pytest.raises(ValueError, match="smaller than 32x32"):
        thumbnails(np.zeros((1, 20, 20, 3)))


def chest_like(labels, *, rng, brighter_covid: bool, size: int = 48) -> np.ndarray:
    """Noise around a mid-grey; COVID images 0.15 brighter when ``brighter_covid``."""
    images = 0.5 + 0.1 * rng.standard_normal((len(labels), size, size, 3))
    if brighter_covid:
        images[np.asarray(labels) == "COVID"] += 0.15
    return images.astype(np.float32)


def run_audit(*, brighter_covid: bool, sources=None, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    labels = np.array(["COVID", "NORMAL", "OTHER_PNEUMONIA"] * 60)
    images = chest_like(labels, rng=rng, brighter_covid=brighter_covid)
    split = {"train": list(range(0, 120)), "validation": [], "test": list(range(120, 180))}
    return shortcut_audit(
        images=images,
        labels=labels,
        sources=sources if sources is not None else [None] * len(labels),
        patient_ids=None,
        split=split,
        positive_class="COVID",
        model_auc=0.97,
    )


def test_a_pixel_baseline_finds_a_class_that_differs_by_brightness():
    audit = run_audit(brighter_covid=True)

    baseline = audit["pixel_baseline"]
    assert baseline["auc"] > 0.98
    assert baseline["n_test"] == 60
    assert baseline["auc_interval"]["low"] > 0.9
    assert audit["model_auc"] == 0.97
    assert "32x32" in audit["method"]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_pixel_baseline_is_near_chance_when_the_classes_look_alike(seed):
    baseline = run_audit(brighter_covid=False, seed=seed)["pixel_baseline"]

    assert 0.3 < baseline["auc"] < 0.7
    assert baseline["auc_interval"]["low"] < 0.5 < baseline["auc_interval"]["high"]


def test_without_sources_the_source_classifier_says_why():
    audit = run_audit(brighter_covid=False)

    assert "Fewer than two sources" in audit["source_classifier"]["unavailable"]


def test_a_source_classifier_tells_sources_with_different_exposure_apart_far_above_chance():
    rng = np.random.default_rng(3)
    sources = np.array(["dark-site", "bright-site", "bright-site"] * 40)
    images = 0.4 + 0.1 * rng.standard_normal((120, 40, 40, 3))
    images[sources == "bright-site"] += 0.2

    result = source_classifier(
        x_train=thumbnails(images[:80]),
        sources_train=sources[:80],
        x_test=thumbnails(images[80:]),
        sources_test=sources[80:],
    )

    assert result["sources"] == ["bright-site", "dark-site"]
    assert result["accuracy"] > 0.95
    assert result["chance_accuracy"] == pytest.approx(2 / 3, abs=0.05)
    assert result["balanced_accuracy"] > 0.95
    assert result["chance_balanced_accuracy"] == 0.5


def test_a_source_classifier_is_near_chance_when_sources_look_alike_and_leaves_out_unseen_sources():
    rng = np.random.default_rng(4)
    sources = np.array(["a", "b"] * 60 + ["new"] * 10)
    images = 0.4 + 0.1 * rng.standard_normal((130, 40, 40, 3))
    test = np.r_[80:130]

    result = source_classifier(
        x_train=thumbnails(images[:80]),
        sources_train=sources[:80],
        x_test=thumbnails(images[test]),
        sources_test=sources[test],
    )

    assert result["n_test"] == 40
    assert result["unseen_sources_left_out"] == 10
    assert abs(result["balanced_accuracy"] - 0.5) < 0.2


def test_a_baseline_without_positives_in_the_test_split_gives_no_auc():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((30, 16))

    result = pixel_baseline(
        x_train=x[:20],
        labels_train=["COVID", "NORMAL"] * 10,
        x_test=x[20:],
        labels_test=["NORMAL"] * 10,
        positive_class="COVID",
    )

    assert result["auc"] is None
    assert result["accuracy"] is not None
