"""Grad-CAM: a heatmap of what raised the positive class's score, also when the model is sure, from the
same batched pass as the reading."""

import numpy as np
import pytest

from mlcore.core.model import CLASSIFIER_LAYER, ModelConfig, build_network
from mlcore.core.predictor import Predictor
from mlcore.core.preprocessing import PreprocessingSpec

# One xdist process for the whole module, so its module-scoped fixtures (seconds each) are built once.
pytestmark = pytest.mark.xdist_group("predictor-networks")

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
    flip = cam_of(unsure, IMAGE).max() == 0
    if flip:
        unsure = predictor(folder, model, bias=[0.0, 0.0], flip=True)
    return unsure, predictor(folder, model, bias=[60.0, -60.0], flip=flip)


def cam_of(predictor, image):
    return predictor.read(image[np.newaxis])[0].cam


def test_the_map_has_the_last_blocks_layout_and_is_placed_on_the_input(unsure_and_sure):
    cam = cam_of(unsure_and_sure[0], IMAGE)
    heatmap = unsure_and_sure[0].heatmap(cam, shape=(SIZE, SIZE))

    assert cam.shape == (2, 2)
    assert heatmap.shape == (SIZE, SIZE)
    assert heatmap.max() == pytest.approx(1.0)  # no stored scale: the map's own peak
    assert heatmap.min() >= 0.0


def test_a_confident_reading_gets_the_same_heatmap_as_an_unsure_one(unsure_and_sure):
    """The gradient of the probability vanishes once the softmax saturates; that of the log-odds does not."""
    unsure, sure = unsure_and_sure

    assert sure.probabilities(IMAGE[np.newaxis])[0][0] == 1.0
    assert sure.heatmap(cam_of(sure, IMAGE), shape=(SIZE, SIZE)).max() == pytest.approx(1.0)
    np.testing.assert_allclose(
        sure.heatmap(cam_of(sure, IMAGE), shape=(SIZE, SIZE)),
        unsure.heatmap(cam_of(unsure, IMAGE), shape=(SIZE, SIZE)),
        atol=1e-4,
    )


def test_a_batch_gives_each_image_its_own_map_as_a_pass_of_its_own_would(unsure_and_sure):
    """The fused pass sums the scores of a batch before the gradient; images must not mix."""
    unsure = unsure_and_sure[0]
    images = np.random.default_rng(1).random((3, SIZE, SIZE, 3), dtype=np.float32)

    together = [readout.cam for readout in unsure.read(images)]
    alone = [cam_of(unsure, image) for image in images]

    np.testing.assert_allclose(np.stack(together), np.stack(alone), rtol=1e-4, atol=1e-6)


def test_the_reading_and_its_probabilities_come_from_the_same_pass(unsure_and_sure):
    unsure = unsure_and_sure[0]

    reading = unsure.read(IMAGE[np.newaxis])[0].reading

    assert reading.raw_probability == pytest.approx(float(unsure.probabilities(IMAGE[np.newaxis])[0][0]), rel=1e-5)
    assert reading.probabilities["COVID"] == pytest.approx(reading.probability)


def test_a_squashed_versions_heatmap_covers_the_whole_input_whatever_the_pictures_shape(unsure_and_sure):
    unsure = unsure_and_sure[0]

    assert unsure.heatmap(cam_of(unsure, IMAGE), shape=(300, 100)).shape == (SIZE, SIZE)


def test_a_predictor_of_the_same_network_file_reuses_the_loaded_network(tmp_path, tiny_model_bytes):
    (tmp_path / "a.keras").write_bytes(tiny_model_bytes)
    (tmp_path / "copy.keras").write_bytes(tiny_model_bytes)
    spec = PreprocessingSpec.from_stored({"image_size": 75, "scaling": "unit"})

    def load(name, *, reuse=None, classes=("COVID", "NORMAL"), positive="COVID", threshold=0.5):
        return Predictor(
            tmp_path / name,
            class_names=list(classes),
            positive_class=positive,
            threshold=threshold,
            preprocessing=spec,
            reuse=reuse,
        )

    first = load("a.keras")
    again = load("copy.keras", reuse=first, threshold=0.9)
    other_column = load("copy.keras", reuse=first, positive="NORMAL")

    assert not first.network_reused
    assert again.network_reused
    assert again.model is first.model
    assert again.threshold == 0.9
    assert not other_column.network_reused  # the traced pass depends on the positive column
    image = np.random.default_rng(1).random((1, 75, 75, 3), dtype=np.float32)
    assert again.read(image)[0].reading.probabilities == pytest.approx(first.read(image)[0].reading.probabilities)


def test_a_different_network_file_is_loaded(tmp_path, tiny_model_bytes, tiny_three_class_model_bytes):
    (tmp_path / "two.keras").write_bytes(tiny_model_bytes)
    (tmp_path / "three.keras").write_bytes(tiny_three_class_model_bytes)
    spec = PreprocessingSpec.from_stored({"image_size": 75, "scaling": "unit"})
    two = Predictor(
        tmp_path / "two.keras",
        class_names=["COVID", "NORMAL"],
        positive_class="COVID",
        threshold=0.5,
        preprocessing=spec,
    )

    three = Predictor(
        tmp_path / "three.keras",
        class_names=["COVID", "OTHER_PNEUMONIA", "NORMAL"],
        positive_class="COVID",
        threshold=0.5,
        preprocessing=spec,
        reuse=two,
    )

    assert not three.network_reused
    assert three.model is not two.model
