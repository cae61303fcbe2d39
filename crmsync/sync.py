"""The sync steps as plain functions (no Prefect): what the tasks in ``tasks/`` call.

Each step takes ids and small values, opens what it needs (database connection, cached CRM
client) and returns small values or a page. Keeping them Prefect-free lets tests, the benchmark
and a Python shell drive exactly the code the flows run.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlmodel import select

from crmsync import crypto, db
from crmsync.merge import CursorUpdate, MergeBatch, MergeCounts, merge_batch
from crmsync.providers import get_provider
from crmsync.providers.base import FetchedPage, IntegrationContext, StreamCursor, split_page
from crmsync.settings import get_settings
from models.hub import Integration, SyncRun, Tenant


class TenantNotFoundError(LookupError):
    pass


@dataclass(slots=True, frozen=True)
class IntegrationRef:
    """What a flow needs to know about an integration: ids and names, nothing secret."""

    id: int
    tenant_id: int
    tenant_slug: str
    name: str
    provider: str


def tenant_integrations(tenant_slug: str) -> list[IntegrationRef]:
    """Enabled, unpaused integrations of a tenant, in name order."""
    with db.session() as s:
        tenant = s.exec(select(Tenant).where(Tenant.slug == tenant_slug)).first()
        if tenant is None:
            raise TenantNotFoundError(f"no tenant with slug {tenant_slug!r}")
        rows = s.exec(
            select(Integration)
            .where(Integration.tenant_id == tenant.id)
            .where(Integration.enabled == True)  # noqa: E712
            .where(Integration.paused == False)  # noqa: E712
            .order_by(Integration.name)
        ).all()
        assert tenant.id is not None
        return [IntegrationRef(r.id or 0, tenant.id, tenant.slug, r.name, r.provider) for r in rows]


def tenant_id_of(tenant_slug: str) -> int:
    with db.connect() as conn:
        row = conn.execute("SELECT id FROM tenant WHERE slug = %s", (tenant_slug,)).fetchone()
    if row is None:
        raise TenantNotFoundError(f"no tenant with slug {tenant_slug!r}")
    return int(row[0])


def active_tenants() -> list[str]:
    """Slugs of tenants with at least one enabled, unpaused integration."""
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT t.slug FROM tenant t WHERE EXISTS (SELECT 1 FROM integration i "
            "WHERE i.tenant_id = t.id AND i.enabled AND NOT i.paused) ORDER BY t.slug"
        ).fetchall()
    return [r[0] for r in rows]


_held: dict[int, IntegrationContext] = {}


def hold_contexts(integration_ids: Iterable[int]) -> None:
    """Load and decrypt these integrations once for the length of a tenant run.

    Without it every task rebuilt its context (SELECT, decrypt, validate) two or three times per
    chunk. The contexts stay in this process only: tasks still take ids, and nothing secret
    becomes a task parameter or result. A run releases them when it ends, so a credential fixed
    between runs is read by the next one.
    """
    for integration_id in integration_ids:
        try:
            _held[integration_id] = _load_integration(integration_id)
        except (LookupError, ValueError, crypto.CredentialDecryptError):
            # Undecryptable or invalid stored settings: not held, so the integration's own
            # authenticate step reads it again and reports the error for that integration only.
            continue


def release_contexts(integration_ids: Iterable[int]) -> None:
    for integration_id in integration_ids:
        _held.pop(integration_id, None)


def load_integration(integration_id: int) -> IntegrationContext:
    """The integration's context: the one held by the running tenant run, else read now."""
    held = _held.get(integration_id)
    return held if held is not None else _load_integration(integration_id)


