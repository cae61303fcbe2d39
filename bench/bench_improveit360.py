"""Benchmark: one improveit360 (i360 Lightning) org with N Sales Opportunities, emulator → flow →
PostgreSQL.

Prints records/second and peak RSS for a first load and for an unchanged re-sync, each phase in
its own process (so peak RSS is the phase's own), with the Salesforce emulator in a third process
(``python -m sandbox.salesforce``, so its JSON encoding does not share our GIL, as a real org
would not).

    .venv/bin/python bench/bench_improveit360.py --opportunities 50000

"Records" are every record read (accounts, contacts, appointments, projects, opportunities);
"opportunities/s" counts Sales Opportunities only. Uses DATABASE_URL when set (a fresh database is
created on that server), else the machine's PostgreSQL on 127.0.0.1:5432 when it answers, else an
embedded one. Prefect runs in local mode unless PREFECT_API_URL is set.
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

CLIENT_ID = "3MVG9.bench"
REFRESH_TOKEN = "5Aep861.bench"


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
    counts = {k: c for k, c in summary["counts"].items() if k.startswith("i360:")}
    fetched = sum(c["fetched"] for c in counts.values())
    opportunities = counts.get("i360:opportunities", {})
    emit_streams(counts)
    return {
        "phase": name,  # type: ignore[dict-item]
        "process_s": round(wall, 2),
        "flow_s": summary["elapsed_s"],
        "records_fetched": fetched,
        "opportunities_fetched": opportunities.get("fetched", 0),
        "opportunities_created": opportunities.get("created", 0),
        "opportunities_updated": sum(c.get("updated", 0) for c in counts.values()),
        "opportunities_in_hub": opps,
        "records_per_s": round(fetched / summary["elapsed_s"], 1),
        "opportunities_per_s": round(opportunities.get("fetched", 0) / summary["elapsed_s"], 1),
        "peak_rss_mib": peak_rss_mib(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--opportunities", type=int, default=50_000)
    ap.add_argument("--phase", choices=["first", "resync"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        emit_result(phase(args.phase))
        return

    admin = admin_url()
    with fresh_database(admin) as db_url:
        env = bench_env(db_url)
        port = free_port()
        emu_args = [
            "--port", str(port),
            "--client-id", CLIENT_ID, "--refresh-token", REFRESH_TOKEN,
            "--opportunities", str(args.opportunities), "--daily-limit", "1000000",
        ]  # fmt: skip
        with emulator("sandbox.salesforce", emu_args, env):
            url = f"http://127.0.0.1:{port}"
            t0 = time.perf_counter()
            wait_http(url, "/services/oauth2/token", timeout=600)
            ready = time.perf_counter() - t0
            print(f"emulator ready in {ready:.1f} s ({args.opportunities} opportunities)")
            apply_tenants(
                BENCH_DIR / "tenants-i360.yaml",
                "tenants:\n  - slug: bench\n    name: Bench\n    integrations:\n      - name: i360\n"
                f"        provider: improveit360\n        auth_url: {url}\n"
                f"        credentials: {{client_id: {CLIENT_ID}, refresh_token: {REFRESH_TOKEN}}}\n"
                "        settings: {placeholder_emails: [none@none.com, noemail@noemail.com]}\n",
                env,
            )
            results = [run_phase(__file__, ph, env) for ph in ("first", "resync")]
            print()
            print_table(results)


if __name__ == "__main__":
    main()
