"""What the hub holds, read for people: the queries behind ``crmsync status``, ``runs list``,
``runs show`` and ``integrations pause|resume``. The operator tools (``ops/``) render these rows;
they hold no SQL of their own. Every query is scoped by tenant slug when one is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crmsync import db


def _rows(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute(sql, params).fetchall()


def tenant_slugs() -> list[str]:
    """Every tenant's slug, in order."""
    return [slug for (slug,) in _rows("SELECT slug FROM tenant ORDER BY slug")]


@dataclass(slots=True, frozen=True)
class IntegrationState:
    tenant: str
    integration: str
    provider: str
    state: str  # active | paused | disabled
    opportunities: int
    contacts: int
    rejected: int  # CRM records quarantined, all runs


def integrations(tenant: str | None = None) -> list[IntegrationState]:
    rows = _rows(
        """
        SELECT t.slug, i.name, i.provider,
               CASE WHEN NOT i.enabled THEN 'disabled' WHEN i.paused THEN 'paused'
                    ELSE 'active' END,
               (SELECT count(*) FROM opportunity o WHERE o.integration_id = i.id),
               (SELECT count(DISTINCT o.contact_id) FROM opportunity o
                WHERE o.integration_id = i.id),
               (SELECT count(*) FROM rejected_record r WHERE r.integration_id = i.id)
        FROM integration i JOIN tenant t ON t.id = i.tenant_id
        WHERE %s::text IS NULL OR t.slug = %s ORDER BY t.slug, i.name
        """,
        (tenant, tenant),
    )
    return [IntegrationState(*r) for r in rows]


@dataclass(slots=True, frozen=True)
class CursorState:
    tenant: str
    integration: str
    stream: str
    cursor: str
    last_success_at: datetime | None


def cursors(tenant: str | None = None) -> list[CursorState]:
    rows = _rows(
        """
        SELECT t.slug, i.name, c.stream, coalesce(c.cursor, ''), c.last_success_at
        FROM sync_cursor c JOIN integration i ON i.id = c.integration_id
        JOIN tenant t ON t.id = c.tenant_id
        WHERE %s::text IS NULL OR t.slug = %s ORDER BY 1, 2, 3
        """,
        (tenant, tenant),
    )
    return [CursorState(*r) for r in rows]


@dataclass(slots=True, frozen=True)
class LastRun:
    """The latest run of a tenant that pulled (or failed to pull) this integration."""

    tenant: str
    integration: str
    run_id: int
    status: str
    started_at: datetime
    counts: dict[str, Any]
    errors: dict[str, Any]


def last_runs(tenant: str | None = None) -> list[LastRun]:
    """Per integration, its tenant's latest run whose counts or errors name the integration
    (counts are keyed ``integration:stream``, errors ``integration`` or ``integration:stream``).
    """
    rows = _rows(
        """
        SELECT t.slug, i.name, r.id, r.status, r.started_at, r.counts, r.errors
        FROM integration i JOIN tenant t ON t.id = i.tenant_id
        CROSS JOIN LATERAL (
            SELECT r.* FROM sync_run r
            WHERE r.tenant_id = i.tenant_id
              AND (EXISTS (SELECT 1 FROM jsonb_object_keys(r.counts) k
                           WHERE split_part(k, ':', 1) = i.name)
                   OR EXISTS (SELECT 1 FROM jsonb_object_keys(r.errors) k
                              WHERE split_part(k, ':', 1) = i.name))
            ORDER BY r.started_at DESC LIMIT 1
        ) r
        WHERE %s::text IS NULL OR t.slug = %s ORDER BY t.slug, i.name
        """,
        (tenant, tenant),
    )
    return [LastRun(*r) for r in rows]


@dataclass(slots=True, frozen=True)
class RunSummary:
    run_id: int
    tenant: str
    status: str
    started_at: datetime
    seconds: float | None
    flow_run_id: str | None