def _load_integration(integration_id: int) -> IntegrationContext:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT i.id, i.tenant_id, t.slug, i.name, i.provider, i.base_url, i.auth_url, "
            "i.credentials, i.settings FROM integration i JOIN tenant t ON t.id = i.tenant_id "
            "WHERE i.id = %s",
            (integration_id,),
        ).fetchone()
    if row is None:
        raise LookupError(f"no integration with id {integration_id}")
    provider = get_provider(row[4])
    return IntegrationContext(
        id=row[0],
        tenant_id=row[1],
        tenant_slug=row[2],
        name=row[3],
        provider=row[4],
        base_url=row[5],
        auth_url=row[6],
        credentials=provider.credentials_model.model_validate(crypto.decrypt_json(row[7])),
        settings=provider.settings_model.model_validate(row[8]),
        first_sync_days=get_settings().first_sync_days,
    )


def authenticate(integration_id: int) -> datetime:
    ctx = load_integration(integration_id)
    return get_provider(ctx.provider).authenticate(ctx)


def read_cursor(integration_id: int, stream: str) -> StreamCursor:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT cursor, window_start, last_success_at FROM sync_cursor "
            "WHERE integration_id = %s AND stream = %s",
            (integration_id, stream),
        ).fetchone()
    return StreamCursor(*row) if row else StreamCursor(None, None, None)


def fetch_page(
    integration_id: int,
    stream: str,
    started_at: datetime,
    after: str | None = None,
    lookback_days: int | None = None,
) -> FetchedPage:
    """The page after the stream's committed cursor, or after ``after`` when the caller already
    holds the next cursor (the flow fetches page N+1 while page N is still merging; if it dies
    before that merge commits, the next run starts again from the committed cursor)."""
    ctx = load_integration(integration_id)
    if lookback_days is not None:
        ctx = dataclasses.replace(ctx, first_sync_days=lookback_days)
    cursor = read_cursor(integration_id, stream)
    if after is not None:
        cursor = StreamCursor(after, cursor.window_start, cursor.last_success_at)
    return get_provider(ctx.provider).fetch_page(ctx, stream, cursor, started_at)


def map_page(integration_id: int, page: FetchedPage) -> MergeBatch:
    ctx = load_integration(integration_id)
    with db.connect() as conn:
        batch = get_provider(ctx.provider).map_page(ctx, conn, page)
    if not page.commits_cursor:
        batch.set_cursor = False
    return batch


def merge(batch: MergeBatch, run_id: int | None) -> MergeCounts:
    with db.connect() as conn:
        return merge_batch(conn, batch, run_id)


# -- chunks: the unit of one fetch-modified → map → merge-opportunity round ---------------------


@dataclass(slots=True, frozen=True)
class ChunkStart:
    """Where a fetch-modified call resumes: the index of a stream in read order and, when this
    run already fetched pages of it, the cursor after them (None: the stream's committed cursor)."""

    stream_index: int = 0
    after: str | None = None


@dataclass(slots=True)
class FetchedChunk:
    """The next pages of an integration's changes across its streams, in read order, up to a
    record budget; ``next`` resumes after them (None once every stream is read to its end)."""

    pages: list[FetchedPage]
    first_index: int
    last_index: int
    next: ChunkStart | None
    independent: bool = False
    moves_cursor: bool = True
    """False when every page came back empty with the cursor it was read from: nothing to map
    or merge, nothing to commit (an idle tenant's usual chunk)."""

    @property
    def streams(self) -> list[str]:
        return list(dict.fromkeys(p.stream for p in self.pages))

    @property
    def records(self) -> int:
        return sum(len(p.records) + len(p.invalid) for p in self.pages)


def streams(integration_id: int) -> list[str]:
    ctx = load_integration(integration_id)
    return get_provider(ctx.provider).streams(ctx)


