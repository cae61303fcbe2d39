"""Proof of throughput (issue 5): the ServiceTitan backfill through the flow next to a plain script.

    .venv/bin/python bench/proof_throughput.py --records 100000
    .venv/bin/python bench/proof_throughput.py --records 100000,1000000

For each size N, one emulator process (one tenant, jobs only) serves two phases in turn, each in a
child process of its own on a fresh database:

* ``flow``: ``sync-tenant`` first load, as ``bench_servicetitan.py`` runs it (mapping,
  composition, merge, cursors, Prefect).
* ``steps``: the same steps without Prefect: authenticate, then :mod:`crmsync.pipeline` with
  the plain functions of :mod:`crmsync.sync` in place of the tasks (issue 10: flow >= 0.85x).
* ``plain``: what a plain script would do with the same feeds: httpx + orjson over the five export
  feeds the connector reads, and per page a COPY into a staging table and one
  ``INSERT ... ON CONFLICT DO UPDATE`` into one table per feed (id, modified_on, payload jsonb).
  No mapping, no composition: it is the floor the flow's overhead is measured against.

Records are everything fetched (jobs + customers + customer contacts + appointments + estimates);
N is turned into jobs with the emulator's ~4.42 records per job. Records/s are over each phase's
own work time (the flow's ``elapsed_s``; the plain script from its token request to its last
commit), so process start and Prefect's local API start count for neither. Peak RSS is the
child's ``ru_maxrss``. Goals: flow/plain >= 0.7, flow peak RSS <= 150 MiB and not growing with N.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_servicetitan import APP_KEY, ST_TENANT, st_tenant_arg, st_tenants_yaml  # noqa: E402
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

RECORDS_PER_JOB = 4.42
"""100,000 jobs (+50,000 customers) gave 442,455 records (README, Benchmarks)."""
RATIO_GOAL = 0.7
STEPS_RATIO_GOAL = 0.85
"""Issue 10: the flow at >= 0.85x the same steps called without Prefect."""
RSS_GOAL_MIB = 150.0
RSS_FLAT_TOLERANCE = 0.10
"""Largest-size peak RSS within this fraction of the smallest counts as "not growing with N"."""
FIRST_SYNC_DAYS = 90

# The export feeds connectors/servicetitan.py reads for opportunity_models [job], in the order
# the flow reads them. Customers and contacts are read from the beginning; the others from the
# first-sync bound, as crmsync/providers/servicetitan.py does on a first sync.
FEEDS: list[tuple[str, str, bool]] = [
    ("customers", "/crm/v2/tenant/{tenant}/export/customers", False),
    ("customer_contacts", "/crm/v2/tenant/{tenant}/export/customers/contacts", False),
    ("appointments", "/jpm/v2/tenant/{tenant}/export/appointments", True),
    ("estimates", "/sales/v2/tenant/{tenant}/estimates/export", True),
    ("jobs", "/jpm/v2/tenant/{tenant}/export/jobs", True),
]


def flow_phase() -> dict[str, Any]:
    """Child: one first load of the bench tenant through ``sync-tenant``."""
    import asyncio

    from flows.sync import sync_tenant

    t0 = time.perf_counter()
    summary = asyncio.run(sync_tenant("bench"))
    process_s = time.perf_counter() - t0
    counts = {k: v for k, v in summary["counts"].items() if k != "push"}
    emit_streams(counts)
    fetched = sum(int(c["fetched"]) for c in counts.values())
    work_s = float(summary["elapsed_s"])
    return {
        "phase": "flow",
        "records_fetched": fetched,
        "work_s": round(work_s, 2),
        "process_s": round(process_s, 2),
        "records_per_s": round(fetched / work_s, 1),
        "peak_rss_mib": peak_rss_mib(),
    }


def steps_phase() -> dict[str, Any]:
    """Child: the flow's own steps (authenticate, then the chunk pipeline of
    :mod:`crmsync.pipeline`) called without Prefect, on a database of its own: what the flow
    costs beyond its work is the difference to ``flow``."""
    import asyncio

    from crmsync import sync
    from crmsync.pipeline import plain_steps, pull_integration

    t0 = time.perf_counter()
    (integ,) = sync.tenant_integrations("bench")
    started_at = datetime.now(UTC)
    run_id = sync.start_run("bench", None)
    sync.hold_contexts([integ.id])
    sync.authenticate(integ.id)
    result = asyncio.run(
        pull_integration(plain_steps(integ.id, started_at, run_id), sync.streams(integ.id))
    )
    sync.release_contexts([integ.id])
    counts = {f"{integ.name}:{s}": c.as_dict() for s, c in result.counts.items()}
    sync.finish_run(run_id, counts, {s: str(e) for s, e in result.errors.items()})
    work_s = time.perf_counter() - t0
    if result.errors:
        raise SystemExit(f"steps phase failed: {result.errors}")
    emit_streams(counts)
    fetched = sum(int(c["fetched"]) for c in counts.values())
    return {
        "phase": "steps",
        "records_fetched": fetched,
        "work_s": round(work_s, 2),
        "process_s": round(work_s, 2),
        "records_per_s": round(fetched / work_s, 1),
        "peak_rss_mib": peak_rss_mib(),
    }


_UPSERT = """
INSERT INTO {table} (id, modified_on, payload)
SELECT DISTINCT ON (id) id, modified_on, payload FROM stage ORDER BY id, modified_on DESC
ON CONFLICT (id) DO UPDATE SET modified_on = EXCLUDED.modified_on, payload = EXCLUDED.payload
"""


def plain_phase(url: str) -> dict[str, Any]:
    """Child: the plain script. DISTINCT ON only keeps ON CONFLICT from meeting an id twice."""
    import httpx
    import orjson
    import psycopg

    t0 = time.perf_counter()
    since = (datetime.now(UTC) - timedelta(days=FIRST_SYNC_DAYS)).date().isoformat()
    counts: dict[str, dict[str, int]] = {}
    with (
        httpx.Client(base_url=url, timeout=120) as http,
        psycopg.connect(os.environ["DATABASE_URL"]) as conn,
    ):
        token = http.post(
            "/connect/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "cid.bench",
                "client_secret": "cs1.bench",
            },
        )
        token.raise_for_status()
        http.headers["Authorization"] = f"Bearer {orjson.loads(token.content)['access_token']}"
        http.headers["ST-App-Key"] = APP_KEY
        conn.execute(
            "CREATE TEMP TABLE stage (id bigint, modified_on timestamptz, payload jsonb)"
            " ON COMMIT DELETE ROWS"
        )
        for table, path, bounded in FEEDS:
            conn.execute(
                f"CREATE TABLE {table}"
                " (id bigint PRIMARY KEY, modified_on timestamptz, payload jsonb NOT NULL)"
            )
            conn.commit()
            upsert = _UPSERT.format(table=table)
            from_ = since if bounded else None
            fetched = pages = 0
            while True:
                response = http.get(
                    path.format(tenant=ST_TENANT), params={"from": from_} if from_ else None
                )
                response.raise_for_status()
                body = orjson.loads(response.content)
                data = body["data"]
                with conn.cursor() as cur:
                    with cur.copy("COPY stage (id, modified_on, payload) FROM STDIN") as copy:
                        for rec in data:
                            copy.write_row(
                                (rec["id"], rec.get("modifiedOn"), orjson.dumps(rec).decode())
                            )
                    cur.execute(upsert)
                conn.commit()
                fetched += len(data)
                pages += 1
                if not body["hasMore"]:
                    break
                from_ = body["continueFrom"]
            counts[f"plain:{table}"] = {"fetched": fetched, "pages": pages}
    work_s = time.perf_counter() - t0
    emit_streams(counts)
    fetched = sum(c["fetched"] for c in counts.values())
    return {
        "phase": "plain",
        "records_fetched": fetched,
        "work_s": round(work_s, 2),
        "process_s": round(work_s, 2),
        "records_per_s": round(fetched / work_s, 1),
        "peak_rss_mib": peak_rss_mib(),
    }


def run_size(admin: str, records: int) -> dict[str, Any]:
    """Both phases for one size against one emulator; prints their table and the verdict."""
    jobs = max(1, round(records / RECORDS_PER_JOB))
    customers = max(1, jobs // 2)
    print(f"\n== {records} records: {jobs} jobs, {customers} customers ==")
    with (
        fresh_database(admin) as hub_url,
        fresh_database(admin, "crmsync_steps") as steps_url,
        fresh_database(admin, "crmsync_plain") as plain_url,
    ):
        env = bench_env(hub_url, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")
        port = free_port()
        tenant = st_tenant_arg(jobs, customers)
        with emulator("sandbox.servicetitan", ["--port", str(port), "--tenant", tenant], env):
            url = f"http://127.0.0.1:{port}"
            t0 = time.perf_counter()
            wait_http(url, timeout=1800)
            print(f"emulator ready in {time.perf_counter() - t0:.1f} s")
            steps_env = {**env, "DATABASE_URL": steps_url}
            apply_tenants(BENCH_DIR / "tenants-throughput.yaml", st_tenants_yaml(url), env)
            apply_tenants(BENCH_DIR / "tenants-throughput.yaml", st_tenants_yaml(url), steps_env)
            flow = run_phase(__file__, "flow", env)
            steps = run_phase(__file__, "steps", steps_env)
            plain = run_phase(__file__, "plain", {**env, "DATABASE_URL": plain_url}, ["--url", url])
    print()
    print_table([{"records": records, **r} for r in (flow, steps, plain)])
    ratio = flow["records_per_s"] / plain["records_per_s"]
    steps_ratio = flow["records_per_s"] / steps["records_per_s"]
    print(f"ratio flow/plain records/s: {ratio:.2f}")
    print(
        f"ratio flow/steps-without-Prefect records/s: {steps_ratio:.2f} "
        f"(goal >= {STEPS_RATIO_GOAL}: {_met(steps_ratio >= STEPS_RATIO_GOAL)})"
    )
    print(
        f"goals at {records}: ratio >= {RATIO_GOAL}: {_met(ratio >= RATIO_GOAL)} ({ratio:.2f}); "
        f"flow peak RSS <= {RSS_GOAL_MIB:g} MiB: {_met(flow['peak_rss_mib'] <= RSS_GOAL_MIB)} "
        f"({flow['peak_rss_mib']} MiB; plain {plain['peak_rss_mib']} MiB)"
    )
    return {
        "records": records,
        "flow_records": flow["records_fetched"],
        "plain_records": plain["records_fetched"],
        "flow_per_s": flow["records_per_s"],
        "plain_per_s": plain["records_per_s"],
        "steps_per_s": steps["records_per_s"],
        "ratio": round(ratio, 2),
        "flow_vs_steps": round(steps_ratio, 2),
        "flow_rss_mib": flow["peak_rss_mib"],
        "plain_rss_mib": plain["peak_rss_mib"],
    }


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--records",
        default="100000",
        help="records to fetch; comma-separate several sizes, e.g. 100000,1000000",
    )
    ap.add_argument("--phase", choices=["flow", "steps", "plain"], help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase == "flow":
        emit_result(flow_phase())
        return
    if args.phase == "steps":
        emit_result(steps_phase())
        return
    if args.phase == "plain":
        emit_result(plain_phase(args.url))
        return

    sizes = sorted(int(s) for s in args.records.split(",") if s.strip())
    admin = admin_url()
    summary = [run_size(admin, n) for n in sizes]
    print("\n== summary ==")
    print_table(summary)
    ratio_ok = all(s["ratio"] >= RATIO_GOAL for s in summary)
    rss_ok = all(s["flow_rss_mib"] <= RSS_GOAL_MIB for s in summary)
    line = (
        f"ratio >= {RATIO_GOAL} at every size: {_met(ratio_ok)}; "
        f"flow peak RSS <= {RSS_GOAL_MIB:g} MiB at every size: {_met(rss_ok)}"
    )
    if len(summary) > 1:
        small, large = summary[0], summary[-1]
        growth = large["flow_rss_mib"] - small["flow_rss_mib"]
        flat = growth <= RSS_FLAT_TOLERANCE * small["flow_rss_mib"]
        line += (
            f"; flow peak RSS not growing with N ({small['records']} -> {large['records']}: "
            f"{growth:+.1f} MiB, tolerance {RSS_FLAT_TOLERANCE:.0%}): {_met(flat)}"
        )
    print(line)


if __name__ == "__main__":
    main()
