"""Pulling one integration chunk by chunk: fetch-modified → map → merge-opportunity, with the
next chunk fetched while the current one merges.

The steps come in as coroutines: the tenant flow hands in its Prefect tasks, the benchmark the
same functions of :mod:`crmsync.sync` without Prefect, so both run exactly this loop
(``bench/proof_throughput.py`` compares them side by side). Nothing here imports Prefect.

Guarantees kept from the page-at-a-time loop it replaces (ARCHITECTURE §2.1):

* cursors commit with the data they cover (a chunk's cursors ride on its last merge), so a
  crash or a failure repeats work and never skips it;
* pages of one stream are fetched in order, and a chunk is mapped only after the chunk before it
  merged, unless both hold only streams whose pages map independently (jobs after jobs);
* a stream that fails is reported and the integration's later streams still run, except after
  an authentication or quota error, which the remaining streams would only repeat.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from connectors.errors import AuthError, QuotaExceededError
from crmsync import sync
from crmsync.merge import MergeBatch, MergeCounts
from crmsync.sync import ChunkStart, FetchedChunk

T = TypeVar("T")

ANALYZE_AFTER = 5000
"""Records after which statistics are refreshed (again at 4 and 16 times that…): see
:func:`crmsync.sync.refresh_statistics`."""


@dataclass(slots=True)
class PullSteps:
    """The DAG steps of one integration, bound to it by the caller."""

    fetch: Callable[[ChunkStart], Awaitable[FetchedChunk]]
    map: Callable[[FetchedChunk], Awaitable[list[MergeBatch]]]
    merge: Callable[[list[MergeBatch]], Awaitable[dict[str, dict[str, int]]]]
    refresh_statistics: Callable[[], Awaitable[None]]
    touch: Callable[[list[str]], Awaitable[None]]
    """Record streams read to their end with nothing new (a chunk that needs no map or merge)."""


@dataclass(slots=True)
class PullResult:
    """Per stream: what was merged, and the error that stopped the stream, if any."""

    counts: dict[str, MergeCounts] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    seconds: dict[str, float] = field(
        default_factory=lambda: {"fetch_s": 0.0, "map_s": 0.0, "merge_s": 0.0}
    )
    chunks: int = 0
    stopped: bool = False
    """True when an authentication or quota error ended the integration's run early."""

    def fail(self, streams: list[str], exc: BaseException) -> None:
        for stream in streams:
            self.counts.setdefault(stream, MergeCounts())
            self.errors[stream] = exc
        self.stopped = isinstance(exc, (AuthError, QuotaExceededError))


@dataclass(slots=True)
class _Ahead:
    """A chunk fetched (and, where allowed, mapped) while the previous one merges."""

    start: ChunkStart
    chunk: FetchedChunk | None = None
    batches: list[MergeBatch] | None = None
    error: BaseException | None = None
    failed_step: str = ""


async def pull_integration(steps: PullSteps, streams: list[str]) -> PullResult:
    """Read every stream of the integration to its end, chunk after chunk."""
    result = PullResult()

    async def timed(key: str, step: Awaitable[T]) -> T:
        t0 = time.perf_counter()
        try:
            return await step
        finally:
            result.seconds[key] += time.perf_counter() - t0

    async def advance(start: ChunkStart, map_early: bool) -> _Ahead:
        ahead = _Ahead(start)
        try:
            ahead.chunk = await timed("fetch_s", steps.fetch(start))
        except Exception as exc:
            ahead.error, ahead.failed_step = exc, "fetch"
            return ahead
        if map_early and ahead.chunk.independent:
            try:
                ahead.batches = await timed("map_s", steps.map(ahead.chunk))
            except Exception as exc:
                ahead.error, ahead.failed_step = exc, "map"
        return ahead

    def after(index: int) -> asyncio.Future[_Ahead] | None:
        """Resume at the stream after ``index``, from its committed cursor."""
        if index + 1 >= len(streams):
            return None
        return asyncio.ensure_future(advance(ChunkStart(index + 1), False))

    analyze_at = ANALYZE_AFTER
    fetched = 0
    pending: asyncio.Future[_Ahead] | None = asyncio.ensure_future(advance(ChunkStart(), False))
    while pending is not None:
        ahead = await pending
        pending = None
        chunk = ahead.chunk
        if chunk is None:  # the chunk's first page could not be read
            assert ahead.error is not None
            index = ahead.start.stream_index
            result.fail([streams[index]], ahead.error)
            pending = None if result.stopped else after(index)
            continue
        result.chunks += 1
        if not chunk.moves_cursor and ahead.error is None:
            # Nothing changed and no cursor moved: no map or merge task run to pay for.
            for stream in chunk.streams:
                result.counts.setdefault(stream, MergeCounts())
            await steps.touch(chunk.streams)
            if chunk.next is not None:
                pending = asyncio.ensure_future(advance(chunk.next, False))
            continue
        try:
            if ahead.error is not None:
                raise ahead.error
            batches = ahead.batches
            if batches is None:
                batches = await timed("map_s", steps.map(chunk))
            if chunk.next is not None:
                pending = asyncio.ensure_future(advance(chunk.next, chunk.independent))
            merged = await timed("merge_s", steps.merge(batches))
        except Exception as exc:
            if pending is not None:
                pending.cancel()
            # Nothing of this chunk's streams after their last committed cursor is trusted:
            # the next stream starts from its own cursor, these from theirs on the next run.
            result.fail(chunk.streams, exc)
            pending = None if result.stopped else after(chunk.last_index)
            continue
        for stream, counts in merged.items():
            result.counts.setdefault(stream, MergeCounts()).add(MergeCounts(**counts))
            fetched += counts.get("fetched", 0)
        if fetched >= analyze_at:  # statistics keep up with a big first load
            await steps.refresh_statistics()
            analyze_at *= 4
    return result


def summary(result: PullResult) -> dict[str, Any]:
    """One line of figures per integration for logs and the run artifact."""
    total = MergeCounts()
    for counts in result.counts.values():
        total.add(counts)
    return {
        **total.as_dict(),
        "chunks": result.chunks,
        **{k: round(v, 3) for k, v in result.seconds.items()},
    }


def plain_steps(
    integration_id: int, started_at: datetime, run_id: int | None, lookback_days: int | None = None
) -> PullSteps:
    """The same steps as the flow's tasks, called without Prefect (benchmarks, a debugger)."""

    async def fetch(start: ChunkStart) -> FetchedChunk:
        return await asyncio.to_thread(
            sync.fetch_chunk, integration_id, started_at, start, lookback_days
        )

    async def map_(chunk: FetchedChunk) -> list[MergeBatch]:
        return await asyncio.to_thread(sync.map_chunk, integration_id, chunk)

    async def merge(batches: list[MergeBatch]) -> dict[str, dict[str, int]]:
        counts = await asyncio.to_thread(sync.merge_chunk, batches, run_id)
        return {stream: c.as_dict() for stream, c in counts.items()}

    async def refresh() -> None:
        await asyncio.to_thread(sync.refresh_statistics)

    async def touch(streams: list[str]) -> None:
        await asyncio.to_thread(sync.touch_cursors, integration_id, streams)

    return PullSteps(fetch, map_, merge, refresh, touch)
