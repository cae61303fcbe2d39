"""Pull flows: ``sync-all-tenants`` (the 15-minute dispatcher) and ``sync-tenant``.

The tenant flow body is the DAG of ARCHITECTURE §1: for each enabled integration, authenticate,
then fetch-modified → map → merge-opportunity chunk after chunk (:mod:`crmsync.pipeline`), each
merge committing its chunk's cursors with the data; then push-activity. A chunk holds the next
changes across all of the integration's streams up to ``chunk_records``, so a tenant with few
changes costs one task run per step, not one per stream or page (issue 10).
Tenant flows are async so the dispatcher runs several at once for ~0.1 s of Prefect overhead each
(a sync subflow costs ~1.1 s on this machine: see shared/reference/prefect-notes.md).
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

from prefect import flow, get_run_logger, tags
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from prefect.utilities.annotations import opaque
from pydantic import Field

from crmsync import push, report, rounds, sync
from crmsync.merge import MergeBatch
from crmsync.pipeline import PullResult, PullSteps, pull_integration, summary
from crmsync.sync import ChunkStart, FetchedChunk, IntegrationRef, TenantBusyError
from flows.health import report_health
from tasks.push import push_activity
from tasks.sync import (
    authenticate,
    completed_in_round,
    fetch_modified,
    finish_run,
    hold_contexts,
    list_integrations,
    list_streams,
    map_records,
    merge_opportunities,
    refresh_statistics,
    reset_cursors,
    start_run,
    touch_cursors,
)


class TenantSyncError(RuntimeError):
    """Some integration of the tenant failed; the message lists which and why."""


def _safe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


ROUND_TAG = "round:"


def _round_of_this_run() -> str | None:
    return next((t[len(ROUND_TAG) :] for t in flow_run.tags if t.startswith(ROUND_TAG)), None)


def _round_run_name() -> str:
    """``sync-round-2026-12-06T08:45`` for a round, ``sync-batch-t00001..t00050`` for a batch
    a round sent to a worker (instead of Prefect's random names)."""
    params = flow_run.parameters
    tenants = params.get("tenants") or []
    if params.get("round_id") and tenants:
        return f"sync-batch-{tenants[0]}..{tenants[-1]}"
    when = flow_run.scheduled_start_time or datetime.now(UTC)
    return f"sync-round-{when.astimezone(UTC):%Y-%m-%dT%H:%M}"


_executor_sizes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = (
    weakref.WeakKeyDictionary()
)


def _threads_for(tenants: int) -> None:
    """Enough worker threads for ``tenants`` tenants at once. Every step runs in a thread
    (``asyncio.to_thread``) and a tenant may fetch its next chunk while it merges, but asyncio's
    default pool has ``cpu + 4`` threads (6 here): tenants allowed to run at once queued for
    threads instead. The steps wait on HTTP and PostgreSQL, not on the CPU."""
    loop = asyncio.get_running_loop()
    wanted = 2 * tenants + 4
    if wanted > _executor_sizes.get(loop, 0):
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=wanted, thread_name_prefix="crmsync-step")
        )
        _executor_sizes[loop] = wanted


def _started_at() -> datetime:
    scheduled = flow_run.scheduled_start_time
    return scheduled if scheduled else datetime.now(UTC)


def _steps(
    integ: IntegrationRef, started_at: datetime, run_id: int, lookback_days: int | None
) -> PullSteps:
    """The integration's tasks as pipeline steps. Chunks and batches travel ``opaque``: Prefect
    neither hashes nor serialises thousands of records to name a task run."""
    label = f"{integ.tenant_slug}/{integ.name}"

    async def fetch(start: ChunkStart) -> FetchedChunk:
        return await fetch_modified(integ.id, label, started_at, start, lookback_days)

    async def map_(chunk: FetchedChunk) -> list[MergeBatch]:
        return await map_records(integ.id, label, cast(FetchedChunk, opaque(chunk)))

    async def merge(batches: list[MergeBatch]) -> dict[str, dict[str, int]]:
        return await merge_opportunities(cast(list[MergeBatch], opaque(batches)), run_id, label)

    async def touch(streams: list[str]) -> None:
        await touch_cursors(integ.id, streams)

    return PullSteps(fetch, map_, merge, refresh_statistics, touch)


