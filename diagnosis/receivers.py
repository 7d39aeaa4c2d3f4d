"""Signal receivers: they only call services."""

from diagnosis.services.scans import scans_requeue_stale


def queue_waiting_scans(sender, version, **kwargs) -> None:
    """A version was activated: scans that waited for a model are queued now."""
    scans_requeue_stale()


def recover_scans_on_worker_start(sender=None, **kwargs) -> None:
    """A worker (re)started: scans a dead worker held, or that were never queued, are queued again."""
    scans_requeue_stale()
