"""Proof at scale: N tenants x M changed jobs in one 15-minute cycle, through Prefect.

    crmsync up --workers 2          # Prefect server on PostgreSQL (+ workers), prints PREFECT_API_URL
    export PREFECT_API_URL=...
    .venv/bin/python bench/proof_scale.py --tenants 1000 --jobs 20 --concurrency 16

Each tenant has its own ServiceTitan app (seed 002's recommendation), so the emulator's 60
requests/second per app never binds. Prints the cycle's wall time and where the tenant-seconds
went: HTTP (fetch), mapping, database merge, and Prefect/orchestration overhead (the rest).
``--dispatch deployment`` sends each tenant to the work pool as its own sync-tenant run instead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_servicetitan import admin_url, free_port, wait_http  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--dispatch", choices=["subflow", "deployment"], default="subflow")
    args = ap.parse_args()
    if not os.environ.get("PREFECT_API_URL"):
        raise SystemExit(
            "set PREFECT_API_URL (crmsync up prints it): ephemeral SQLite cannot take this load"
        )

    import psycopg

    admin = admin_url()
    name = f"crmsync_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, query = admin.partition("?")
    os.environ["DATABASE_URL"] = (
        base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
    )
    os.environ.setdefault("CRMSYNC_RATE_BUDGET", "off")  # one app per tenant: nothing to share
    port = free_port()
    tenant_args: list[str] = []
    for i in range(args.tenants):
        st = 700_000 + i
        tenant_args += [
            "--tenant",
            f"{st}:cid.{st}:cs1.{st}:ak1.{st}:jobs={args.jobs},customers={max(1, args.jobs // 2)},memberships=0,seed={i}",
        ]
    emu = subprocess.Popen(
        [sys.executable, "-m", "sandbox.servicetitan", "--port", str(port), *tenant_args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url)
        from crmsync import db, tenants

        db.upgrade()
        lines = ["tenants:"]
        for i in range(args.tenants):
            st = 700_000 + i
            lines += [
                f"  - slug: t{i:05d}",
                f"    name: Tenant {i}",
                "    integrations:",
                "      - name: st",
                "        provider: servicetitan",
                f"        base_url: {url}",
                f"        auth_url: {url}/connect/token",
                f"        credentials: {{client_id: cid.{st}, client_secret: cs1.{st}, app_key: ak1.{st}, tenant_id: '{st}'}}",
                "        settings: {opportunity_models: [job]}",
            ]
        path = ROOT / ".crmsync" / "bench" / "scale-tenants.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        tenants.apply(tenants.load(path))

        from flows.sync import sync_all_tenants

        async def cycle() -> Any:
            return await sync_all_tenants(
                max_concurrency=args.concurrency, dispatch=args.dispatch, return_state=True
            )

        t0 = time.perf_counter()
        state = asyncio.run(cycle())
        wall = time.perf_counter() - t0
        with db.connect() as conn:
            rows = conn.execute(
                "SELECT extract(epoch FROM finished_at - started_at), counts FROM sync_run"
            ).fetchall()
            opps = conn.execute("SELECT count(*) FROM opportunity").fetchone()[0]  # type: ignore[index]
        tenant_s = sum(float(r[0] or 0) for r in rows)
        parts = {"fetch_s": 0.0, "map_s": 0.0, "merge_s": 0.0}
        for _, counts in rows:
            for key, c in counts.items():
                if key != "push":
                    for p in parts:
                        parts[p] += float(c.get(p, 0))
        other = max(0.0, tenant_s - sum(parts.values()))
        print(
            f"cycle: {args.tenants} tenants x {args.jobs} jobs, {args.dispatch}, concurrency {args.concurrency}: "
            f"{wall:.1f} s wall, state {state.name} ({state.message}); {opps} opportunities"
        )
        print(
            f"tenant-seconds {tenant_s:.1f}: HTTP {parts['fetch_s'] / tenant_s:.0%}, "
            f"map {parts['map_s'] / tenant_s:.0%}, database merge {parts['merge_s'] / tenant_s:.0%}, "
            f"Prefect + orchestration {other / tenant_s:.0%}"
        )
    finally:
        emu.terminate()
        emu.wait(10)
        from crmsync import db

        db.engine().dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
