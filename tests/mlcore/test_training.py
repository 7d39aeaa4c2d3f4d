"""The training recipe: augmentation draws, seeding, the positive class's own AUC, sample weights, schedules."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mlcore.core import pipeline, training
from mlcore.core.dataset import parse_class_aliases
from mlcore.core.model import ModelConfig, NetworkParts
from mlcore.core.preprocessing import PreprocessingSpec
from mlcore.core.training import (
    AugmentationConfig,
    TrainingConfig,
    augmentation_layers,
    positive_class_auc,
    random_gamma_layer,
    sample_weights,
)
from tests.mlcore.synthetic import write_dataset

keras = pytest.importorskip("keras")

UNIT = {"black": 0.0, "value_range": (0.0, 1.0)}


def _probe(n: int, size: int = 16) -> np.ndarray:
    """Identical images with no symmetry, so every flip is recognisable."""
    image = np.arange(size * size, dtype=np.float32).reshape(size, size) / (size * size)
    return np.repeat(np.repeat(image[None, :, :, None], 3, axis=3), n, axis=0)


def test_horizontal_flip_mirrors_images_and_vertical_flip_is_off_by_default():
    probes = _probe(64)
    augment = augmentation_layers(AugmentationConfig(rotation_degrees=0), seed=3, **UNIT)

    out = np.asarray(augment(probes, training=True))

    mirrored = [np.array_equal(image, probes[0, :, ::-1]) for image in out]
    untouched = [np.array_equal(image, probes[0]) for image in out]
    assert 10 < sum(mirrored) < 54
    assert sum(mirrored) + sum(untouched) == len(out)  # never upside down


def test_both_flips_draw_each_axis_on_its_own():
    """Keras' RandomFlip("horizontal_and_vertical") draws once for both axes: only 180-degree turns."""
    probes = _probe(64)
    augment = augmentation_layers(AugmentationConfig(vertical_flip=True, rotation_degrees=0), seed=3, **UNIT)

    out = np.asarray(augment(probes, training=True))

    assert any(np.array_equal(image, probes[0, :, ::-1]) for image in out)  # left-right only
    assert any(np.array_equal(image, probes[0, ::-1, :]) for image in out)  # upside down only


def test_each_augmentation_layer_draws_independently():
    augment = augmentation_layers(AugmentationConfig(rotation_degrees=15), seed=42, **UNIT)
    flip, rotation = augment.layers
    batch = np.zeros((512, 8, 8, 3), np.float32)

    flipped = np.asarray(flip.get_random_transformation(batch, training=True)["flips"]).reshape(-1)
    negative = np.asarray(rotation.get_random_transformation(batch, training=True)["angle"]) < 0

    assert abs(np.corrcoef(flipped, negative)[0, 1]) < 0.2  # one shared seed gives exactly 1


def test_new_augmentations_keep_shape_and_are_seeded():
    config = AugmentationConfig(zoom=0.1, shift=0.1, contrast=0.2, gamma=0.3, blur_sigma=1.0, noise=0.02)
    images = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)

    first = np.asarray(augmentation_layers(config, seed=7, **UNIT)(images, training=True))
    again = np.asarray(augmentation_layers(config, seed=7, **UNIT)(images, training=True))
    other = np.asarray(augmentation_layers(config, seed=8, **UNIT)(images, training=True))

    assert [layer.name for layer in augmentation_layers(config, seed=7, **UNIT).layers] == [
        "flip_horizontal",
        "rotation",
        "zoom",
        "shift",
        "contrast",
        "gamma",
        "blur",
        "noise",
    ]
    assert first.shape == images.shape
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_gamma_keeps_black_and_white_and_the_order_of_grey_levels():
    layer = random_gamma_layer(0.5, value_range=(-1.0, 1.0), seed=1)
    ramp = np.linspace(-1, 1, 11, dtype=np.float32)
    images = np.broadcast_to(ramp[None, None, :, None], (16, 1, 11, 1)).copy()

    out = np.asarray(layer(images, training=True))

    np.testing.assert_allclose(out[..., 0, 0], -1.0, atol=1e-6)
    np.testing.assert_allclose(out[..., -1, 0], 1.0, atol=1e-6)
    assert (np.diff(out[..., 0], axis=-1) > 0).all()
    assert len({round(float(v), 4) for v in out[:, 0, 5, 0]}) > 1  # a gamma per image
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)


def test_positive_class_auc_is_its_own_columns_not_the_pooled_one():
    rng = np.random.default_rng(0)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 300)]
    p = rng.dirichlet([1, 1, 1], 300).astype(np.float32)
    p[:, 1] = np.where(y[:, 1] == 1, 0.9, 0.05)  # another class separates perfectly: pooled AUC looks good
    p /= p.sum(axis=1, keepdims=True)
    pooled = keras.metrics.AUC()
    pooled.update_state(y, p)
    own = positive_class_auc(0)
    own.update_state(y, p)

    expected = roc_auc_score(y[:, 0], p[:, 0])
    assert float(own.result()) == pytest.approx(expected, abs=0.01)
    assert abs(float(pooled.result()) - expected) > 0.1