def fetch_chunk(
    integration_id: int,
    started_at: datetime,
    start: ChunkStart,
    lookback_days: int | None = None,
    budget: int | None = None,
) -> FetchedChunk:
    """Pages from ``start`` on, across streams in read order, until ``budget`` records are in
    hand or every stream is read to its end.

    Only a failure of the chunk's first page raises (the task's retries repeat just that page);
    a later page that fails ends the chunk before it, so the next call starts there. A small
    tenant's changes thus travel as one chunk: one task run per DAG step, not one per stream.
    """
    ctx = load_integration(integration_id)
    if lookback_days is not None:
        ctx = dataclasses.replace(ctx, first_sync_days=lookback_days)
    provider = get_provider(ctx.provider)
    names = provider.streams(ctx)
    budget = budget or get_settings().chunk_records
    pages: list[FetchedPage] = []
    index, after, fetched = start.stream_index, start.after, 0
    committed: dict[str, StreamCursor] = {}
    moved = False
    while index < len(names) and (not pages or fetched < budget):
        stream = names[index]
        if stream not in committed:
            committed[stream] = read_cursor(integration_id, stream)
        base = committed[stream]
        cursor = (
            base if after is None else StreamCursor(after, base.window_start, base.last_success_at)
        )
        try:
            page = provider.fetch_page(ctx, stream, cursor, started_at)
        except Exception:
            if not pages:
                raise
            break
        pages.append(page)
        fetched += len(page.records) + len(page.invalid)
        moved = moved or page.next_cursor != cursor.cursor or page.window_start is not None
        if page.has_more:
            after = page.next_cursor
        else:
            index, after = index + 1, None
    return FetchedChunk(
        pages,
        first_index=start.stream_index,
        last_index=names.index(pages[-1].stream),
        next=ChunkStart(index, after) if index < len(names) else None,
        independent=all(provider.pages_independent(p.stream) for p in pages),
        moves_cursor=moved or fetched > 0,
    )


def map_chunk(integration_id: int, chunk: FetchedChunk) -> list[MergeBatch]:
    """The chunk's pages as merge batches of at most ``merge_chunk_records`` records each.

    A page maps against the hub's mirror overlaid with the raw records of the chunk's earlier
    pages (which are not merged yet), so a job composes with the customer fetched just before
    it. Every cursor the chunk moves rides on its last batch (ARCHITECTURE §2.1): if any batch
    fails to merge, no stream of the chunk moves, and the rerun repeats the chunk.
    """
    ctx = load_integration(integration_id)
    provider = get_provider(ctx.provider)
    size = get_settings().merge_chunk_records
    overlay: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    batches: list[MergeBatch] = []
    cursors: dict[str, CursorUpdate] = {}
    with db.connect() as conn:
        for page in chunk.pages:
            for part in split_page(page, size):
                batch = provider.map_page(ctx, conn, part, overlay)
                batch.set_cursor = False
                for row in batch.mirror:
                    overlay[row.resource][row.external_id] = row.payload
                batches.append(batch)
            cursors[page.stream] = CursorUpdate(page.stream, page.next_cursor, page.window_start)
    batches[-1].cursors = list(cursors.values())
    return batches


def merge_chunk(batches: list[MergeBatch], run_id: int | None) -> dict[str, MergeCounts]:
    """Merge a chunk's batches in order, one transaction each (bounded lock time); the last one
    commits the chunk's cursors. Counts are per stream."""
    counts: dict[str, MergeCounts] = {}
    for batch in batches:
        counts.setdefault(batch.stream, MergeCounts()).add(merge(batch, run_id))
    return counts


class TenantBusyError(RuntimeError):
    """Another sync of the same tenant holds its lock (a run is never started twice)."""


_LOCK_NAMESPACE = 0x43525354  # "CRST": session advisory locks of running tenant syncs
_tenant_locks: dict[int, Any] = {}


