"""``crmsync``: the operator and engineer command line.

Prefect runs in local mode unless ``PREFECT_API_URL`` points at a server; local mode keeps its
state in ``<data_dir>/prefect`` rather than ``~/.prefect`` so a checkout never touches the
developer's other Prefect projects.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ops.flowcalls import run_async
from ops.views import console, err, print_status, rows

os.environ.setdefault(
    "PREFECT_HOME",
    str((Path(os.environ.get("CRMSYNC_DATA_DIR", ".crmsync")) / "prefect").resolve()),
)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

app = typer.Typer(help="CRM ⇄ hub integration service.", no_args_is_help=True)
tenants_app = typer.Typer(help="Tenants and their CRM integrations.", no_args_is_help=True)
db_app = typer.Typer(help="The hub database.", no_args_is_help=True)
activity_app = typer.Typer(help="The hub's outbox of activities to push.", no_args_is_help=True)
integrations_app = typer.Typer(help="Pause or resume an integration.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(db_app, name="db")
runs_app = typer.Typer(help="Sync runs and their per-record lineage.", no_args_is_help=True)
app.add_typer(activity_app, name="activity")
app.add_typer(runs_app, name="runs")
app.add_typer(integrations_app, name="integrations")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (also done by every command that needs the schema)."""
    from crmsync import db

    db.upgrade()
    console.print("database is at the latest migration")


@tenants_app.command("apply")
def tenants_apply(
    file: Annotated[Path, typer.Argument(help="YAML file with a 'tenants:' list")],
) -> None:
    """Create or update tenants and integrations from FILE (idempotent)."""
    from crmsync import db, tenants

    try:
        spec = tenants.load(file)
    except tenants.ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    db.upgrade()
    result = tenants.apply(spec)
    console.print(
        f"tenants: {result.tenants_created} created, {result.tenants_updated} updated; "
        f"integrations: {result.integrations_created} created, "
        f"{result.integrations_updated} updated, {result.unchanged} unchanged"
    )


