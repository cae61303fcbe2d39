"""Prefect's own PostgreSQL database: on the server of ``DATABASE_URL`` (never the hub's
database), else the machine's PostgreSQL on 127.0.0.1:5432, else a private cluster in
``<data_dir>/prefect-pg`` on the first PostgreSQL binaries that ship ``pg_trgm`` (Prefect's
migrations need it; the ``pgserver`` wheel of the hub's embedded database lacks it).

One database per stack: its default name is derived from the stack's data directory
(:func:`default_database`), and the stack using it is recorded on the database itself (its
comment: data directory, host, server pid and start time), so a second stack started on the same
database while the first one runs is refused (:func:`claim_database`). Local mode (the CLI without
``PREFECT_API_URL``, see ``ops.prefect_env``) uses the same database, so ``crmsync up`` shows the
runs of earlier local syncs."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from crmsync.settings import get_settings
from ops.stack.processes import _HAS_PROC, _start_time, _tail, is_alive
from ops.stack.state import Echo, Proc, StackError

PREFECT_DATABASE = "crmsync_prefect"  # the prefix of every stack's database name
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
_OWNER_KEY = "crmsync-stack"  # the JSON key of the database comment naming its stack


def default_database(data_dir: Path) -> str:
    """``crmsync_prefect_<8 hex digits of the data directory's path>``: two stacks (two
    checkouts, two data directories) on one PostgreSQL server never share Prefect's state."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    return f"{PREFECT_DATABASE}_{digest}"


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


def prefect_server(
    data: Path,
    prefect_pg: str | None,
    timeout: float,
    echo: Echo,
    *,
    skip_local: bool = False,
) -> tuple[str, str, Proc | None]:
    """The PostgreSQL server for Prefect's database: (admin libpq URL, where it comes from, the
    private cluster's postmaster when that is the choice). ``--prefect-pg``, else the server of
    ``DATABASE_URL``, else 127.0.0.1:5432 when it answers (``skip_local``: do not try it), else
    the private cluster in ``<data>/prefect-pg``, started (or found running) here."""
    hub_url = get_settings().database_url
    if prefect_pg and prefect_pg != "embedded":
        return prefect_pg, "--prefect-pg", None
    if hub_url and not prefect_pg:
        return hub_url, "the DATABASE_URL server", None
    if not prefect_pg and not skip_local and _tcp_answers("127.0.0.1", 5432):
        return LOCAL_POSTGRES, "PostgreSQL on 127.0.0.1:5432", None
    if _postmaster((data / "prefect-pg").resolve()) is None:
        echo(f"starting a private PostgreSQL cluster in {data / 'prefect-pg'}")
    (data / "stack").mkdir(parents=True, exist_ok=True)  # its log
    admin, pg_proc = start_private_postgres(
        data / "prefect-pg", data / "stack" / "postgres.log", timeout=timeout
    )
    return admin, "private cluster", pg_proc


def ensure_database(admin_url: str, database: str) -> str:
    """Create ``database`` with ``pg_trgm`` on the server of ``admin_url`` if missing (never the
    hub's database: StackError); its libpq URL."""
    return _ensure_database(admin_url, database, get_settings().database_url)


def prefect_database(
    state: dict[str, Any],
    data: Path,
    prefect_pg: str | None,
    database: str,
    timeout: float,
    record: Callable[[Proc], None],
    echo: Echo,
) -> str:
    """Pick the PostgreSQL server for Prefect, create ``database`` there; its libpq URL.

    A private cluster started here is passed to ``record`` (``down`` stops it). A database that
    another live stack uses is refused (StackError) before anything starts on it.
    """
    admin, source, pg_proc = prefect_server(data, prefect_pg, timeout, echo)
    if pg_proc is not None:
        record(pg_proc)
    target = _ensure_database(admin, database, get_settings().database_url)
    _refuse_if_claimed(target, database, data)
    state["prefect_database"] = _redact(target)
    state["prefect_database_source"] = source
    echo(f"Prefect database: {_redact(target)} ({source})")
    return target


def _owner(target: str, database: str) -> dict[str, Any] | None:
    """The stack recorded on ``database`` (its comment; ``target`` is its libpq URL), if any."""
    with psycopg.connect(target, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (database,),
        ).fetchone()
    if not row or not row[0]:
        return None
    try:
        owner = json.loads(row[0]).get(_OWNER_KEY)
    except (ValueError, AttributeError):
        return None  # a comment of someone else's
    return owner if isinstance(owner, dict) else None


def _owner_alive(owner: dict[str, Any], target: str, database: str) -> bool:
    """Whether the recorded stack still runs: its server pid (same start time) on this host;
    for a stack on another host, whether anything is connected to the database."""
    if owner.get("host") == socket.gethostname():
        pid = owner.get("pid")
        if not isinstance(pid, int):
            return False
        started = owner.get("started")
        started = started if isinstance(started, int) else None
        return is_alive(Proc("server", "prefect server", pid, started, ""))
    with psycopg.connect(target, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()
    return bool(row and row[0])


def _refuse_if_claimed(target: str, database: str, data: Path) -> None:
    try:
        owner = _owner(target, database)
    except psycopg.Error:
        return  # cannot read the comment: nothing to compare with
    if not owner or owner.get("data_dir") == str(data):
        return
    if _owner_alive(owner, target, database):
        where = owner.get("data_dir", "?")
        if owner.get("host") != socket.gethostname():
            where = f"{owner.get('host')}:{where}"
        raise StackError(
            f"Prefect database {database!r} is used by the running stack of {where} "
            f"(server pid {owner.get('pid')}); stop that one (`crmsync down` there) or give "
            "this one its own with --prefect-database NAME"
        )


def claim_database(target: str, database: str, data: Path, server: Proc) -> bool:
    """Record on ``database`` (its comment; ``target`` is its libpq URL) that the stack of
    ``data`` with this server uses it; False when the role may not (only the database's owner
    may comment on it)."""
    comment = json.dumps(
        {
            _OWNER_KEY: {
                "data_dir": str(data),
                "host": socket.gethostname(),
                "pid": server.pid,
                "started": server.started,
            }
        }
    )
    try:
        with psycopg.connect(target, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(database), sql.Literal(comment)
                )
            )
    except psycopg.Error:
        return False
    return True
