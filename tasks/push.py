"""Prefect tasks of the push path: plan ledger rows, then deliver them (see crmsync.push)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from crmsync import push
from crmsync.sync import tenant_id_of

_OPTS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


@task(
    name="plan-pushes",
    task_run_name="plan-pushes-{tenant_slug}",
    retries=2,
    retry_delay_seconds=5,
    **_OPTS,
)
async def plan_pushes(tenant_slug: str) -> int:
    """Ledger rows for new activities, per the integrations' push settings."""
    return await asyncio.to_thread(lambda: push.plan(tenant_id_of(tenant_slug)))


@task(name="push-activity", task_run_name="push-activity-{tenant_slug}", **_OPTS)
async def deliver_pushes(
    tenant_slug: str, include_deferred: bool = False, run_id: int | None = None
) -> dict[str, Any]:
    """Deliver every due push of the tenant; failures are recorded per row, never raised, so
    one bad CRM call never blocks the rest of the outbox."""

    def run() -> dict[str, Any]:
        tenant_id = tenant_id_of(tenant_slug)
        total = push.PushCounts()
        started = datetime.now(UTC) if include_deferred else None
        while True:
            counts = push.deliver(tenant_id, recheck_deferred_before=started, run_id=run_id)
            handled = sum(counts.as_dict()[k] for k in push._COUNTED)
            for k in push._COUNTED:
                setattr(total, k, getattr(total, k) + getattr(counts, k))
            total.errors.update(counts.errors)
            if handled < push.PushPolicy().batch_size:
                return total.as_dict()

    return await asyncio.to_thread(run)


@task(name="requeue-pushes", **_OPTS)
async def requeue_pushes(
    tenant_slug: str, integration_name: str | None, activity_ids: list[int] | None
) -> int:
    def run() -> int:
        from crmsync import db

        tenant_id = tenant_id_of(tenant_slug)
        integration_id = None
        if integration_name:
            with db.connect() as conn:
                row = conn.execute(
                    "SELECT id FROM integration WHERE tenant_id = %s AND name = %s",
                    (tenant_id, integration_name),
                ).fetchone()
            if row is None:
                raise LookupError(f"tenant {tenant_slug} has no integration {integration_name!r}")
            integration_id = int(row[0])
        return push.requeue(tenant_id, integration_id, activity_ids)

    return await asyncio.to_thread(run)


@task(name="push-failures-report", **_OPTS)
async def build_failures_report(hours: float) -> tuple[str, int]:
    return await asyncio.to_thread(push.failures_report, hours)
