"""A production-like Prefect stack on one machine: ``crmsync up`` / ``crmsync down`` (issue 5).

Local mode runs every flow against a throw-away SQLite API inside the calling process, which
answers 503 under concurrent writes and drops the last events at exit
(``shared/reference/prefect-notes.md`` §7, §8, §10.1). Operators need the real thing: a
``prefect server`` on PostgreSQL in its own database, the deployments of ``prefect.yaml``
registered, and process workers pulling from the ``crmsync-process`` pool, so tenants spread over
every worker and a UI *Retry* lands on any of them. The same pieces run on many machines; the
README's "Running the stack" section says how.

Everything ``up`` starts is recorded in ``<data_dir>/stack/stack.json`` with its pid *and* the
kernel's start time of that pid, so ``down`` stops exactly those processes and never one that
merely reused a pid. Server and workers each get their own session (process group), which
``down`` signals as a whole; the flow runs a process worker started (each in a session of its
own) end with their worker when it gets SIGTERM.

Prefect's database: the PostgreSQL server of ``DATABASE_URL`` (a separate database, never the
hub's), else the machine's PostgreSQL on 127.0.0.1:5432, else a private cluster in
``<data_dir>/prefect-pg``. Prefect's migrations need the ``pg_trgm`` extension, which the
``pgserver`` wheel used for the hub's embedded database does not ship (its share/extension holds
only plpgsql and vector), so the private cluster runs on the first PostgreSQL binaries that have
it: pgserver's if a future wheel adds it, else the machine's installation.

With ``--redis`` (required for ``--api-workers`` > 1) the server runs the way Prefect documents
for scaling out ("How to scale self-hosted Prefect", "Multi-worker API server" in the server CLI
guide): the migrations and block types once, then ``prefect server services start`` (scheduler,
triggers, event persister, vacuum …) as one process and ``prefect server start --no-services
--workers N`` as N API processes behind one port, all sharing events, caches, causal ordering and
concurrency leases through Redis (``prefect-redis``) and background tasks through Docket on the
same Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import psycopg
import yaml
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from crmsync.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
PREFECT_DATABASE = "crmsync_prefect"
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
AUTOMATION_NAME = "crmsync: notify on failed or crashed flow runs"
ZOMBIE_AUTOMATION_NAME = "crmsync: crash flow runs whose heartbeats stopped"
HEARTBEAT_SECONDS = 30  # flow-run heartbeat of every worker's runs (Prefect's default: 180)
ZOMBIE_AFTER = timedelta(seconds=150)  # five missed heartbeats

# Retention of the Prefect database (prefect-notes §8: every 15 minutes 1 dispatcher run + one run
# per tenant with ~5 task runs each, plus push-pending every minute: ~6k flow runs a day at 50
# tenants). 14 days keeps two weeks of runs, logs and per-tenant artifacts for operators to
# inspect and retry; the hub's own sync_run / lineage tables keep the long history. Events (the
# largest table) keep Prefect's default week. Environment variables of the same name win.
FLOW_RUN_RETENTION = timedelta(days=14)
EVENT_RETENTION = timedelta(days=7)

# Pieces of the body follow Prefect's own default notification template
# (server migration 4160a4841eed, "remove flow run notifications").
NOTIFICATION_SUBJECT = "crmsync: flow run {{ flow_run.name }} {{ flow_run.state.name }}"
NOTIFICATION_BODY = """\
Flow run {{ flow.name }}/{{ flow_run.name }} entered state `{{ flow_run.state.name }}` \
at {{ flow_run.state.timestamp }}.
Parameters: {{ flow_run.parameters }}
State message: {{ flow_run.state.message }}
Flow run URL: {{ flow_run|ui_url }}
"""

Echo = Callable[[str], None]


class StackError(RuntimeError):
    """The stack could not be started or inspected; the message says what to do."""


@dataclass
class Proc:
    """One process ``up`` started (or, for the private PostgreSQL cluster, adopted)."""

    role: str  # postgres | server | services | worker
    name: str
    pid: int
    started: int | None  # /proc/<pid>/stat start time (clock ticks); None without /proc
    log: str
    group: bool = True  # started in its own session: signal the whole process group
    stop_signal: str = "SIGTERM"
    kill_signal: str = "SIGKILL"
    command: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- paths and state


def _data_dir(data_dir: Path | None) -> Path:
    return (data_dir or get_settings().data_dir).resolve()


def stack_file(data_dir: Path | None = None) -> Path:
    return _data_dir(data_dir) / "stack" / "stack.json"


def _read_state(data_dir: Path | None) -> dict[str, Any] | None:
    path = stack_file(data_dir)
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise StackError(f"{path} is not valid JSON ({exc}); inspect it, then remove it") from None
    return state


def _write_state(state: dict[str, Any], data_dir: Path) -> None:
    path = stack_file(data_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def _procs(state: dict[str, Any]) -> list[Proc]:
    return [Proc(**p) for p in state.get("processes", [])]


# --------------------------------------------------------------------------- process identity


_HAS_PROC = Path("/proc/self/stat").exists()


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) from /proc; None when the pid does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data.rsplit(")", 1)[1].split()
    return fields[0], int(fields[19])


def _start_time(pid: int) -> int | None:
    stat = _stat(pid)
    return stat[1] if stat else None


def _reap(pid: int) -> None:
    """Collect an exited child of this process, so it stops counting as alive (zombie)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(proc: Proc) -> bool:
    """True while the recorded process runs: same pid *and* same start time, not a zombie."""
    _reap(proc.pid)
    if _HAS_PROC:
        stat = _stat(proc.pid)
        if stat is None or stat[0] in ("Z", "X"):
            return False
        return proc.started is None or stat[1] == proc.started
    try:
        os.kill(proc.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running(proc: Proc) -> bool:
    """The recorded process, or for a group the members it left behind, still run."""
    if is_alive(proc):
        return True
    if not proc.group:
        return False
    stat = _stat(proc.pid) if _HAS_PROC else None
    # The kernel does not hand out a pid again while a process group still carries it as its
    # id, so when the leader's pid is free (or it is our exited leader), a live group with that
    # id is the one we started; a pid now used by an unrelated process means ours is gone.
    leader_gone = stat is None or (stat[0] in ("Z", "X") and stat[1] == proc.started)
    return leader_gone and _group_exists(proc.pid)


def _signal(proc: Proc, name: str) -> None:
    sig = signal.Signals[name]
    with contextlib.suppress(ProcessLookupError):
        if proc.group:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)


