"""``crmsync``: the operator and engineer command line (``.venv/bin/crmsync``, ``python -m ops``).

Prefect runs in local mode unless ``PREFECT_API_URL`` points at a server: its temporary server
then runs on PostgreSQL, in the Prefect database of this data directory's stack, with its home in
``<data_dir>/prefect`` rather than ``~/.prefect`` so a checkout never touches the developer's
other Prefect projects (``ops.prefect_env``, applied before Prefect is imported).

Mistakes (an unknown tenant, a malformed ``DATABASE_URL``, a bad tenants file) get one line and
exit 2, before anything slow starts. Anything else is a bug or an outage: one line naming the
error and the log file that holds its traceback (``<data_dir>/logs/cli.log``), exit 1; with
``--debug`` the traceback is printed instead.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ops.flowcalls import run_async
from ops.views import apply_summary, console, err, print_run, print_runs, print_status

# Locals stay out of --debug tracebacks: they hold credentials and URLs with passwords.
app = typer.Typer(
    help="CRM ⇄ hub integration service.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
tenants_app = typer.Typer(help="Tenants and their CRM integrations.", no_args_is_help=True)
db_app = typer.Typer(help="The hub database.", no_args_is_help=True)
activity_app = typer.Typer(help="The hub's outbox of activities to push.", no_args_is_help=True)
integrations_app = typer.Typer(help="Pause, resume or check an integration.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(db_app, name="db")
runs_app = typer.Typer(help="Sync runs and their per-record lineage.", no_args_is_help=True)
app.add_typer(activity_app, name="activity")
app.add_typer(runs_app, name="runs")
app.add_typer(integrations_app, name="integrations")


_debug = False
KNOWN_TENANTS_SHOWN = 30


@app.callback()
def options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Print the traceback of an unexpected error")
    ] = False,
) -> None:
    """CRM ⇄ hub integration service."""
    global _debug
    _debug = debug
    from crmsync.settings import SettingsError, get_settings
    from ops import prefect_env

    try:
        prefect_env.quiet(get_settings().data_dir)
    except SettingsError as exc:
        fail(str(exc))


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr and the exit code: how every user mistake ends."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def require_tenant(slug: str) -> None:
    """Exit 2 naming the known tenants unless ``slug`` is one (the schema must be migrated)."""
    from crmsync import overview

    known = overview.tenant_slugs()
    if slug in known:
        return
    if not known:
        fail(f"unknown tenant {slug!r}; no tenants yet (crmsync tenants apply FILE)")
    names = ", ".join(known[:KNOWN_TENANTS_SHOWN])
    hidden = len(known) - KNOWN_TENANTS_SHOWN
    more = f" and {hidden} more (crmsync status)" if hidden > 0 else ""
    fail(f"unknown tenant {slug!r}; known tenants: {names}{more}")


def local_prefect() -> str | None:
    """Before a command imports Prefect to run flows here: local mode on PostgreSQL, quiet
    (``ops.prefect_env``); the line saying where Prefect keeps its state, None with a server."""
    from crmsync.settings import get_settings
    from ops import prefect_env

    return prefect_env.prepare(get_settings().data_dir, echo=lambda line: err.print(line))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (also done by every command that needs the schema)."""
    from crmsync import db

    db.upgrade()
    console.print("database is at the latest migration")


@tenants_app.command("apply")
def tenants_apply(
    file: Annotated[Path, typer.Argument(help="YAML file with a 'tenants:' list")],
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Only check every integration of FILE (sign in, read one page of each stream); "
            "store nothing. Exit 1 if any fails",
        ),
    ] = False,
) -> None:
    """Create or update tenants and integrations from FILE (idempotent)."""
    from crmsync import db, tenants
    from crmsync.settings import get_settings

    try:
        spec = tenants.load(file)
    except tenants.ConfigError as exc:
        fail(str(exc))
    if check:
        _check_file(spec)
    db.upgrade()
    try:
        result = tenants.apply(spec)
    except tenants.ConfigError as exc:  # found against the database: a plan's cap
        fail(str(exc))
    for line in apply_summary(result, get_settings().first_sync_days):
        console.print(line, highlight=False)