@flow(
    name="sync-tenant",
    flow_run_name="sync-tenant-{tenant_slug}",
    persist_result=False,  # no "result" artifacts with storage paths: the hub keeps the record
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
    lookback_days: Annotated[
        int | None,
        Field(
            ge=1,
            le=3650,
            description="Days a stream without a stored cursor reads back; empty = 90, as on "
            "first connect.",
        ),
    ] = None,
) -> dict[str, Any]:
    """Pull every enabled, unpaused integration of one tenant into the hub, then push.

    The round a run belongs to travels as its ``round:<id>`` tag (set by sync-all-tenants), not
    as a parameter: an operator's Run form has nothing internal to fill in.

    Args:
        tenant_slug: Tenant slug as in the tenants file, e.g. acme-hvac.
        lookback_days: Days a stream without a stored cursor reads back (empty: 90).
    """
    logger = get_run_logger()
    clock = time.perf_counter()
    started_at = _started_at()
    flow_run_id = str(flow_run.id) if flow_run.id else None
    try:
        run_id = await start_run(tenant_slug, flow_run_id, _round_of_this_run())
    except TenantBusyError as exc:
        logger.warning("%s", exc)
        return {"tenant": tenant_slug, "status": "skipped", "reason": str(exc)}
    counts: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    integrations = await list_integrations(tenant_slug)
    try:
        await hold_contexts([i.id for i in integrations])
        for integ in integrations:
            try:
                await authenticate(integ.id, f"{tenant_slug}/{integ.name}")
            except Exception as exc:
                errors[integ.name] = _safe(exc)
                logger.error("%s: authentication failed: %s", integ.name, errors[integ.name])
                continue
            pulled = await pull_integration(
                _steps(integ, started_at, run_id, lookback_days), await list_streams(integ.id)
            )
            _report(integ.name, pulled, counts, errors, logger)
        if integrations and await _push_due(integrations[0].tenant_id):
            try:
                pushes = await push_activity(tenant_slug, True, run_id)
                counts["push"] = {k: v for k, v in pushes.items() if k != "errors"}
            except Exception as exc:
                errors["push"] = _safe(exc)
    finally:
        sync.release_contexts(i.id for i in integrations)
    status = await finish_run(run_id, counts, errors)
    await report_health(tenant_slug, run_id)  # issue 12: pause after failures, rejected rate
    rejected = await _publish(tenant_slug, run_id, status, counts, errors)
    result = {
        "tenant": tenant_slug,
        "run_id": run_id,
        "status": status,
        "elapsed_s": round(time.perf_counter() - clock, 3),
        "counts": counts,
    }
    if errors:
        # Returned, not raised: an exception escaping a flow is written to result storage and
        # shows in the UI as an untitled "result" artifact with a local path.
        message = f"tenant {tenant_slug}: " + "; ".join(f"{k}: {v}" for k, v in errors.items())
        return cast(dict[str, Any], Failed(message=message, data=TenantSyncError(message)))
    if rejected:
        logger.warning(
            "%d CRM record(s) rejected for the first time (quarantined with a reason, not "
            "merged): see the "
            "artifact rejected-%s or `crmsync runs show %d`",
            rejected,
            tenant_slug,
            run_id,
        )
        return cast(
            dict[str, Any],
            Completed(
                message=f"{rejected} CRM record(s) rejected: see artifact rejected-{tenant_slug}",
                data=result,
            ),
        )
    return result


