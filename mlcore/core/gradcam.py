"""One pass of the network that yields the reading, the gate's features and the Grad-CAM map together.

Grad-CAM (Selvaraju et al., 2017) weights the last block's activations by the gradient of the
positive class's score. The gradient from the score back to those activations only passes through
the head (pooling, dropout, one dense layer), so it costs next to nothing once the forward pass has
run: no second network call. The score is the positive class's log-odds computed from the
classifier's own weights, so its gradient does not vanish when the softmax saturates.

Placement: InceptionV3's last block is a small grid (5x5 at 224 px) whose cells, with valid padding,
are centred at 37.5 + 32 i pixels, not spread edge to edge; stretching the grid over the whole image
shifts heat by up to ~16% of its width. Maps are placed on their true receptive-field centres and
divided by a fixed scale from the validation split, so a weak map looks weak.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

from mlcore.core.model import CLASSIFIER_LAYER, GATE_LAYER, LAST_CONV_LAYER, ensemble_members
from mlcore.core.preprocessing import PreprocessingSpec, crop_to_picture

# Composition of InceptionV3's stride-2 valid stages (stem convolution, two max-pools, mixed3, mixed8):
# cell i of the last block is centred on input pixel index 32 i + 37, i.e. 37.5 + 32 i in continuous
# coordinates where pixel k spans [k, k + 1).
RECEPTIVE_FIELD_STRIDE = 32
RECEPTIVE_FIELD_OFFSET = 37.5
SCALE_PERCENTILE = 95.0


def readout_function(model, *, positive_index: int, image_size: int):
    """A traced function: images -> (probabilities, the gate's features, Grad-CAM maps).

    The gate's features are the mean and standard deviation over the image of a middle block's
    activations (GATE_LAYER): measured on the shared data, they tell a CT slice, a document or a
    photograph from a radiograph far better than the last block, which a two-class network trains to
    keep only what separates its classes.

    An ensemble (``combine_members``) is read member by member in the same pass: its probabilities are
    the members' mean (what the stored model outputs), its map the mean of the members' maps, and the
    gate's features are the first member's, the network the gate was fitted on.
    """
    import keras
    import tensorflow as tf

    members = [_member_readout(member, positive_index) for member in ensemble_members(model)]

    @tf.function(input_signature=[tf.TensorSpec((None, image_size, image_size, 3), tf.float32)])
    def readout(images):
        probabilities, cams, middles = [], [], []
        for inner, log_odds in members:
            with tf.GradientTape() as tape:
                activations, features, member_probabilities, middle = inner(images, training=False)
                tape.watch(activations)
                score = tf.reduce_sum(log_odds(features))  # images are independent: per-image gradients
            gradients = tape.gradient(score, activations)
            weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
            cams.append(tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1)))
            probabilities.append(member_probabilities)
            middles.append(middle)
        gate_features = tf.concat(
            [tf.reduce_mean(middles[0], axis=(1, 2)), tf.math.reduce_std(middles[0], axis=(1, 2))], 1
        )
        return keras.ops.mean(keras.ops.stack(probabilities), axis=0), gate_features, tf.reduce_mean(cams, axis=0)

    return readout


def _member_readout(network, positive_index: int):
    """One network's inner model (last block, pooled features, probabilities, middle block) and the
    positive class's log-odds computed from its classifier's own weights."""
    import keras
    import tensorflow as tf

    classifier = network.get_layer(CLASSIFIER_LAYER)
    inner = keras.Model(
        network.inputs,
        [
            network.get_layer(LAST_CONV_LAYER).output,
            classifier.input,
            network.output,
            network.get_layer(GATE_LAYER).output,
        ],
    )

    def log_odds(features):
        logits = tf.matmul(features, classifier.kernel) + classifier.bias
        positive = logits[:, positive_index]
        others = tf.concat([logits[:, :positive_index], logits[:, positive_index + 1 :]], axis=1)
        return positive - tf.reduce_logsumexp(others, axis=1)

    return inner, log_odds


def run_readout(readout, images: np.ndarray, *, batch_size: int = 32):
    """The readout over a stack of images in batches -> (probabilities, pooled, cams) as NumPy arrays."""
    parts = [readout(images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
    if not parts:
        raise ValueError("No images to read.")
    return tuple(np.concatenate([np.asarray(part[i]) for part in parts]) for i in range(3))


def cell_centres(grid: int) -> np.ndarray:
    """Input-pixel centres (continuous coordinates) of the last block's cells along one axis."""
    return RECEPTIVE_FIELD_OFFSET + RECEPTIVE_FIELD_STRIDE * np.arange(grid, dtype=np.float64)


def place_on_input(cam: np.ndarray, image_size: int) -> np.ndarray:
    """A (grid, grid) map -> (image_size, image_size), each cell at its receptive field's centre.

    Between centres the map is interpolated linearly; beyond the outermost centres it keeps the
    outermost value.
    """
    cam = np.asarray(cam, dtype=np.float64)
    pixel_centres = np.arange(image_size, dtype=np.float64) + 0.5
    rows = (pixel_centres - RECEPTIVE_FIELD_OFFSET) / RECEPTIVE_FIELD_STRIDE
    cols = (pixel_centres - RECEPTIVE_FIELD_OFFSET) / RECEPTIVE_FIELD_STRIDE
    rows = np.clip(rows, 0, cam.shape[0] - 1)
    cols = np.clip(cols, 0, cam.shape[1] - 1)
    grid_rows, grid_cols = np.meshgrid(rows, cols, indexing="ij")
    return map_coordinates(cam, [grid_rows, grid_cols], order=1, mode="nearest").astype(np.float32)


def picture_heatmap(
    cam: np.ndarray, *, shape: tuple[int, ...], spec: PreprocessingSpec, scale: float | None
) -> np.ndarray:
    """A grid -> a [0, 1] map of the picture of `shape` (the decoded image's), in the picture's own aspect.

    Placed on the network input, then cropped to where the picture lies in it: a letterboxed input's
    padding is cut away, so the map stretched over the picture puts heat where the network saw it.
    """
    return normalise(crop_to_picture(place_on_input(cam, spec.image_size), shape, spec), scale)


def heatmap_scale(cams: np.ndarray) -> float | None:
    """The fixed scale of a version's maps: the 95th percentile of the validation maps' peaks."""
    peaks = np.asarray(cams, dtype=np.float64).reshape(len(cams), -1).max(axis=1) if len(cams) else np.array([])
    peaks = peaks[peaks > 0]
    return float(np.percentile(peaks, SCALE_PERCENTILE)) if len(peaks) else None


def normalise(cam: np.ndarray, scale: float | None) -> np.ndarray:
    """A map in [0, 1] on the version's fixed scale; on its own peak only when the version has none."""
    cam = np.asarray(cam, dtype=np.float32)
    divisor = scale if scale else float(cam.max())
    return np.clip(cam / divisor, 0.0, 1.0) if divisor > 0 else np.zeros_like(cam)
