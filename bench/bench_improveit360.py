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
import json
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLIENT_ID = "3MVG9.bench"
REFRESH_TOKEN = "5Aep861.bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def admin_url() -> str:
    import psycopg

    url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"
    try:
        with psycopg.connect(url, connect_timeout=3):
            return url
    except psycopg.OperationalError:
        import pgserver

        server = pgserver.get_server(ROOT / ".crmsync" / "bench-pg", cleanup_mode=None)
        return str(server.get_uri())


def wait_http(url: str, timeout: float = 600) -> None:
    """Until the token endpoint answers (a 400 for an empty grant means it is up)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.post(url + "/services/oauth2/token", data={"grant_type": "x"}, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.25)
    raise SystemExit(f"emulator at {url} did not start")


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
    for stream, c in counts.items():
        print(f"STREAM {stream}: " + ", ".join(f"{k}={v}" for k, v in c.items()), file=sys.stderr)
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
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--opportunities", type=int, default=50_000)
    ap.add_argument("--phase", choices=["first", "resync"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print("RESULT " + json.dumps(phase(args.phase)))
        return

    import psycopg

    admin = admin_url()
    name = f"crmsync_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, query = admin.partition("?")
    env = {
        **os.environ,
        "DATABASE_URL": base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else ""),
        "CRMSYNC_DATA_DIR": str(ROOT / ".crmsync" / "bench"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    env.setdefault("PREFECT_HOME", str(ROOT / ".crmsync" / "bench" / "prefect"))
    port = free_port()
    emu = subprocess.Popen(
        [
            sys.executable, "-m", "sandbox.salesforce", "--port", str(port),
            "--client-id", CLIENT_ID, "--refresh-token", REFRESH_TOKEN,
            "--opportunities", str(args.opportunities), "--daily-limit", "1000000",
        ],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        wait_http(url)
        ready = time.perf_counter() - t0
        print(f"emulator ready in {ready:.1f} s ({args.opportunities} opportunities)")
        tenants_file = ROOT / ".crmsync" / "bench" / "tenants-i360.yaml"
        tenants_file.parent.mkdir(parents=True, exist_ok=True)
        tenants_file.write_text(
            "tenants:\n  - slug: bench\n    name: Bench\n    integrations:\n      - name: i360\n"
            f"        provider: improveit360\n        auth_url: {url}\n"
            f"        credentials: {{client_id: {CLIENT_ID}, refresh_token: {REFRESH_TOKEN}}}\n"
            "        settings: {placeholder_emails: [none@none.com, noemail@noemail.com]}\n"
        )
        subprocess.run([sys.executable, "-m", "crmsync", "tenants", "apply", str(tenants_file)],
                       cwd=ROOT, env=env, check=True)  # fmt: skip
        results = []
        for ph in ("first", "resync"):
            proc = subprocess.run(
                [sys.executable, __file__, "--phase", ph], cwd=ROOT, env=env, check=True,
                capture_output=True, text=True,
            )  # fmt: skip
            print(f"{ph}:")
            print("\n".join(ln for ln in proc.stderr.splitlines() if ln.startswith("STREAM ")))
            line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
            results.append(json.loads(line[len("RESULT ") :]))
        print()
        cols = list(results[0])
        print(" | ".join(cols))
        for r in results:
            print(" | ".join(str(r[c]) for c in cols))
    finally:
        emu.terminate()
        emu.wait(10)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
