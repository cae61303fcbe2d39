"""Benchmark: one ServiceTitan tenant with N jobs, emulator → flow → PostgreSQL.

Prints records/second and peak RSS for a first load and for an unchanged re-sync, each phase in
its own process (so peak RSS is the phase's own), with the emulator in a third process (so its
JSON encoding does not share our GIL, as a real CRM would not).

    .venv/bin/python bench/bench_servicetitan.py --jobs 100000

Uses DATABASE_URL when set (a fresh database is created on that server), else the machine's
PostgreSQL on 127.0.0.1:5432 when it answers, else an embedded one. Prefect runs in local mode
unless PREFECT_API_URL is set.
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

ST_TENANT = 4242
APP_KEY = "ak1.bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.post(url + "/connect/token", data={"grant_type": "x"}, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.25)
    raise SystemExit(f"emulator at {url} did not start")


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
    jobs = counts.get("st:jobs", {})
    for stream, c in counts.items():
        print(f"STREAM {stream}: " + ", ".join(f"{k}={v}" for k, v in c.items()), file=sys.stderr)
    return {
        "phase": name,  # type: ignore[dict-item]
        "process_s": round(wall, 2),
        "flow_s": summary["elapsed_s"],
        "records_fetched": fetched,
        "jobs_fetched": jobs.get("fetched", 0),
        "opportunities_created": jobs.get("created", 0),
        "opportunities_updated": jobs.get("updated", 0),
        "opportunities_in_hub": opps,
        "records_per_s": round(fetched / summary["elapsed_s"], 1),
        "jobs_per_s": round(jobs.get("fetched", 0) / summary["elapsed_s"], 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100_000)
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
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    env.setdefault("PREFECT_HOME", str(ROOT / ".crmsync" / "bench" / "prefect"))
    port = free_port()
    customers = max(1, args.jobs // 2)
    emu = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.servicetitan",
            "--port",
            str(port),
            "--tenant",
            f"{ST_TENANT}:cid.bench:cs1.bench:{APP_KEY}:jobs={args.jobs},"
            f"customers={customers},memberships=0",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        wait_http(url)
        print(
            f"emulator ready in {time.perf_counter() - t0:.1f} s ({args.jobs} jobs, {customers} customers)"
        )
        tenants_file = ROOT / ".crmsync" / "bench" / "tenants.yaml"
        tenants_file.parent.mkdir(parents=True, exist_ok=True)
        tenants_file.write_text(
            "tenants:\n  - slug: bench\n    name: Bench\n    integrations:\n      - name: st\n"
            f"        provider: servicetitan\n        base_url: {url}\n        auth_url: {url}/connect/token\n"
            f"        credentials: {{client_id: cid.bench, client_secret: cs1.bench, app_key: {APP_KEY}, tenant_id: '{ST_TENANT}'}}\n"
            "        settings: {opportunity_models: [job]}\n"
        )
        subprocess.run(
            [sys.executable, "-m", "crmsync", "tenants", "apply", str(tenants_file)],
            cwd=ROOT,
            env=env,
            check=True,
        )
        results = []
        for ph in ("first", "resync"):
            proc = subprocess.run(
                [sys.executable, __file__, "--phase", ph],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            if proc.returncode:
                raise SystemExit(f"phase {ph} failed:\n{proc.stderr[-3000:]}")
            out = proc.stdout
            print(f"{ph}:")
            print("\n".join(ln for ln in proc.stderr.splitlines() if ln.startswith("STREAM ")))
            line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
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