def test_class_balance_gives_each_class_the_same_total_weight():
    y = np.eye(3)[[0] * 6 + [1] * 3 + [2]]

    weights = sample_weights(y, balance="class")

    totals = [weights[y[:, c] == 1].sum() for c in range(3)]
    np.testing.assert_allclose(totals, totals[0], rtol=1e-6)
    assert weights.mean() == pytest.approx(1.0)
    np.testing.assert_array_equal(sample_weights(y, balance="none"), 1.0)


def test_source_balance_gives_each_source_and_class_cell_the_same_weight_within_a_cap():
    y = np.eye(2)[[0] * 8 + [0] * 2 + [1] * 10]
    sources = ["a"] * 8 + ["b"] * 2 + ["a"] * 10

    weights = sample_weights(y, balance="source", sources=sources)

    cell_totals = [weights[:8].sum(), weights[8:10].sum(), weights[10:].sum()]
    np.testing.assert_allclose(cell_totals, cell_totals[0], rtol=1e-6)
    many = np.eye(2)[[0] * 200 + [0] + [1] * 200]
    capped = sample_weights(many, balance="source", sources=["a"] * 200 + ["b"] + ["a"] * 200)
    assert capped.max() == pytest.approx(training.SOURCE_WEIGHT_CAP * np.median(capped))
    with pytest.raises(ValueError, match="Unknown balance"):
        sample_weights(y, balance="patients")


def test_cosine_schedule_warms_up_linearly_then_decays_to_zero():
    config = TrainingConfig(optimizer="adamw", schedule="cosine", warmup_epochs=2, weight_decay=1e-3)

    optimizer = training._optimizer(config, 1e-3, steps_per_epoch=10, epochs=12)
    schedule = optimizer._learning_rate

    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert optimizer.weight_decay == pytest.approx(1e-3)
    assert float(schedule(0)) < float(schedule(10)) < float(schedule(20)) == pytest.approx(1e-3)
    assert float(schedule(120)) == pytest.approx(0.0, abs=1e-9)
    constant = training._optimizer(TrainingConfig(), 1e-3, steps_per_epoch=10, epochs=12)
    assert isinstance(constant, keras.optimizers.Adam)
    assert float(constant.learning_rate) == pytest.approx(1e-3)


def _tiny_parts(classes: int = 3) -> NetworkParts:
    training.seed_everything(0)
    inputs = keras.Input((16, 16, 3))
    outputs = keras.layers.Dense(classes, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, outputs)
    return NetworkParts(model=model, base=None, head=None)


def _train_tiny(config: TrainingConfig):
    rng = np.random.default_rng(0)
    x = rng.random((24, 16, 16, 3), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(24) % 3]
    parts = _tiny_parts()
    outcome = training.train_network(
        parts,
        x_train=x,
        y_train=y,
        x_val=x[:12],
        y_val=y[:12],
        config=config,
        pretrained=False,
        positive_index=2,
        sources=["a", "b"] * 12,
        verbose=0,
        log=lambda _: None,
        **UNIT,
    )
    return outcome, parts


def test_the_whole_recipe_trains_reproducibly():
    config = TrainingConfig(
        epochs=2,
        batch_size=8,
        min_epochs=0,
        optimizer="adamw",
        schedule="cosine",
        warmup_epochs=1,
        label_smoothing=0.1,
        balance="source",
        augmentation=AugmentationConfig(zoom=0.1, shift=0.05, gamma=0.2, blur_sigma=0.5, noise=0.01),
    )

    first, _ = _train_tiny(config)
    again, _ = _train_tiny(config)

    assert first.history["loss"] == again.history["loss"]
    assert len(first.history["val_auc"]) == 2
    assert first.best_epoch is not None


def test_the_training_step_is_traced_once(monkeypatch):
    """Variables made inside the first step (optimizer moments, a metric named by a string) make TensorFlow
    trace the step twice: for InceptionV3 that is ~10 s of every training run."""
    traces = []
    real_step = keras.Model.train_step

    def counted(self, data):
        traces.append(1)
        return real_step(self, data)

    monkeypatch.setattr(keras.Model, "train_step", counted)

    outcome, _ = _train_tiny(TrainingConfig(epochs=2, batch_size=8, augmentation=AugmentationConfig(False, False, 0)))

    assert len(outcome.history["loss"]) == 2
    assert len(traces) == 1
    assert set(outcome.history) >= {"accuracy", "auc", "val_accuracy", "val_auc"}


def test_label_smoothing_changes_the_loss():
    plain, _ = _train_tiny(TrainingConfig(epochs=1, batch_size=8, augmentation=AugmentationConfig(False, False, 0)))
    smoothed, _ = _train_tiny(
        TrainingConfig(epochs=1, batch_size=8, label_smoothing=0.2, augmentation=AugmentationConfig(False, False, 0))
    )

    assert plain.history["loss"][0] != pytest.approx(smoothed.history["loss"][0])


