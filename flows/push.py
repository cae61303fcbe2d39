"""Push flows: deliver hub activities to the CRMs, requeue failures, report them.

``push-activity`` runs inside ``sync-tenant`` right after the pull (fresh parents are there) and
as its own low-latency path: ``crmsync push-worker`` LISTENs for new activities and runs it for
the tenant within about a second, and the ``push-pending`` deployment sweeps every tenant each
minute as the safety net (see README, "Push latency").
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, cast

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import Completed
from pydantic import Field

from crmsync import push
from tasks.push import (
    build_failures_report,
    build_tenant_failures,
    email_push_failures,
    plan_backlog,
    requeue_pushes,
)
from tasks.push import push_activity as push_task

Slug = Annotated[str, Field(pattern=r"^[a-z0-9-]+$")]


@flow(name="push-activity", flow_run_name="push-activity-{tenant_slug}")
async def push_activity(
    tenant_slug: Slug, include_deferred: bool = False, run_id: int | None = None
) -> dict[str, Any]:
    """Plan and deliver the tenant's due pushes (notes, tasks, call logs) exactly once.

    Args:
        tenant_slug: Tenant slug as in the tenants file, e.g. acme-hvac.
        include_deferred: Re-check pushes waiting for their parent record now (after a pull).
        run_id: The tenant sync run this push belongs to (lineage); empty when run alone.
    """
    counts = await push_task(tenant_slug, include_deferred, run_id)
    if counts["errors"]:
        get_run_logger().warning(
            "%s: %d push(es) failed this round; they are retried (see push-failures-report)",
            tenant_slug,
            len(counts["errors"]),
        )
    return counts


def _sweep_name() -> str:
    when = flow_run.scheduled_start_time or datetime.now(UTC)
    return f"push-sweep-{when.astimezone(UTC):%Y-%m-%dT%H:%M}"


@flow(
    name="push-pending",
    flow_run_name=_sweep_name,
    description="Push every tenant's due activities (safety-net sweep).",
    persist_result=False,
)
async def push_pending(
    max_concurrency: Annotated[int, Field(ge=1, le=64)] = 4,
) -> dict[str, Any]:
    """Deliver the due pushes of every tenant that has some, one push-activity task run each.

    One query finds those tenants; an idle fleet costs this flow run and nothing else (no
    subflow or task run per tenant), so the every-minute sweep stays visible in the runs list
    without burying the sync runs.

    Args:
        max_concurrency: Tenants pushed at once.
    """
    due = await asyncio.to_thread(push.due_tenants)
    gate = asyncio.Semaphore(max_concurrency)

    async def one(slug: str) -> dict[str, Any]:
        async with gate:
            return await push_task(slug)

    results = await asyncio.gather(*(one(slug) for _, slug in due))
    by_tenant = dict(zip((slug for _, slug in due), results, strict=True))
    delivered = sum(int(r.get("delivered", 0)) for r in results)
    message = (
        f"{len(due)} tenant(s) with due pushes, {delivered} delivered"
        if due
        else "nothing due: no tenant has pushes to plan or deliver"
    )
    return cast(dict[str, Any], Completed(message=message, data=by_tenant))


@flow(name="retry-failed-pushes", flow_run_name="retry-failed-pushes-{tenant_slug}")
async def retry_failed_pushes(
    tenant_slug: Slug,
    integration: str | None = None,
    activity_ids: list[int] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Operator action: requeue not_integrated and orphaned pushes, then deliver them.

    With ``since`` (and ``until``), also push on purpose the integration's activities recorded
    in that window that its cutoff left out: recorded while it was disabled or before it was
    added (seed 003, "first disabled").

    Args:
        tenant_slug: Tenant slug as in the tenants file, e.g. acme-hvac.
        integration: Only this integration (its name in the tenants file); default all.
        activity_ids: Only these activity ids; default all failed ones.
        since: Backlog: also push the integration's activities recorded from this time on.
        until: Backlog: ... and before this time (default: now).
    """
    if until is not None and since is None:
        raise ValueError("a backlog needs since (until alone says nothing)")
    if since is not None and not integration:
        raise ValueError("a backlog (since/until) needs the integration it is pushed to")
    backlog = 0
    if integration and since is not None:
        backlog = await plan_backlog(tenant_slug, integration, since, until or datetime.now(UTC))
    requeued = await requeue_pushes(tenant_slug, integration, activity_ids)
    counts = await push_activity(tenant_slug, include_deferred=True)
    return {"requeued": requeued, "backlog": backlog, **counts}


@flow(name="push-failures-report")
async def push_failures_report(hours: Annotated[float, Field(gt=0)] = 4) -> dict[str, Any]:
    """Summarise the pushes that failed in the last ``hours`` (seed 003: "once every several
    hours ... a summary with the integrations and leads that have failed to integrate").

    Operators get the overview per tenant and integration (artifact ``push-failures``). Each
    tenant with failures gets its own summary listing every failed activity (artifact
    ``push-failures-<slug>``), emailed to the tenant's ``contact_email`` when SMTP is configured
    (``CRMSYNC_SMTP_HOST`` …) and sent through ``CRMSYNC_NOTIFICATION_BLOCK`` when one is set.
    A summary that could not be sent fails the run after every tenant was tried.

    Args:
        hours: Window of the report, in hours.
    """
    from crmsync.settings import get_settings

    logger = get_run_logger()
    body, failures = await build_failures_report(hours)
    await acreate_markdown_artifact(
        key="push-failures", markdown=body, description=f"Push failures, last {hours:g} h"
    )
    block_name = get_settings().notification_block
    block: Any = None
    if block_name:
        from prefect.blocks.core import Block

        block = await Block.aload(block_name)
    emailed: list[str] = []
    unsent: dict[str, str] = {}
    summaries = await build_tenant_failures(hours)
    for summary in summaries:
        slug = summary.slug
        await acreate_markdown_artifact(
            key=f"push-failures-{slug}"[:100],
            markdown=summary.markdown,
            description=f"Tenant {slug}: {summary.failures} failed push(es), last {hours:g} h",
        )
        subject = (
            f"crmsync: {summary.name}: {summary.failures} push(es) failed to reach the CRM "
            f"in the last {hours:g} h"
        )
        if block is not None:
            try:
                await block.notify(summary.markdown, subject=subject)
            except Exception as exc:
                unsent[f"{slug} (notification block)"] = _safe(exc)
        if summary.contact_email:
            try:
                if await email_push_failures(
                    slug, summary.contact_email, subject, summary.markdown
                ):
                    emailed.append(slug)
            except Exception as exc:
                unsent[f"{slug} (email)"] = _safe(exc)
    for where, error in unsent.items():
        logger.error("push failure summary of %s not sent: %s", where, error)
    if unsent:
        raise RuntimeError(f"{len(unsent)} failure summary(ies) not sent: {', '.join(unsent)}")
    return {
        "failures": failures,
        "tenants": {s.slug: s.failures for s in summaries},
        "emailed": emailed,
    }


def _safe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
