"""Pull flows: ``sync-all-tenants`` (the 15-minute dispatcher) and ``sync-tenant``.

The tenant flow body is the DAG of ARCHITECTURE §1: for each enabled integration, authenticate,
then for each stream read pages until the CRM says there are no more, each page going
fetch-modified → map → merge-opportunity, the merge committing the page and its cursor together.
Tenant flows are async so the dispatcher runs several at once for ~0.1 s of Prefect overhead each
(a sync subflow costs ~1.1 s on this machine: see shared/reference/prefect-notes.md).
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections import deque
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from prefect.utilities.annotations import opaque
from pydantic import Field

from connectors.errors import AuthError, QuotaExceededError
from crmsync.merge import MergeBatch, MergeCounts
from crmsync.providers.base import FetchedPage, split_page
from crmsync.settings import get_settings
from crmsync.sync import TenantBusyError
from tasks.push import deliver_pushes, plan_pushes
from tasks.sync import (
    authenticate,
    completed_in_round,
    fetch_modified,
    finish_run,
    list_integrations,
    list_streams,
    map_records,
    merge_opportunities,
    refresh_statistics,
    reset_cursors,
    start_run,
)

T = TypeVar("T")


_ANALYZE_AFTER = 5000  # records in one stream; see crmsync.sync.refresh_statistics


class TenantSyncError(RuntimeError):
    """Some integration of the tenant failed; the message lists which and why."""


def _safe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _started_at() -> datetime:
    scheduled = flow_run.scheduled_start_time
    return scheduled if scheduled else datetime.now(UTC)


async def _timed(seconds: dict[str, float], key: str, step: Awaitable[T]) -> T:
    """Await one step, adding its wall time to ``seconds[key]`` (reported per stream)."""
    t0 = time.perf_counter()
    try:
        return await step
    finally:
        seconds[key] += time.perf_counter() - t0


async def _advance(
    parts: deque[FetchedPage],
    integration_id: int,
    stream: str,
    started_at: datetime,
    after: str | None,
    independent: bool,
    seconds: dict[str, float],
    lookback_days: int | None,
    chunk: int,
) -> tuple[FetchedPage, MergeBatch | None]:
    """The next part to merge: from the page in hand, else from a newly fetched page; mapped
    too when the stream's pages do not depend on each other (so it overlaps the merge)."""
    if not parts:
        page = await _timed(
            seconds,
            "fetch_s",
            fetch_modified(integration_id, stream, started_at, after, lookback_days),
        )
        parts.extend(split_page(page, chunk))
    part = parts.popleft()
    if not independent:
        return part, None
    return part, await _timed(seconds, "map_s", map_records(integration_id, opaque(part)))