@app.command("sync")
def sync(
    tenant: Annotated[str | None, typer.Option(help="Tenant slug; omit with --all")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every active tenant")] = False,
    concurrency: Annotated[int, typer.Option(help="Tenants at once with --all")] = 4,
) -> None:
    """Run the sync flow now, in this process (Prefect local mode or PREFECT_API_URL)."""
    from crmsync import db
    from flows.sync import sync_all_tenants, sync_tenant

    if not tenant and not all_:
        err.print("give --tenant SLUG or --all")
        raise typer.Exit(2)
    db.upgrade()
    if tenant:
        state = run_async(sync_tenant(tenant, return_state=True))
    else:
        state = run_async(sync_all_tenants(max_concurrency=concurrency, return_state=True))
    print_status(tenant)
    if not state.is_completed():
        err.print(f"[red]{state.name}[/red]: {state.message}", highlight=False)
        raise typer.Exit(1)


@app.command("status")
def status(tenant: Annotated[str | None, typer.Option(help="Only this tenant")] = None) -> None:
    """Each tenant's integrations, stream cursors and last run counts."""
    from crmsync import db

    db.upgrade()
    print_status(tenant)


@app.command("demo")
def demo(
    port: Annotated[int, typer.Option(help="Port of the ServiceTitan emulator")] = 9001,
    jobs: Annotated[int, typer.Option(help="Jobs per demo tenant")] = 200,
) -> None:
    """Sandbox CRMs on loopback + demo tenants + a full sync through Prefect, twice."""
    from ops.demo import run_demo

    ok = run_demo(port=port, jobs=jobs, console=console)
    raise typer.Exit(0 if ok else 1)


@app.command("serve")
def serve() -> None:
    """Serve the deployments from prefect.yaml in this process (no work pool needed)."""
    from deployments.serve import serve_all

    serve_all()


@activity_app.command("add")
def activity_add(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    contact: Annotated[int, typer.Option(help="Hub contact id")],
    kind: Annotated[
        str,
        typer.Option(
            help="outbound_campaign_message | outbound_manual_message | inbound_message"
            " | campaign_event"
        ),
    ],
    channel: Annotated[str | None, typer.Option(help="sms | email | call | voicemail")] = None,
    event: Annotated[
        str | None, typer.Option(help="launched | first_message_sent | removed | completed")
    ] = None,
    campaign: Annotated[str | None, typer.Option(help="Campaign name")] = None,
    body: Annotated[str | None, typer.Option(help="Message content")] = None,
    opportunity: Annotated[int | None, typer.Option(help="Hub opportunity id")] = None,
) -> None:
    """Record an activity in the outbox (what the hub's messaging components do)."""
    from pydantic import ValidationError

    from crmsync import db, push
    from crmsync.sync import TenantNotFoundError, tenant_id_of

    db.upgrade()
    try:
        # Validated by the model (kind, channel and event are Literal types there), from the
        # command line's plain strings.
        activity = push.ActivityIn.model_validate(
            {
                "tenant_id": tenant_id_of(tenant),
                "contact_id": contact,
                "kind": kind,
                "channel": channel,
                "campaign_event": event,
                "campaign_name": campaign,
                "body": body,
                "opportunity_id": opportunity,
            }
        )
        activity_id = push.record_activity(activity)
    except (ValidationError, LookupError, TenantNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    console.print(f"activity {activity_id} recorded")


@app.command("push")
def push_now(tenant: Annotated[str, typer.Option(help="Tenant slug")]) -> None:
    """Plan and deliver the tenant's due pushes now (the push-activity flow)."""
    from crmsync import db
    from flows.push import push_activity

    db.upgrade()
    counts = asyncio.run(push_activity(tenant, include_deferred=True))
    console.print(counts)


@app.command("push-backlog")
def push_backlog(
    tenant: Annotated[str, typer.Argument(help="Tenant slug")],
    integration: Annotated[str, typer.Argument(help="Integration name in the tenants file")],
    since: Annotated[str, typer.Option(help="From this time (ISO 8601; no zone = UTC)")],
    until: Annotated[
        str | None, typer.Option(help="Before this time (ISO 8601; no zone = UTC); default now")
    ] = None,
) -> None:
    """Push on purpose the integration's activities recorded in [since, until) that it left out
    (recorded while it was disabled or before it was added), then deliver them now."""
    from datetime import UTC, datetime

    from crmsync import db, push
    from crmsync.sync import TenantNotFoundError, tenant_id_of
    from flows.push import push_activity

    def when(text: str, option: str) -> datetime:
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            typer.echo(f"error: --{option} {text!r} is not an ISO 8601 time", err=True)
            raise typer.Exit(2) from None
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    start, end = when(since, "since"), when(until, "until") if until else datetime.now(UTC)
    db.upgrade()
    try:
        tenant_id = tenant_id_of(tenant)
        with db.connect() as conn:
            row = conn.execute(
                "SELECT id FROM integration WHERE tenant_id = %s AND name = %s",
                (tenant_id, integration),
            ).fetchone()
        if row is None:
            raise LookupError(f"tenant {tenant} has no integration {integration!r}")
        planned = push.push_backlog(tenant_id, int(row[0]), start, end)
    except (LookupError, TenantNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    console.print(f"{tenant}/{integration}: {planned} push(es) planned")
    console.print(asyncio.run(push_activity(tenant, include_deferred=True)))


@app.command("push-worker")
def push_worker(
    idle_sweep_seconds: Annotated[float, typer.Option(help="Sweep every tenant this often")] = 60,
) -> None:
    """Low-latency push: LISTEN for new activities and push that tenant at once."""
    from crmsync import db
    from ops.push_worker import run_worker

    db.upgrade()
    run_worker(idle_sweep_seconds=idle_sweep_seconds, console=console)


@runs_app.command("list")
def runs_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant")] = None,
    limit: Annotated[int, typer.Option(help="How many")] = 20,
) -> None:
    """Recent tenant sync runs, newest first."""
    table = Table(title="Sync runs")
    for col in ("run", "tenant", "status", "started (UTC)", "seconds", "flow run"):
        table.add_column(col)
    for row in rows(
        """
        SELECT r.id, t.slug, r.status,
               to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
               round(extract(epoch FROM r.finished_at - r.started_at)::numeric, 1), r.flow_run_id
        FROM sync_run r JOIN tenant t ON t.id = r.tenant_id
        WHERE %s::text IS NULL OR t.slug = %s ORDER BY r.id DESC LIMIT %s
        """,
        (tenant, tenant, limit),
    ):
        table.add_row(*(str(v) if v is not None else "" for v in row))
    console.print(table)


@runs_app.command("show")
def runs_show(
    run_id: int,
    records: Annotated[int, typer.Option(help="Records listed per action")] = 20,
) -> None:
    """What one run did: counts, and which CRM records were created/updated/rejected and which
    activities were pushed where."""
    from crmsync import db

    db.upgrade()
    head = rows(
        "SELECT t.slug, r.status, r.started_at, r.finished_at, r.counts, r.errors, r.flow_run_id "
        "FROM sync_run r JOIN tenant t ON t.id = r.tenant_id WHERE r.id = %s",
        (run_id,),
    )
    if not head:
        typer.echo(f"error: no run {run_id}", err=True)
        raise typer.Exit(2)
    slug, state, started, finished, _counts, errors, flow_run_id = head[0]
    console.print(
        f"run {run_id}: tenant {slug}, {state}, {started:%Y-%m-%d %H:%M:%S} → {finished:%H:%M:%S}"
        if finished
        else f"run {run_id}: tenant {slug}, {state}"
    )
    if flow_run_id:
        console.print(f"Prefect flow run: {flow_run_id}")
    for key, value in errors.items():
        console.print(f"[red]error[/red] {key}: {value}", highlight=False)
    lineage = Table(title="Records")
    for col in ("integration", "stream", "action", "count", f"first {records} external ids"):
        lineage.add_column(col)
    for name, stream, action, n, ids in rows(
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
    ):
        lineage.add_row(name, stream, action, str(n), ids or "")
    console.print(lineage)
    pushes = Table(title="Pushes")
    for col in ("activity", "integration", "target", "status", "CRM record", "attempts", "error"):
        pushes.add_column(col)
    for row in rows(
        """
        SELECT l.activity_id, i.name, l.target, l.status, coalesce(l.target_ref || ' / ', '') ||
               coalesce(l.crm_record_id, ''), l.attempts, left(coalesce(l.last_error, ''), 60)
        FROM push_ledger l JOIN integration i ON i.id = l.integration_id
        WHERE l.last_run_id = %s ORDER BY l.id LIMIT 200
        """,
        (run_id,),
    ):
        pushes.add_row(*(str(v) for v in row))
    console.print(pushes)


def _set_paused(tenant: str, integration: str, paused: bool) -> None:
    from crmsync import db

    db.upgrade()
    with db.connect() as conn:
        cur = conn.execute(
            "UPDATE integration i SET paused = %s, updated_at = now() FROM tenant t "
            "WHERE t.id = i.tenant_id AND t.slug = %s AND i.name = %s",
            (paused, tenant, integration),
        )
        conn.commit()
    if cur.rowcount == 0:
        typer.echo(f"error: tenant {tenant} has no integration {integration!r}", err=True)
        raise typer.Exit(2)
    console.print(f"{tenant}/{integration} {'paused' if paused else 'resumed'}")


@integrations_app.command("pause")
def integrations_pause(tenant: str, integration: str) -> None:
    """Stop pulling and pushing for one integration; its outbox is kept for later."""
    _set_paused(tenant, integration, True)


@integrations_app.command("resume")
def integrations_resume(tenant: str, integration: str) -> None:
    """Resume a paused integration; pending pushes go out on the next push."""
    _set_paused(tenant, integration, False)


@app.command("up")
def stack_up(
    workers: Annotated[int, typer.Option(help="Process workers on this machine")] = 2,
    port: Annotated[int, typer.Option(help="Port of the Prefect server (API and UI)")] = 4200,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 for remote workers")] = (
        "127.0.0.1"
    ),
    prefect_pg: Annotated[
        str | None,
        typer.Option(
            help="libpq URL of a PostgreSQL server for Prefect's own database, or 'embedded'"
        ),
    ] = None,
    worker_limit: Annotated[
        int | None, typer.Option(help="Flow runs at once per worker (default: no limit)")
    ] = None,
    api_workers: Annotated[
        int,
        typer.Option(
            help="Prefect API processes (more than 1 needs --redis); the background services "
            "then run as a process of their own"
        ),
    ] = 1,
    redis: Annotated[
        str | None,
        typer.Option(
            help="Redis URL (redis://127.0.0.1:6379/0) for Prefect's multi-process server: "
            "messaging, event ordering and concurrency leases shared by its processes"
        ),
    ] = None,
) -> None:
    """Start a Prefect server on PostgreSQL, deploy prefect.yaml and start workers (idempotent)."""
    from ops import stack

    try:
        stack.up(
            workers=workers,
            port=port,
            host=host,
            prefect_pg=prefect_pg,
            worker_limit=worker_limit,
            api_workers=api_workers,
            redis=redis,
            echo=typer.echo,
        )
    except stack.StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command("down")
def stack_down() -> None:
    """Stop exactly the processes `crmsync up` started (by process id)."""
    from ops import stack

    try:
        stack.down(echo=typer.echo)
    except stack.StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command("stack-status")
def stack_status() -> None:
    """Processes, API health and online workers of the stack `crmsync up` started."""
    from ops import stack

    try:
        typer.echo(stack.status())
    except stack.StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:  # pragma: no cover
    app(sys.argv[1:])
