"""``crmsync demo`` (``make demo``): the sandbox CRMs on loopback, the demo tenants, two full
syncs through Prefect, the status tables after each.

On an empty hub the first sync loads the last 90 days (``first_sync_days``); the second, after a
few records change in the emulator, shows the incremental path (only the changes are fetched and
merged). Run again on the same hub, integrations resume from the cursors they stored, and the
demo says so. It ends with what to try next: the commands that show what the syncs did, where the
rejected records are, and ``crmsync up`` for Prefect's UI (local mode keeps Prefect's state in the
database that stack uses, so the UI shows the demo's runs).

The emulators live in ``sandbox/``, a folder of the checkout that the installed package does not
ship: ``make setup`` installs the project in editable mode, which puts the checkout on
``sys.path``, so ``import sandbox`` works from ``.venv/bin/crmsync`` as from the tests.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from ops.flowcalls import run_async
from ops.views import apply_summary, print_status


class SandboxMissing(RuntimeError):
    """The demo runs from a checkout; this installation has no ``sandbox`` package."""


def run_demo(port: int, jobs: int, console: Console, prefect_where: str | None = None) -> bool:
    """The demo; ``prefect_where`` is the line saying where local mode keeps Prefect's state
    (``ops.prefect_env``), None when ``PREFECT_API_URL`` points at a server."""
    try:
        from sandbox.demo import DEMO_FILE, ST_TENANTS, demo_crms
    except ImportError as exc:
        raise SandboxMissing(
            f"the demo needs the sandbox/ folder of a crmsync checkout ({exc}); "
            "run `make demo` there"
        ) from None

    from crmsync import db, tenants
    from crmsync.settings import get_settings
    from flows.sync import sync_all_tenants

    console.rule("crmsync demo")
    t0 = time.perf_counter()
    started = datetime.now(UTC)
    db.upgrade()
    where = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded PostgreSQL"
    console.print(f"hub database ready ({where})")
    if prefect_where:
        console.print(prefect_where, highlight=False)
    with demo_crms(port=port, jobs=jobs) as crms:
        console.print(
            f"ServiceTitan emulator on {crms.st_url} with tenants {list(ST_TENANTS.values())}"
        )
        console.print(
            f"LeadPerfection emulator on {crms.lp_url}, improveit360 (Salesforce) on {crms.sf_url}"
        )
        result = tenants.apply(tenants.load(DEMO_FILE))
        console.print(f"tenants applied from {DEMO_FILE.name}:")
        days = get_settings().first_sync_days
        for line in apply_summary(result, days):
            console.print(f"  {line}", highlight=False)

        if not result.resuming:
            console.rule(f"first sync (last {days} days)")
        elif not result.first_sync:
            console.rule("sync (every integration resumes from its stored cursors)")
        else:
            console.rule(
                f"sync ({result.first_sync} integration(s) read the last {days} days, "
                f"{result.resuming} resume from stored cursors)"
            )
        state: Any = run_async(sync_all_tenants(return_state=True))
        console.print(f"sync-all-tenants: {state.name} — {state.message}")
        print_status()

        changed = crms.change_some_records()
        console.rule(f"second sync after {changed} changes in the CRM")
        state = run_async(sync_all_tenants(return_state=True))
        console.print(f"sync-all-tenants: {state.name} — {state.message}")
        print_status()
    if prefect_where:
        _stop_temporary_server(started)
    console.print(f"demo finished in {time.perf_counter() - t0:.1f} s")
    _next_steps(console)
    return bool(state.is_completed())


def _stop_temporary_server(since: datetime) -> None:
    """Deliver the logs and events Prefect still holds, wait until the server has recorded them,
    then stop local mode's temporary server now rather than at exit, so the demo's last lines
    are its own and ``crmsync up`` shows no task run of the demo stuck in Running."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    APILogWorker.drain_all(timeout=15)
    EventsWorker.drain_all(timeout=15)
    run_async(_task_runs_recorded(since))
    SubprocessASGIServer().stop()


async def _task_runs_recorded(since: datetime, timeout: float = 15) -> None:
    """Until no task run started since ``since`` is Pending or Running in Prefect's database
    (the server records task run states from events, a moment after the client sent them)."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        TaskRunFilter,
        TaskRunFilterStartTime,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    unfinished = TaskRunFilter(
        start_time=TaskRunFilterStartTime.model_validate({"after_": since}),
        state=TaskRunFilterState(
            type=TaskRunFilterStateType(any_=[StateType.PENDING, StateType.RUNNING])
        ),
    )
    deadline = time.monotonic() + timeout
    settled = 0
    async with get_client() as client:
        while settled < 2 and time.monotonic() < deadline:
            found = await client.read_task_runs(task_run_filter=unfinished, limit=1)
            settled = 0 if found else settled + 1
            await asyncio.sleep(0.2)


def _next_steps(console: Console) -> None:
    from crmsync import overview

    cli = ".venv/bin/crmsync"
    steps = [
        (f"{cli} status", "integrations, stream cursors and each integration's last run"),
        (f"{cli} runs list", "the demo's tenant runs, newest first"),
    ]
    rejects = overview.latest_run_with_rejects()
    if rejects:
        run_id, slug, count = rejects
        steps.append(
            (
                f"{cli} runs show {run_id}",
                f"what run {run_id} of {slug} did, and the {count} CRM record(s) it rejected "
                "with the reason of each",
            )
        )
    steps.append((f"{cli} up", "Prefect's UI with these runs (then `crmsync down`)"))
    console.rule("what to try next")
    width = max(len(command) for command, _ in steps)
    for command, what in steps:
        console.print(f"  {command:<{width}}  {what}", highlight=False, soft_wrap=True)
    console.print(
        "  Rejected CRM records stay in the hub's rejected_record table (raw payload and reason); "
        "`runs show` lists them, and in Prefect's UI each such run has the artifact "
        "rejected-<tenant>.",
        highlight=False,
        soft_wrap=True,
    )
