"""Process workers of the ``crmsync-process`` pool on this machine, and the environment they and
the flow runs they spawn get: the same hub database, keys and data dir as ``up``'s process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from crmsync.settings import get_settings
from ops.stack.prefect_api import _online_workers
from ops.stack.processes import _spawn, _tail, is_alive
from ops.stack.state import ROOT, Proc, StackError

HEARTBEAT_SECONDS = 30  # flow-run heartbeat of every worker's runs (Prefect's default: 180)


def _hub_env() -> dict[str, str]:
    """What every worker (and the flow runs it spawns) needs to reach the hub: the same database,
    keys and data dir (embedded hub PostgreSQL, generated secret key) as this process."""
    settings = get_settings()
    env = {"CRMSYNC_DATA_DIR": str(settings.data_dir.resolve()), "CRMSYNC_HOME": str(ROOT)}
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    if settings.secret_key:
        env["CRMSYNC_SECRET_KEY"] = settings.secret_key.get_secret_value()
    if settings.notification_block:
        env["CRMSYNC_NOTIFICATION_BLOCK"] = settings.notification_block
    return env


def client_env(data: Path, local_api: str) -> dict[str, str]:
    """Environment of the workers and of ``prefect deploy``: a client of the stack's API."""
    env = {
        **os.environ,
        "PREFECT_HOME": os.environ.get("PREFECT_HOME", str(data / "prefect")),
        **_hub_env(),
        "PREFECT_API_URL": local_api,
        "PREFECT_CLI_PROMPT": "false",
    }
    env.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))
    return env


def start_workers(
    workers: int,
    pool: str,
    worker_limit: int | None,
    env: dict[str, str],
    stack_dir: Path,
    record: Callable[[Proc], None],
) -> tuple[list[str], datetime]:
    """Spawn ``workers`` process workers; their names and a time just before they started."""
    spawned_at = datetime.now(UTC) - timedelta(seconds=1)
    names = [f"crmsync-{socket.gethostname()}-{i}" for i in range(1, workers + 1)]
    for i, name in enumerate(names, start=1):
        command = [sys.executable, "-m", "prefect", "worker", "start"]
        command += ["--pool", pool, "--name", name]
        if worker_limit:
            command += ["--limit", str(worker_limit)]
        worker = _spawn("worker", name, command, env, stack_dir / f"worker-{i}.log", ROOT)
        record(worker)
    return names, spawned_at


def _wait_workers(
    api_url: str, pool: str, names: set[str], procs: list[Proc], since: datetime, timeout: float
) -> None:
    """Until every new worker has sent a heartbeat after ``since`` (a same-named worker of an
    earlier stack still shows ONLINE for a while)."""
    deadline = time.monotonic() + timeout
    while names:
        dead = [p for p in procs if p.role == "worker" and not is_alive(p)]
        if dead:
            raise StackError(f"worker {dead[0].name} exited; end of its log:\n{_tail(dead[0].log)}")
        with contextlib.suppress(httpx.HTTPError):
            if names <= asyncio.run(_online_workers(api_url, pool, since)):
                return
        if time.monotonic() > deadline:
            raise StackError(f"workers {sorted(names)} did not come online in {timeout:g} s")
        time.sleep(0.5)
