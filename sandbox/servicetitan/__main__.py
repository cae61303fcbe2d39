"""Serve the ServiceTitan emulator from a shell.

    python -m sandbox.servicetitan --port 9001 \
        --tenant 1234:cid.acme:cs1.acme:ak1.demo:jobs=500,customers=300,memberships=50,seed=7

`--tenant` (repeatable) is `TENANT_ID:CLIENT_ID:CLIENT_SECRET:APP_KEY[:key=value,...]` with keys
`customers`, `jobs`, `memberships`, `seed`, `job_notes` (several `:key=value` segments are
accepted too).
Without `--tenant`, one demo tenant is served. Control endpoints live under `/__emulator/...`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from .data import TenantSpec
from .server import start_emulator

_COUNT_KEYS = ("customers", "jobs", "memberships", "seed", "job_notes")


def parse_tenant(text: str) -> TenantSpec:
    """Parse one `--tenant` value (see the module docstring)."""
    parts = text.split(":")
    if len(parts) < 4:
        raise ValueError(
            f"--tenant {text!r}: expected TENANT_ID:CLIENT_ID:CLIENT_SECRET:APP_KEY[:k=v,...]"
        )
    tenant_id, client_id, client_secret, app_key = parts[:4]
    options: dict[str, int] = {}
    for segment in parts[4:]:
        for item in segment.split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in _COUNT_KEYS:
                raise ValueError(f"--tenant {text!r}: unknown option {item!r}")
            options[key] = int(value)
    return TenantSpec(int(tenant_id), client_id, client_secret, app_key, **options)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.servicetitan", description="Serve the ServiceTitan API emulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001, help="0 picks a free port")
    parser.add_argument("--tenant", action="append", default=[], help="repeatable; see --help")
    parser.add_argument("--export-page-size", type=int, default=5000)
    parser.add_argument("--rate-limit", type=float, default=60.0, help="requests/s per app key")
    parser.add_argument("--frozen-clock", action="store_true")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    try:
        specs = [parse_tenant(text) for text in args.tenant] or [
            TenantSpec(1234, "cid.demo", "cs1.demo", "ak1.demo", customers=40, jobs=60)
        ]
    except ValueError as exc:
        parser.error(str(exc))
    running = start_emulator(
        specs,
        port=args.port,
        host=args.host,
        log_level=args.log_level,
        export_page_size=args.export_page_size,
        rate_limit_per_second=args.rate_limit,
        frozen_clock=args.frozen_clock,
    )
    for spec in specs:
        counts = {
            name: len(store) for name, store in running.state.tenant(spec.tenant_id).stores.items()
        }
        print(
            f"tenant {spec.tenant_id} (client {spec.client_id}, app key {spec.app_key}): {counts}"
        )
    print(f"ServiceTitan emulator on {running.url} (token: POST {running.url}/connect/token)")
    sys.stdout.flush()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.5):
        if not running.thread.is_alive():
            return 1
    running.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
