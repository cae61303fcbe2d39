"""Proof at scale: N tenants x M changed jobs in one 15-minute cycle, through server and workers.

    .venv/bin/python bench/proof_scale.py --tenants 1000 --jobs 20      # make proof runs this

Self-contained: starts its own production-like stack (``ops.stack.up``: ``prefect server`` on
its own PostgreSQL database, a process work pool with ``--workers`` workers, ``prefect deploy
--all``) against a fresh hub database, one ServiceTitan emulator holding every tenant, then starts
``sync-all-tenants`` as a deployment run exactly as the 15-minute schedule would (schedules are
paused so no scheduled run competes) and waits for it. ``dispatch=deployment`` spreads the tenants
over the workers in batches of ``--batch-size`` (``sync-tenant-batch`` runs; ``--batch-size 1``
gives each tenant its own ``sync-tenant`` run).

Each tenant has its own ServiceTitan app (seed 002's recommendation), so no app's 60
requests/second binds and the shared Prefect rate limit is off (``CRMSYNC_RATE_BUDGET=off``);
``bench/bench_push.py`` and ``tests/integration/test_rate_budget.py`` cover a shared app.

Prints the cycle's wall time, checks every tenant completed with every in-window job, and splits
the time: per tenant, seconds spent in HTTP (fetch), mapping, and database merge (from the hub's
``sync_run.counts``) with the rest being Prefect and orchestration; and CPU seconds of the Prefect
server, the workers with their flow-run processes, and the emulator.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.harness import admin_url, free_port, fresh_database, wait_http  # noqa: E402

DATA_DIR = ROOT / ".crmsync" / "proof-scale"


def cpu_seconds(pid: int) -> float:
    """CPU of a process plus its reaped children (a worker reaps its flow-run processes)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def tenants_yaml(count: int, url: str) -> str:
    lines = ["tenants:"]
    for i in range(count):
        st = 700_000 + i
        lines += [
            f"  - slug: t{i:05d}",
            f"    name: Tenant {i}",
            "    integrations:",
            "      - name: st",
            "        provider: servicetitan",
            f"        base_url: {url}",
            f"        auth_url: {url}/connect/token",
            f"        credentials: {{client_id: cid.{st}, client_secret: cs1.{st}, "
            f"app_key: ak1.{st}, tenant_id: '{st}'}}",
            "        settings: {opportunity_models: [job]}",
        ]
    return "\n".join(lines) + "\n"


