"""Signal receivers: they only call services."""

import threading

from django.conf import settings

from diagnosis.services.scans import scans_requeue_stale
from mlcore.inference import preload_active_predictor


def queue_waiting_scans(sender, version, **kwargs) -> None:
    """A version was activated: scans that waited for a model are queued now."""
    scans_requeue_stale()


def recover_scans_on_worker_start(sender=None, **kwargs) -> None:
    """A worker (re)started: scans a dead worker held, or that were never queued, are queued again."""
    scans_requeue_stale()


def preload_model_in_inference_process(sender=None, **kwargs) -> None:
    """A pool process of a worker that reads scans started: load the active model in the background.
    Workers that only train (``-Q training``) do not hold an inference model."""
    from covidxray.celery import app

    if settings.CELERY_TASK_DEFAULT_QUEUE not in app.amqp.queues.consume_from:
        return
    threading.Thread(target=preload_active_predictor, name="model-preload", daemon=True).start()
