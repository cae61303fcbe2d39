"""Benchmark: one ServiceTitan tenant with N jobs, emulator → flow → PostgreSQL.

Prints records/second and peak RSS for a first load and for an unchanged re-sync, each phase in
its own process (so peak RSS is the phase's own), with the emulator in a third process (so its
JSON encoding does not share our GIL, as a real CRM would not).

``--selector`` picks the Job resources of seed 002's object selector: ``today`` is the default
pair (appointments, estimates), ``full`` every optional Job resource (issue 14), ``both`` (the
default) runs the two one after the other on the same emulator tenant, each into a fresh database,
and prints them side by side.

    .venv/bin/python bench/bench_servicetitan.py --jobs 100000 --selector both

``--job-notes N`` (issue 15) gives the tenant N job notes and runs each selector twice, without
and with inbound job notes, so the cost of reading a tenant's activities shows beside the same
load without them:

    .venv/bin/python bench/bench_servicetitan.py --jobs 100000 --selector today --job-notes 100000

Uses DATABASE_URL when set (a fresh database is created on that server), else the machine's
PostgreSQL on 127.0.0.1:5432 when it answers, else an embedded one. Prefect runs in local mode
unless PREFECT_API_URL is set.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import get_args

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.harness import (  # noqa: E402
    BENCH_DIR,
    admin_url,
    apply_tenants,
    bench_env,
    emit_result,
    emit_streams,
    emulator,
    free_port,
    fresh_database,
    peak_rss_mib,
    print_table,
    run_phase,
    wait_http,
)
from models.integrations.servicetitan import JobResource  # noqa: E402

__all__ = ["admin_url", "free_port", "st_tenant_arg", "st_tenants_yaml", "wait_http"]

ST_TENANT = 4242
APP_KEY = "ak1.bench"


def st_tenant_arg(jobs: int, customers: int, job_notes: int = 0) -> str:
    """The emulator's ``--tenant`` value for the bench tenant (no memberships: jobs only)."""
    return (
        f"{ST_TENANT}:cid.bench:cs1.bench:{APP_KEY}:jobs={jobs},customers={customers},"
        f"memberships=0,job_notes={job_notes}"
    )


SELECTORS: dict[str, list[str]] = {
    "today": ["appointments", "estimates"],
    "full": list(get_args(JobResource)),
}


def st_tenants_yaml(
    url: str, job_resources: list[str] | None = None, job_notes: bool = False
) -> str:
    """The tenants file for the bench tenant against the emulator at ``url``; ``job_notes``
    turns inbound job notes on (issue 15; customer and location notes stay off: they cost a
    request per customer, which ServiceTitan's 60 requests/s would time, not crmsync)."""
    resources = job_resources if job_resources is not None else SELECTORS["today"]
    inbound = (
        ", inbound_activities: {enabled: true}, note_sources: [job], note_sweep_customers: 0"
        if job_notes
        else ""
    )
    return (
        "tenants:\n  - slug: bench\n    name: Bench\n    integrations:\n      - name: st\n"
        f"        provider: servicetitan\n        base_url: {url}\n        auth_url: {url}/connect/token\n"
        f"        credentials: {{client_id: cid.bench, client_secret: cs1.bench, app_key: {APP_KEY}, tenant_id: '{ST_TENANT}'}}\n"
        f"        settings: {{opportunity_models: [job], job_resources: [{', '.join(resources)}]"
        f"{inbound}}}\n"
    )


def phase(name: str) -> dict[str, float]:
    """Run inside a child process: one sync of the bench tenant through the flow."""
    import asyncio

    from crmsync import db
    from flows.sync import sync_tenant

    t0 = time.perf_counter()
    summary = asyncio.run(sync_tenant("bench"))
    wall = time.perf_counter() - t0
    with db.connect() as conn:
        opps = conn.execute("SELECT count(*) FROM opportunity").fetchone()[0]  # type: ignore[index]
    counts = {k: v for k, v in summary["counts"].items() if k != "push"}
    fetched = sum(c["fetched"] for c in counts.values())
    notes = counts.get("st:job_notes", {})
    jobs = counts.get("st:jobs", {})
    emit_streams(counts)
    return {
        "phase": name,  # type: ignore[dict-item]
        "process_s": round(wall, 2),
        "flow_s": summary["elapsed_s"],
        "records_fetched": fetched,
        "jobs_fetched": jobs.get("fetched", 0),
        "opportunities_created": jobs.get("created", 0),
        "opportunities_updated": jobs.get("updated", 0),
        "opportunities_in_hub": opps,
        "activities_stored": notes.get("activities", 0),
        "records_per_s": round(fetched / summary["elapsed_s"], 1),
        "jobs_per_s": round(jobs.get("fetched", 0) / summary["elapsed_s"], 1),
        "peak_rss_mib": peak_rss_mib(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument(
        "--selector",
        choices=["today", "full", "both"],
        default="both",
        help="Job resources: today's two (appointments, estimates), every optional one, or both "
        "side by side on the same emulator tenant (default)",
    )
    ap.add_argument(
        "--job-notes",
        type=int,
        default=0,
        help="issue 15: N job notes in the emulator tenant; each selector then runs without "
        "and with inbound job notes, side by side",
    )
    ap.add_argument("--phase", choices=["first", "resync"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        emit_result(phase(args.phase))
        return

    admin = admin_url()
    selectors = ["today", "full"] if args.selector == "both" else [args.selector]
    port = free_port()
    customers = max(1, args.jobs // 2)
    tenant = st_tenant_arg(args.jobs, customers, args.job_notes)
    notes_runs = [False, True] if args.job_notes else [False]
    results: list[dict[str, object]] = []
    with emulator(
        "sandbox.servicetitan", ["--port", str(port), "--tenant", tenant], dict(os.environ)
    ):
        url = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        wait_http(url)
        print(
            f"emulator ready in {time.perf_counter() - t0:.1f} s ({args.jobs} jobs, {customers} customers)"
        )
        for selector in selectors:
            for notes in notes_runs:
                with fresh_database(admin) as db_url:
                    env = bench_env(db_url, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")
                    yaml = st_tenants_yaml(url, SELECTORS[selector], job_notes=notes)
                    apply_tenants(BENCH_DIR / "tenants.yaml", yaml, env)
                    label = f"{selector}{' + job notes' if notes else ''}"
                    print(f"selector {label}: {', '.join(SELECTORS[selector])}")
                    for ph in ("first", "resync"):
                        results.append({"selector": label, **run_phase(__file__, ph, env)})
    print()
    print_table(results)


if __name__ == "__main__":
    main()