def _stop(proc: Proc, timeout: float) -> str:
    """Graceful signal, wait, then the hard one; touches nothing but ``proc`` (and its group)."""
    if not _running(proc):
        return "not running"
    _signal(proc, proc.stop_signal)
    if _wait_gone(proc, timeout):
        return f"stopped ({proc.stop_signal})"
    if _running(proc):
        _signal(proc, proc.kill_signal)
    if _wait_gone(proc, 10):
        return f"killed ({proc.kill_signal} after {timeout:g} s)"
    return f"still running after {proc.kill_signal}"


def _wait_gone(proc: Proc, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _running(proc):
            return True
        time.sleep(0.1)
    return not _running(proc)


def _spawn(
    role: str, name: str, command: list[str], env: dict[str, str], log: Path, cwd: Path
) -> Proc:
    with log.open("ab") as out:
        out.write(f"\n--- {datetime.now(UTC).isoformat()} {' '.join(command)}\n".encode())
        out.flush()
        child = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group; survives the terminal of `crmsync up`
        )
    return Proc(
        role=role,
        name=name,
        pid=child.pid,
        started=_start_time(child.pid),
        log=str(log),
        command=command,
    )


def _tail(path: str | Path, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- Prefect's database


def _libpq(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def asyncpg_url(libpq_url: str, database: str) -> str:
    """``postgresql+asyncpg://…/<database>`` for Prefect, from any libpq URL of the same server.

    asyncpg takes ``ssl`` where libpq takes ``sslmode``, and rejects libpq-only options, so only
    the host list, port and TLS mode carry over. A Unix-socket directory stays in ``?host=``.
    """
    url = make_url(_libpq(libpq_url))
    query: dict[str, str | tuple[str, ...]] = {}
    for key, value in url.query.items():
        if key in ("host", "port", "ssl"):
            query[key] = value
        elif key == "sslmode":
            query["ssl"] = value
    return _render(url.set(drivername="postgresql+asyncpg", database=database, query=query))


def _redact(url: str) -> str:
    """For people: no password, and a socket directory left readable."""
    from urllib.parse import unquote

    return unquote(make_url(url).render_as_string(hide_password=True))


def _tcp_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _ensure_database(admin_url: str, database: str, hub_url: str | None) -> str:
    """Create ``database`` and ``pg_trgm`` on the server of ``admin_url``; its libpq URL."""
    admin = make_url(_libpq(admin_url))
    if hub_url:
        hub = make_url(_libpq(hub_url))
        same_server = (hub.host, hub.port, hub.query.get("host")) == (
            admin.host,
            admin.port,
            admin.query.get("host"),
        )
        if same_server and hub.database == database:
            raise StackError(
                f"Prefect's database {database!r} would be the hub's own database; "
                "give Prefect another one"
            )
    target = _render(admin.set(database=database))
    try:
        with psycopg.connect(_render(admin), autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        with psycopg.connect(target, autocommit=True, connect_timeout=10) as conn:
            if not conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"
            ).fetchone():
                raise StackError(
                    f"the PostgreSQL at {_redact(_render(admin))} has no pg_trgm extension, "
                    "which Prefect's server needs; install the PostgreSQL contrib modules"
                )
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except psycopg.Error as exc:
        raise StackError(
            f"cannot prepare Prefect's database {database!r} on {_redact(_render(admin))}: "
            f"{str(exc).strip()}. The role needs CREATEDB (or create the database and "
            "pg_trgm yourself), or point --prefect-pg at another server."
        ) from None
    return target


# --------------------------------------------------------------------------- private cluster


def _pg_major(bindir: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(bindir / "postgres"), "-V"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return match.group(1) if match else None


def _sharedir(bindir: Path) -> Path:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            [str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True, timeout=10
        )
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    return bindir.parent / "share" / "postgresql"


def _postgres_bindirs() -> Iterator[Path]:
    """PostgreSQL installations that ship pg_trgm, pgserver's first, newest first after it."""
    candidates: list[Path] = []
    with contextlib.suppress(ImportError):
        from pgserver._commands import POSTGRES_BIN_PATH

        candidates.append(Path(POSTGRES_BIN_PATH))
    for tool in ("pg_config", "initdb"):
        found = _which_dir(tool)
        if found:
            candidates.append(found)

    def version(path: str) -> float:
        digits = re.findall(r"(\d+(?:\.\d+)?)", path)
        return float(digits[-1]) if digits else 0.0

    for pattern in (
        "/usr/lib/postgresql/*/bin",
        "/usr/pgsql-*/bin",
        "/opt/homebrew/opt/postgresql@*/bin",
        "/usr/local/opt/postgresql@*/bin",
        "/usr/local/pgsql/bin",
    ):
        candidates += [Path(p) for p in sorted(glob.glob(pattern), key=version, reverse=True)]
    seen: set[Path] = set()
    for bindir in candidates:
        bindir = bindir.resolve()
        if bindir in seen:
            continue
        seen.add(bindir)
        tools = ("initdb", "pg_ctl", "postgres")
        if (
            all((bindir / t).exists() for t in tools)
            and (_sharedir(bindir) / "extension" / "pg_trgm.control").exists()
        ):
            yield bindir


def _which_dir(tool: str) -> Path | None:
    if tool == "pg_config" and (path := shutil.which(tool)):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([path, "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return Path(out.stdout.strip())
        return None
    path = shutil.which(tool)
    return Path(path).parent if path else None


def _run_as() -> str | None:
    """PostgreSQL refuses to run as root: pick the system user it runs as, like pgserver does."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "pgserver"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    from pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"


def _socket_dir(pgdata: Path) -> Path:
    # A Unix socket path must fit in ~104 bytes (sun_path); long checkouts use a hashed /tmp dir.
    if len(str(pgdata / ".s.PGSQL.5432")) < 100:
        return pgdata
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"crmsync-pg-{digest}"


def _postmaster(pgdata: Path) -> int | None:
    """Pid of the postmaster serving ``pgdata``, ignoring a stale postmaster.pid."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    if _HAS_PROC:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return None
        return pid if comm in ("postgres", "postmaster") else None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def start_private_postgres(
    pgdata: Path, log: Path | None = None, timeout: float = 60
) -> tuple[str, Proc]:
    """A PostgreSQL cluster in ``pgdata`` on a Unix socket only; (libpq URL, its postmaster).

    Reuses the cluster when it already runs (a previous ``up`` that lost its stack.json).
    """
    pgdata = pgdata.resolve()
    sockdir = _socket_dir(pgdata)
    url = f"postgresql://postgres@/postgres?host={sockdir}"
    log = (log or pgdata.parent / f"{pgdata.name}.log").resolve()
    running = _postmaster(pgdata)
    if running is None:
        version = (
            (pgdata / "PG_VERSION").read_text().strip()
            if (pgdata / "PG_VERSION").exists()
            else None
        )
        bindir = next(
            (b for b in _postgres_bindirs() if version is None or _pg_major(b) == version), None
        )
        if bindir is None:
            raise StackError(
                "no PostgreSQL for Prefect's database: set DATABASE_URL or --prefect-pg, start "
                "a PostgreSQL on 127.0.0.1:5432, or install PostgreSQL >= 14.9 with its contrib "
                "modules (the pgserver wheel has no pg_trgm, which Prefect's migrations need)"
                + (f"; {pgdata} needs PostgreSQL {version}" if version else "")
            )
        user = _run_as()
        pgdata.mkdir(parents=True, exist_ok=True)
        sockdir.mkdir(parents=True, exist_ok=True)
        log.touch()
        if user:
            from pgserver.utils import ensure_prefix_permissions

            ensure_prefix_permissions(pgdata)
            for path in (pgdata, sockdir, log):
                shutil.chown(path, user=user)
        pgdata.chmod(0o700)
        kwargs: dict[str, Any] = {"cwd": pgdata, **({"user": user} if user else {})}
        if not (pgdata / "PG_VERSION").exists():
            initdb = ["initdb", "-D", str(pgdata), "-U", "postgres", "--auth=trust"]
            _pg(bindir, [*initdb, "--encoding=UTF8"], kwargs, timeout)
        options = f"-c listen_addresses='' -k {sockdir}"
        pg_ctl = ["pg_ctl", "-D", str(pgdata), "-l", str(log), "-w", "-t", str(int(timeout))]
        _pg(bindir, [*pg_ctl, "-o", options, "start"], kwargs, timeout + 10)
        running = _postmaster(pgdata)
        if running is None:
            raise StackError(f"PostgreSQL in {pgdata} did not start:\n{_tail(log)}")
    proc = Proc(
        role="postgres",
        name=f"postgres ({pgdata})",
        pid=running,
        started=_start_time(running),
        log=str(log),
        group=False,  # the postmaster stops its own backends
        stop_signal="SIGINT",  # "fast" shutdown: roll back open transactions, checkpoint, exit
        kill_signal="SIGQUIT",  # "immediate" shutdown, crash recovery at next start
    )
    return url, proc


def _pg(bindir: Path, argv: list[str], kwargs: dict[str, Any], timeout: float) -> None:
    command = [str(bindir / argv[0]), *argv[1:]]
    try:
        subprocess.run(
            command, check=True, capture_output=True, text=True, timeout=timeout, **kwargs
        )
    except subprocess.CalledProcessError as exc:
        raise StackError(f"{' '.join(command)} failed:\n{exc.stdout}{exc.stderr}") from None
    except subprocess.TimeoutExpired:
        raise StackError(f"{' '.join(command)} did not finish in {timeout:g} s") from None


# --------------------------------------------------------------------------- Prefect API calls


def _client(api_url: str) -> Any:
    from prefect.client.orchestration import PrefectClient

    return PrefectClient(api=api_url)


async def _ensure_work_pool(api_url: str, pool: str) -> bool:
    """Create the process pool with Prefect's default job template; True when created."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    async with _client(api_url) as client:
        try:
            await client.read_work_pool(pool)
            return False
        except ObjectNotFound:
            await client.create_work_pool(
                WorkPoolCreate(
                    name=pool,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="crmsync flow runs, one process each (crmsync up)",
                )
            )
            return True


async def _deployment_names(api_url: str) -> set[str]:
    from prefect.client.schemas.sorting import DeploymentSort

    async with _client(api_url) as client:
        deployments = await client.read_deployments(limit=200, sort=DeploymentSort.NAME_ASC)
    return {d.name for d in deployments}


async def _online_workers(api_url: str, pool: str, since: datetime | None = None) -> set[str]:
    """Names of the pool's ONLINE workers (that sent a heartbeat after ``since``)."""
    async with _client(api_url) as client:
        workers = await client.read_workers_for_work_pool(pool, limit=200, offset=0)
    return {
        w.name
        for w in workers
        if str(w.status).upper().endswith("ONLINE")
        and (
            since is None or (w.last_heartbeat_time is not None and w.last_heartbeat_time >= since)
        )
    }


async def _ensure_automation(api_url: str, block: str) -> str:
    """Failed/Crashed flow runs → notification through ``block``; created or updated in place."""
    from prefect.automations import AutomationCore, EventTrigger, Posture, SendNotification
    from prefect.exceptions import ObjectNotFound

    slug, _, name = block.partition("/")
    if not slug or not name:
        raise StackError(f"CRMSYNC_NOTIFICATION_BLOCK={block!r}: expected 'block-type-slug/name'")
    async with _client(api_url) as client:
        try:
            document = await client.read_block_document_by_name(name=name, block_type_slug=slug)
        except ObjectNotFound:
            raise StackError(
                f"notification block {block!r} does not exist on this Prefect server; create it "
                "(UI: Blocks, or `prefect block create`), then run `crmsync up` again"
            ) from None
        automation = AutomationCore(
            name=AUTOMATION_NAME,
            description="Created by `crmsync up`: notify operators of failed or crashed runs.",
            enabled=True,
            trigger=EventTrigger(
                expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                match={"prefect.resource.id": "prefect.flow-run.*"},
                for_each={"prefect.resource.id"},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[
                SendNotification(
                    block_document_id=document.id,
                    subject=NOTIFICATION_SUBJECT,
                    body=NOTIFICATION_BODY,
                )
            ],
        )
        existing = await client.read_automations_by_name(AUTOMATION_NAME)
        if existing:
            await client.update_automation(existing[0].id, automation)
            for extra in existing[1:]:
                await client.delete_automation(extra.id)
            return "updated"
        await client.create_automation(automation)
        return "created"


async def _ensure_zombie_automation(api_url: str) -> str:
    """A flow run whose heartbeats stop (its worker was killed, its machine died) → Crashed.

    Without it a killed run stays Running for ever: the dispatcher waiting on it never ends, and
    the sync-all-tenants deployment (one run at a time, CANCEL_NEW) cancels every later round,
    so the whole fleet stops syncing. Prefect's documented recipe:
    https://docs.prefect.io/v3/advanced/detect-zombie-flows
    """
    from prefect.automations import AutomationCore, ChangeFlowRunState, EventTrigger, Posture
    from prefect.client.schemas.objects import StateType

    automation = AutomationCore(
        name=ZOMBIE_AUTOMATION_NAME,
        description="Created by `crmsync up`: a run with no heartbeat for "
        f"{int(ZOMBIE_AFTER.total_seconds())} s is Crashed, so Retry and the next round proceed.",
        enabled=True,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match={"prefect.resource.id": "prefect.flow-run.*"},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=ZOMBIE_AFTER,
        ),
        actions=[
            ChangeFlowRunState(
                name=None,
                force=False,
                state=StateType.CRASHED,
                message="No heartbeat: the process running this flow run died. "
                "Retry re-runs only what did not complete.",
            )
        ],
    )
    async with _client(api_url) as client:
        existing = await client.read_automations_by_name(ZOMBIE_AUTOMATION_NAME)
        if existing:
            await client.update_automation(existing[0].id, automation)
            return "updated"
        await client.create_automation(automation)
        return "created"


# --------------------------------------------------------------------------- up / down / status


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return spec


def _work_pool(spec: dict[str, Any]) -> str:
    pools = {str((d.get("work_pool") or {}).get("name")) for d in spec["deployments"]}
    if len(pools) != 1 or "None" in pools:
        raise StackError(f"prefect.yaml should name exactly one work pool, found {sorted(pools)}")
    return str(pools.pop())


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is fine
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _local_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _wait_healthy(url: str, proc: Proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(proc):
            raise StackError(f"the Prefect server exited; end of {proc.log}:\n{_tail(proc.log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise StackError(f"{url} did not answer within {timeout:g} s; see {proc.log}")


def _hub_env() -> dict[str, str]:
    """What every worker (and the flow runs it spawns) needs to reach the hub: the same database,
    keys and data dir (embedded hub PostgreSQL, generated secret key) as this process."""
    settings = get_settings()
    env = {"CRMSYNC_DATA_DIR": str(settings.data_dir.resolve()), "CRMSYNC_HOME": str(ROOT)}
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    if settings.secret_key:
        env["CRMSYNC_SECRET_KEY"] = settings.secret_key.get_secret_value()
    if settings.notification_block:
        env["CRMSYNC_NOTIFICATION_BLOCK"] = settings.notification_block
    return env


# Prefect's documented Redis settings for a server spread over several processes
# (docs.prefect.io/v3/advanced/self-hosted, "Redis setup"), with prefect-redis 0.3.
REDIS_SERVER_SETTINGS = {
    "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
    "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
    "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
}
# Other names of the same settings (and the Redis connection's separate fields), which would
# compete with the values above if inherited from the caller's environment.
_REDIS_COMPETING = (
    "PREFECT_SERVER_EVENTS_MESSAGING_BROKER",
    "PREFECT_SERVER_EVENTS_MESSAGING_CACHE",
    "PREFECT_REDIS_MESSAGING_HOST",
    "PREFECT_REDIS_MESSAGING_PORT",
    "PREFECT_REDIS_MESSAGING_DB",
    "PREFECT_REDIS_MESSAGING_USERNAME",
    "PREFECT_REDIS_MESSAGING_PASSWORD",
    "PREFECT_REDIS_MESSAGING_SSL",
    "PREFECT_API_DATABASE_MIGRATE_ON_START",
    "PREFECT_API_BLOCKS_REGISTER_ON_START",
)


def redact_redis(url: str) -> str:
    """A Redis URL for people and stack.json: no password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def check_redis(url: str, timeout: float = 3) -> None:
    """Raise StackError unless prefect-redis is installed and Redis at ``url`` answers PING."""
    import importlib.util

    if importlib.util.find_spec("prefect_redis") is None:
        raise StackError("--redis needs the prefect-redis package; run `make setup`")
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        with client:
            client.ping()
    except (ValueError, redis.RedisError) as exc:
        reason = str(exc).strip() or type(exc).__name__
        raise StackError(
            f"Redis at {redact_redis(url)} does not answer ({reason}); "
            "start it or pass another --redis URL (redis://host:6379/db)"
        ) from None


def _redis_server_env(env: dict[str, str], url: str) -> None:
    """Point a server process's environment at Redis (messaging, ordering, leases, Docket).

    The migrations and block types are applied once before any process starts
    (``prepare-database``), so N API processes starting together do not race on them.
    """
    for key in _REDIS_COMPETING:
        env.pop(key, None)
    env.update(REDIS_SERVER_SETTINGS)
    env.update(
        PREFECT_REDIS_MESSAGING_URL=url,  # prefect-redis: authoritative over host/port/db fields
        PREFECT_SERVER_DOCKET_URL=url,  # background tasks shared by API and services processes
        PREFECT_SERVER_DATABASE_MIGRATE_ON_START="false",
        PREFECT_SERVER_REGISTER_BLOCKS_ON_START="false",
    )


def _prepare_database(env: dict[str, str], log: Path, timeout: float) -> None:
    """What every API process does at start-up (migrations, block types), once, in advance."""
    with log.open("w") as out:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "crmsync.stack", "prepare-database"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=max(timeout, 300),
            )
        except subprocess.TimeoutExpired:
            raise StackError(f"preparing Prefect's database timed out; see {log}") from None
    if done.returncode != 0:
        raise StackError(
            f"preparing Prefect's database failed (exit {done.returncode}); end of {log}:\n"
            f"{_tail(log)}"
        )


def up(
    workers: int = 2,
    port: int = 4200,
    *,
    host: str = "127.0.0.1",
    data_dir: Path | None = None,
    prefect_pg: str | None = None,
    database: str = PREFECT_DATABASE,
    worker_limit: int | None = None,
    api_workers: int = 1,
    redis: str | None = None,
    flow_run_retention: timedelta = FLOW_RUN_RETENTION,
    event_retention: timedelta = EVENT_RETENTION,
    timeout: float = 120,
    echo: Echo = print,
) -> dict[str, Any]:
    """Start server, pool, deployments and ``workers`` workers; the content of stack.json.

    Idempotent: when stack.json lists only live processes, only report (and create the failure
    automation if its notification block appeared since). ``prefect_pg`` is a libpq URL of any
    database on the PostgreSQL server to hold Prefect's ``database``, or ``"embedded"`` for the
    private cluster in ``<data_dir>/prefect-pg`` even when another server is reachable.

    ``redis`` (a ``redis://host:port/db`` URL, required when ``api_workers`` > 1) runs Prefect's
    multi-process server: ``api_workers`` API processes without services on ``port`` and the
    background services as one more process, coordinated through that Redis database.
    """
    if workers < 0:
        raise StackError("workers must be >= 0")
    if api_workers < 1:
        raise StackError("--api-workers must be >= 1")
    if api_workers > 1 and not redis:
        raise StackError(
            f"--api-workers {api_workers} needs --redis redis://HOST:6379/DB: Prefect's API "
            "processes share events, caches and concurrency leases only through Redis"
        )
    data = _data_dir(data_dir)
    previous = _read_state(data)
    if previous is not None:
        if previous.get("processes") and all(is_alive(p) for p in _procs(previous)):
            echo(
                f"stack already running (started {previous.get('started_at')}); nothing to do "
                "(other --workers or --port: `crmsync down` first)"
            )
            _maybe_automation(previous, data, echo)
            echo(status(data))
            return previous
        echo("stack.json lists processes that are gone; stopping the rest and starting afresh")
        down(data_dir=data, echo=echo)

    spec = _spec()
    pool = _work_pool(spec)
    stack_dir = data / "stack"
    stack_dir.mkdir(parents=True, exist_ok=True)
    if not _port_free(host, port):
        raise StackError(f"port {port} on {host} is in use; pick another with --port")
    if redis:
        check_redis(redis)
    public_host = socket.getfqdn() if host in ("0.0.0.0", "::") else host
    api_url = f"http://{public_host}:{port}/api"
    local_api = f"http://{_local_host(host)}:{port}/api"
    state: dict[str, Any] = {
        "version": 1,
        "status": "starting",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "repo": str(ROOT),
        "data_dir": str(data),
        "host": host,
        "port": port,
        "api_url": api_url,
        "local_api_url": local_api,
        "ui_url": api_url.removesuffix("/api"),
        "work_pool": pool,
        "processes": [],
    }
    if redis:
        state["redis"] = redact_redis(redis)
        state["api_workers"] = api_workers
    procs: list[Proc] = []
    t0 = time.monotonic()

    def record(proc: Proc) -> None:
        procs.append(proc)
        state["processes"] = [asdict(p) for p in procs]
        _write_state(state, data)

    try:
        # 0. The hub's schema, which every flow run expects (like every other command).
        from crmsync import db

        db.upgrade()
        echo("hub database at the latest migration")

        # 1. Prefect's own PostgreSQL database.
        hub_url = get_settings().database_url
        if prefect_pg and prefect_pg != "embedded":
            admin, source = prefect_pg, "--prefect-pg"
        elif hub_url and not prefect_pg:
            admin, source = hub_url, "the DATABASE_URL server"
        elif not prefect_pg and _tcp_answers("127.0.0.1", 5432):
            admin, source = LOCAL_POSTGRES, "PostgreSQL on 127.0.0.1:5432"
        else:
            echo(f"starting a private PostgreSQL cluster in {data / 'prefect-pg'}")
            admin, pg_proc = start_private_postgres(
                data / "prefect-pg", stack_dir / "postgres.log", timeout=timeout
            )
            source = "private cluster"
            record(pg_proc)
        target = _ensure_database(admin, database, hub_url)
        state["prefect_database"] = _redact(target)
        state["prefect_database_source"] = source
        echo(f"Prefect database: {_redact(target)} ({source})")

        # 2. The server.
        retention = {
            "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,flow_runs",
            "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": str(
                int(flow_run_retention.total_seconds())
            ),
            "PREFECT_SERVER_EVENTS_RETENTION_PERIOD": f"PT{int(event_retention.total_seconds())}S",
        }
        server_env = dict(os.environ)
        for key, value in retention.items():
            server_env.setdefault(key, value)
        server_env.setdefault("PREFECT_UI_URL", state["ui_url"])  # links in notifications
        server_env.setdefault("PREFECT_UI_API_URL", api_url)  # what browsers call
        server_env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        server_env.update(
            PREFECT_API_URL=local_api,  # itself, never another server inherited from the caller
            PREFECT_HOME=str(data / "prefect-server"),
            PREFECT_SERVER_DATABASE_CONNECTION_URL=asyncpg_url(target, database),
        )
        server_env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)  # legacy alias would compete
        state["retention"] = {k: server_env[k] for k in retention}
        server_command = [
            sys.executable,
            "-m",
            "crmsync.stack",  # `prefect server start` with the null-body fix, see below
            "server",
            "start",
            "--host",
            host,
            "--port",
            str(port),
        ]
        services: Proc | None = None
        if redis:
            _redis_server_env(server_env, redis)
            _prepare_database(server_env, stack_dir / "prepare.log", timeout)
            echo("Prefect database migrated, block types registered")
            services = _spawn(
                "services",
                "prefect server services",
                [sys.executable, "-m", "crmsync.stack", "server", "services", "start"],
                server_env,
                stack_dir / "services.log",
                ROOT,
            )
            record(services)
            echo(f"prefect server services (pid {services.pid}) on Redis {state['redis']}")
            server_command.append("--no-services")
            if api_workers > 1:
                server_command += ["--workers", str(api_workers)]
        server = _spawn(
            "server",
            f"prefect server API ({api_workers} processes)" if redis else "prefect server",
            server_command,
            server_env,
            stack_dir / "server.log",
            ROOT,
        )
        record(server)
        echo(f"prefect server (pid {server.pid}) starting on {host}:{port}")
        _wait_healthy(f"{local_api}/health", server, timeout)
        echo(f"prefect server healthy after {time.monotonic() - t0:.1f} s")
        if services is not None and not is_alive(services):
            raise StackError(
                f"prefect server services exited; end of {services.log}:\n{_tail(services.log)}"
            )

        # 3. Work pool.
        created = asyncio.run(_ensure_work_pool(local_api, pool))
        echo(f"work pool {pool}: {'created' if created else 'exists'}")
        client_env = {
            **os.environ,
            "PREFECT_HOME": os.environ.get("PREFECT_HOME", str(data / "prefect")),
            **_hub_env(),
            "PREFECT_API_URL": local_api,
            "PREFECT_CLI_PROMPT": "false",
        }
        client_env.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))
        # 4. Workers, starting (~5 s of imports each) while the deployments register.
        spawned_at = datetime.now(UTC) - timedelta(seconds=1)
        names = [f"crmsync-{socket.gethostname()}-{i}" for i in range(1, workers + 1)]
        for i, name in enumerate(names, start=1):
            command = [sys.executable, "-m", "prefect", "worker", "start"]
            command += ["--pool", pool, "--name", name]
            if worker_limit:
                command += ["--limit", str(worker_limit)]
            worker = _spawn(
                "worker", name, command, client_env, stack_dir / f"worker-{i}.log", ROOT
            )
            record(worker)
        # 5. Deployments. Deployed without CRMSYNC_HOME, `{{ $CRMSYNC_HOME }}` stays a template
        # in the pull step (Prefect resolves `$VAR`s at deploy time when set), so every worker
        # machine runs flows from its own checkout, wherever that is.
        deploy_env = {k: v for k, v in client_env.items() if k != "CRMSYNC_HOME"}
        deploy_log = stack_dir / "deploy.log"
        with deploy_log.open("w") as out:
            done = subprocess.run(
                [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
                cwd=ROOT,
                env=deploy_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=max(timeout, 300),
            )
        expected = {d["name"] for d in spec["deployments"]}
        missing = expected - asyncio.run(_deployment_names(local_api))
        if done.returncode != 0 or missing:
            raise StackError(
                f"prefect deploy --all failed (exit {done.returncode}, missing "
                f"{sorted(missing)}); end of {deploy_log}:\n{_tail(deploy_log)}"
            )
        echo(f"deployed {', '.join(sorted(expected))} ({time.monotonic() - t0:.1f} s)")

        _wait_workers(local_api, pool, set(names), procs, spawned_at, timeout)
        if workers:
            echo(f"{workers} worker(s) online in {pool}: {', '.join(names)}")
        echo(f"stack up in {time.monotonic() - t0:.1f} s")

        state["status"] = "up"
        _write_state(state, data)
        zombie = asyncio.run(_ensure_zombie_automation(local_api))
        echo(f"automation {ZOMBIE_AUTOMATION_NAME!r} {zombie}")
        _maybe_automation(state, data, echo)
    except BaseException:
        state["status"] = "failed"
        _write_state(state, data)
        echo("start-up failed; stopping what was started")
        with contextlib.suppress(StackError):
            down(data_dir=data, echo=echo)
        raise

    echo(f"Prefect UI: {state['ui_url']}   logs: {stack_dir}")
    echo("Point the CLI and other machines' workers at this server with:")
    echo(f"export PREFECT_API_URL={api_url}")
    return state


def _wait_workers(
    api_url: str, pool: str, names: set[str], procs: list[Proc], since: datetime, timeout: float
) -> None:
    """Until every new worker has sent a heartbeat after ``since`` (a same-named worker of an
    earlier stack still shows ONLINE for a while)."""
    deadline = time.monotonic() + timeout
    while names:
        dead = [p for p in procs if p.role == "worker" and not is_alive(p)]
        if dead:
            raise StackError(f"worker {dead[0].name} exited; end of its log:\n{_tail(dead[0].log)}")
        with contextlib.suppress(httpx.HTTPError):
            if names <= asyncio.run(_online_workers(api_url, pool, since)):
                return
        if time.monotonic() > deadline:
            raise StackError(f"workers {sorted(names)} did not come online in {timeout:g} s")
        time.sleep(0.5)


def _maybe_automation(state: dict[str, Any], data: Path, echo: Echo) -> None:
    block = get_settings().notification_block
    if not block:
        if not state.get("automation"):
            echo("no CRMSYNC_NOTIFICATION_BLOCK: failure notifications are not configured")
        return
    try:
        action = asyncio.run(_ensure_automation(state["local_api_url"], block))
    except StackError as exc:
        echo(f"warning: {exc}")
        return
    state["automation"] = {"name": AUTOMATION_NAME, "block": block}
    _write_state(state, data)
    echo(f"automation {AUTOMATION_NAME!r} {action} (notifies through {block})")


_STOP_ORDER = {"worker": 0, "server": 1, "services": 2, "postgres": 3}


def down(data_dir: Path | None = None, timeout: float = 20, echo: Echo = print) -> list[Proc]:
    """Stop the processes stack.json lists (workers, server, then PostgreSQL) and remove it."""
    data = _data_dir(data_dir)
    state = _read_state(data)
    if state is None:
        echo(f"no stack recorded in {stack_file(data)}; nothing to stop")
        return []
    procs = sorted(_procs(state), key=lambda p: _STOP_ORDER.get(p.role, 1))
    left: list[Proc] = []
    for proc in procs:
        outcome = _stop(proc, timeout)
        echo(f"{proc.name} (pid {proc.pid}): {outcome}")
        if outcome.startswith("still"):
            left.append(proc)
    if left:
        state["processes"] = [asdict(p) for p in left]
        _write_state(state, data)
        raise StackError(f"could not stop {[p.pid for p in left]}; stack.json keeps them")
    stack_file(data).unlink(missing_ok=True)
    return procs


def status(data_dir: Path | None = None) -> str:
    """Human-readable state of the recorded stack: processes, API health, online workers."""
    data = _data_dir(data_dir)
    state = _read_state(data)
    if state is None:
        return f"no stack recorded in {stack_file(data)} (start one with `crmsync up`)"
    lines = [
        f"stack {state.get('status')} since {state.get('started_at')} ({stack_file(data)})",
        f"  API {state['api_url']}   UI {state['ui_url']}",
        f"  Prefect database {state.get('prefect_database', '?')} "
        f"({state.get('prefect_database_source', '?')})",
    ]
    try:
        healthy = httpx.get(f"{state['local_api_url']}/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        healthy = False
    lines.append(f"  API health: {'ok' if healthy else 'NOT ANSWERING'}")
    if state.get("redis"):
        lines.append(
            f"  Redis {state['redis']}: {state.get('api_workers', 1)} API process(es) without "
            "services, background services in a process of their own"
        )
    online: set[str] = set()
    if healthy:
        with contextlib.suppress(Exception):
            online = asyncio.run(_online_workers(state["local_api_url"], state["work_pool"]))
    for proc in _procs(state):
        alive = "running" if is_alive(proc) else "GONE"
        extra = ""
        if proc.role == "worker":
            extra = ", online" if proc.name in online else ", not online"
        lines.append(f"  {proc.role:<8} pid {proc.pid:<8} {alive}{extra}  {proc.name}  {proc.log}")
    for key, value in (state.get("retention") or {}).items():
        lines.append(f"  {key}={value}")
    if state.get("automation"):
        lines.append(
            f"  automation: {state['automation']['name']} → {state['automation']['block']}"
        )
    lines.append(f"export PREFECT_API_URL={state['api_url']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- server entry point


def null_body_params_take_defaults() -> None:
    """Make a JSON ``null`` top-level body parameter mean "not given", as FastAPI used to.

    The locked FastAPI (0.154) validates an explicit ``null`` against the parameter's type, but
    Prefect 3.8.8's own client sends ``{"limit": null, "offset": null}`` to endpoints declared
    ``limit: int = Body(None)`` (``prefect deploy``'s worker check, ``prefect deployment ls``,
    ``read_deployments()`` …), which that server then answers 422. Earlier FastAPI releases
    substituted the default for a null optional parameter; this restores that in the server
    process only. Nested values and single-model bodies (PATCH payloads) are not affected.
    """
    import fastapi
    from fastapi._compat import Undefined
    from fastapi.dependencies import utils

    major, minor = (int(x) for x in fastapi.__version__.split(".")[:2])
    if (major, minor) < (0, 151):  # the locked FastAPI still treats null as "not given"
        return
    original = utils._validate_value_with_model_field
    if getattr(original, "_crmsync_patched", False):
        return

    def validate(*, field: Any, value: Any, values: dict[str, Any], loc: tuple[str, ...]) -> Any:
        if value is None and not field.field_info.is_required():
            value = Undefined
        return original(field=field, value=value, values=values, loc=loc)

    validate._crmsync_patched = True  # type: ignore[attr-defined]
    utils._validate_value_with_model_field = validate


def hybrid_setters_ignored_in_bulk_dml() -> None:
    """Let the scheduler insert flow runs again under SQLAlchemy 2.1.

    Prefect 3.8.8 bulk-inserts scheduled runs as dicts that carry a ``state`` key, which is a
    hybrid property with a setter on ``FlowRun``. SQLAlchemy 2.0 ignored such keys (the states
    are inserted right after); 2.1 calls the hybrid's ``bulk_dml`` hook and raises "Can't
    evaluate bulk DML statement" when there is none, so ``schedule_recent_deployments`` and the
    scheduler fail and no scheduled run is ever created. A no-op hook restores 2.0's behaviour.
    """
    from prefect.server.database import orm_models
    from sqlalchemy.ext.hybrid import hybrid_property

    def ignore(cls: Any, mapping: Any, value: Any) -> None:
        return None

    if not hasattr(hybrid_property, "bulk_dml"):  # SQLAlchemy 2.0 (pinned): nothing to restore
        return
    for model in (orm_models.FlowRun, orm_models.TaskRun):
        for attr in vars(model).values():
            if (
                isinstance(attr, hybrid_property)
                and attr.fset
                and not getattr(attr, "bulk_dml_setter", None)
            ):
                # The hook exists only in SQLAlchemy 2.1, whose attribute the 2.0 stubs lack.
                cast(Any, attr).bulk_dml_setter = ignore


async def _prepare_prefect_database() -> None:
    """Exactly what a Prefect API process does when it starts (``create_app``'s lifespan: the
    migrations, then the block types), for ``up --redis`` to do once before N processes start:
    started together, they race on registering block types and the loser exits."""
    from prefect.server.database import provide_database_interface
    from prefect.server.models.block_registration import run_block_auto_registration

    db = provide_database_interface()
    await db.create_db()
    session = await db.session()
    async with session:
        await run_block_auto_registration(session=session)


def _prefect_cli(argv: list[str]) -> None:
    """``python -m crmsync.stack server start …``: the Prefect CLI with the fixes above."""
    null_body_params_take_defaults()
    hybrid_setters_ignored_in_bulk_dml()
    if argv == ["prepare-database"]:
        asyncio.run(_prepare_prefect_database())
        return
    from prefect.cli import app

    sys.argv = ["prefect", *argv]
    app()


if __name__ == "__main__":  # pragma: no cover (runs as the stack's server process)
    _prefect_cli(sys.argv[1:])
elif __name__ == "__mp_main__":  # pragma: no cover
    # An API process of `server start --workers N`: uvicorn spawns it afresh, and spawning
    # re-imports this module under this name, so it gets the same fixes as its parent.
    null_body_params_take_defaults()
    hybrid_setters_ignored_in_bulk_dml()
