"""Prefect's environment for the command line, set in one place before Prefect is imported
(Prefect reads its settings once, at import, and hands them to the temporary server it starts).

Every command (:func:`quiet`):

- ``PREFECT_HOME`` is ``<data_dir>/prefect`` unless set, and exists: Prefect creates it without
  its parents and warns (``UserWarning: Failed to create the Prefect home directory``) when the
  data directory is new;
- ``XDG_RUNTIME_DIR``, when unset (containers, ``sudo``, cron), is a private ``<data_dir>/run``
  (mode 0700): otherwise platformdirs warns ``RuntimeDirWarning`` and falls back to a shared
  ``/tmp/runtime-<uid>``;
- telemetry off (``PREFECT_SERVER_ANALYTICS_ENABLED=false``, ``DO_NOT_TRACK=1`` for the client
  side): the temporary server's telemetry service logs an ERROR on every machine that cannot
  reach Prefect's telemetry endpoint.

Local mode (no ``PREFECT_API_URL``; :func:`local_mode`): ``crmsync sync``, ``crmsync demo`` and
the other commands that run flows in this process start Prefect's temporary server, which keeps
its state on SQLite by default; concurrent tenant runs then fail with ``database is locked`` or
stall. Here it runs on PostgreSQL instead, in the database ``crmsync up`` uses for this data
directory (``ops.stack.postgres.default_database``, created with ``pg_trgm`` when missing) on the
server the stack would pick: the server of ``DATABASE_URL``, else 127.0.0.1:5432, else a private
cluster in ``<data_dir>/prefect-pg`` (stopped when the command exits, if it started it). The
hub's embedded ``pgserver`` cannot hold it: it ships no ``pg_trgm``. When no PostgreSQL with
``pg_trgm`` is at hand, one line says so and Prefect keeps SQLite. The temporary server's own
log goes to ``<data_dir>/logs/prefect-server.log``, not between the command's lines.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

DATABASE_VARIABLES = (
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
    "PREFECT_API_DATABASE_CONNECTION_URL",
)


def quiet(data_dir: Path) -> None:
    """Prefect's home, a private runtime directory and no telemetry (see the module docstring)."""
    data = data_dir.resolve()
    home = Path(os.environ.setdefault("PREFECT_HOME", str(data / "prefect"))).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = data / "run"
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")  # Prefect's client-side (SDK) telemetry
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


def local_mode(
    data_dir: Path, echo: Callable[[str], None] = print, timeout: float = 60
) -> str | None:
    """Point the temporary server of local mode at PostgreSQL; a line saying where, or None when
    this is not local mode (``PREFECT_API_URL`` set), Prefect's database is already chosen
    (``PREFECT_SERVER_DATABASE_CONNECTION_URL`` or its older name set), or Prefect is already
    imported (a host process such as the tests configured it; changing it now would not apply).
    """
    if os.environ.get("PREFECT_API_URL") or any(os.environ.get(v) for v in DATABASE_VARIABLES):
        return None
    if "prefect" in sys.modules:
        return None
    from crmsync.settings import get_settings
    from ops.stack.postgres import (
        _postmaster,
        _redact,
        asyncpg_url,
        default_database,
        ensure_database,
        prefect_server,
    )
    from ops.stack.processes import _stop
    from ops.stack.state import StackError

    data = data_dir.resolve()
    server_log = _server_log_to_file(data)
    database = default_database(data)
    reasons: list[str] = []
    for skip_local in (False, True):
        already_running = _postmaster(data / "prefect-pg") is not None
        try:
            admin, source, cluster = prefect_server(
                data, None, timeout, echo, skip_local=skip_local
            )
            target = ensure_database(admin, database)
        except StackError as exc:
            reasons.append(str(exc))
            if not skip_local and not get_settings().database_url:
                continue  # 127.0.0.1:5432 would not do (no CREATEDB, no pg_trgm): a private one
            break
        if cluster is not None and not already_running:
            atexit.register(_stop, cluster, 20)  # runs after Prefect's atexit stops its server
        os.environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = asyncpg_url(target, database)
        return (
            f"Prefect (local mode) on PostgreSQL: {_redact(target)} ({source}); "
            f"its server logs to {server_log}"
        )
    line = (
        f"Prefect's local state stays on SQLite in {os.environ.get('PREFECT_HOME')}: no "
        f"PostgreSQL with pg_trgm for it ({reasons[-1].splitlines()[0] if reasons else '?'})"
    )
    echo(line)
    return line


def _server_log_to_file(data: Path) -> Path:
    """The temporary server's own log (``prefect.server``, ``uvicorn``, ``fastapi``) into
    ``<data_dir>/logs/prefect-server.log`` instead of the command's output, where its shutdown
    (cancelled services, "Error flushing … events") printed tracebacks between the command's
    lines; the flow and task run logs stay on the console. Prefect's own ``logging.yml`` with
    those three loggers sent to the file, through ``PREFECT_LOGGING_SETTINGS_PATH`` (a path set
    by hand wins)."""
    import yaml

    log = data / "logs" / "prefect-server.log"
    if os.environ.get("PREFECT_LOGGING_SETTINGS_PATH"):
        return log
    spec = importlib.util.find_spec("prefect")  # the package's location, without importing it
    if spec is None or not spec.submodule_search_locations:
        return log
    default = Path(next(iter(spec.submodule_search_locations))) / "logging" / "logging.yml"
    config = yaml.safe_load(default.read_text())
    config["handlers"]["server_file"] = {
        "level": 0,
        "class": "logging.FileHandler",
        "formatter": "standard",
        "filename": str(log),
        "delay": True,
    }
    for name in ("prefect.server", "uvicorn", "fastapi"):
        config["loggers"].setdefault(name, {}).update(handlers=["server_file"], propagate=False)
    log.parent.mkdir(parents=True, exist_ok=True)
    path = data / "logs" / "prefect-local-mode-logging.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    os.environ["PREFECT_LOGGING_SETTINGS_PATH"] = str(path)
    return log


def prepare(data_dir: Path, echo: Callable[[str], None] = print) -> str | None:
    """Everything above, for a command about to import Prefect and run flows in this process."""
    quiet(data_dir)
    return local_mode(data_dir, echo)
