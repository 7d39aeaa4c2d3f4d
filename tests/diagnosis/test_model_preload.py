"""An inference pool process loads the active model in the background as it starts (diagnosis.receivers)."""

import threading

import pytest

from covidxray.celery import app
from diagnosis.receivers import preload_model_in_inference_process
from mlcore import inference as mlcore_inference

pytestmark = pytest.mark.django_db(transaction=True)  # the preload thread reads on a connection of its own


def preload_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "model-preload"]


def test_an_inference_process_loads_the_active_version_in_the_background(make_version):
    version = make_version("preloaded")
    loads_before = mlcore_inference.load_count

    preload_model_in_inference_process()

    [thread] = preload_threads()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert mlcore_inference.load_count == loads_before + 1
    assert mlcore_inference.predictor_for(version) is mlcore_inference._loaded["predictor"]
    assert mlcore_inference.load_count == loads_before + 1


def test_a_process_of_a_training_only_worker_loads_nothing(make_version, monkeypatch):
    make_version()
    monkeypatch.setattr(app.amqp.queues, "_consume_from", {"training": app.amqp.queues["training"]})

    preload_model_in_inference_process()

    assert preload_threads() == []


def test_without_an_active_version_the_preload_loads_nothing(db):
    loads_before = mlcore_inference.load_count

    preload_model_in_inference_process()

    for thread in preload_threads():
        thread.join(timeout=60)
    assert mlcore_inference.load_count == loads_before
