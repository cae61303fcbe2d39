"""Benchmark: push throughput (activities/second into the ServiceTitan emulator) and the
activity → CRM note latency (p50/p95) of the low-latency path (``crmsync push-worker``).

    .venv/bin/python bench/bench_push.py --activities 2000 --latency-samples 40

The emulator runs in its own process with ServiceTitan's 60 requests/second per app key (one
note = one request, so that limit caps throughput); ``--rate-limit`` raises it to measure our own
ceiling. Latency is ``push_ledger.delivered_at - activity.created_at`` (both PostgreSQL clocks).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
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
    emulator,
    free_port,
    fresh_database,
    wait_http,
)

ST_TENANT = 5151
APP_KEY = "ak1.pushbench"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--activities", type=int, default=2000)
    ap.add_argument("--latency-samples", type=int, default=40)
    ap.add_argument("--rate-limit", type=float, default=60.0)
    args = ap.parse_args()

    admin = admin_url()
    with fresh_database(admin, "crmsync_pushbench") as url_db:
        try:
            _run(args, url_db)
        finally:
            from crmsync import db

            db.engine().dispose()


def _run(args: argparse.Namespace, url_db: str) -> None:
    env = bench_env(
        url_db,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
        CRMSYNC_PUSH_BATCH_SIZE="500",
    )
    os.environ.update(
        {
            k: v
            for k, v in env.items()
            if k
            in (
                "DATABASE_URL",
                "CRMSYNC_DATA_DIR",
                "PREFECT_HOME",
                "PREFECT_LOGGING_LEVEL",
                "CRMSYNC_PUSH_BATCH_SIZE",
            )
        }
    )
    port = free_port()
    emu_args = [
        "--port",
        str(port),
        "--rate-limit",
        str(args.rate_limit),
        "--tenant",
        f"{ST_TENANT}:cid.pb:cs1.pb:{APP_KEY}:jobs=300,customers=200,memberships=0",
    ]
    worker = None
    with emulator("sandbox.servicetitan", emu_args, env):
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(url)
            apply_tenants(
                BENCH_DIR / "push-tenants.yaml",
                "tenants:\n  - slug: pushbench\n    name: Push Bench\n    integrations:\n      - name: st\n"
                f"        provider: servicetitan\n        base_url: {url}\n        auth_url: {url}/connect/token\n"
                f"        credentials: {{client_id: cid.pb, client_secret: cs1.pb, app_key: {APP_KEY}, tenant_id: '{ST_TENANT}'}}\n"
                "        settings: {opportunity_models: [job], push_outgoing_campaign_messages: job,"
                " push_outgoing_campaign_messages_content: true}\n",
                env,
                quiet=True,
            )

            def run(*a: str) -> None:
                subprocess.run(
                    [sys.executable, "-m", "ops", *a],
                    cwd=ROOT,
                    env=env,
                    check=True,
                    capture_output=True,
                )

            run("sync", "--tenant", "pushbench")

            from crmsync import db, push

            with db.connect() as conn:
                (tenant_id,) = conn.execute(
                    "SELECT id FROM tenant WHERE slug = 'pushbench'"
                ).fetchone()  # type: ignore[misc]
                contacts = [
                    r[0]
                    for r in conn.execute("SELECT DISTINCT contact_id FROM opportunity").fetchall()
                ]

            def add(i: int) -> int:
                return push.record_activity(
                    push.ActivityIn(
                        tenant_id=tenant_id,
                        contact_id=contacts[i % len(contacts)],
                        kind="outbound_campaign_message",
                        channel="sms",
                        campaign_name="Bench",
                        body=f"message {i}",
                    )
                )

            for i in range(args.activities):
                add(i)
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "ops", "push", "--tenant", "pushbench"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - t0
            with db.connect() as conn:
                delivered, first, last = conn.execute(
                    "SELECT count(*), min(delivered_at), max(delivered_at) FROM push_ledger WHERE status = 'delivered'"
                ).fetchone()  # type: ignore[misc]
                by_status = conn.execute(
                    "SELECT status, count(*), max(last_error) FROM push_ledger GROUP BY 1"
                ).fetchall()
            print("ledger:", by_status)
            span = (last - first).total_seconds() if delivered > 1 else float("nan")
            print(
                f"throughput: {delivered} of {args.activities} delivered; "
                f"{delivered / span:.1f} activities/s while delivering ({span:.1f} s), "
                f"{delivered / wall:.1f}/s including process start ({wall:.1f} s); emulator limit {args.rate_limit:g} req/s"
            )

            worker = subprocess.Popen(
                [sys.executable, "-m", "ops", "push-worker"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(15)  # the worker's first flow run starts Prefect's local API
            ids = []
            for i in range(args.latency_samples):
                ids.append(add(10_000_000 + i))
                time.sleep(0.5)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with db.connect() as conn:
                    lat = conn.execute(
                        "SELECT extract(epoch FROM l.delivered_at - a.created_at) FROM push_ledger l "
                        "JOIN activity a ON a.id = l.activity_id WHERE l.status = 'delivered' AND a.id = ANY(%s)",
                        (ids,),
                    ).fetchall()
                if len(lat) == len(ids):
                    break
                time.sleep(0.5)
            with db.connect() as conn:
                print(
                    "ledger:",
                    conn.execute(
                        "SELECT status, count(*), max(last_error) FROM push_ledger WHERE activity_id = ANY(%s) "
                        "GROUP BY 1",
                        (ids,),
                    ).fetchall(),
                )
            values = sorted(float(v[0]) for v in lat)
            if values:
                p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
                print("latencies:", [round(v, 2) for v in values])
                print(
                    f"latency (push-worker): n={len(values)} p50={statistics.median(values):.3f} s "
                    f"p95={p95:.3f} s max={values[-1]:.3f} s"
                )
            else:
                print("latency: nothing delivered", out.stdout[-500:])
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(10)


if __name__ == "__main__":
    main()