@flow(
    name="sync-tenant",
    flow_run_name="sync-tenant-{tenant_slug}",
    description="Pull every enabled CRM integration of one tenant into the hub.",
    retries=0,
)
async def sync_tenant(
    tenant_slug: Annotated[
        str,
        Field(
            description="Tenant slug as in the tenants file, e.g. acme-hvac",
            pattern=r"^[a-z0-9-]+$",
        ),
    ],
    round_id: str | None = None,
    lookback_days: int | None = None,
) -> dict[str, Any]:
    """Pull every enabled, unpaused integration of one tenant into the hub, then push.

    Args:
        tenant_slug: Tenant slug as in the tenants file, e.g. acme-hvac.
        round_id: Set by sync-all-tenants (its flow run id); leave empty when running by hand.
        lookback_days: How far back a stream without a cursor reads (default: 90, seed 002).
    """
    logger = get_run_logger()
    clock = time.perf_counter()
    started_at = _started_at()
    try:
        run_id = await start_run(tenant_slug, str(flow_run.id) if flow_run.id else None, round_id)
    except TenantBusyError as exc:
        logger.warning("%s", exc)
        return {"tenant": tenant_slug, "status": "skipped", "reason": str(exc)}
    counts: dict[str, dict[str, float]] = {}
    errors: dict[str, str] = {}
    chunk = get_settings().merge_chunk_records
    for integ in await list_integrations(tenant_slug):
        try:
            await authenticate(integ.id)
        except Exception as exc:
            errors[integ.name] = _safe(exc)
            logger.error(
                "integration %s: authentication failed: %s", integ.name, errors[integ.name]
            )
            continue
        errors_exc: dict[str, BaseException] = {}
        for stream, independent in await list_streams(integ.id):
            totals = MergeCounts()
            seconds = {"fetch_s": 0.0, "map_s": 0.0, "merge_s": 0.0}

            analyze_at = _ANALYZE_AFTER
            parts: deque[FetchedPage] = deque()
            advance = functools.partial(
                _advance,
                parts,
                integ.id,
                stream,
                started_at,
                independent=independent,
                seconds=seconds,
                lookback_days=lookback_days,
                chunk=chunk,
            )
            ahead: asyncio.Future[tuple[FetchedPage, MergeBatch | None]] | None = None
            try:
                ahead = asyncio.ensure_future(advance(None))
                while ahead is not None:
                    part, mapped = await ahead
                    batch = mapped or await _timed(
                        seconds, "map_s", map_records(integ.id, opaque(part))
                    )
                    # The next part (or page) is fetched, and mapped when parts are independent,
                    # while this one merges; only a page's last part commits its cursor, so a
                    # crash repeats work, never skips it.
                    ahead = (
                        asyncio.ensure_future(advance(part.next_cursor))
                        if parts or part.has_more
                        else None
                    )
                    merged = await _timed(
                        seconds, "merge_s", merge_opportunities(opaque(batch), run_id)
                    )
                    totals.add(MergeCounts(**merged))
                    if totals.fetched >= analyze_at:  # statistics keep up with a big first load
                        await refresh_statistics()
                        analyze_at *= 4
            except Exception as exc:
                if ahead is not None and not ahead.done():
                    ahead.cancel()
                errors[f"{integ.name}:{stream}"] = _safe(exc)
                errors_exc[stream] = exc
                logger.error("%s/%s failed: %s", integ.name, stream, _safe(exc))
            counts[f"{integ.name}:{stream}"] = {
                **totals.as_dict(),
                **{k: round(v, 3) for k, v in seconds.items()},
            }
            if isinstance(errors_exc.get(stream), (AuthError, QuotaExceededError)):
                # The credentials or the org's daily quota will not recover within this run:
                # the remaining streams would only fail the same way (or spend the reserve).
                break
    try:
        # The push-activity tasks, not the push-activity subflow: one flow run less per tenant.
        planned = await plan_pushes(tenant_slug)
        pushes = await deliver_pushes(tenant_slug, True, run_id)
        counts["push"] = {"planned": planned, **{k: v for k, v in pushes.items() if k != "errors"}}
    except Exception as exc:
        errors["push"] = _safe(exc)
    status = await finish_run(run_id, counts, errors)
    await acreate_table_artifact(
        key=f"sync-{tenant_slug}"[:100],
        table=[{"stream": k, **v} for k, v in counts.items()]
        + [{"stream": k, "error": v} for k, v in errors.items()],
        description=f"Tenant {tenant_slug}: sync run {run_id} {status}",
    )
    summary = {
        "tenant": tenant_slug,
        "run_id": run_id,
        "status": status,
        "elapsed_s": round(time.perf_counter() - clock, 3),
        "counts": counts,
    }
    if errors:
        raise TenantSyncError(
            f"tenant {tenant_slug}: " + "; ".join(f"{k}: {v}" for k, v in errors.items())
        )
    return summary