@pytest.mark.training
def test_the_seed_fixes_the_initial_weights(tmp_path, monkeypatch):
    """train_from_folder seeds before it builds the network, not only before it trains."""
    data = write_dataset(tmp_path / "data", per_class=8, patients_per_class=8)
    built = []

    class Captured(Exception):
        pass

    def capture(parts, **kwargs):
        built.append([w.copy() for w in parts.model.get_weights()[:4]])
        raise Captured

    monkeypatch.setattr(pipeline, "train_network", capture)

    def first_weights(seed: int):
        options = pipeline.RunOptions(
            model=ModelConfig(image_size=75),
            training=TrainingConfig(seed=seed),
            preprocessing=PreprocessingSpec(image_size=75),
            validation_fraction=0.25,
            test_fraction=0.25,
            class_aliases=parse_class_aliases(None),
        )
        with pytest.raises(Captured):
            pipeline.train_from_folder(data, options, tmp_path / "work", log=lambda _: None)
        return built[-1]

    one, same, other = first_weights(1), first_weights(1), first_weights(2)

    for a, b in zip(one, same, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(one, other, strict=True))


def _outcome(*, interrupted: bool = False, epochs: int = 2, best: int = 1) -> training.TrainingOutcome:
    return training.TrainingOutcome(
        history={
            "loss": [1.0] * epochs,
            "accuracy": [0.5] * epochs,
            "val_loss": [1.0] * epochs,
            "val_accuracy": [0.5] * epochs,
            "val_auc": [0.5] * epochs,
            "phase": ["full"] * epochs,
        },
        best_epoch=best,
        interrupted=interrupted,
        wall_time_seconds=10.0,
        images_seen=100 * epochs,
        phase_seconds={"full": 10.0},
    )


def test_an_ensembles_outcome_keeps_every_networks_epochs_and_best_epoch():
    combined = training.ensemble_outcome([_outcome(epochs=2, best=1), _outcome(epochs=3, best=0)])

    assert combined.history["member"] == [0, 0, 1, 1, 1]
    assert len(combined.history["loss"]) == len(combined.history["phase"]) == 5
    assert combined.best_epoch == 1
    assert combined.member_best_epochs == [1, 0]
    assert combined.wall_time_seconds == 20.0
    assert combined.images_seen == 500
    assert combined.phase_seconds == {"full": 20.0}
    single = _outcome()
    assert training.ensemble_outcome([single]) is single


def _ensemble_options(*, seed: int, members: int) -> pipeline.RunOptions:
    return pipeline.RunOptions(
        model=ModelConfig(image_size=75),
        training=TrainingConfig(seed=seed, batch_size=8),
        preprocessing=PreprocessingSpec(image_size=75),
        validation_fraction=0.25,
        test_fraction=0.25,
        class_aliases=parse_class_aliases(None),
        members=members,
    )


@pytest.mark.training
def test_each_network_of_an_ensemble_is_seeded_before_it_is_built_the_first_as_a_single_run(tmp_path, monkeypatch):
    data = write_dataset(tmp_path / "data", per_class=8, patients_per_class=8)
    built, seeds = [], []

    class Captured(Exception):
        pass

    def capture(parts, *, config, **kwargs):
        built.append([w.copy() for w in parts.model.get_weights()[:4]])
        seeds.append(config.seed)
        if len(built) in (2, 3):  # the ensemble's second network, then the single run: enough seen
            raise Captured
        return _outcome()

    monkeypatch.setattr(pipeline, "train_network", capture)

    with pytest.raises(Captured):
        pipeline.train_from_folder(data, _ensemble_options(seed=1, members=2), tmp_path / "a", log=lambda _: None)
    with pytest.raises(Captured):
        pipeline.train_from_folder(data, _ensemble_options(seed=1, members=1), tmp_path / "b", log=lambda _: None)

    first, second, single = built
    assert seeds == [1, 101, 1]
    for a, b in zip(first, single, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.training
def test_ctrl_c_during_a_later_network_keeps_and_evaluates_the_finished_ones(tmp_path, monkeypatch):
    data = write_dataset(tmp_path / "data", per_class=12, patients_per_class=12)
    seeds = []

    def interrupted_third(parts, *, config, **kwargs):
        seeds.append(config.seed)
        return _outcome(interrupted=len(seeds) == 3)

    monkeypatch.setattr(pipeline, "train_network", interrupted_third)
    messages = []

    run = pipeline.train_from_folder(data, _ensemble_options(seed=5, members=4), tmp_path / "w", log=messages.append)

    assert seeds == [5, 105, 205]
    assert run.model_summary["members"] == 2
    assert run.hyperparameters["members"] == 4
    assert not run.outcome.interrupted
    assert run.outcome.history["member"] == [0, 0, 1, 1]
    assert run.test_metrics["auc"] is not None
    assert run.threshold is not None
    assert run.provenance["seeds"]["networks"] == [5, 105, 205, 305]
    assert any("Keeping the 2 finished network(s); network 3 is dropped." in m for m in messages)


def test_an_ensemble_of_no_networks_is_refused_before_anything_runs():
    with pytest.raises(ValueError, match="at least one network"):
        _ensemble_options(seed=1, members=0)
