"""``up`` / ``down`` / ``status``: the whole stack, in order, recorded in stack.json."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from ops.stack.automations import (
    ZOMBIE_AUTOMATION_NAME,
    _ensure_zombie_automation,
    _maybe_automation,
)
from ops.stack.deploy import _spec, _work_pool, deploy
from ops.stack.postgres import claim_database, default_database, prefect_database
from ops.stack.prefect_api import _ensure_work_pool, _online_workers
from ops.stack.processes import _stop, is_alive
from ops.stack.scaleout import check_redis, redact_redis
from ops.stack.server import (
    EVENT_RETENTION,
    FLOW_RUN_RETENTION,
    _local_host,
    _port_free,
    _server_env,
    start_server,
)
from ops.stack.state import (
    ROOT,
    Echo,
    Proc,
    StackError,
    _data_dir,
    _procs,
    _read_state,
    _write_state,
    stack_file,
)
from ops.stack.workers import _wait_workers, client_env, start_workers


def up(
    workers: int = 2,
    port: int = 4200,
    *,
    host: str = "127.0.0.1",
    data_dir: Path | None = None,
    prefect_pg: str | None = None,
    database: str | None = None,
    worker_limit: int | None = None,
    api_workers: int = 1,
    redis: str | None = None,
    flow_run_retention: timedelta = FLOW_RUN_RETENTION,
    event_retention: timedelta = EVENT_RETENTION,
    timeout: float = 120,
    echo: Echo = print,
) -> dict[str, Any]:
    """Start server, pool, deployments and ``workers`` workers; the content of stack.json.

    Idempotent: when stack.json lists only live processes, only report (and create the failure
    automation if its notification block appeared since). ``prefect_pg`` is a libpq URL of any
    database on the PostgreSQL server to hold Prefect's ``database``, or ``"embedded"`` for the
    private cluster in ``<data_dir>/prefect-pg`` even when another server is reachable.
    ``database`` defaults to the stack's own (``crmsync_prefect_<hash of the data dir>``); one
    that another running stack uses is refused.

    ``redis`` (a ``redis://host:port/db`` URL, required when ``api_workers`` > 1) runs Prefect's
    multi-process server: ``api_workers`` API processes without services on ``port`` and the
    background services as one more process, coordinated through that Redis database.
    """
    if workers < 0:
        raise StackError("workers must be >= 0")
    if api_workers < 1:
        raise StackError("--api-workers must be >= 1")
    if api_workers > 1 and not redis:
        raise StackError(
            f"--api-workers {api_workers} needs --redis redis://HOST:6379/DB: Prefect's API "
            "processes share events, caches and concurrency leases only through Redis"
        )
    data = _data_dir(data_dir)
    previous = _read_state(data)
    if previous is not None:
        if previous.get("processes") and all(is_alive(p) for p in _procs(previous)):
            echo(
                f"stack already running (started {previous.get('started_at')}); nothing to do "
                "(other --workers or --port: `crmsync down` first)"
            )
            _maybe_automation(previous, data, echo)
            echo(status(data))
            return previous
        echo("stack.json lists processes that are gone; stopping the rest and starting afresh")
        down(data_dir=data, echo=echo)

    spec = _spec()
    pool = _work_pool(spec)
    stack_dir = data / "stack"
    stack_dir.mkdir(parents=True, exist_ok=True)
    if not _port_free(host, port):
        raise StackError(f"port {port} on {host} is in use; pick another with --port")
    if redis:
        check_redis(redis)
    public_host = socket.getfqdn() if host in ("0.0.0.0", "::") else host
    api_url = f"http://{public_host}:{port}/api"
    local_api = f"http://{_local_host(host)}:{port}/api"
    state: dict[str, Any] = {
        "version": 1,
        "status": "starting",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "repo": str(ROOT),
        "data_dir": str(data),
        "host": host,
        "port": port,
        "api_url": api_url,
        "local_api_url": local_api,
        "ui_url": api_url.removesuffix("/api"),
        "work_pool": pool,
        "processes": [],
    }
    if redis:
        state["redis"] = redact_redis(redis)
        state["api_workers"] = api_workers
    procs: list[Proc] = []
    t0 = time.monotonic()

    def record(proc: Proc) -> None:
        procs.append(proc)
        state["processes"] = [asdict(p) for p in procs]
        _write_state(state, data)

    try:
        # 0. The hub's schema, which every flow run expects (like every other command).
        from crmsync import db

        db.upgrade()
        echo("hub database at the latest migration")

        # 1. Prefect's own PostgreSQL database, one per stack.
        database = database or default_database(data)
        target = prefect_database(state, data, prefect_pg, database, timeout, record, echo)

        # 2. The server.
        server_env = _server_env(state, data, target, database, flow_run_retention, event_retention)
        start_server(
            state,
            server_env,
            stack_dir,
            host=host,
            port=port,
            api_workers=api_workers,
            redis=redis,
            timeout=timeout,
            t0=t0,
            record=record,
            echo=echo,
        )
        server = next(p for p in procs if p.role == "server")
        if not claim_database(target, database, data, server):
            echo(
                f"note: could not record this stack on {database!r} (the role does not own it); "
                "another stack could start on it unnoticed"
            )

        # 3. Work pool.
        created = asyncio.run(_ensure_work_pool(local_api, pool))
        echo(f"work pool {pool}: {'created' if created else 'exists'}")
        env = client_env(data, local_api)
        # 4. Workers, starting (~5 s of imports each) while the deployments register.
        names, spawned_at = start_workers(workers, pool, worker_limit, env, stack_dir, record)
        # 5. Deployments.
        deploy(spec, env, local_api, stack_dir, timeout, t0, echo)

        _wait_workers(local_api, pool, set(names), procs, spawned_at, timeout)
        if workers:
            echo(f"{workers} worker(s) online in {pool}: {', '.join(names)}")
        echo(f"stack up in {time.monotonic() - t0:.1f} s")

        state["status"] = "up"
        _write_state(state, data)
        zombie = asyncio.run(_ensure_zombie_automation(local_api))
        echo(f"automation {ZOMBIE_AUTOMATION_NAME!r} {zombie}")
        _maybe_automation(state, data, echo)
    except BaseException:
        state["status"] = "failed"
        _write_state(state, data)
        if procs:
            echo("start-up failed; stopping what was started")
        with contextlib.suppress(StackError):
            down(data_dir=data, echo=echo)
        raise

    echo(f"Prefect UI: {state['ui_url']}   logs: {stack_dir}")
    echo("Point the CLI and other machines' workers at this server with:")
    echo(f"export PREFECT_API_URL={api_url}")
    return state


_STOP_ORDER = {"worker": 0, "server": 1, "services": 2, "postgres": 3}


def down(data_dir: Path | None = None, timeout: float = 20, echo: Echo = print) -> list[Proc]:
    """Stop the processes stack.json lists (workers, server, then PostgreSQL) and remove it."""
    data = _data_dir(data_dir)
    state = _read_state(data)
    if state is None:
        echo(f"no stack recorded in {stack_file(data)}; nothing to stop")
        return []
    procs = sorted(_procs(state), key=lambda p: _STOP_ORDER.get(p.role, 1))
    left: list[Proc] = []
    for proc in procs:
        outcome = _stop(proc, timeout)
        echo(f"{proc.name} (pid {proc.pid}): {outcome}")
        if outcome.startswith("still"):
            left.append(proc)
    if left:
        state["processes"] = [asdict(p) for p in left]
        _write_state(state, data)
        raise StackError(f"could not stop {[p.pid for p in left]}; stack.json keeps them")
    stack_file(data).unlink(missing_ok=True)
    return procs


def status(data_dir: Path | None = None) -> str:
    """Human-readable state of the recorded stack: processes, API health, online workers."""
    data = _data_dir(data_dir)
    state = _read_state(data)
    if state is None:
        return f"no stack recorded in {stack_file(data)} (start one with `crmsync up`)"
    lines = [
        f"stack {state.get('status')} since {state.get('started_at')} ({stack_file(data)})",
        f"  API {state['api_url']}   UI {state['ui_url']}",
        f"  Prefect database {state.get('prefect_database', '?')} "
        f"({state.get('prefect_database_source', '?')})",
    ]
    try:
        healthy = httpx.get(f"{state['local_api_url']}/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        healthy = False
    lines.append(f"  API health: {'ok' if healthy else 'NOT ANSWERING'}")
    if state.get("redis"):
        lines.append(
            f"  Redis {state['redis']}: {state.get('api_workers', 1)} API process(es) without "
            "services, background services in a process of their own"
        )
    online: set[str] = set()
    if healthy:
        with contextlib.suppress(Exception):
            online = asyncio.run(_online_workers(state["local_api_url"], state["work_pool"]))
    for proc in _procs(state):
        alive = "running" if is_alive(proc) else "GONE"
        extra = ""
        if proc.role == "worker":
            extra = ", online" if proc.name in online else ", not online"
        lines.append(f"  {proc.role:<8} pid {proc.pid:<8} {alive}{extra}  {proc.name}  {proc.log}")
    for key, value in (state.get("retention") or {}).items():
        lines.append(f"  {key}={value}")
    if state.get("automation"):
        lines.append(
            f"  automation: {state['automation']['name']} → {state['automation']['block']}"
        )
    lines.append(f"export PREFECT_API_URL={state['api_url']}")
    return "\n".join(lines)
