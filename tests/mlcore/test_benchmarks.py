"""The inference benchmark times the worker's own pass, and an ensemble beside its first network."""

import numpy as np
import pytest

from mlcore.core.benchmarks import benchmark_inference
from mlcore.core.model import ModelConfig, build_network, combine_members
from mlcore.core.predictor import Predictor
from mlcore.core.preprocessing import PreprocessingSpec

keras = pytest.importorskip("keras")


def test_an_ensemble_is_timed_beside_its_first_network_in_the_same_run(tmp_path):
    networks = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        networks.append(build_network(ModelConfig(image_size=75)).model)
    combine_members(networks).save(tmp_path / "ensemble.keras")
    predictor = Predictor(
        tmp_path / "ensemble.keras",
        class_names=["COVID", "NORMAL"],
        positive_class="COVID",
        threshold=0.5,
        preprocessing=PreprocessingSpec(image_size=75),
    )
    images = np.random.default_rng(0).random((8, 75, 75, 3), dtype=np.float32)
    labels = np.array([0, 1] * 4)

    results = benchmark_inference(
        model=predictor.model,
        predictor=predictor,
        tflite_models={},
        latency_images=images[:2],
        throughput_images=images,
        auc_images=images,
        auc_labels=labels,
        log=lambda _: None,
    )

    assert set(results) == {
        "naive model.predict",
        "project (Keras, direct call)",
        "reading pass (2 networks)",
        "reading pass (first network alone)",
    }
    assert results["reading pass (2 networks)"]["auc"] == pytest.approx(results["project (Keras, direct call)"]["auc"])
    assert results["reading pass (first network alone)"]["auc"] != pytest.approx(
        results["reading pass (2 networks)"]["auc"]
    )
    for entry in results.values():
        assert entry["batch_1"]["median_ms"] > 0
