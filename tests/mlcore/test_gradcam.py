"""Grad-CAM cells on their true receptive-field centres, on a fixed scale, on the picture's own aspect
(mlcore.core.gradcam)."""

import numpy as np
import pytest

from mlcore.core.gradcam import cell_centres, heatmap_scale, normalise, picture_heatmap, place_on_input
from mlcore.core.predictor import composed_overlay, heat_layer_png
from mlcore.core.preprocessing import PreprocessingSpec, picture_box


def test_inception_cells_at_224_px_are_centred_where_valid_padding_puts_them():
    centres = cell_centres(5)

    np.testing.assert_allclose(centres, [37.5, 69.5, 101.5, 133.5, 165.5])
    stretched = (np.arange(5) + 0.5) * 224 / 5  # the old edge-to-edge placement
    assert max(abs(stretched - centres)) / 224 == pytest.approx(0.16, abs=0.005)


def test_heat_in_the_last_cell_peaks_over_its_receptive_field_not_the_image_edge():
    cam = np.zeros((5, 5))
    cam[2, 4] = 1.0

    placed = place_on_input(cam, 224)

    row, col = np.unravel_index(np.argmax(placed), placed.shape)
    assert placed.shape == (224, 224)
    assert abs(col + 0.5 - 165.5) <= 1
    assert abs(row + 0.5 - 101.5) <= 1
    assert placed[101, 223] == pytest.approx(1.0)  # beyond the last centre the edge value holds


def test_grid_values_are_kept_at_their_centres_and_interpolated_between():
    cam = np.arange(4, dtype=float).reshape(2, 2)

    placed = place_on_input(cam, 107)

    assert placed[37, 37] == pytest.approx(0.0)
    assert placed[69, 69] == pytest.approx(3.0)
    assert placed[37, 53] == pytest.approx(0.5)


def test_a_weak_map_stays_weak_on_the_fixed_scale():
    strong, weak = np.full((2, 2), 8.0), np.full((2, 2), 1.0)
    scale = heatmap_scale(np.stack([strong, strong, weak]))

    assert normalise(weak, scale).max() == pytest.approx(1 / 8)
    assert normalise(strong * 2, scale).max() == 1.0
    assert normalise(weak, None).max() == 1.0  # without a stored scale, the old per-map maximum


def test_empty_maps_have_no_scale():
    assert heatmap_scale(np.zeros((3, 2, 2))) is None
    assert normalise(np.zeros((2, 2)), None).max() == 0.0


def heat_centre_in_overlay(shape: tuple[int, int], heatmap: np.ndarray) -> tuple[float, float]:
    """Where the heat layer of `heatmap` over a plain gray picture of `shape` colours it: the centroid, in pixels."""
    gray = np.full(shape, 0.5, np.float32)
    layer = heat_layer_png(heatmap, size=(shape[1], shape[0]))
    overlay = np.asarray(composed_overlay(gray, layer), dtype=np.int16)
    rows, cols = np.nonzero(np.abs(overlay - 128).max(axis=2) > 0)
    return rows.mean() + 0.5, cols.mean() + 0.5


def test_the_overlay_undoes_the_letterbox_heat_lands_where_the_network_saw_it():
    """A tall picture letterboxed into 224 px fills columns 56-168; heat in one cell must land on the
    picture's pixel that cell's centre saw, not where stretching the square over the picture puts it."""
    spec = PreprocessingSpec.current(image_size=224, scaling="inception")
    shape = (300, 150)
    cam = np.zeros((5, 5))
    cam[2, 3] = 1.0  # centred on input pixel (101.5, 133.5)
    box = picture_box(shape, spec)
    expected = (101.5 - box.top) * shape[0] / box.height, (133.5 - box.left) * shape[1] / box.width

    heatmap = picture_heatmap(cam, shape=shape, spec=spec, scale=None)
    row, col = heat_centre_in_overlay(shape, heatmap)

    assert heatmap.shape == (box.height, box.width) == (224, 112)
    assert abs(row - expected[0]) <= 2
    assert abs(col - expected[1]) <= 2  # ~104; the whole square stretched over the picture puts it at ~89


def test_a_squashed_versions_map_covers_the_whole_picture():
    spec = PreprocessingSpec(image_size=224)
    shape = (300, 150)
    cam = np.zeros((5, 5))
    cam[2, 3] = 1.0

    heatmap = picture_heatmap(cam, shape=shape, spec=spec, scale=None)
    row, col = heat_centre_in_overlay(shape, heatmap)

    assert heatmap.shape == (224, 224)
    assert abs(row - 101.5 * 300 / 224) <= 2
    assert abs(col - 133.5 * 150 / 224) <= 2


def test_an_ensemble_is_read_as_its_networks_mean_with_the_first_networks_gate_features():
    """One pass over an ensemble: the members' mean probabilities and maps, the gate's features from the
    network the gate is fitted on (the first)."""
    keras = pytest.importorskip("keras")
    from mlcore.core.gradcam import readout_function
    from mlcore.core.model import ModelConfig, build_network, combine_members

    networks = []
    for seed in (3, 4):
        keras.utils.set_random_seed(seed)
        networks.append(build_network(ModelConfig(num_classes=3, image_size=139)).model)
    batch = np.random.default_rng(5).random((2, 139, 139, 3), dtype=np.float32)
    alone = [
        [np.asarray(part) for part in readout_function(n, positive_index=0, image_size=139)(batch)] for n in networks
    ]

    probabilities, gate_features, cams = readout_function(combine_members(networks), positive_index=0, image_size=139)(
        batch
    )

    np.testing.assert_allclose(probabilities, (alone[0][0] + alone[1][0]) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gate_features, alone[0][1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cams, (alone[0][2] + alone[1][2]) / 2, rtol=1e-4, atol=1e-6)
    assert not np.allclose(alone[0][2], alone[1][2])  # the maps differ, so the mean is a real one
