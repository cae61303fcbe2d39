"""Prefect tasks of the pull path: authenticate → fetch-modified → map → merge-opportunity.

Tasks are thin: they take ids and small values, run the Prefect-free step from
:mod:`crmsync.sync` in a worker thread (so async tenant flows interleave while one waits on HTTP
or PostgreSQL), and return small values or one page. Retries are for transient errors only
(:func:`retry_transient`): bad credentials or a 4xx are not going to fix themselves, and retrying
them would only burn the CRM's rate budget. Caching is off: a page is read once per run, and
hashing thousands of records for a cache key costs more than it could ever save.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from connectors.errors import ConnectorError
from crmsync import sync
from crmsync.merge import MergeBatch

T = TypeVar("T")
MergeBatches = list[MergeBatch]


def retry_transient(task_: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only errors the connector marked retryable, and database disconnects.

    Prefect hands the exception over as the failed state's data (``Failed(data=exc)``); reading
    it there avoids ``state.result()``, which is a coroutine inside async flows.
    """
    exc = state.data
    if isinstance(exc, ConnectorError):
        return exc.retryable
    return isinstance(exc, psycopg.OperationalError)


_RETRY: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [5, 30],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient,
    "cache_policy": NO_CACHE,
    "persist_result": False,
}


@task(name="authenticate", task_run_name="authenticate-{label}", **_RETRY)
async def authenticate(integration_id: int, label: str) -> str:
    """Fail fast on bad credentials before any stream is touched; returns the token expiry.

    ``label`` (tenant/integration) only names the task run in the UI."""
    expires: datetime = await asyncio.to_thread(sync.authenticate, integration_id)
    return expires.isoformat()


@task(name="fetch-modified", task_run_name="fetch-modified-{label}", **_RETRY)
async def fetch_modified(
    integration_id: int,
    label: str,
    started_at: datetime,
    start: sync.ChunkStart,
    lookback_days: int | None = None,
) -> sync.FetchedChunk:
    """The next chunk of changes across the integration's streams, from ``start`` (see
    :func:`crmsync.sync.fetch_chunk`); a stream with no cursor yet reads ``lookback_days`` back
    (default: the first-sync window)."""
    return await asyncio.to_thread(
        sync.fetch_chunk, integration_id, started_at, start, lookback_days
    )


@task(name="map", task_run_name="map-{label}", **_RETRY)
async def map_records(integration_id: int, label: str, chunk: sync.FetchedChunk) -> MergeBatches:
    """Raw records → standard opportunity fields (+ quarantined records with reasons)."""
    return await asyncio.to_thread(sync.map_chunk, integration_id, chunk)


@task(name="merge-opportunity", task_run_name="merge-opportunity-{label}", **_RETRY)
async def merge_opportunities(
    batches: MergeBatches, run_id: int, label: str
) -> dict[str, dict[str, int]]:
    """Contacts + opportunities + mirror + rejects, a transaction per batch; the chunk's cursors
    commit with its last batch. Counts per stream."""
    counts = await asyncio.to_thread(sync.merge_chunk, batches, run_id)
    return {stream: c.as_dict() for stream, c in counts.items()}


# Run bookkeeping: plain coroutines, not tasks. They are not steps of the DAG, and each task run
# costs ~5 ms here plus three state events the server must record; five of them per tenant were a
# fifth of a 1,000-tenant cycle's Prefect work. Database disconnects are retried like the tasks'.
_BOOKKEEPING_RETRY = AsyncRetrying(
    retry=retry_if_exception_type(psycopg.OperationalError),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=2, max=10),
    reraise=True,
)


async def _bookkeeping(fn: Callable[..., T], *args: Any) -> T:
    async for attempt in _BOOKKEEPING_RETRY.copy():
        with attempt:
            return await asyncio.to_thread(fn, *args)
    raise AssertionError("unreachable")  # pragma: no cover


async def start_run(tenant_slug: str, flow_run_id: str | None, round_id: str | None) -> int:
    """Open the run record under the tenant's lock (TenantBusyError if a run holds it)."""
    return await _bookkeeping(sync.start_run, tenant_slug, flow_run_id, round_id)


async def completed_in_round(round_id: str) -> set[str]:
    return await _bookkeeping(sync.completed_in_round, round_id)


async def list_integrations(tenant_slug: str) -> list[sync.IntegrationRef]:
    return await _bookkeeping(sync.tenant_integrations, tenant_slug)


async def list_streams(integration_id: int) -> list[str]:
    """The integration's streams in read order."""
    return await _bookkeeping(sync.streams, integration_id)


async def hold_contexts(integration_ids: list[int]) -> None:
    await _bookkeeping(sync.hold_contexts, integration_ids)


async def refresh_statistics() -> None:
    await _bookkeeping(sync.refresh_statistics)


async def touch_cursors(integration_id: int, streams: list[str]) -> None:
    await _bookkeeping(sync.touch_cursors, integration_id, streams)


async def finish_run(run_id: int, counts: dict[str, Any], errors: dict[str, str]) -> str:
    return await _bookkeeping(sync.finish_run, run_id, counts, errors)


@task(name="reset-cursors", cache_policy=NO_CACHE, persist_result=False)
async def reset_cursors(tenant_slug: str, integration_name: str) -> int:
    return await asyncio.to_thread(sync.reset_cursors, tenant_slug, integration_name)
