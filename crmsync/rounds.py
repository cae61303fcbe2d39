"""A round's failures that a later run made good, marked in Prefect: the tag ``superseded``.

A failed ``sync-all-tenants`` round is retried (UI *Retry*, or a round started again with the
same ``round_id``) and reruns only its failed tenants. The earlier failed ``sync-tenant-<slug>``
runs stay Failed (red) on the dashboard with nothing saying a later run of the same round
completed: :func:`mark_superseded`, called by the round flow after its tenants' results, tags
each of them ``superseded`` once the same tenant has a completed run in that round created after
it. Prefect's run lists filter by tag.

Talking to Prefect's API is a courtesy here, never part of the sync: any error is logged as a
warning and the round's outcome stays what its tenants made it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

SUPERSEDED = "superseded"
TENANT_FLOW = "sync-tenant"
PAGE = 200  # Prefect's API returns at most 200 runs per request by default


def _client() -> Any:
    from prefect.client.orchestration import get_client

    return get_client()


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # outside a flow run
        return logging.getLogger(__name__)


async def mark_superseded(round_tag: str) -> int:
    """Tag ``superseded`` the failed or crashed ``sync-tenant`` runs carrying ``round_tag``
    (``round:<id>``) whose tenant has a later completed run with the same tag; how many were
    tagged. Never raises: an API error is a warning and 0."""
    try:
        marked = await _mark(round_tag)
    except Exception as exc:
        _logger().warning(
            "could not tag the superseded runs of %s: %s", round_tag, f"{type(exc).__name__}: {exc}"
        )
        return 0
    if marked:
        _logger().info(
            "%d earlier failed tenant run(s) of this round tagged %r: a later run of the same "
            "tenant completed",
            marked,
            SUPERSEDED,
        )
    return marked


async def _mark(round_tag: str) -> int:
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterName,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import FlowRun, StateType

    async with _client() as client:

        async def runs(states: list[StateType], names: list[str] | None = None) -> list[FlowRun]:
            found: list[FlowRun] = []
            while True:
                page: list[FlowRun] = await client.read_flow_runs(
                    flow_filter=FlowFilter(name=FlowFilterName(any_=[TENANT_FLOW])),
                    flow_run_filter=FlowRunFilter(
                        tags=FlowRunFilterTags(all_=[round_tag]),
                        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)),
                        name=FlowRunFilterName(any_=names) if names else None,
                    ),
                    limit=PAGE,
                    offset=len(found),
                )
                found += page
                if len(page) < PAGE:
                    return found

        failed = [
            run
            for run in await runs([StateType.FAILED, StateType.CRASHED])
            if SUPERSEDED not in run.tags
        ]
        if not failed:
            return 0
        completed = await runs([StateType.COMPLETED], sorted({run.name for run in failed}))
        latest: dict[str, datetime] = {}  # tenant → creation of its latest completed run
        for run in completed:
            if run.created is not None:
                tenant = _tenant(run)
                latest[tenant] = max(latest.get(tenant, run.created), run.created)
        marked = 0
        for run in failed:
            done = latest.get(_tenant(run))
            if done is not None and run.created is not None and done > run.created:
                await client.update_flow_run(run.id, tags=[*run.tags, SUPERSEDED])
                marked += 1
        return marked


def _tenant(run: Any) -> str:
    return str((run.parameters or {}).get("tenant_slug") or run.name)
