"""Prefect tasks of the push path: plan ledger rows, then deliver them (see crmsync.push)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from crmsync import push
from crmsync.sync import tenant_id_of

_OPTS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


@task(
    name="push-activity",
    task_run_name="push-activity-{tenant_slug}",
    retries=2,
    retry_delay_seconds=5,
    **_OPTS,
)
async def push_activity(
    tenant_slug: str, include_deferred: bool = False, run_id: int | None = None
) -> dict[str, Any]:
    """Plan ledger rows for new activities, then deliver every due push of the tenant.

    One task run for both: planning is a query and an insert, not a step worth its own run.
    Delivery failures are recorded per ledger row, never raised; a retry of this task (database
    disconnect) re-plans harmlessly and re-claims only rows still due.
    """

    def run() -> dict[str, Any]:
        tenant_id = tenant_id_of(tenant_slug)
        return push.push_tenant(
            tenant_id, include_deferred=include_deferred, run_id=run_id
        ).as_dict()

    return await asyncio.to_thread(run)


def _integration_id(tenant_id: int, tenant_slug: str, integration_name: str) -> int:
    from crmsync import db

    with db.connect() as conn:
        row = conn.execute(
            "SELECT id FROM integration WHERE tenant_id = %s AND name = %s",
            (tenant_id, integration_name),
        ).fetchone()
    if row is None:
        raise LookupError(f"tenant {tenant_slug} has no integration {integration_name!r}")
    return int(row[0])


@task(name="requeue-pushes", **_OPTS)
async def requeue_pushes(
    tenant_slug: str, integration_name: str | None, activity_ids: list[int] | None
) -> int:
    def run() -> int:
        tenant_id = tenant_id_of(tenant_slug)
        integration_id = None
        if integration_name:
            integration_id = _integration_id(tenant_id, tenant_slug, integration_name)
        return push.requeue(tenant_id, integration_id, activity_ids)

    return await asyncio.to_thread(run)


@task(name="plan-backlog", **_OPTS)
async def plan_backlog(
    tenant_slug: str, integration_name: str, since: datetime, until: datetime
) -> int:
    """Plan the integration's activities recorded in [since, until) that its cutoff left out."""

    def run() -> int:
        tenant_id = tenant_id_of(tenant_slug)
        integration_id = _integration_id(tenant_id, tenant_slug, integration_name)
        return push.push_backlog(tenant_id, integration_id, since, until)

    return await asyncio.to_thread(run)


@task(name="push-failures-report", **_OPTS)
async def build_failures_report(hours: float) -> tuple[str, int]:
    return await asyncio.to_thread(push.failures_report, hours)


@task(name="tenant-push-failures", **_OPTS)
async def build_tenant_failures(hours: float) -> list[push.TenantFailures]:
    return await asyncio.to_thread(push.tenant_failures, hours)


@task(
    name="email-push-failures",
    task_run_name="email-push-failures-{tenant_slug}",
    retries=2,
    retry_delay_seconds=30,
    **_OPTS,
)
async def email_push_failures(tenant_slug: str, to: str, subject: str, body: str) -> bool:
    """Email one tenant's failure summary; False when no SMTP server is configured."""
    from crmsync.notify import send_email

    return await asyncio.to_thread(send_email, to, subject, body)