@flow(
    name="sync-all-tenants",
    description="Dispatch sync-tenant for every tenant with an enabled integration (every 15 min).",
)
async def sync_all_tenants(
    max_concurrency: Annotated[int, Field(ge=1, le=64, description="Tenants synced at once.")] = 4,
    tenants: Annotated[
        list[str] | None,
        Field(description="Only these tenant slugs (default: every active tenant)."),
    ] = None,
    dispatch: Literal["subflow", "deployment"] = "subflow",
    round_id: str | None = None,
    batch_size: Annotated[
        int, Field(ge=1, le=1000, description="Tenants per deployment run (dispatch=deployment).")
    ] = 1,
) -> State[Any]:
    """Run sync-tenant for every tenant with an enabled integration; one failing tenant never
    stops the others, and the final state names the ones that failed.

    A retried round (same flow run id, or the same ``round_id``) skips the tenants whose run in
    that round completed: only failed tenants run again.

    Args:
        max_concurrency: Tenants synced at once.
        tenants: Only these tenant slugs (default: every active tenant).
        dispatch: "deployment" runs each tenant as its own sync-tenant deployment run, spread over
            the work pool's workers; "subflow" runs them in this process (local mode).
        round_id: Identity of the round; defaults to this flow run's id.
        batch_size: With dispatch="deployment", how many tenants each deployment run syncs. 1
            gives every tenant its own sync-tenant run; more sends batches to the
            sync-tenant-batch deployment (this flow in subflow mode), which spares a worker
            process start (~3 s of CPU) per tenant: a fleet of small tenants needs it.
    """
    from crmsync.sync import active_tenants

    round_id = round_id or (str(flow_run.id) if flow_run.id else None) or str(uuid.uuid4())
    slugs: list[str] = list(tenants) if tenants else await asyncio.to_thread(active_tenants)
    done = await completed_in_round(round_id)
    todo = [s for s in slugs if s not in done]
    attempt = flow_run.run_count or 1
    if dispatch == "deployment" and batch_size > 1:
        batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
        states = await asyncio.gather(
            *(_run_batch(b, round_id, max_concurrency, attempt) for b in batches)
        )
        synced = await completed_in_round(round_id)
        failed = [
            slug
            for batch, state in zip(batches, states, strict=True)
            if not state.is_completed()
            for slug in batch
            if slug not in synced
        ]
    else:
        gate = asyncio.Semaphore(max_concurrency)

        async def one(slug: str) -> tuple[str, State[Any]]:
            async with gate:
                if dispatch == "deployment":
                    return slug, await _run_tenant_deployment(slug, round_id, attempt)
                state: State[Any] = await sync_tenant(slug, round_id, return_state=True)  # type: ignore[call-overload]
                return slug, state

        results = await asyncio.gather(*(one(s) for s in todo))
        failed = [slug for slug, state in results if not state.is_completed()]
    message = f"{len(slugs) - len(failed)} of {len(slugs)} tenants synced"
    if done:
        message += f" ({len(done)} already completed earlier in this round)"
    if failed:
        return Failed(message=f"{message}; failed: {', '.join(failed)}")
    return Completed(message=message)


async def _run_deployment(name: str, parameters: dict[str, Any], key: str) -> State[Any]:
    """Start a deployment run as a child of this flow run and wait for its final state; the
    idempotency key makes a re-sent request (API retry) start nothing twice."""
    from prefect.deployments import run_deployment

    child = await run_deployment(  # type: ignore[misc]
        name, parameters=parameters, as_subflow=True, idempotency_key=key
    )
    assert child.state is not None
    return child.state


async def _run_tenant_deployment(slug: str, round_id: str, attempt: int) -> State[Any]:
    return await _run_deployment(
        "sync-tenant/sync-tenant",
        {"tenant_slug": slug, "round_id": round_id},
        f"{round_id}:{slug}:{attempt}",
    )


async def _run_batch(
    slugs: list[str], round_id: str, max_concurrency: int, attempt: int
) -> State[Any]:
    """One sync-tenant-batch deployment run: these tenants as subflows on one worker."""
    return await _run_deployment(
        "sync-all-tenants/sync-tenant-batch",
        {
            "tenants": slugs,
            "dispatch": "subflow",
            "round_id": round_id,
            "max_concurrency": max_concurrency,
        },
        f"{round_id}:{slugs[0]}..{slugs[-1]}:{len(slugs)}:{attempt}",
    )


@flow(name="backfill", flow_run_name="backfill-{tenant_slug}-{integration}")
async def backfill(
    tenant_slug: Annotated[str, Field(pattern=r"^[a-z0-9-]+$")],
    integration: str,
    days: Annotated[int, Field(ge=1, le=3650)] = 90,
) -> dict[str, Any]:
    """Re-read an integration from ``days`` back (a first connect reads 90 days, seed 002).

    The merge rules make this safe at any time: records already in the hub are replaced only by
    data at least as new, nothing is duplicated.

    Args:
        tenant_slug: Tenant slug as in the tenants file, e.g. acme-hvac.
        integration: Integration name in the tenants file, e.g. st-main.
        days: How many days back to read.
    """
    await reset_cursors(tenant_slug, integration)
    return await sync_tenant(tenant_slug, None, days)
