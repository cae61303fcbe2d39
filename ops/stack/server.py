"""The Prefect server processes: one ``prefect server start`` (API, UI and background services),
or with ``--redis`` the services in one process and N API processes behind one port.

Every server process is ``python -m ops.stack.prefect_cli …``: Prefect's own CLI with the
workarounds of ``ops.stack.compat`` applied first.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from ops.stack.postgres import asyncpg_url
from ops.stack.processes import _spawn, _tail, is_alive
from ops.stack.scaleout import _redis_server_env
from ops.stack.state import ROOT, Echo, Proc, StackError

# `prefect …` with the compat fixes, in a module of its own (not a package's __main__: uvicorn's
# API processes are spawned and re-import the main module by name, see prefect_cli.py).
PREFECT_CLI = [sys.executable, "-m", "ops.stack.prefect_cli"]

# Retention of the Prefect database (prefect-notes §8: every 15 minutes 1 dispatcher run + one run
# per tenant with ~5 task runs each, plus push-pending every minute: ~6k flow runs a day at 50
# tenants). 14 days keeps two weeks of runs, logs and per-tenant artifacts for operators to
# inspect and retry; the hub's own sync_run / lineage tables keep the long history. Events (the
# largest table) keep Prefect's default week. Environment variables of the same name win.
FLOW_RUN_RETENTION = timedelta(days=14)
EVENT_RETENTION = timedelta(days=7)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is fine
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _local_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _wait_healthy(url: str, proc: Proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(proc):
            raise StackError(f"the Prefect server exited; end of {proc.log}:\n{_tail(proc.log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise StackError(f"{url} did not answer within {timeout:g} s; see {proc.log}")


def _prepare_database(env: dict[str, str], log: Path, timeout: float) -> None:
    """What every API process does at start-up (migrations, block types), once, in advance."""
    with log.open("w") as out:
        try:
            done = subprocess.run(
                [*PREFECT_CLI, "prepare-database"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=max(timeout, 300),
            )
        except subprocess.TimeoutExpired:
            raise StackError(f"preparing Prefect's database timed out; see {log}") from None
    if done.returncode != 0:
        raise StackError(
            f"preparing Prefect's database failed (exit {done.returncode}); end of {log}:\n"
            f"{_tail(log)}"
        )


def _server_env(
    state: dict[str, Any],
    data: Path,
    target: str,
    database: str,
    flow_run_retention: timedelta,
    event_retention: timedelta,
) -> dict[str, str]:
    """The server processes' environment: Prefect's database, retention, its own API URL."""
    retention = {
        "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,flow_runs",
        "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": str(
            int(flow_run_retention.total_seconds())
        ),
        "PREFECT_SERVER_EVENTS_RETENTION_PERIOD": f"PT{int(event_retention.total_seconds())}S",
    }
    server_env = dict(os.environ)
    for key, value in retention.items():
        server_env.setdefault(key, value)
    server_env.setdefault("PREFECT_UI_URL", state["ui_url"])  # links in notifications
    server_env.setdefault("PREFECT_UI_API_URL", state["api_url"])  # what browsers call
    server_env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    server_env.update(
        # itself, never another server inherited from the caller
        PREFECT_API_URL=state["local_api_url"],
        PREFECT_HOME=str(data / "prefect-server"),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=asyncpg_url(target, database),
    )
    server_env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)  # legacy alias would compete
    state["retention"] = {k: server_env[k] for k in retention}
    return server_env


def start_server(
    state: dict[str, Any],
    server_env: dict[str, str],
    stack_dir: Path,
    *,
    host: str,
    port: int,
    api_workers: int,
    redis: str | None,
    timeout: float,
    t0: float,
    record: Callable[[Proc], None],
    echo: Echo,
) -> None:
    """Start the server (and with ``redis`` its services process) and wait until it answers;
    ``t0`` is when ``up`` began (``time.monotonic()``), for the elapsed time it reports."""
    server_command = [*PREFECT_CLI, "server", "start", "--host", host, "--port", str(port)]
    services: Proc | None = None
    if redis:
        _redis_server_env(server_env, redis)
        _prepare_database(server_env, stack_dir / "prepare.log", timeout)
        echo("Prefect database migrated, block types registered")
        services = _spawn(
            "services",
            "prefect server services",
            [*PREFECT_CLI, "server", "services", "start"],
            server_env,
            stack_dir / "services.log",
            ROOT,
        )
        record(services)
        echo(f"prefect server services (pid {services.pid}) on Redis {state['redis']}")
        server_command.append("--no-services")
        if api_workers > 1:
            server_command += ["--workers", str(api_workers)]
    server = _spawn(
        "server",
        f"prefect server API ({api_workers} processes)" if redis else "prefect server",
        server_command,
        server_env,
        stack_dir / "server.log",
        ROOT,
    )
    record(server)
    echo(f"prefect server (pid {server.pid}) starting on {host}:{port}")
    _wait_healthy(f"{state['local_api_url']}/health", server, timeout)
    echo(f"prefect server healthy after {time.monotonic() - t0:.1f} s")
    if services is not None and not is_alive(services):
        raise StackError(
            f"prefect server services exited; end of {services.log}:\n{_tail(services.log)}"
        )