def runs(tenant: str | None = None, limit: int = 20) -> list[RunSummary]:
    """Recent tenant sync runs, newest first."""
    rows = _rows(
        """
        SELECT r.id, t.slug, r.status, r.started_at,
               round(extract(epoch FROM r.finished_at - r.started_at)::numeric, 1), r.flow_run_id
        FROM sync_run r JOIN tenant t ON t.id = r.tenant_id
        WHERE %s::text IS NULL OR t.slug = %s ORDER BY r.id DESC LIMIT %s
        """,
        (tenant, tenant, limit),
    )
    return [
        RunSummary(r[0], r[1], r[2], r[3], None if r[4] is None else float(r[4]), r[5])
        for r in rows
    ]


def latest_run_with_rejects() -> tuple[int, str, int] | None:
    """(run id, tenant slug, records rejected) of the newest run that rejected CRM records."""
    rows = _rows(
        """
        SELECT r.run_id, t.slug, count(*) FROM rejected_record r
        JOIN sync_run s ON s.id = r.run_id JOIN tenant t ON t.id = s.tenant_id
        GROUP BY r.run_id, t.slug ORDER BY r.run_id DESC LIMIT 1
        """
    )
    return (int(rows[0][0]), str(rows[0][1]), int(rows[0][2])) if rows else None


@dataclass(slots=True, frozen=True)
class Run:
    run_id: int
    tenant: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, Any]
    errors: dict[str, Any]
    flow_run_id: str | None


def run(run_id: int) -> Run | None:
    rows = _rows(
        "SELECT r.id, t.slug, r.status, r.started_at, r.finished_at, r.counts, r.errors, "
        "r.flow_run_id FROM sync_run r JOIN tenant t ON t.id = r.tenant_id WHERE r.id = %s",
        (run_id,),
    )
    return Run(*rows[0]) if rows else None


@dataclass(slots=True, frozen=True)
class LineageGroup:
    integration: str
    stream: str
    action: str  # created | updated | rejected …
    count: int
    first_ids: str  # the first ``records`` external ids, comma-separated


def lineage(run_id: int, records: int = 20) -> list[LineageGroup]:
    """Which CRM records the run created/updated/…, grouped by integration, stream and action."""
    rows = _rows(
        """
        SELECT i.name, l.stream, l.action, count(*),
               string_agg(coalesce(l.model || ':', '') || l.external_id, ', ' ORDER BY l.id)
                 FILTER (WHERE l.rn <= %s)
        FROM (SELECT *, row_number() OVER (PARTITION BY integration_id, stream, action
                                           ORDER BY id) AS rn
              FROM sync_lineage WHERE run_id = %s) l
        JOIN integration i ON i.id = l.integration_id GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        """,
        (records, run_id),
    )
    return [LineageGroup(r[0], r[1], r[2], int(r[3]), r[4] or "") for r in rows]


@dataclass(slots=True, frozen=True)
class PushOfRun:
    activity_id: int
    integration: str
    target: str
    status: str
    crm_record: str
    attempts: int
    error: str


def pushes(run_id: int, limit: int = 200) -> list[PushOfRun]:
    """The pushes this run delivered or attempted last."""
    rows = _rows(
        """
        SELECT l.activity_id, i.name, l.target, l.status, coalesce(l.target_ref || ' / ', '') ||
               coalesce(l.crm_record_id, ''), l.attempts, left(coalesce(l.last_error, ''), 60)
        FROM push_ledger l JOIN integration i ON i.id = l.integration_id
        WHERE l.last_run_id = %s ORDER BY l.id LIMIT %s
        """,
        (run_id, limit),
    )
    return [PushOfRun(*r) for r in rows]


def set_paused(tenant: str, integration: str, paused: bool) -> bool:
    """Pause or resume one integration; False when the tenant has no such integration."""
    with db.connect() as conn:
        cur = conn.execute(
            "UPDATE integration i SET paused = %s, updated_at = now() FROM tenant t "
            "WHERE t.id = i.tenant_id AND t.slug = %s AND i.name = %s",
            (paused, tenant, integration),
        )
        conn.commit()
    return cur.rowcount > 0
