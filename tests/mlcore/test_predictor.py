"""Grad-CAM: a heatmap of what raised the positive class's score, also when the model is sure."""

import numpy as np
import pytest

from mlcore.core.model import CLASSIFIER_LAYER, ModelConfig, build_network
from mlcore.core.predictor import Predictor
from mlcore.core.preprocessing import PreprocessingSpec

SIZE = 150  # InceptionV3's last block is 3x3 here (1x1 at 75 px, where Grad-CAM has no layout to show)


@pytest.fixture(scope="module")
def network_file(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(3)
    path = tmp_path_factory.mktemp("predictor") / "model.keras"
    build_network(ModelConfig(image_size=SIZE)).model.save(path)
    return path


def predictor_with_bias(network_file, tmp_path, bias, *, flip=False) -> Predictor:
    """The same network, with the classifier's bias set (a large one saturates the softmax).

    Flipping the kernel's sign flips the sign of every Grad-CAM value, so of a network and its flip,
    one has a region that raises the positive class's score.
    """
    import keras

    model = keras.saving.load_model(str(network_file), compile=False)
    classifier = model.get_layer(CLASSIFIER_LAYER)
    kernel, _ = classifier.get_weights()
    classifier.set_weights([-kernel if flip else kernel, np.asarray(bias, dtype=np.float32)])
    path = tmp_path / f"model-{bias[0]}-{flip}.keras"
    model.save(path)
    return Predictor(
        path,
        class_names=["COVID", "NORMAL"],
        positive_class="COVID",
        threshold=0.5,
        preprocessing=PreprocessingSpec(image_size=SIZE),
    )


IMAGE = np.random.default_rng(0).random((SIZE, SIZE, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def flip(network_file, tmp_path_factory):
    """Whether the network needs its kernel flipped to have a positive region on IMAGE."""
    plain = predictor_with_bias(network_file, tmp_path_factory.mktemp("flip"), [0.0, 0.0])
    return plain.heatmap(IMAGE).max() == 0


def test_the_heatmap_has_the_last_blocks_layout_and_is_scaled_to_one(network_file, tmp_path, flip):
    heatmap = predictor_with_bias(network_file, tmp_path, [0.0, 0.0], flip=flip).heatmap(IMAGE)

    assert heatmap.shape == (3, 3)
    assert heatmap.max() == pytest.approx(1.0)
    assert heatmap.min() >= 0.0


def test_a_confident_reading_gets_the_same_heatmap_as_an_unsure_one(network_file, tmp_path, flip):
    """The gradient of the probability vanishes once the softmax saturates; that of the log-odds does not."""
    unsure = predictor_with_bias(network_file, tmp_path, [0.0, 0.0], flip=flip)
    sure = predictor_with_bias(network_file, tmp_path, [60.0, -60.0], flip=flip)
    x = IMAGE

    assert sure.probabilities(x[np.newaxis])[0][0] == 1.0
    assert sure.heatmap(x).max() == pytest.approx(1.0)
    np.testing.assert_allclose(sure.heatmap(x), unsure.heatmap(x), atol=1e-4)
