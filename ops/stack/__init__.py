"""A production-like Prefect stack on one machine: ``crmsync up`` / ``crmsync down`` (issue 5).

Local mode runs every flow against a throw-away SQLite API inside the calling process, which
answers 503 under concurrent writes and drops the last events at exit
(``shared/reference/prefect-notes.md`` §7, §8, §10.1). Operators need the real thing: a
``prefect server`` on PostgreSQL in its own database, the deployments of ``prefect.yaml``
registered, and process workers pulling from the ``crmsync-process`` pool, so tenants spread over
every worker and a UI *Retry* lands on any of them. The same pieces run on many machines; the
README's "Running the stack" section says how.

Everything ``up`` starts is recorded in ``<data_dir>/stack/stack.json`` with its pid *and* the
kernel's start time of that pid, so ``down`` stops exactly those processes and never one that
merely reused a pid. Server and workers each get their own session (process group), which
``down`` signals as a whole; the flow runs a process worker started (each in a session of its
own) end with their worker when it gets SIGTERM.

Prefect's database: the PostgreSQL server of ``DATABASE_URL`` (a separate database, never the
hub's), else the machine's PostgreSQL on 127.0.0.1:5432, else a private cluster in
``<data_dir>/prefect-pg``; one database per stack, named after its data directory
(``crmsync_prefect_<hash>``), and refused to a second stack while the first one runs. Prefect's
migrations need the ``pg_trgm`` extension, which the ``pgserver`` wheel used for the hub's
embedded database does not ship (its share/extension holds only plpgsql and vector), so the
private cluster runs on the first PostgreSQL binaries that have it: pgserver's if a future wheel
adds it, else the machine's installation.

With ``--redis`` (required for ``--api-workers`` > 1) the server runs the way Prefect documents
for scaling out ("How to scale self-hosted Prefect", "Multi-worker API server" in the server CLI
guide): the migrations and block types once, then ``prefect server services start`` (scheduler,
triggers, event persister, vacuum …) as one process and ``prefect server start --no-services
--workers N`` as N API processes behind one port, all sharing events, caches, causal ordering and
concurrency leases through Redis (``prefect-redis``) and background tasks through Docket on the
same Redis.

Modules, in the order ``up`` uses them: ``state`` (stack.json, ``Proc``), ``processes`` (pid
identity, spawn, stop), ``postgres`` (Prefect's database, the private cluster), ``scaleout``
(Redis settings), ``server`` (the server processes), ``compat`` and ``prefect_cli`` (what those
processes run), ``prefect_api``, ``workers``, ``deploy``, ``automations``, and ``lifecycle``
(``up``, ``down``, ``status``).
"""

from __future__ import annotations

from ops.stack.automations import AUTOMATION_NAME, ZOMBIE_AFTER, ZOMBIE_AUTOMATION_NAME
from ops.stack.lifecycle import down, status, up
from ops.stack.postgres import (
    PREFECT_DATABASE,
    asyncpg_url,
    default_database,
    start_private_postgres,
)
from ops.stack.processes import _spawn, _stop, is_alive
from ops.stack.scaleout import check_redis, redact_redis
from ops.stack.server import EVENT_RETENTION, FLOW_RUN_RETENTION
from ops.stack.state import ROOT, Echo, Proc, StackError, _write_state, stack_file
from ops.stack.workers import HEARTBEAT_SECONDS, _hub_env, _wait_workers

__all__ = [
    "AUTOMATION_NAME",
    "EVENT_RETENTION",
    "FLOW_RUN_RETENTION",
    "HEARTBEAT_SECONDS",
    "PREFECT_DATABASE",
    "ROOT",
    "ZOMBIE_AFTER",
    "ZOMBIE_AUTOMATION_NAME",
    "Echo",
    "Proc",
    "StackError",
    "_hub_env",
    "_spawn",
    "_stop",
    "_wait_workers",
    "_write_state",
    "asyncpg_url",
    "check_redis",
    "default_database",
    "down",
    "is_alive",
    "redact_redis",
    "stack_file",
    "start_private_postgres",
    "status",
    "up",
]
