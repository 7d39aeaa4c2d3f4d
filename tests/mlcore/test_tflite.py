"""TFLite exports: conversion, the agreement check that gates their use, and the worker engine switch."""

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command

from mlcore import inference
from mlcore.core.tflite import TFLitePredictor, agreement, export_tflite
from mlcore.models import TFLiteExport
from tests.conftest import once_per_run
from tests.mlcore.synthetic import write_dataset

pytestmark = [pytest.mark.training, pytest.mark.django_db]


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "data", per_class=6, patients_per_class=6)


def load_tiny_model(tiny_model_bytes, folder):
    import keras

    path = folder / "model.keras"
    path.write_bytes(tiny_model_bytes)
    return keras.saving.load_model(path, compile=False)


@pytest.fixture(scope="session")
@once_per_run("tiny-model-float32.tflite")
def tiny_float32_tflite(tiny_model_bytes, tmp_path_factory) -> bytes:
    """The tiny network converted to float32 TFLite once per run: a conversion traces the whole network."""
    return export_tflite(load_tiny_model(tiny_model_bytes, tmp_path_factory.mktemp("tflite")), quantization="float32")


def test_float32_export_reproduces_the_keras_probabilities(tiny_model_bytes, tiny_float32_tflite, tmp_path):
    model = load_tiny_model(tiny_model_bytes, tmp_path)
    images = np.random.default_rng(0).random((3, 75, 75, 3), dtype=np.float32)

    lite = TFLitePredictor(tiny_float32_tflite)

    np.testing.assert_allclose(lite.probabilities(images), np.asarray(model(images)), atol=1e-4)
    assert lite.probabilities(images[:1]).shape == (1, 2)


def test_int8_needs_representative_images(tiny_model_bytes, tmp_path):
    with pytest.raises(ValueError, match="representative"):
        export_tflite(load_tiny_model(tiny_model_bytes, tmp_path), quantization="int8")


def test_agreement_measures_label_flips_and_auc():
    reference = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    candidate = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.3, 0.7]])

    measured = agreement(reference, candidate, positive_index=0, threshold=0.5, labels=np.array([1, 0, 1, 0]))

    assert measured["label_agreement"] == 0.75
    assert measured["max_abs_difference"] == pytest.approx(0.2)
    assert measured["auc_reference"] == 1.0
    assert measured["auc_difference"] == pytest.approx(measured["auc_candidate"] - 1.0)


def test_export_command_stores_a_verified_export_that_workers_can_use(make_version, dataset, settings):
    version = make_version()
    out = io.StringIO()

    call_command("export_tflite", data=str(dataset), quantization=["float32"], stdout=out)

    export = TFLiteExport.objects.get(version=version, quantization="float32")
    assert export.verified
    assert export.agreement["images"] == 12
    assert export.agreement["label_agreement"] == 1.0
    assert "float32: verified" in out.getvalue()

    settings.INFERENCE_ENGINE = "tflite"
    settings.TFLITE_QUANTIZATION = "float32"
    assert inference.predictor_for(version).engine == "tflite"


def test_workers_ignore_an_export_that_was_not_verified(make_version, settings):
    version = make_version()
    export = TFLiteExport(version=version, quantization="int8", checked_on="x", verified=False)
    export.model_file.save("model-int8.tflite", ContentFile(b"unused"))
    settings.INFERENCE_ENGINE = "tflite"
    settings.TFLITE_QUANTIZATION = "int8"

    assert inference.predictor_for(version).engine == "keras"


def test_export_without_a_model_version_is_refused(dataset):
    with pytest.raises(CommandError, match="No model version is active"):
        call_command("export_tflite", data=str(dataset))


def test_benchmark_command_runs_every_path_on_the_same_images(make_version, dataset, tiny_float32_tflite):
    export = TFLiteExport(version=make_version(), quantization="float32", checked_on=str(dataset), verified=True)
    export.model_file.save("model-float32.tflite", ContentFile(tiny_float32_tflite))
    out = io.StringIO()

    call_command("benchmark_inference", data=str(dataset), latency_images=3, throughput_images=8, stdout=out)

    table = out.getvalue()
    for row in ("naive model.predict", "project (Keras, direct call)", "reading pass (1 network)", "tflite float32"):
        assert row in table
