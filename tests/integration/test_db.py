"""How crmsync talks to the hub database (crmsync.db)."""

from __future__ import annotations

import pytest

from crmsync import db

pytestmark = pytest.mark.usefixtures("clean_db")


def test_hub_connections_never_prepare_a_statement_so_each_lookup_is_planned_for_its_keys() -> None:
    """psycopg prepares a statement from its fifth run on a connection, and PostgreSQL's generic
    plan for a look-up by ``= ANY(%s)`` ignores the keys bound (crmsync.db._pool)."""
    with db.connect() as conn:
        for _ in range(8):
            conn.execute("SELECT count(*) FROM tenant WHERE id = ANY(%s)", ([1, 2],)).fetchone()
        prepared = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
    assert prepared == (0,)


def test_a_dedicated_connection_never_prepares_a_statement_either() -> None:
    conn = db.dedicated()
    try:
        for _ in range(8):
            conn.execute("SELECT count(*) FROM tenant WHERE id = ANY(%s)", ([1, 2],)).fetchone()
        prepared = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
    finally:
        conn.close()
    assert prepared == (0,)
