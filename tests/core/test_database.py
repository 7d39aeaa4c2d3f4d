"""The suite runs on whichever database DATABASE_URL names: MariaDB in CI, SQLite by default."""

import os

import pytest
from django.db import connection

from accounts.models import User

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def test_connection_vendor_follows_database_url():
    url = os.environ.get("DATABASE_URL", "")
    expected = "mysql" if url.startswith(("mysql://", "mysql2://", "mariadb://")) else "sqlite"

    assert connection.vendor == expected


@pytest.mark.skipif(connection.vendor != "mysql", reason="MySQL/MariaDB session settings")
def test_mysql_session_is_strict_and_utf8mb4():
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@SESSION.sql_mode, @@character_set_connection")
        sql_mode, charset = cursor.fetchone()

    assert "STRICT_TRANS_TABLES" in sql_mode
    assert charset == "utf8mb4"


def test_four_byte_characters_survive_a_round_trip(make_doctor):
    doctor = make_doctor(full_name="Dr Zoë Łukasiewicz 🩺")

    assert User.objects.get(pk=doctor.pk).full_name == "Dr Zoë Łukasiewicz 🩺"


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite connection settings")
def test_sqlite_runs_in_wal_mode_with_immediate_transactions_and_a_busy_timeout():
    """Readers do not wait for the writer, transactions never deadlock upgrading to a write, writers wait."""
    with connection.cursor() as cursor:
        journal_mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        busy_timeout_ms = cursor.execute("PRAGMA busy_timeout").fetchone()[0]

    assert journal_mode == "wal"
    assert busy_timeout_ms == 20_000
    assert connection.transaction_mode == "IMMEDIATE"
