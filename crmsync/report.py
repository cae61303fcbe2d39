"""A tenant run told to a person: the run table, its rejected records, the one-line summaries.

The same figures feed the Prefect artifacts of a run (``sync-<slug>``, ``rejected-<slug>``) and
``crmsync runs show``. Every row has every column (the Prefect UI takes a table's columns from its
first row), and the column names say what each count counts: ``fetched`` and ``rejected`` are CRM
records, ``created``/``updated``/``unchanged`` are hub opportunities. A related stream (customers,
estimates…) creates no opportunity of its own; its records re-compose the opportunities that
embed them, which is what its opportunity counts show. A LeadPerfection prospect carries one
opportunity per lead, so opportunities can outnumber the records fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crmsync import db

COLUMNS = (
    "integration",
    "stream",
    "error",
    "CRM records fetched",
    "CRM records rejected",
    "opportunities created",
    "opportunities updated",
    "opportunities unchanged",
    "contacts created",
    "CRM activities stored",
    "CRM activities waiting",
    "own pushes read back",
    "pushes delivered",
    "pushes deferred",
    "pushes failed",
)
"""The error comes third: with a dozen columns the table scrolls sideways in the Prefect UI, and
a failed row must say why without scrolling."""
_PULL = {
    "CRM records fetched": "fetched",
    "CRM records rejected": "rejected",
    "opportunities created": "created",
    "opportunities updated": "updated",
    "opportunities unchanged": "unchanged",
    "contacts created": "contacts_created",
    "CRM activities stored": "activities",
    "CRM activities waiting": "activities_waiting",
    "own pushes read back": "echoes",
}
ACTIVITY_COLUMNS = ("CRM activities stored", "CRM activities waiting", "own pushes read back")
_PUSH = {"pushes delivered": "delivered", "pushes deferred": "deferred", "pushes failed": "failed"}
REJECTS_SHOWN = 50


def _row(integration: str, stream: str) -> dict[str, Any]:
    return {c: "" for c in COLUMNS} | {"integration": integration, "stream": stream}


def _all_rows(
    counts: dict[str, dict[str, Any]], errors: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """By ``integration:stream`` key: one row per stream, a sign-in row for an integration that
    could not authenticate, and a push row; every row with every column of :data:`COLUMNS`."""
    rows: dict[str, dict[str, Any]] = {}
    for key, figures in counts.items():
        if key == "push":
            row = rows.setdefault(key, _row("(all)", "push-activity"))
            row.update({col: figures.get(name, 0) for col, name in _PUSH.items()})
            continue
        integration, _, stream = key.partition(":")
        row = rows.setdefault(key, _row(integration, stream))
        row.update({col: figures.get(name, 0) for col, name in _PULL.items()})
    for key, message in errors.items():
        if key == "push":
            row = rows.setdefault(key, _row("(all)", "push-activity"))
        elif ":" in key:
            integration, _, stream = key.partition(":")
            row = rows.setdefault(key, _row(integration, stream))
        else:
            row = rows.setdefault(key, _row(key, "(sign-in)"))
        row["error"] = message
    return rows


def run_table(counts: dict[str, dict[str, Any]], errors: dict[str, str]) -> list[dict[str, Any]]:
    """The run's rows worth reading: streams with nothing new are left out (see
    :func:`quiet_streams`), unless nothing else is left; the CRM-activity columns only when a
    row has a figure in them (inbound activities are off unless a tenant turns them on, and the
    table already scrolls sideways). Every row has the same columns: :func:`table_columns`."""
    rows = list(_all_rows(counts, errors).values())
    shown = [row for row in rows if not _quiet(row)] or rows[:1]
    if all(row[c] in (0, "") for row in shown for c in ACTIVITY_COLUMNS):
        for row in shown:
            for c in ACTIVITY_COLUMNS:
                del row[c]
    return shown


def table_columns(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """The columns of a :func:`run_table`, in :data:`COLUMNS` order."""
    return tuple(c for c in COLUMNS if not rows or c in rows[0])


def quiet_streams(counts: dict[str, dict[str, Any]], errors: dict[str, str]) -> list[str]:
    """``integration:stream`` keys that ran with nothing new: left out of the table, named once
    in its description, so the rows that remain are the ones worth reading."""
    rows = _all_rows(counts, errors)
    return [key for key, row in rows.items() if key != "push" and _quiet(row)]


def _quiet(row: dict[str, Any]) -> bool:
    figures = [v for c, v in row.items() if c in _PULL or c in _PUSH]
    return not row.get("error") and all(v in (0, "") for v in figures)


PULL_COLUMNS = tuple(_PULL)
INTEGRATION_COLUMNS = ("integration", *PULL_COLUMNS, "error")


def integration_rows(
    counts: dict[str, dict[str, Any]], errors: dict[str, str]
) -> list[dict[str, Any]]:
    """The pull rows of :func:`run_table` summed per integration (``crmsync status``): the
    columns of :data:`INTEGRATION_COLUMNS`, the same names as the run table's; an error names
    its stream (or sign-in)."""
    totals: dict[str, dict[str, Any]] = {}
    for row in _all_rows(counts, errors).values():  # an idle integration keeps its line
        if row["stream"] == "push-activity":
            continue
        name = row["integration"]
        total = totals.setdefault(
            name, {"integration": name, **dict.fromkeys(PULL_COLUMNS, 0), "error": ""}
        )
        for col in PULL_COLUMNS:
            total[col] += int(row[col] or 0)
        if row["error"]:
            error = f"{row['stream']}: {row['error']}"
            total["error"] = f"{total['error']}; {error}" if total["error"] else error
    return list(totals.values())


@dataclass(slots=True, frozen=True)
class Rejected:
    integration: str
    stream: str
    record: str
    reason: str


def rejected_records(run_id: int, limit: int = REJECTS_SHOWN) -> tuple[int, list[Rejected]]:
    """The records this run quarantined (the total, and the first ``limit`` with reasons)."""
    with db.connect() as conn:
        (total,) = conn.execute(
            "SELECT count(*) FROM rejected_record WHERE run_id = %s", (run_id,)
        ).fetchone() or (0,)
        rows = conn.execute(
            "SELECT i.name, r.stream, r.external_key, r.reason FROM rejected_record r "
            "JOIN integration i ON i.id = r.integration_id WHERE r.run_id = %s "
            "ORDER BY i.name, r.stream, r.id LIMIT %s",
            (run_id, limit),
        ).fetchall()
    return int(total), [Rejected(*r) for r in rows]


def new_rejections(run_id: int) -> int:
    """Records this run rejected for the first time. A CRM re-sends an unchanged bad record on
    overlapping windows (LeadPerfection reads the last 20 minutes again): warning about it every
    round would teach operators to ignore the warning."""
    with db.connect() as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM rejected_record r JOIN sync_run s ON s.id = r.run_id "
            "WHERE r.run_id = %s AND r.first_seen_at >= s.started_at",
            (run_id,),
        ).fetchone() or (0,)
    return int(count)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def rejected_markdown(slug: str, run_id: int, total: int, shown: list[Rejected]) -> str:
    lines = [
        f"# Rejected records of {slug}, sync run {run_id}",
        "",
        f"{total} CRM record(s) were quarantined with a reason and not merged; "
        f"{len(shown)} shown. Each stays in `rejected_record` with its raw payload until the CRM "
        f"sends a valid version. All of them: `crmsync runs show {run_id}`.",
        "",
        "| integration | stream | record | reason |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {_cell(r.integration)} | {_cell(r.stream)} | {_cell(r.record)} | {_cell(r.reason)} |"
        for r in shown
    ]
    return "\n".join(lines)


def integration_line(name: str, figures: dict[str, Any]) -> str:
    """``st-main: 120 CRM records fetched, 3 rejected; opportunities 20 created, …``"""
    return (
        f"{name}: {figures['fetched']} CRM records fetched, {figures['rejected']} rejected; "
        f"opportunities {figures['created']} created, {figures['updated']} updated, "
        f"{figures['unchanged']} unchanged; {figures['chunks']} chunk(s)"
        + (
            f"; CRM activities {figures['activities']} stored "
            f"({figures['activities_waiting']} waiting for their record), "
            f"{figures['echoes']} own pushes read back"
            if figures.get("activities") or figures.get("echoes")
            else ""
        )
    )