async def _publish(
    slug: str, run_id: int, status: str, counts: dict[str, Any], errors: dict[str, str]
) -> int:
    """The run's artifacts: the table every run has, and the rejected records when the run
    rejected some for the first time. Returns how many it rejected for the first time."""
    quiet = report.quiet_streams(counts, errors)
    table = report.run_table(counts, errors)
    activities = report.ACTIVITY_COLUMNS[0] in report.table_columns(table)
    await acreate_table_artifact(
        key=f"sync-{slug}"[:100],
        table=table,
        description=f"Tenant {slug}: sync run {run_id} {_STATUS_WORDS.get(status, status)}. "
        "Fetched and rejected count CRM records; created, updated and unchanged count hub "
        "opportunities (a LeadPerfection prospect carries one per lead)."
        + (
            " CRM activities are notes, tasks, calls and emails read in; waiting ones hang "
            "under a record not in the hub yet; own pushes read back were not stored."
            if activities
            else ""
        )
        + (f" Nothing new on {', '.join(quiet)}." if quiet else ""),
    )
    new = await asyncio.to_thread(report.new_rejections, run_id)
    if new:
        total, shown = await asyncio.to_thread(report.rejected_records, run_id)
        await acreate_markdown_artifact(
            key=f"rejected-{slug}"[:100],
            markdown=report.rejected_markdown(slug, run_id, total, shown),
            description=f"Tenant {slug}: {total} record(s) rejected in sync run {run_id}",
        )
    return new


_STATUS_WORDS = {"partial": "failed in part (the other streams synced)"}


async def _push_due(tenant_id: int) -> bool:
    """Whether the tenant has pushes to plan or deliver (deferred ones are re-checked after a
    pull): without any, the push-activity task run is not worth its cost."""
    due = await asyncio.to_thread(push.due_tenants, tenant_id=tenant_id, recheck_deferred=True)
    return bool(due)


def _report(
    name: str,
    pulled: PullResult,
    counts: dict[str, dict[str, Any]],
    errors: dict[str, str],
    logger: Any,
) -> None:
    """Per-stream counts and errors into the run record, one summary line into the log."""
    for stream, merged in pulled.counts.items():
        counts[f"{name}:{stream}"] = dict(merged.as_dict())
    for stream, exc in pulled.errors.items():
        errors[f"{name}:{stream}"] = _safe(exc)
        logger.error("%s/%s failed: %s", name, stream, _safe(exc))
    figures = summary(pulled)
    if pulled.counts:  # seconds are per integration (a chunk spans streams): on its first row
        first = next(iter(pulled.counts))
        counts[f"{name}:{first}"].update(
            {k: figures[k] for k in ("chunks", "fetch_s", "map_s", "merge_s")}
        )
    logger.info("%s", report.integration_line(name, figures))


@flow(
    name="sync-all-tenants",
    flow_run_name=_round_run_name,
    persist_result=False,
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
        _threads_for(max_concurrency)
        gate = asyncio.Semaphore(max_concurrency)

        async def one(slug: str) -> tuple[str, State[Any]]:
            async with gate:
                if dispatch == "deployment":
                    return slug, await _run_tenant_deployment(slug, round_id, attempt)
                with tags(ROUND_TAG + round_id):
                    state: State[Any] = await sync_tenant(slug, return_state=True)  # type: ignore[call-overload]
                return slug, state

        results = await asyncio.gather(*(one(s) for s in todo))
        failed = [slug for slug, state in results if not state.is_completed()]
    await rounds.mark_superseded(ROUND_TAG + round_id)  # earlier failures a retry made good
    message = f"{len(slugs) - len(failed)} of {len(slugs)} tenants synced"
    if done:
        message += f" ({len(done)} already completed earlier in this round)"
    if failed:
        return Failed(message=f"{message}; failed: {', '.join(failed)}")
    return Completed(message=message)


async def _run_deployment(
    name: str, parameters: dict[str, Any], key: str, tags: list[str] | None = None
) -> State[Any]:
    """Start a deployment run as a child of this flow run and wait for its final state; the
    idempotency key makes a re-sent request (API retry) start nothing twice."""
    from prefect.deployments import run_deployment

    child = await run_deployment(  # type: ignore[misc]
        name, parameters=parameters, as_subflow=True, idempotency_key=key, tags=tags
    )
    assert child.state is not None
    return child.state


async def _run_tenant_deployment(slug: str, round_id: str, attempt: int) -> State[Any]:
    return await _run_deployment(
        "sync-tenant/sync-tenant",
        {"tenant_slug": slug},
        f"{round_id}:{slug}:{attempt}",
        [ROUND_TAG + round_id],
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


@flow(name="backfill", flow_run_name="backfill-{tenant_slug}-{integration}", persist_result=False)
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
    return await sync_tenant(tenant_slug, lookback_days=days)
