"""InceptionV3 construction, weights loading and the layers fine-tuning unfreezes (75x75 inputs)."""

import numpy as np
import pytest

from mlcore.core.model import (
    ModelConfig,
    WeightsError,
    build_network,
    combine_members,
    ensemble_members,
    fine_tune_layers,
    summarize,
)

keras = pytest.importorskip("keras")

SMALL = {"image_size": 75}


@pytest.fixture(scope="module")
def network():
    return build_network(ModelConfig(**SMALL))


def test_gap_head_outputs_class_probabilities(network):
    batch = np.random.default_rng(0).random((3, 75, 75, 3), dtype=np.float32)

    probabilities = np.asarray(network.model(batch, training=False))

    assert probabilities.shape == (3, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert network.model.get_layer("head_pool").__class__.__name__ == "GlobalAveragePooling2D"


def test_head_view_shares_its_weights_with_the_full_model(network):
    batch = np.random.default_rng(1).random((2, 75, 75, 3), dtype=np.float32)

    through_parts = network.head(network.base(batch, training=False), training=False)
    whole = network.model(batch, training=False)

    np.testing.assert_allclose(np.asarray(through_parts), np.asarray(whole), rtol=1e-5, atol=1e-6)


def test_flatten_head_is_the_original_projects():
    parts = build_network(ModelConfig(head="flatten", **SMALL))

    assert parts.model.get_layer("head_flatten").__class__.__name__ == "Flatten"
    assert parts.model.get_layer("head_dropout").rate == 0.5


def test_batchnorm_momentum_is_set_on_every_batchnorm_layer(network):
    momenta = {layer.momentum for layer in network.base.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.9}


def test_summary_counts_trainable_and_frozen_parameters(network):
    network.base.trainable = False
    try:
        frozen = summarize(network.model)
    finally:
        network.base.trainable = True
    trainable = summarize(network.model)

    assert frozen["total_parameters"] == trainable["total_parameters"] == network.model.count_params()
    assert frozen["trainable_parameters"] == 2048 * 2 + 2
    assert trainable["trainable_parameters"] > 20_000_000
    assert frozen["layers"] == len(network.model.layers)


def test_fine_tuning_unfreezes_only_the_top_blocks_without_batchnorm(network):
    top_one = fine_tune_layers(network.base, 1)
    top_two = fine_tune_layers(network.base, 2)
    names = [layer.name for layer in network.base.layers]

    assert fine_tune_layers(network.base, 0) == []
    assert set(top_one) < set(top_two)
    assert min(names.index(layer.name) for layer in top_one) > names.index("mixed9")
    assert min(names.index(layer.name) for layer in top_two) > names.index("mixed8")
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in top_two)


def test_a_local_weights_file_is_loaded_into_the_base(network, tmp_path):
    path = tmp_path / "base.weights.h5"
    network.base.save_weights(path)

    loaded = build_network(ModelConfig(weights=str(path), **SMALL))

    for mine, theirs in zip(network.base.weights, loaded.base.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


def test_a_weights_file_that_does_not_fit_gives_a_clear_error(tmp_path):
    path = tmp_path / "dense.weights.h5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).save_weights(path)

    with pytest.raises(WeightsError, match="does not fit InceptionV3"):
        build_network(ModelConfig(weights=str(path), **SMALL))


def test_a_missing_weights_file_gives_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        build_network(ModelConfig(weights=str(tmp_path / "absent.h5"), **SMALL))


def test_imagenet_weights_that_cannot_be_downloaded_name_the_alternatives(monkeypatch, tmp_path):
    """Keras' own download and cache code runs; only the network is unreachable, as on this machine."""
    from keras.src.backend import config
    from keras.src.utils import file_utils

    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path / "empty-keras-cache"))

    def unreachable(url, *args, **kwargs):
        raise OSError(f"[Errno -3] Temporary failure in name resolution: {url}")

    monkeypatch.setattr(file_utils, "urlretrieve", unreachable)

    with pytest.raises(WeightsError) as raised:
        build_network(ModelConfig(weights="imagenet", **SMALL))

    message = str(raised.value)
    assert "--weights none" in message
    assert "--weights /path/to/that/file" in message
    assert "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5" in message


def _seeded_networks(count: int, *, num_classes: int = 3) -> list:
    networks = []
    for seed in range(count):
        keras.utils.set_random_seed(seed)
        networks.append(build_network(ModelConfig(num_classes=num_classes, **SMALL)).model)
    return networks


def test_one_network_is_stored_as_it_always_was():
    network = _seeded_networks(1)[0]

    assert combine_members([network]) is network
    assert ensemble_members(network) == [network]
    assert summarize(network)["members"] == 1


def test_an_ensemble_outputs_its_networks_mean_and_finds_them_again_after_loading(tmp_path):
    from mlcore.core.training import positive_class_auc

    networks = _seeded_networks(2)
    networks[0].compile(loss="categorical_crossentropy", metrics=[positive_class_auc(0)])  # as training leaves it
    batch = np.random.default_rng(2).random((3, 75, 75, 3), dtype=np.float32)
    expected = (np.asarray(networks[0](batch)) + np.asarray(networks[1](batch))) / 2

    combine_members(networks).save(tmp_path / "ensemble.keras")
    loaded = keras.saving.load_model(tmp_path / "ensemble.keras", compile=False)

    np.testing.assert_allclose(np.asarray(loaded(batch, training=False)), expected, rtol=1e-5, atol=1e-6)
    members = ensemble_members(loaded)
    assert [member.name for member in members] == ["member_0", "member_1"]
    np.testing.assert_allclose(np.asarray(members[1](batch)), np.asarray(networks[1](batch)), rtol=1e-5, atol=1e-6)
    assert summarize(loaded)["members"] == 2
    assert summarize(loaded)["output_classes"] == 3


def test_an_empty_ensemble_is_an_error():
    with pytest.raises(ValueError, match="at least one network"):
        combine_members([])