async def run_cycle(parameters: dict[str, Any], timeout: float) -> tuple[Any, float]:
    """Pause every schedule, start sync-all-tenants like the scheduler would, wait for it."""
    from prefect import get_client
    from prefect.deployments import run_deployment

    async with get_client() as client:
        for dep in await client.read_deployments():
            await client.pause_deployment(dep.id)
    t0 = time.perf_counter()
    run = await run_deployment(  # type: ignore[misc]
        "sync-all-tenants/sync-all-tenants", parameters=parameters, timeout=timeout
    )
    return run, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=20, help="changed jobs per tenant")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=16, help="tenants at once per batch run")
    ap.add_argument(
        "--batch-size",
        type=int,
        help="tenants per deployment run (default: split evenly over the workers)",
    )
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument(
        "--api-workers", type=int, default=1, help="Prefect API processes (> 1 needs --redis)"
    )
    ap.add_argument(
        "--redis", help="Redis URL for the multi-process Prefect server (crmsync up --redis)"
    )
    args = ap.parse_args()
    batch = args.batch_size or max(1, -(-args.tenants // max(1, args.workers)))

    import psycopg

    from ops import stack

    admin = admin_url()
    prefect_db = "crmsync_prefect_proof"
    with psycopg.connect(admin, autocommit=True) as conn:  # Prefect's own database, fresh
        conn.execute(f'DROP DATABASE IF EXISTS "{prefect_db}" WITH (FORCE)')
    with fresh_database(admin, "crmsync_scale") as hub_url:
        os.environ.update(
            DATABASE_URL=hub_url,
            CRMSYNC_DATA_DIR=str(DATA_DIR),
            CRMSYNC_RATE_BUDGET="off",
            PREFECT_LOGGING_LEVEL="WARNING",
        )
        from crmsync.settings import get_settings

        get_settings.cache_clear()

        port = free_port()
        tenant_args: list[str] = []
        for i in range(args.tenants):
            st = 700_000 + i
            spec = f"jobs={args.jobs},customers={max(1, args.jobs // 2)},memberships=0,seed={i}"
            tenant_args += ["--tenant", f"{st}:cid.{st}:cs1.{st}:ak1.{st}:{spec}"]
        emu = subprocess.Popen(
            [sys.executable, "-m", "sandbox.servicetitan", "--port", str(port), *tenant_args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        state: dict[str, Any] | None = None
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(url)
            from crmsync import db, tenants

            db.upgrade()
            path = DATA_DIR / "scale-tenants.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(tenants_yaml(args.tenants, url))
            tenants.apply(tenants.load(path))

            t_up = time.perf_counter()
            state = stack.up(
                workers=args.workers,
                port=free_port(),
                data_dir=DATA_DIR,
                database=prefect_db,
                api_workers=args.api_workers,
                redis=args.redis,
                echo=lambda *_: None,
            )
            print(f"stack up in {time.perf_counter() - t_up:.1f} s: {state['ui_url']}")
            if args.redis:
                print(
                    f"Prefect server: {args.api_workers} API process(es) + services process on "
                    "Redis; 'server' CPU below is the API master only (not its API processes "
                    "or the services process)"
                )
            server = next(p for p in state["processes"] if p["role"] == "server")
            workers = [p for p in state["processes"] if p["role"] == "worker"]
            cpu0 = {
                "server": cpu_seconds(server["pid"]),
                "workers": sum(cpu_seconds(w["pid"]) for w in workers),
                "emulator": cpu_seconds(emu.pid),
            }
            from prefect.settings import PREFECT_API_URL, temporary_settings

            parameters = {
                "dispatch": "deployment",
                "batch_size": batch,
                "max_concurrency": args.concurrency,
            }
            log = DATA_DIR / "stack" / "server.log"
            log_start = log.stat().st_size if log.exists() else 0
            with temporary_settings(updates={PREFECT_API_URL: state["local_api_url"]}):
                run, wall = asyncio.run(run_cycle(parameters, args.timeout))
                objects = asyncio.run(prefect_objects())
                sweep = asyncio.run(idle_push_sweep(args.timeout))
            dropped = (
                log.read_bytes()[log_start:].count(b"Subscription queue is full")
                if log.exists()
                else 0
            )
            cpu = {
                "server": cpu_seconds(server["pid"]) - cpu0["server"],
                "workers": sum(cpu_seconds(w["pid"]) for w in workers) - cpu0["workers"],
                "emulator": cpu_seconds(emu.pid) - cpu0["emulator"],
            }
            report(args, batch, run, wall, cpu)
            print(
                f"Prefect objects of the cycle: {objects['flow_runs']} flow runs "
                f"({objects['tenant_runs']} sync-tenant), {objects['task_runs']} task runs = "
                f"{objects['task_runs'] / max(1, objects['tenant_runs']):.2f} per tenant run "
                f"(goal <= 6: {objects['by_name']}); server log 'Subscription queue is full' "
                f"warnings: {dropped} (goal 0)"
            )
            print(
                f"idle push sweep over {args.tenants} tenants with nothing due: 1 flow run, "
                f"{sweep['subflows']} subflows, {sweep['task_runs']} task runs, "
                f"{sweep['seconds']:.1f} s (goal: <= 1 flow run per minute in total)"
            )
        finally:
            emu.terminate()
            emu.wait(10)
            if state is not None:
                stack.down(data_dir=DATA_DIR, echo=lambda *_: None)
            from crmsync import db

            db.close_pools()
            db.engine().dispose()
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{prefect_db}" WITH (FORCE)')


STEPS = ("authenticate", "fetch-modified", "map-", "merge-opportunity", "push-activity")


async def prefect_objects() -> dict[str, Any]:
    """Flow runs and task runs the cycle created (this proof's Prefect database is fresh), read
    back from the API's count endpoints once the server has recorded them (task runs arrive as
    events, after the flow runs end)."""
    from prefect import get_client

    async with get_client() as client:

        async def count(kind: str, like: str | None = None) -> int:
            body = {kind: {"name": {"like_": like}}} if like else {}
            response = await client._client.post(f"/{kind}/count", json=body)
            response.raise_for_status()
            return int(response.json())

        previous = -1
        for _ in range(60):
            total = await count("task_runs")
            if total == previous:
                break
            previous = total
            await asyncio.sleep(2)
        by_step = {step.rstrip("-"): await count("task_runs", step) for step in STEPS}
        return {
            "flow_runs": await count("flow_runs"),
            "tenant_runs": await count("flow_runs", "sync-tenant-"),
            "task_runs": sum(by_step.values()),
            "by_name": by_step,
        }


async def idle_push_sweep(timeout: float) -> dict[str, Any]:
    """One push-pending deployment run over the fleet, which has nothing to push."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
    )
    from prefect.deployments import run_deployment

    t0 = time.perf_counter()
    run = await run_deployment("push-pending/push-pending", timeout=timeout)  # type: ignore[misc]
    seconds = time.perf_counter() - t0
    await asyncio.sleep(3)
    async with get_client() as client:
        children = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])
            )
        )
        tasks = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        )
    return {"subflows": len(children), "task_runs": len(tasks), "seconds": seconds}


def report(
    args: argparse.Namespace, batch: int, run: Any, wall: float, cpu: dict[str, float]
) -> None:
    from crmsync import db

    with db.connect() as conn:
        rows = conn.execute(
            "SELECT r.status, extract(epoch FROM r.finished_at - r.started_at), r.counts "
            "FROM sync_run r"
        ).fetchall()
        per_tenant = conn.execute("SELECT count(*) FROM opportunity GROUP BY tenant_id").fetchall()
        dupes = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM opportunity GROUP BY tenant_id, external_id "
            "HAVING count(*) > 1) d"
        ).fetchone()
    completed = sum(1 for r in rows if r[0] == "completed")
    tenant_s = sum(float(r[1] or 0) for r in rows)
    parts = {"fetch_s": 0.0, "map_s": 0.0, "merge_s": 0.0}
    for _, _, counts in rows:
        for key, c in (counts or {}).items():
            if key != "push":
                for p in parts:
                    parts[p] += float(c.get(p, 0))
    other = max(0.0, tenant_s - sum(parts.values()))
    opps = sum(r[0] for r in per_tenant)
    state = run.state
    print(
        f"cycle: {args.tenants} tenants x {args.jobs} jobs, {args.workers} workers, "
        f"batches of {batch}, {args.concurrency} tenants at once per batch: "
        f"{wall:.1f} s wall (goal < 180 s), state {state.name} ({state.message})"
    )
    print(
        f"hub: {completed} of {args.tenants} tenant runs completed, {opps} opportunities "
        f"({min((r[0] for r in per_tenant), default=0)}-{max((r[0] for r in per_tenant), default=0)} "
        f"per tenant: jobs inside the 90-day window), duplicated keys: {dupes[0] if dupes else '?'}"
    )
    if tenant_s:
        print(
            f"tenant-seconds {tenant_s:.1f}: HTTP {parts['fetch_s'] / tenant_s:.0%}, "
            f"map {parts['map_s'] / tenant_s:.0%}, database merge {parts['merge_s'] / tenant_s:.0%}, "
            f"Prefect + orchestration {other / tenant_s:.0%}"
        )
    total = sum(cpu.values())
    print(
        "CPU seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
        + f" (of {2 * wall:.0f} available on 2 cores; PostgreSQL not counted); "
        f"Prefect server {cpu['server'] / total:.0%} of these"
    )


if __name__ == "__main__":
    main()
