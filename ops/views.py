"""What the commands print: the consoles and the status tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
err = Console(stderr=True)


def rows(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    from crmsync import db

    with db.connect() as conn:
        return conn.execute(sql, params).fetchall()


def print_status(tenant: str | None = None) -> None:
    where = "WHERE t.slug = %s" if tenant else ""
    params: tuple[Any, ...] = (tenant,) if tenant else ()
    integrations = Table(title="Integrations", show_lines=False)
    for col in (
        "tenant",
        "integration",
        "provider",
        "state",
        "opportunities",
        "contacts",
        "rejected",
    ):
        integrations.add_column(col)
    for row in rows(
        f"""
        SELECT t.slug, i.name, i.provider,
               CASE WHEN NOT i.enabled THEN 'disabled' WHEN i.paused THEN 'paused'
                    ELSE 'active' END,
               (SELECT count(*) FROM opportunity o WHERE o.integration_id = i.id),
               (SELECT count(DISTINCT o.contact_id) FROM opportunity o
                WHERE o.integration_id = i.id),
               (SELECT count(*) FROM rejected_record r WHERE r.integration_id = i.id)
        FROM integration i JOIN tenant t ON t.id = i.tenant_id {where} ORDER BY t.slug, i.name
        """,
        params,
    ):
        integrations.add_row(*(str(v) for v in row))
    console.print(integrations)

    cursors = Table(title="Stream cursors")
    for col in ("tenant", "integration", "stream", "cursor", "last success (UTC)"):
        cursors.add_column(col)
    for row in rows(
        f"""
        SELECT t.slug, i.name, c.stream, left(coalesce(c.cursor, ''), 40),
               to_char(c.last_success_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
        FROM sync_cursor c JOIN integration i ON i.id = c.integration_id
        JOIN tenant t ON t.id = c.tenant_id {where} ORDER BY 1, 2, 3
        """,
        params,
    ):
        cursors.add_row(*(str(v) for v in row))
    console.print(cursors)

    runs = Table(title="Last run per tenant")
    for col in (
        "tenant",
        "run",
        "status",
        "fetched",
        "created",
        "updated",
        "unchanged",
        "rejected",
        "errors",
    ):
        runs.add_column(col)
    for slug, run_id, state, counts, errors in rows(
        f"""
        SELECT DISTINCT ON (t.slug) t.slug, r.id, r.status, r.counts, r.errors
        FROM sync_run r JOIN tenant t ON t.id = r.tenant_id {where}
        ORDER BY t.slug, r.started_at DESC
        """,
        params,
    ):
        totals = {
            k: sum(int(c.get(k, 0)) for c in counts.values())
            for k in ("fetched", "created", "updated", "unchanged", "rejected")
        }
        runs.add_row(
            slug,
            str(run_id),
            state,
            *(str(totals[k]) for k in totals),
            "; ".join(f"{k}: {v}" for k, v in errors.items())[:80],
        )
    console.print(runs)
