"""The broker the app is configured with accepts and delivers a message (Redis in CI, files by default)."""

import uuid

import pytest

from covidxray.celery import app

pytestmark = pytest.mark.embedded


def test_broker_round_trip():
    queue_name = f"covidxray-test-{uuid.uuid4().hex}"
    payload = {"check": uuid.uuid4().hex}

    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=3)
        queue = connection.SimpleQueue(queue_name)
        try:
            queue.put(payload)
            message = queue.get(timeout=10)
            message.ack()
        finally:
            queue.clear()
            queue.close()

    assert message.payload == payload
