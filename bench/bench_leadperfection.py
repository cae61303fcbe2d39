"""Benchmark: one LeadPerfection tenant with N prospects, emulator → flow → PostgreSQL.

Prints records/second and peak RSS for a first load (a 90-day window over every prospect) and
for the next regular run (the last 20 minutes, nothing changed), each phase in its own process
(so peak RSS is the phase's own), with the LP emulator in a third process (so its JSON encoding
does not share our GIL, as a real CRM would not). A "record" is one GetLead prospect with its
nested leads, jobs, appointments, notes and calls.

    .venv/bin/python bench/bench_leadperfection.py --prospects 50000

Uses DATABASE_URL when set (a fresh database is created on that server), else the machine's
PostgreSQL on 127.0.0.1:5432 when it answers, else an embedded one. Prefect runs in local mode
unless PREFECT_API_URL is set.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

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

CLIENTID = "bench1"
USERNAME = "api.bench"
PASSWORD = "pw.bench"
APPKEY = "0f8fad5b-d9cb-469f-a165-70867728950e"
INTEGRATION = "lp"


def phase(name: str) -> dict[str, object]:
    """Run inside a child process: one sync of the bench tenant through the flow."""
    import asyncio

    from crmsync import db
    from flows.sync import sync_tenant

    t0 = time.perf_counter()
    summary = asyncio.run(sync_tenant("bench"))
    wall = time.perf_counter() - t0
    with db.connect() as conn:
        opps = conn.execute("SELECT count(*) FROM opportunity").fetchone()[0]  # type: ignore[index]
        rejected = conn.execute("SELECT count(*) FROM rejected_record").fetchone()[0]  # type: ignore[index]
    counts = summary["counts"]
    emit_streams(counts)
    lp = counts.get(f"{INTEGRATION}:prospects", {})
    fetched = lp.get("fetched", 0)
    return {
        "phase": name,
        "process_s": round(wall, 2),
        "flow_s": summary["elapsed_s"],
        "prospects_fetched": fetched,
        "opportunities_created": lp.get("created", 0),
        "opportunities_updated": lp.get("updated", 0),
        "rejected": lp.get("rejected", 0),
        "opportunities_in_hub": opps,
        "rejected_in_hub": rejected,
        "records_per_s": round(fetched / summary["elapsed_s"], 1),
        "peak_rss_mib": peak_rss_mib(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prospects", type=int, default=50_000)
    ap.add_argument("--page-size", type=int, default=500)
    ap.add_argument("--phase", choices=["first", "resync"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        emit_result(phase(args.phase))
        return

    admin = admin_url()
    with fresh_database(admin) as db_url:
        env = bench_env(db_url)
        port = free_port()
        emu_args = ["--port", str(port),
                    "--clientid", CLIENTID, "--username", USERNAME, "--password", PASSWORD,
                    "--appkey", APPKEY, "--prospects", str(args.prospects)]  # fmt: skip
        with emulator("sandbox.leadperfection", emu_args, env):
            url = f"http://127.0.0.1:{port}"
            t0 = time.perf_counter()
            wait_http(url, "/token")
            ready = time.perf_counter() - t0
            print(f"emulator ready in {ready:.1f} s ({args.prospects} prospects)")
            apply_tenants(
                BENCH_DIR / "tenants-lp.yaml",
                "tenants:\n  - slug: bench\n    name: Bench\n    integrations:\n"
                f"      - name: {INTEGRATION}\n        provider: leadperfection\n"
                f"        base_url: {url}\n"
                f"        credentials: {{clientid: {CLIENTID}, username: {USERNAME}, "
                f"password: {PASSWORD}, appkey: {APPKEY}}}\n"
                f"        settings: {{page_size: {args.page_size}}}\n",
                env,
            )
            results = [run_phase(__file__, ph, env) for ph in ("first", "resync")]
            print()
            print_table(results)


if __name__ == "__main__":
    main()
