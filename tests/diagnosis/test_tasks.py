"""The Celery tasks stay thin and retry on transient database errors."""

import pytest
from celery.exceptions import Retry
from django.db import OperationalError

from diagnosis import tasks


def test_diagnose_retries_with_back_off_when_the_database_goes_away(monkeypatch):
    def database_gone(**kwargs):
        raise OperationalError("(2006, 'MySQL server has gone away')")

    monkeypatch.setattr(tasks, "scans_diagnose", database_gone)
    monkeypatch.setattr(tasks.diagnose_scans, "retry", _raise_retry)

    with pytest.raises(Retry):
        tasks.diagnose_scans.run(7)


def _raise_retry(*args, exc=None, countdown=None, **kwargs):
    assert isinstance(exc, OperationalError)
    assert countdown is not None
    assert countdown >= 0
    raise Retry(exc=exc, when=countdown)


def test_task_options_make_delivery_safe():
    task = tasks.diagnose_scans

    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
    assert OperationalError in task.autoretry_for
    assert task.retry_backoff
