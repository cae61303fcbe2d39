"""The sync steps as plain functions (no Prefect): what the tasks in ``tasks/`` call.

Each step takes ids and small values, opens what it needs (database connection, cached CRM
client) and returns small values or a page. Keeping them Prefect-free lets tests, the benchmark
and a Python shell drive exactly the code the flows run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlmodel import select

from crmsync import crypto, db
from crmsync.merge import MergeBatch, MergeCounts, merge_batch
from crmsync.providers import get_provider
from crmsync.providers.base import FetchedPage, IntegrationContext, StreamCursor
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


def load_integration(integration_id: int) -> IntegrationContext:
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


def streams(integration_id: int) -> list[str]:
    ctx = load_integration(integration_id)
    return get_provider(ctx.provider).streams(ctx)


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
        ctx.first_sync_days = lookback_days
    cursor = read_cursor(integration_id, stream)
    if after is not None:
        cursor = StreamCursor(after, cursor.window_start, cursor.last_success_at)
    return get_provider(ctx.provider).fetch_page(ctx, stream, cursor, started_at)


def pages_independent(integration_id: int, stream: str) -> bool:
    ctx = load_integration(integration_id)
    return get_provider(ctx.provider).pages_independent(stream)


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


def refresh_statistics() -> None:
    """ANALYZE the tables a large load just grew.

    A first sync can add hundreds of thousands of rows in a minute, long before autovacuum's
    analyze notices; with the statistics of an empty table the planner answers the ``= ANY``
    look-ups of the next pages with sequential scans, and each page gets slower than the last.
    """
    with db.connect(autocommit=True) as conn:
        conn.execute("ANALYZE crm_record, contact, contact_link, opportunity")
