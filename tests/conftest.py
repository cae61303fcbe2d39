"""Test infrastructure: a real, migrated PostgreSQL and a Prefect API for flow tests.

The database is the machine's PostgreSQL when one answers (``CRMSYNC_TEST_PG``, default
``postgresql://postgres@127.0.0.1:5432/test``), else an embedded server from the ``pgserver``
wheel. Each session creates its own database, so parallel runs and a developer's data never meet.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet

_TMP = Path(tempfile.mkdtemp(prefix="crmsync-tests-"))
os.environ["CRMSYNC_DATA_DIR"] = str(_TMP / "data")
os.environ["CRMSYNC_SECRET_KEY"] = Fernet.generate_key().decode()
os.environ.setdefault("PREFECT_HOME", str(_TMP / "prefect"))
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Per-app budgets are exercised by test_rate_budget.py; elsewhere they would only slow tests.
os.environ.setdefault("CRMSYNC_RATE_BUDGET", "off")


def _server_url() -> str:
    url = os.environ.get("CRMSYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        with psycopg.connect(url, connect_timeout=3):
            return url
    except psycopg.OperationalError:
        import pgserver

        server = pgserver.get_server(_TMP / "pg", cleanup_mode="stop")
        os.environ["CRMSYNC_TEST_EMBEDDED"] = "1"
        globals()["_embedded_server"] = server
        return str(server.get_uri())


def _create_database() -> tuple[str, str]:
    admin = _server_url()
    name = f"crmsync_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, query = admin.partition("?")
    base = base.rsplit("/", 1)[0]
    url = f"{base}/{name}" + (f"?{query}" if query else "")
    return admin, url


_ADMIN_URL, TEST_DATABASE_URL = _create_database()
os.environ["DATABASE_URL"] = TEST_DATABASE_URL

from crmsync import db  # noqa: E402  (must see DATABASE_URL)

db.upgrade()

_TABLES = (
    "push_ledger, activity, opportunity, contact_link, contact, crm_record, sync_cursor, "
    "rejected_record, sync_run, "
    "integration, tenant"
)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    db.engine().dispose()
    name = TEST_DATABASE_URL.split("?")[0].rsplit("/", 1)[1]
    try:
        with psycopg.connect(_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error:
        pass


@pytest.fixture
def clean_db() -> Iterator[str]:
    """An empty hub schema; yields the database URL."""
    with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE")
    yield TEST_DATABASE_URL


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A throwaway Prefect API for flow tests, with heartbeats off (1.1 s → 0.15 s per flow)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=120),
        temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield


@pytest.fixture
def secret_value() -> str:
    """A credential value that must never show up anywhere but the encrypted column."""
    return "cs1." + secrets.token_hex(12)
