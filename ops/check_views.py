"""What ``crmsync integrations check`` and ``crmsync tenants apply FILE --check`` print: per
integration whether it signed in, then one line per stream: OK with the records of its first
page, or FAILED with the reason (errors are never cut: piped output is not re-wrapped)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from crmsync.check import IntegrationCheck


def print_check(result: IntegrationCheck, console: Console) -> None:
    head = f"{result.label} ({result.provider})"
    if result.sign_in_error is not None:
        console.print(
            f"[red]FAILED[/red]  {escape(head)}: sign-in failed: {escape(result.sign_in_error)}",
            highlight=False,
        )
        return
    good = sum(1 for s in result.streams if s.ok)
    console.print(
        f"{escape(head)}: signed in; {good} of {len(result.streams)} stream(s) OK",
        highlight=False,
    )
    width = max((len(s.stream) for s in result.streams), default=0)
    for s in result.streams:
        if s.ok:
            detail = f"{s.records} record(s) on the first page"
            console.print(
                f"  [green]OK[/green]      {s.stream:<{width}}  {detail}", highlight=False
            )
        else:
            console.print(
                f"  [red]FAILED[/red]  {s.stream:<{width}}  {escape(s.error or '')}",
                highlight=False,
            )


def print_checks(results: Sequence[IntegrationCheck], console: Console) -> None:
    for result in results:
        print_check(result, console)
    if len(results) != 1:
        failed = sum(1 for r in results if not r.ok)
        console.print(
            f"{len(results)} integration(s) checked: {len(results) - failed} OK, "
            f"{failed} with errors; nothing stored",
            highlight=False,
        )
