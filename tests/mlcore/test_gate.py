"""The input gate: DICOM header rules, colour, and the out-of-distribution distance (mlcore.core.gate)."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw
from sklearn.datasets import load_sample_image

from mlcore.core.gate import (
    IMAGE_CHECK_UNAVAILABLE,
    VIEW,
    FeatureGate,
    GateVerdict,
    _Detector,
    colour_refusal,
    colour_share,
    header_refusal,
    held_out_folds,
    joint_limits,
    screen,
    thumbnails,
    view_features,
)
from mlcore.core.imaging import DicomHeader
from mlcore.core.preprocessing import PreprocessingSpec, preprocess
from tests.mlcore.synthetic import ct_slice, lateral_like, synthetic_image

# One xdist process for the whole module, so its module-scoped fixtures (seconds each) are built once.
pytestmark = pytest.mark.xdist_group("gate-fits")

SPEC = PreprocessingSpec(image_size=96)


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (DicomHeader(modality="CT"), "modality is CT"),
        (DicomHeader(modality="MR"), "modality is MR"),
        (DicomHeader(modality="US"), "modality is US"),
        (DicomHeader(modality="OT"), "modality is OT"),
        (DicomHeader(modality="DX", view_text="LL"), "view position is LL"),
        (DicomHeader(modality="CR", view_text="RL"), "view position is RL"),
        (DicomHeader(modality="DX", view_text="LATERAL"), "view position is LATERAL"),
        (DicomHeader(modality="DX", view_text="LLD"), "view position is LLD"),
        (DicomHeader(modality="DX", body_part="HAND"), "body part examined is HAND"),
        (DicomHeader(modality="CR", body_part="SKULL"), "body part examined is SKULL"),
    ],
)
def test_the_header_refuses_what_is_not_a_frontal_chest_radiograph(header, words):
    assert words in header_refusal(header)


@pytest.mark.parametrize(
    "header",
    [
        DicomHeader(modality="DX", view_text="PA", body_part="CHEST"),
        DicomHeader(modality="CR", view_text="AP SUPINE", body_part="THORAX"),
        DicomHeader(modality="DX", body_part="Brustkorb"),
        DicomHeader(),  # nothing said: the image decides
    ],
)
def test_the_header_lets_frontal_chest_radiographs_and_silent_headers_through(header):
    assert header_refusal(header) == ""


def png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_colour_photograph_is_refused_and_a_grey_radiograph_saved_as_rgb_is_not():
    photo = load_sample_image("flower.jpg")
    gray = (synthetic_image("NORMAL", np.random.default_rng(0)) * 255).astype(np.uint8)
    rgb_gray = np.repeat(gray[..., np.newaxis], 3, axis=2)

    assert "in colour" in colour_refusal(colour_share(png(photo)))
    assert colour_share(png(rgb_gray)) == 0.0
    assert colour_refusal(colour_share(png(gray))) == ""


def ct_like(rng, size=96):
    """An axial slice: a bright round body on black, dark lungs inside, a bright spine."""
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.zeros((size, size)) + 0.02 * rng.standard_normal((size, size))
    image[((x - 0.5) / 0.42) ** 2 + ((y - 0.5) / 0.32) ** 2 < 1] = 0.6
    for centre in (0.33, 0.67):
        image[((x - centre) / 0.13) ** 2 + ((y - 0.48) / 0.18) ** 2 < 1] = 0.1
    image[((x - 0.5) / 0.05) ** 2 + ((y - 0.75) / 0.05) ** 2 < 1] = 1.0
    return np.clip(image, 0, 1)


def document(size=96):
    """A page of text, as a screenshot or a scanned letter would be."""
    page = Image.new("L", (size * 4, size * 4), 255)
    draw = ImageDraw.Draw(page)
    for line in range(12):
        draw.text((10, 10 + 30 * line), "Patient discharge summary, page 1 of 2", fill=0)
    return np.asarray(page.resize((size, size)), dtype=np.float32) / 255


def chest_inputs(n, seed):
    rng = np.random.default_rng(seed)
    labels = ["COVID" if i % 2 else "NORMAL" for i in range(n)]
    return np.stack([preprocess(synthetic_image(label, rng), SPEC) for label in labels]), np.array(labels)


@pytest.fixture(scope="module")
def appearance_gate():
    train, labels = chest_inputs(240, seed=1)
    validation, _ = chest_inputs(80, seed=2)
    return FeatureGate.fit(
        train={"appearance": thumbnails(train)},
        train_labels=labels,
        validation={"appearance": thumbnails(validation)},
        quantile=0.98,
    )


def verdicts(gate, grays):
    inputs = np.stack([preprocess(gray, SPEC) for gray in grays])
    return gate.verdicts({"appearance": thumbnails(inputs)})


def test_ct_slices_documents_and_photographs_are_refused_with_a_reason(appearance_gate):
    rng = np.random.default_rng(5)
    photo = np.asarray(Image.fromarray(load_sample_image("china.jpg")).convert("L"), dtype=np.float32) / 255
    outliers = [ct_like(rng) for _ in range(5)] + [document(), photo]

    results = verdicts(appearance_gate, outliers)

    assert [verdict.assessable for verdict in results] == [False] * len(outliers)
    assert "unlike the frontal chest X-rays" in results[0].reason
    assert results[0].figures["score"] > results[0].figures["limit"]


def test_new_chest_images_like_the_training_ones_pass(appearance_gate):
    inputs, _ = chest_inputs(60, seed=9)

    results = appearance_gate.verdicts({"appearance": thumbnails(inputs)})

    assert np.mean([verdict.assessable for verdict in results]) >= 0.9
    assert appearance_gate.validation_refused <= 0.05


def test_the_limits_are_one_quantile_of_each_check_the_lowest_at_which_together_they_refuse_the_stated_share():
    rng = np.random.default_rng(0)
    pooled = {"network": rng.normal(size=500), "appearance": rng.normal(size=500), VIEW: rng.uniform(size=500)}

    limits, p, refused = joint_limits(pooled, 0.02)

    union = np.any([pooled[name] > limits[name] for name in pooled], axis=0)
    assert refused == union.mean() <= 0.02
    assert limits == pytest.approx({name: np.quantile(scores, p) for name, scores in pooled.items()})
    lower = {name: np.quantile(scores, p - 0.002) for name, scores in pooled.items()}
    assert np.any([pooled[name] > lower[name] for name in pooled], axis=0).mean() > 0.02


def test_the_limits_are_set_on_out_of_fold_training_scores_pooled_with_validation():
    rng = np.random.default_rng(0)
    train = {"network": rng.normal(size=(200, 8)), "appearance": rng.normal(size=(200, 6))}
    validation = {"network": rng.normal(size=(100, 8)), "appearance": rng.normal(size=(100, 6))}
    new = {"network": rng.normal(size=(4000, 8)), "appearance": rng.normal(size=(4000, 6))}

    gate = FeatureGate.fit(
        train=train,
        train_labels=np.zeros(200),
        validation=validation,
        quantile=0.9,
        train_groups=np.repeat(np.arange(50), 4),
    )

    summary = gate.summary()
    assert (summary["calibration_images"], summary["folds"], gate.threshold) == (300, 5, 1.0)
    assert summary["calibration_refused"] <= 0.1
    assert "held-out frontal images (5-fold out-of-fold scores" in summary["method"]
    assert "refuse 10.0% of them" in summary["method"]
    assert np.mean([not verdict.assessable for verdict in gate.verdicts(new)]) == pytest.approx(0.1, abs=0.04)


def test_folds_hold_out_whole_patients_and_images_without_one_stand_alone():
    groups = ["p1", "p1", "p2", "p2", "p3", None, None, "p4", "p4"]

    folds = held_out_folds(groups, folds=3)

    assert sorted(np.concatenate(folds).tolist()) == list(range(len(groups)))
    for held in folds:
        kept = set(range(len(groups))) - set(held.tolist())
        assert not {groups[i] for i in held if groups[i]} & {groups[i] for i in kept if groups[i]}


def test_with_a_single_patient_in_training_the_limits_come_from_validation_alone():
    rng = np.random.default_rng(0)

    gate = FeatureGate.fit(
        train={"network": rng.normal(size=(40, 4))},
        train_labels=np.zeros(40),
        validation={"network": rng.normal(size=(30, 4))},
        quantile=0.9,
        train_groups=["one"] * 40,
    )

    assert (gate.calibration_images, gate.folds) == (30, 0)
    assert gate.validation_refused <= 0.1


def test_a_stored_gate_reads_back_identical(tmp_path, appearance_gate):
    path = tmp_path / "gate.npz"
    appearance_gate.save(path)
    loaded = FeatureGate.load(path)
    inputs, _ = chest_inputs(6, seed=3)
    features = {"appearance": thumbnails(inputs)}

    np.testing.assert_allclose(loaded.scores(features), appearance_gate.scores(features), rtol=1e-5)
    assert loaded.threshold == appearance_gate.threshold
    assert loaded.quantile == appearance_gate.quantile
    assert loaded.summary() == appearance_gate.summary()


def test_a_gate_file_from_before_the_cross_validated_limits_keeps_its_own_rule(tmp_path, appearance_gate):
    appearance_gate.save(tmp_path / "gate.npz")
    new_keys = ("calibration", "limit_quantile", "calibration_images", "calibration_refused", "folds")
    arrays = {key: value for key, value in np.load(tmp_path / "gate.npz").items() if key not in new_keys}
    np.savez(tmp_path / "old.npz", **arrays)

    old = FeatureGate.load(tmp_path / "old.npz")

    assert old.calibration == "validation"
    assert "quantile on the validation split" in old.summary()["method"]
    inputs, _ = chest_inputs(6, seed=3)
    assert [v.assessable for v in old.verdicts({"appearance": thumbnails(inputs)})] == [
        v.assessable for v in appearance_gate.verdicts({"appearance": thumbnails(inputs)})
    ]


def test_a_quantile_outside_the_sensible_range_is_refused():
    with pytest.raises(ValueError, match="quantile"):
        FeatureGate.fit(
            train={"a": np.zeros((4, 2))}, train_labels=np.zeros(4), validation={"a": np.zeros((2, 2))}, quantile=1.0
        )


def test_screen_puts_the_header_first_then_colour_then_the_image():
    passing = GateVerdict(True, figures={"score": 1.0})
    failing = GateVerdict(False, reason="unlike", figures={"score": 9.0})

    assert "modality is CT" in screen(header=DicomHeader(modality="CT"), colour=None, image_check=passing).reason
    assert "in colour" in screen(header=None, colour=0.5, image_check=passing).reason
    assert screen(header=None, colour=0.0, image_check=failing).reason == "unlike"
    assert screen(header=DicomHeader(modality="DX"), colour=None, image_check=passing).assessable


def test_without_stored_statistics_the_gate_says_so_and_still_checks_the_header():
    unchecked = screen(header=None, colour=0.0, image_check=None)
    refused = screen(header=DicomHeader(modality="CT"), colour=None, image_check=None)

    assert unchecked.assessable
    assert unchecked.figures["image_check"] == "unavailable"
    assert unchecked.figures["warning"] == IMAGE_CHECK_UNAVAILABLE
    assert not refused.assessable


def view_inputs(make, n, seed):
    rng = np.random.default_rng(seed)
    return np.stack([preprocess(make(rng), SPEC) for _ in range(n)])


def gate_inputs(images):
    return {"appearance": thumbnails(images), VIEW: view_features(images)}


@pytest.fixture(scope="module")
def view_gate():
    """A gate whose view check learned generated lateral views and CT slices beside the frontal training images."""
    train, labels = chest_inputs(160, seed=1)
    validation, _ = chest_inputs(80, seed=2)
    refuse = {
        "LATERAL": view_features(view_inputs(lateral_like, 12, seed=3)),
        "CT": view_features(view_inputs(ct_slice, 12, seed=4)),
    }
    return FeatureGate.fit(
        train=gate_inputs(train),
        train_labels=labels,
        validation=gate_inputs(validation),
        quantile=0.99,
        refuse=refuse,
    )


@pytest.mark.parametrize(("make", "words"), [(lateral_like, "looks like a lateral view"), (ct_slice, "CT slice")])
def test_the_view_check_refuses_new_laterals_and_ct_slices_saying_what_they_look_like(view_gate, make, words):
    results = view_gate.verdicts(gate_inputs(view_inputs(make, 10, seed=20)))

    assert [verdict.assessable for verdict in results] == [False] * 10
    assert words in results[0].reason
    assert results[0].figures["view_check"]["refused"] is True


def test_the_view_check_passes_frontal_images_and_its_limit_is_set_on_validation_frontals(view_gate):
    inputs, _ = chest_inputs(60, seed=9)

    results = view_gate.verdicts(gate_inputs(inputs))

    assert np.mean([verdict.assessable for verdict in results]) >= 0.9
    summary = view_gate.summary()["view_check"]
    assert summary["fitted"] is True
    assert summary["examples"] == {"FRONTAL": 160, "LATERAL": 12, "CT": 12}
    assert summary["validation_refused"] <= 0.02
    assert "held-out frontal images" in summary["method"]


def test_a_lateral_the_distance_alone_lets_through_is_refused_by_the_view_check():
    """The distance sees grey levels; a lateral view has a radiograph's, only its silhouette differs."""
    train, labels = chest_inputs(160, seed=1)
    validation, _ = chest_inputs(80, seed=2)
    laterals = view_inputs(lateral_like, 10, seed=20)
    features = {"network": train.mean(axis=(1, 2, 3))[:, None], VIEW: view_features(train)}
    refuse = {"LATERAL": view_features(view_inputs(lateral_like, 12, seed=3))}
    validation_features = {"network": validation.mean(axis=(1, 2, 3))[:, None], VIEW: view_features(validation)}
    lateral_features = {"network": train.mean(axis=(1, 2, 3))[:10, None], VIEW: view_features(laterals)}
    without = FeatureGate.fit(train=features, train_labels=labels, validation=validation_features, quantile=0.99)
    with_view = FeatureGate.fit(
        train=features, train_labels=labels, validation=validation_features, quantile=0.99, refuse=refuse
    )

    assert all(verdict.assessable for verdict in without.verdicts(lateral_features))
    assert not any(verdict.assessable for verdict in with_view.verdicts(lateral_features))


