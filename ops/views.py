"""What the commands print: the consoles, the status tables, a run's details, an apply summary.

The rows come from the engine (``crmsync.overview``, ``crmsync.report``); nothing here holds SQL.
On a terminal tables fit its width; piped (``crmsync status | cat``, ``make demo > log``) a table
is printed at its natural width and text is not re-wrapped, so no word or id is cut.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import astuple
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from crmsync import overview, report
from crmsync.tenants import ApplyResult


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, soft_wrap=not stream.isatty())


console = _console()
err = _console(stderr=True)


def show(table: Table, on: Console | None = None) -> None:
    """Print ``table``; when not on a terminal, at its natural width (no cut cells)."""
    on = on or console
    if not on.is_terminal:
        natural = Measurement.get(on, on.options.update_width(100_000), table).maximum
        if natural > on.width:
            width = on.width
            on.width = natural
            try:
                on.print(table)
            finally:
                on.width = width
            return
    on.print(table)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(title=title)
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    return t


def _utc(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}" if at else ""


def print_status(tenant: str | None = None) -> None:
    """Integrations, stream cursors, and each integration's last run in the run report's
    column names (``crmsync.report``)."""
    show(
        table(
            "Integrations",
            (
                "tenant",
                "integration",
                "provider",
                "state",
                "opportunities",
                "contacts",
                "rejected",
            ),
            (
                (
                    i.tenant,
                    i.integration,
                    i.provider,
                    i.state,
                    i.opportunities,
                    i.contacts,
                    i.rejected,
                )
                for i in overview.integrations(tenant)
            ),
        )
    )
    show(
        table(
            "Stream cursors",
            ("tenant", "integration", "stream", "cursor", "last success (UTC)"),
            (
                (c.tenant, c.integration, c.stream, _short(c.cursor), _utc(c.last_success_at))
                for c in overview.cursors(tenant)
            ),
        )
    )
    rows = []
    for last in overview.last_runs(tenant):
        for figures in report.integration_rows(last.counts, last.errors):
            if figures["integration"] == last.integration:
                rows.append(
                    (
                        last.tenant,
                        last.integration,
                        last.run_id,
                        last.status,
                        _utc(last.started_at),
                        *(figures[c] for c in report.INTEGRATION_COLUMNS[1:]),
                    )
                )
    columns = ("tenant", "integration", "run", "status", "started (UTC)")
    assert report.INTEGRATION_COLUMNS[0] == "integration"
    show(table("Last run per integration", columns + report.INTEGRATION_COLUMNS[1:], rows))


def _short(cursor: str, keep: int = 40) -> str:
    return cursor if len(cursor) <= keep else cursor[: keep - 1] + "…"


def print_runs(tenant: str | None, limit: int) -> None:
    show(
        table(
            "Sync runs",
            ("run", "tenant", "status", "started (UTC)", "seconds", "flow run"),
            (
                (r.run_id, r.tenant, r.status, _utc(r.started_at), r.seconds, r.flow_run_id)
                for r in overview.runs(tenant, limit)
            ),
        )
    )


def print_run(run: overview.Run, records: int) -> None:
    """What one run did: the run report's table, its records by action, every rejected record
    with its reason (up to ``report.REJECTS_SHOWN``), its pushes."""
    finished = f" → {run.finished_at:%H:%M:%S}" if run.finished_at else ""
    console.print(
        f"run {run.run_id}: tenant {run.tenant}, {run.status}, "
        f"{run.started_at:%Y-%m-%d %H:%M:%S}{finished} (UTC)",
        highlight=False,
    )
    if run.flow_run_id:
        console.print(f"Prefect flow run: {run.flow_run_id}", highlight=False)
    counts = report.run_table(run.counts, run.errors)
    columns = report.table_columns(counts)
    show(table("Counts", columns, ([row[c] for c in columns] for row in counts)))
    show(
        table(
            "Records",
            ("integration", "stream", "action", "count", f"first {records} external ids"),
            (
                (g.integration, g.stream, g.action, g.count, g.first_ids)
                for g in overview.lineage(run.run_id, records)
            ),
        )
    )
    total, rejected = report.rejected_records(run.run_id)
    shown = f", first {len(rejected)} shown" if len(rejected) < total else ""
    show(
        table(
            f"Rejected CRM records: {total}{shown}",
            ("integration", "stream", "record", "reason"),
            ((r.integration, r.stream, r.record, r.reason) for r in rejected),
        )
    )
    counted = sum(int(f.get("rejected", 0)) for k, f in run.counts.items() if k != "push")
    if counted > total:
        # A quarantined record keeps one row, attributed to the last run that rejected it.
        console.print(
            f"{counted - total} more record(s) this run rejected were rejected again by a later "
            "run, which lists them with their reasons now (crmsync runs list)",
            highlight=False,
        )
    show(
        table(
            "Pushes",
            ("activity", "integration", "target", "status", "CRM record", "attempts", "error"),
            (astuple(push) for push in overview.pushes(run.run_id)),
        )
    )


def apply_summary(result: ApplyResult, first_sync_days: int) -> list[str]:
    """``tenants apply`` told to a person: what changed, and what the next sync will do."""
    lines = [
        f"tenants: {result.tenants_created} created, {result.tenants_updated} updated, "
        f"{result.tenants_unchanged} unchanged",
        f"integrations: {result.integrations_created} created, "
        f"{result.integrations_updated} updated, {result.integrations_unchanged} unchanged",
    ]
    lines += [f"  updated {update}" for update in result.updates]
    upcoming = []
    if result.first_sync:
        upcoming.append(
            f"{result.first_sync} integration(s) without cursors read the last "
            f"{first_sync_days} days (first sync)"
        )
    if result.resuming:
        upcoming.append(f"{result.resuming} resume from their stored cursors")
    if upcoming:
        lines.append("next sync: " + "; ".join(upcoming))
    return lines
