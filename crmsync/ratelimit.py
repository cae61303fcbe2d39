"""Request budgets shared by every process that talks to the same CRM app.

ServiceTitan allows 60 requests/second per application (seed 002, "Configuration Best
Practices"), whatever tenant or worker sends them. Each ServiceTitan request first takes a slot
of a Prefect global rate limit named after its app key (a hash of it: the key itself is a
credential), so every tenant of that app, on every worker of the pool, draws from one budget.
The limit is created on first use (``servicetitan-app-<sha256[:12]>``) and can be inspected or
tuned in the UI under *Concurrency*.

Shape: ``limit`` = a tenth of the rate (at least 1) slots, each decaying at 90 % of the rate, so
no one-second window ever carries more than the CRM's limit, bursts included. The connector still
honours the CRM's own 429s: this is good behaviour, not a guarantee.

Enabled when a Prefect API is configured (``PREFECT_API_URL``, i.e. a server with workers) or
when ``CRMSYNC_RATE_BUDGET=prefect``; ``off`` disables it (a single process needs no shared
budget, and the connector's own token bucket still applies).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable

import httpx

log = logging.getLogger("crmsync.ratelimit")
_ensured: set[str] = set()
_lock = threading.Lock()


def limit_name(provider: str, app_key: str) -> str:
    return f"{provider}-app-{hashlib.sha256(app_key.encode()).hexdigest()[:12]}"


def _enabled() -> bool:
    from crmsync.settings import get_settings

    mode = get_settings().rate_budget
    if mode == "off":
        return False
    if mode == "prefect":
        return True
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def _ensure(name: str, per_second: float) -> None:
    with _lock:
        if name in _ensured:
            return
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            try:
                client.upsert_global_concurrency_limit_by_name(
                    name,
                    limit=max(1, int(per_second // 10)),
                    slot_decay_per_second=per_second * 0.9,
                )
            except Exception:
                # Another process created it between our read and our create (the upsert is
                # not atomic); it exists now, which is all that matters.
                client.read_global_concurrency_limit_by_name(name)
        _ensured.add(name)


def shared_budget(
    provider: str, app_key: str, per_second: float
) -> Callable[[httpx.Request], None] | None:
    """A ``before_request`` hook taking one slot of the app's shared budget, or None when off."""
    if not _enabled():
        return None
    name = limit_name(provider, app_key)

    def take(_: httpx.Request) -> None:
        from prefect.concurrency.sync import rate_limit

        _ensure(name, per_second)
        rate_limit(name, occupy=1, strict=True)

    return take
