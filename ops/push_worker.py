"""``crmsync push-worker``: the low-latency push path.

Seed 002: ServiceTitan pushes "as soon as they occur". A trigger on ``activity`` sends
``NOTIFY crmsync_activity, '<tenant_id>'`` (migration 0003); this process LISTENs and runs the
``push-activity`` flow for that tenant at once, so an activity reaches the CRM in about a second
instead of at the next 15-minute pull. Notifications that arrive while a tenant is being pushed
are coalesced into one more run. With no notification for ``idle_sweep_seconds`` it sweeps every
tenant anyway (the same work as the ``push-pending`` deployment), so nothing waits on a lost
notification or on a restart.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rich.console import Console

from crmsync import db


def _slugs_by_id() -> dict[int, str]:
    with db.connect() as conn:
        return {int(i): s for i, s in conn.execute("SELECT id, slug FROM tenant").fetchall()}


def run_worker(idle_sweep_seconds: float = 60, console: Console | None = None) -> None:
    from flows.push import push_activity, push_pending

    console = console or Console()
    listener = db.dedicated(autocommit=True)
    listener.execute("LISTEN crmsync_activity")
    console.print("push-worker: listening for new activities (Ctrl-C to stop)")
    last_sweep = 0.0
    try:
        while True:
            tenants: set[int] = set()
            timeout = max(0.1, idle_sweep_seconds - (time.monotonic() - last_sweep))
            for note in listener.notifies(timeout=timeout, stop_after=1):
                tenants.add(int(note.payload))
            # Coalesce whatever else arrived meanwhile.
            for note in listener.notifies(timeout=0.05):
                tenants.add(int(note.payload))
            if not tenants:
                asyncio.run(push_pending())
                last_sweep = time.monotonic()
                continue
            slugs = _slugs_by_id()
            for tenant_id in sorted(tenants):
                slug = slugs.get(tenant_id)
                if slug is None:
                    continue
                counts: dict[str, Any] = asyncio.run(push_activity(slug))
                console.print(f"push-worker: {slug}: {counts}")
    except KeyboardInterrupt:
        console.print("push-worker: stopped")
    finally:
        listener.close()
