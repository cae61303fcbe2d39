"""What ``crmsync activity show`` prints: one activity, where it was pushed, every attempt."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value is not None else ""


def _exchanges(response: dict[str, Any]) -> str:
    lines = []
    for x in response.get("exchanges") or []:
        answer = x.get("status") if x.get("status") is not None else x.get("error")
        line = f"{x['method']} {x['path']} → {answer} ({x['ms']} ms)"
        if x.get("excerpt"):
            line += f" {x['excerpt']}"
        lines.append(line)
    return "\n".join(lines)


def _request(request: dict[str, Any]) -> str:
    keys = ("target", "parent", "idempotency_key", "check_first", "text_first_line", "step")
    return "\n".join(f"{k}: {request[k]}" for k in keys if k in request)


def print_activity(details: dict[str, Any], console: Console) -> None:
    what = details["kind"] + (f" ({details['channel']})" if details["channel"] else "")
    if details["campaign_event"]:
        what += f": {details['campaign_event']}"
    console.print(
        f"activity {details['id']}: tenant {details['tenant']}, contact {details['contact_id']}, "
        f"{what}"
        + (f", campaign {details['campaign_name']!r}" if details["campaign_name"] else "")
        + f"; occurred {_when(details['occurred_at'])}, recorded {_when(details['created_at'])}"
        + (f"; body {details['body_chars']} characters" if details["body_chars"] else ""),
        highlight=False,
    )
    pushes = Table(title="Pushes")
    for col in ("integration", "target", "status", "attempts", "CRM record", "key", "last error"):
        pushes.add_column(col, overflow="fold")
    for p in details["pushes"]:
        record = " / ".join(x for x in (p["target_ref"], p["crm_record_id"]) if x)
        pushes.add_row(
            p["integration"],
            p["target"],
            p["status"],
            str(p["attempts"]),
            record,
            p["idempotency_key"],
            p["last_error"] or "",
        )
    console.print(pushes)
    attempts = Table(title="Attempts (request summary and the CRM's answers)")
    for col in ("integration", "#", "outcome", "started (UTC)", "ms", "request", "exchanges"):
        attempts.add_column(col, overflow="fold")
    for a in details["attempts"]:
        outcome = a["outcome"] + (f"\n{a['crm_record_id']}" if a["crm_record_id"] else "")
        if a["error"]:
            outcome += f"\n{a['error']}"
        attempts.add_row(
            a["integration"],
            str(a["attempt"]),
            outcome,
            _when(a["started_at"]),
            str(a["ms"]),
            _request(a["request"]),
            _exchanges(a["response"]),
        )
    console.print(attempts)
