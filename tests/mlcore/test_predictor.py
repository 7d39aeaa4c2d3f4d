"""Grad-CAM: a heatmap of what raised the positive class's score, also when the model is sure."""

import numpy as np
import pytest

from mlcore.core.model import CLASSIFIER_LAYER, ModelConfig, build_network
from mlcore.core.predictor import Predictor
from mlcore.core.preprocessing import PreprocessingSpec

SIZE = 107  # InceptionV3's last block is 2x2 here (1x1 at 75 px, where Grad-CAM has no layout to show)
IMAGE = np.random.default_rng(0).random((SIZE, SIZE, 3), dtype=np.float32)


def predictor(tmp_path, model, *, bias, flip) -> Predictor:
    """The network with the classifier's bias set (a large one saturates the softmax).

    Flipping the kernel's sign flips the sign of every Grad-CAM value, so of a network and its flip,
    one has a region that raises the positive class's score.
    """
    classifier = model.get_layer(CLASSIFIER_LAYER)
    kernel, _ = classifier.get_weights()
    original = classifier.get_weights()
    classifier.set_weights([-kernel if flip else kernel, np.asarray(bias, dtype=np.float32)])
    path = tmp_path / f"model-{bias[0]}-{flip}.keras"
    model.save(path)
    classifier.set_weights(original)
    return Predictor(
        path,
        class_names=["COVID", "NORMAL"],
        positive_class="COVID",
        threshold=0.5,
        preprocessing=PreprocessingSpec(image_size=SIZE),
    )


@pytest.fixture(scope="module")
def unsure_and_sure(tmp_path_factory):
    """The same network twice: with no bias (unsure) and with one that makes it certain of COVID."""
    import keras

    keras.utils.set_random_seed(3)
    model = build_network(ModelConfig(image_size=SIZE)).model
    folder = tmp_path_factory.mktemp("predictor")
    unsure = predictor(folder, model, bias=[0.0, 0.0], flip=False)
    flip = unsure.heatmap(IMAGE).max() == 0
    if flip:
        unsure = predictor(folder, model, bias=[0.0, 0.0], flip=True)
    return unsure, predictor(folder, model, bias=[60.0, -60.0], flip=flip)


def test_the_heatmap_has_the_last_blocks_layout_and_is_scaled_to_one(unsure_and_sure):
    heatmap = unsure_and_sure[0].heatmap(IMAGE)

    assert heatmap.shape == (2, 2)
    assert heatmap.max() == pytest.approx(1.0)
    assert heatmap.min() >= 0.0


def test_a_confident_reading_gets_the_same_heatmap_as_an_unsure_one(unsure_and_sure):
    """The gradient of the probability vanishes once the softmax saturates; that of the log-odds does not."""
    unsure, sure = unsure_and_sure

    assert sure.probabilities(IMAGE[np.newaxis])[0][0] == 1.0
    assert sure.heatmap(IMAGE).max() == pytest.approx(1.0)
    np.testing.assert_allclose(sure.heatmap(IMAGE), unsure.heatmap(IMAGE), atol=1e-4)
