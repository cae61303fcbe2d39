"""Health rules after a tenant run, told to operators (issue 12; the rules are crmsync.health).

Each event is a WARNING line in the tenant run's log; the run's events together are a markdown
artifact ``health-<slug>`` and, when ``CRMSYNC_NOTIFICATION_BLOCK`` names a Prefect notification
block, a notification. Not a task: a run with nothing to report costs one query and no Prefect
object. A failure here is logged and never fails the sync run it follows.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import acreate_markdown_artifact

from crmsync import health
from crmsync.settings import get_settings


async def report_health(tenant_slug: str, run_id: int) -> list[health.HealthEvent]:
    """Apply the health rules to the finished run ``run_id`` and tell about what they found."""
    logger = get_run_logger()
    try:
        events = await asyncio.to_thread(health.check_run, run_id)
    except Exception as exc:
        logger.error("health check of run %s failed: %s", run_id, f"{type(exc).__name__}: {exc}")
        return []
    if not events:
        return []
    for event in events:
        logger.warning("%s", event.message)
    body = health.markdown(tenant_slug, run_id, events)
    try:
        await acreate_markdown_artifact(
            key=f"health-{tenant_slug}"[:100],
            markdown=body,
            description=f"Tenant {tenant_slug}: integration health after sync run {run_id}",
        )
        block_name = get_settings().notification_block
        if block_name:
            from prefect.blocks.core import Block

            block: Any = await Block.aload(block_name)
            names = ", ".join(sorted({e.integration for e in events}))
            what = "paused" if any(e.kind == "paused" for e in events) else "rejected records"
            await block.notify(body, subject=f"crmsync: {tenant_slug}: {names} {what}")
    except Exception as exc:
        logger.error(
            "health notification of %s not sent: %s", tenant_slug, f"{type(exc).__name__}: {exc}"
        )
    return events