def test_without_examples_to_refuse_the_gate_has_no_view_check_and_says_so(appearance_gate):
    inputs, _ = chest_inputs(2, seed=3)

    verdict = appearance_gate.verdicts({"appearance": thumbnails(inputs)})[0]

    assert appearance_gate.view is None
    assert appearance_gate.summary()["view_check"] == {"fitted": False}
    assert verdict.figures["view_check"] == "not fitted"


def test_a_stored_view_check_reads_back_identical_and_an_older_gate_file_still_loads(tmp_path, view_gate):
    view_gate.save(tmp_path / "gate.npz")
    loaded = FeatureGate.load(tmp_path / "gate.npz")
    features = gate_inputs(view_inputs(lateral_like, 4, seed=5))

    np.testing.assert_allclose(loaded.view.scores(features[VIEW]), view_gate.view.scores(features[VIEW]), rtol=1e-5)
    assert loaded.summary()["view_check"] == view_gate.summary()["view_check"]
    arrays = dict(np.load(tmp_path / "gate.npz"))
    np.savez(tmp_path / "old.npz", **{key: value for key, value in arrays.items() if not key.startswith("view__")})
    assert FeatureGate.load(tmp_path / "old.npz").view is None


def test_the_distance_uses_the_inverse_of_the_shrunk_covariance():
    """The Cholesky inverse stands in for LedoitWolf's pseudo-inverse: the same matrix, to rounding."""
    from scipy import linalg
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(3)
    features = rng.normal(size=(60, 200)) + rng.normal(size=200)
    labels = np.array(["COVID", "NORMAL"] * 30)

    detector = _Detector.fit(features, labels)

    standard = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-6)
    centred = np.concatenate([standard[labels == c] - standard[labels == c].mean(axis=0) for c in ("COVID", "NORMAL")])
    expected = linalg.pinvh(LedoitWolf(assume_centered=True).fit(centred).covariance_)
    np.testing.assert_allclose(detector.precision, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