@app.command("sync")
def sync(
    tenant: Annotated[str | None, typer.Option(help="Tenant slug; omit with --all")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every active tenant")] = False,
    concurrency: Annotated[int, typer.Option(help="Tenants at once with --all")] = 4,
) -> None:
    """Run the sync flow now, in this process (Prefect local mode or PREFECT_API_URL)."""
    from crmsync import db

    if not tenant and not all_:
        fail("give --tenant SLUG or --all")
    db.upgrade()
    if tenant:
        require_tenant(tenant)  # before Prefect starts: a typo costs a second, not a server start
    local_prefect()
    from flows.sync import sync_all_tenants, sync_tenant

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
    """Each tenant's integrations, stream cursors and each integration's last run."""
    from crmsync import db

    db.upgrade()
    if tenant:
        require_tenant(tenant)
    print_status(tenant)


@app.command("demo")
def demo(
    port: Annotated[int, typer.Option(help="Port of the ServiceTitan emulator")] = 9001,
    jobs: Annotated[int, typer.Option(help="Jobs per demo tenant")] = 200,
) -> None:
    """Sandbox CRMs on loopback + demo tenants + a full sync through Prefect, twice."""
    from ops.demo import SandboxMissing, run_demo

    prefect_where = local_prefect()
    try:
        ok = run_demo(port=port, jobs=jobs, console=console, prefect_where=prefect_where)
    except SandboxMissing as exc:
        fail(str(exc))
    raise typer.Exit(0 if ok else 1)


@app.command("serve")
def serve() -> None:
    """Serve the deployments from prefect.yaml in this process (no work pool needed)."""
    local_prefect()
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
    require_tenant(tenant)
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
        fail(str(exc))
    console.print(f"activity {activity_id} recorded")


@activity_app.command("show")
def activity_show(activity_id: int) -> None:
    """One activity: where it is pushed, and every attempt with its request summary and the CRM's
    answers (method, path, status, error excerpt; never a token or credential)."""
    from crmsync import db, push
    from ops.push_views import print_activity

    db.upgrade()
    details = push.describe_activity(activity_id)
    if details is None:
        typer.echo(f"error: no activity {activity_id}", err=True)
        raise typer.Exit(2)
    print_activity(details, console)


@app.command("push")
def push_now(tenant: Annotated[str, typer.Option(help="Tenant slug")]) -> None:
    """Plan and deliver the tenant's due pushes now (the push-activity flow)."""
    from crmsync import db

    db.upgrade()
    require_tenant(tenant)
    local_prefect()
    from flows.push import push_activity

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
    local_prefect()
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
    local_prefect()
    run_worker(idle_sweep_seconds=idle_sweep_seconds, console=console)


@runs_app.command("list")
def runs_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant")] = None,
    limit: Annotated[int, typer.Option(help="How many")] = 20,
) -> None:
    """Recent tenant sync runs, newest first."""
    from crmsync import db

    db.upgrade()
    if tenant:
        require_tenant(tenant)
    print_runs(tenant, limit)


@runs_app.command("show")
def runs_show(
    run_id: int,
    records: Annotated[int, typer.Option(help="Records listed per action")] = 20,
) -> None:
    """What one run did: its counts, which CRM records it created/updated, every record it
    rejected with the reason, and which activities it pushed where."""
    from crmsync import db, overview

    db.upgrade()
    run = overview.run(run_id)
    if run is None:
        fail(f"no run {run_id} (crmsync runs list shows the recent ones)")
    print_run(run, records)


def _set_paused(tenant: str, integration: str, paused: bool) -> None:
    from crmsync import db, overview, plans

    db.upgrade()
    require_tenant(tenant)
    if not paused:
        try:
            plans.check_resume(tenant, integration)
        except plans.PlanLimitError as exc:
            fail(str(exc))
    if not overview.set_paused(tenant, integration, paused):
        fail(f"tenant {tenant} has no integration {integration!r}")
    console.print(f"{tenant}/{integration} {'paused' if paused else 'resumed'}")


@integrations_app.command("pause")
def integrations_pause(tenant: str, integration: str) -> None:
    """Stop pulling and pushing for one integration; its outbox is kept for later."""
    _set_paused(tenant, integration, True)


@integrations_app.command("resume")
def integrations_resume(tenant: str, integration: str) -> None:
    """Resume a paused integration; pending pushes go out on the next push."""
    _set_paused(tenant, integration, False)


@integrations_app.command("check")
def integrations_check(tenant: str, integration: str) -> None:
    """Sign in and read one page of each stream the integration's settings select; per stream
    OK with the page's record count, or the error. Nothing is stored. Exit 1 if any fails."""
    from crmsync import check, db
    from ops.check_views import print_check

    db.upgrade()
    require_tenant(tenant)
    try:
        result = check.check_integration(tenant, integration)
    except LookupError as exc:
        fail(str(exc))
    print_check(result, console)
    raise typer.Exit(0 if result.ok else 1)


def _check_file(spec: object) -> NoReturn:
    """``tenants apply FILE --check``: every integration of the file, from the file alone."""
    from crmsync import check
    from crmsync.tenants import TenantsFile
    from ops.check_views import print_checks

    assert isinstance(spec, TenantsFile)
    results = check.check_file(spec)
    print_checks(results, console)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


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
    prefect_database: Annotated[
        str | None,
        typer.Option(
            help="Name of Prefect's database (default: crmsync_prefect_<hash of the data "
            "directory>, one per stack); refused while another running stack uses it"
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
            database=prefect_database,
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


def _log_file() -> Path:
    from crmsync.settings import SettingsError, get_settings

    try:
        data_dir = get_settings().data_dir
    except SettingsError:
        data_dir = Path(".crmsync")
    return data_dir.resolve() / "logs" / "cli.log"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def main(argv: list[str] | None = None) -> None:
    """The console script: user mistakes exit 2 with one line (the commands do that); anything
    unexpected prints one line and leaves its traceback in the log file (or, with --debug, on
    stderr)."""
    import psycopg

    try:
        app(argv if argv is not None else sys.argv[1:])
    except Exception as exc:
        if _debug:
            raise
        cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
        if isinstance(cause, psycopg.OperationalError):
            # An outage or a wrong address, not a bug: the message says which server and why.
            reason = (str(cause).strip().splitlines() or ["no reason given"])[0]
            typer.echo(f"error: the hub database does not answer: {reason}", err=True)
            sys.exit(1)
        log = _log_file()
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a") as out:
                command = " ".join(a for a in sys.argv[1:3] if not a.startswith("-"))
                out.write(f"--- {datetime.now(UTC).isoformat()} crmsync {command}\n")
                out.write("".join(traceback.format_exception(exc)))
            where = f"traceback in {log}"
        except OSError:
            where = "no log file could be written"
        typer.echo(
            f"error: unexpected {_one_line(exc)} ({where}; rerun with --debug to print it)",
            err=True,
        )
        sys.exit(1)
