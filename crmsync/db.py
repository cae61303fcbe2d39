"""Database access: the hub's PostgreSQL, real or embedded.

With ``DATABASE_URL`` unset, :func:`database_url` starts an embedded PostgreSQL (the ``pgserver``
wheel ships the server binaries) in ``<data_dir>/pg``; it listens on a Unix socket only and is
stopped when the last process using it exits. Two URL flavours come out of one setting: SQLAlchemy
needs ``postgresql+psycopg://`` and raw psycopg (used by the set-based merge and COPY) needs
``postgresql://``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg_pool import ConnectionPool
from sqlalchemy import Engine, create_engine
from sqlmodel import Session

from crmsync.settings import get_settings

_embedded_lock = threading.Lock()
_embedded: Any = None
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _start_embedded(data_dir: Path) -> str:
    global _embedded
    with _embedded_lock:
        if _embedded is None:
            import pgserver  # imported lazily: starting it is only for the no-DATABASE_URL default

            pgdata = (data_dir / "pg").resolve()
            pgdata.mkdir(parents=True, exist_ok=True)
            _embedded = pgserver.get_server(pgdata, cleanup_mode="stop")
        return str(_embedded.get_uri())


def database_url() -> str:
    """libpq URL of the hub database (``postgresql://…``); starts the embedded server if needed."""
    settings = get_settings()
    url = settings.database_url or _start_embedded(settings.data_dir)
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql://" + url[len(prefix) :]
    return url


def sqlalchemy_url() -> str:
    """The same URL for SQLAlchemy (``postgresql+psycopg://``)."""
    scheme, sep, rest = database_url().partition("://")
    if scheme != "postgresql" or not sep:  # settings validate DATABASE_URL; this guards the rest
        raise ValueError("the hub database URL is not a postgresql:// URL")
    return "postgresql+psycopg://" + rest


@lru_cache(maxsize=1)
def engine() -> Engine:
    return create_engine(sqlalchemy_url(), pool_pre_ping=True, pool_size=2, max_overflow=4)


@contextmanager
def session() -> Iterator[Session]:
    with Session(engine(), expire_on_commit=False) as s:
        yield s


_pools: dict[str, ConnectionPool[psycopg.Connection[Any]]] = {}
_pools_lock = threading.Lock()
POOL_MAX = 8


def _pool() -> ConnectionPool[psycopg.Connection[Any]]:
    """This process's pool for the current ``DATABASE_URL``.

    A 1,000-tenant cycle makes ~20 short steps per tenant; opening a connection for each (TLS-free
    but still a fork of a backend, ~3 ms plus authentication) was a tenth of a tenant's client
    CPU. ``check`` pings a connection before handing it out, so a PostgreSQL restart costs one
    reconnect instead of failed steps. Kept small: every worker process and every batch run
    has its own pool under PostgreSQL's ``max_connections``.

    Statements are never prepared (``prepare_threshold=None``). psycopg prepares a statement
    the fifth time a connection runs it, and PostgreSQL then settles on a generic plan, blind
    to the keys bound: the look-ups by ``= ANY(%s)``/``unnest`` the merge and the composer make
    per page became scans of the integration's rows (measured on a 20,000-job ServiceTitan
    first load: 12.5 s of flow with prepared statements, 8.9 s without; the composer's related
    record query alone 5.1 s → 0.8 s). Planning each statement costs well under a millisecond.
    """
    url = database_url()
    pool = _pools.get(url)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(url)
            if pool is None:
                pool = ConnectionPool(
                    url,
                    min_size=0,
                    max_size=POOL_MAX,
                    max_idle=60,
                    check=ConnectionPool.check_connection,
                    kwargs={"prepare_threshold": None},
                    open=True,
                    name="crmsync-hub",
                )
                _pools[url] = pool
    return pool


@contextmanager
def connect(autocommit: bool = False) -> Iterator[psycopg.Connection[Any]]:
    """A pooled psycopg 3 connection for set-based SQL and COPY.

    Like ``with psycopg.connect(...)``: committed when the block ends, rolled back if it raises.
    """
    with _pool().connection() as conn:
        if not autocommit:
            yield conn
            return
        conn.autocommit = True
        try:
            yield conn
        finally:
            if not conn.closed:
                conn.autocommit = False


def dedicated(autocommit: bool = False) -> psycopg.Connection[Any]:
    """A connection of its own, outside the pool, for session state that outlives a step
    (a tenant's advisory lock, LISTEN); the caller closes it."""
    return psycopg.connect(database_url(), autocommit=autocommit, prepare_threshold=None)


def close_pools() -> None:
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


def upgrade(revision: str = "head") -> None:
    """Apply Alembic migrations (idempotent; safe to call at every start-up)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url().replace("%", "%%"))
    command.upgrade(cfg, revision)


def _use_orjson() -> None:
    """jsonb comes back through orjson: pages of thousands of payloads parse several times
    faster."""
    from psycopg.types.json import set_json_loads

    set_json_loads(orjson.loads)


_use_orjson()