def start_run(tenant_slug: str, flow_run_id: str | None, round_id: str | None = None) -> int:
    """Open a ``sync_run`` while holding the tenant's session advisory lock.

    The lock lives on its own connection for the length of the run, on whichever worker runs
    it; PostgreSQL drops it when that process dies, so a crashed run never blocks the next one.
    """
    tenant_id = tenant_id_of(tenant_slug)
    lock = db.dedicated(autocommit=True)
    (got,) = lock.execute(
        "SELECT pg_try_advisory_lock(%s, %s)", (_LOCK_NAMESPACE, tenant_id % 2**31)
    ).fetchone() or (False,)
    if not got:
        lock.close()
        raise TenantBusyError(f"tenant {tenant_slug} is already being synced")
    try:
        # Holding the lock proves no other run of this tenant is alive: a run still marked
        # running died with its process (kill -9, lost machine) and is closed as crashed.
        with db.connect() as conn:
            conn.execute(
                "UPDATE sync_run SET status = 'crashed', finished_at = now(), "
                "errors = coalesce(errors, '{}'::jsonb) || "
                '\'{"run": "its process died before the run finished"}\'::jsonb '
                "WHERE tenant_id = %s AND status = 'running'",
                (tenant_id,),
            )
        with db.session() as s:
            run = SyncRun(tenant_id=tenant_id, flow_run_id=flow_run_id, round_id=round_id)
            s.add(run)
            s.commit()
            assert run.id is not None
    except BaseException:
        lock.close()
        raise
    _tenant_locks[run.id] = lock
    return run.id


def completed_in_round(round_id: str) -> set[str]:
    """Tenants whose run in this dispatcher round completed: a retried round skips them."""
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT t.slug FROM sync_run r JOIN tenant t ON t.id = r.tenant_id "
            "WHERE r.round_id = %s AND r.status = 'completed'",
            (round_id,),
        ).fetchall()
    return {r[0] for r in rows}


def finish_run(run_id: int, counts: dict[str, Any], errors: dict[str, str]) -> str:
    pulled = [k for k in counts if k != "push"]
    status = "failed" if errors and not pulled else "partial" if errors else "completed"
    with db.connect() as conn:
        conn.execute(
            "UPDATE sync_run SET status = %s, finished_at = %s, counts = %s::jsonb, "
            "errors = %s::jsonb WHERE id = %s",
            (
                status,
                datetime.now(UTC),
                orjson.dumps(counts).decode(),
                orjson.dumps(errors).decode(),
                run_id,
            ),
        )
        conn.commit()
    lock = _tenant_locks.pop(run_id, None)
    if lock is not None:
        lock.close()
    return status


def reset_cursors(tenant_slug: str, integration_name: str) -> int:
    """Forget an integration's stream cursors so its next sync starts over (backfill)."""
    with db.connect() as conn:
        cur = conn.execute(
            "DELETE FROM sync_cursor c USING integration i, tenant t WHERE c.integration_id = i.id "
            "AND i.tenant_id = t.id AND t.slug = %s AND i.name = %s",
            (tenant_slug, integration_name),
        )
        found = conn.execute(
            "SELECT 1 FROM integration i JOIN tenant t ON t.id = i.tenant_id "
            "WHERE t.slug = %s AND i.name = %s",
            (tenant_slug, integration_name),
        ).fetchone()
        conn.commit()
    if found is None:
        raise LookupError(f"tenant {tenant_slug} has no integration {integration_name!r}")
    return cur.rowcount


def touch_cursors(integration_id: int, streams: list[str]) -> None:
    """Record that these streams were read to their end with nothing new (``last_success_at``),
    for a chunk that needed no map or merge."""
    with db.connect() as conn:
        conn.execute(
            "UPDATE sync_cursor SET last_success_at = now() "
            "WHERE integration_id = %s AND stream = ANY(%s)",
            (integration_id, streams),
        )
        conn.commit()


def refresh_statistics() -> None:
    """ANALYZE the tables a large load just grew.

    A first sync can add hundreds of thousands of rows in a minute, long before autovacuum's
    analyze notices; with the statistics of an empty table the planner answers the ``= ANY``
    look-ups of the next pages with sequential scans, and each page gets slower than the last.
    """
    with db.connect(autocommit=True) as conn:
        conn.execute("ANALYZE crm_record, contact, contact_link, opportunity, crm_activity")
