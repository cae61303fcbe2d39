"""What every benchmark in ``bench/`` needs around the code it measures.

A benchmark runs one CRM emulator in its own process (so the emulator's JSON encoding does not
share the measured process's GIL, as a real CRM would not), a fresh hub database that is dropped
afterwards, and each measured phase in a child process of its own, so the peak RSS a phase reports
(``ru_maxrss``) is that phase's alone. A child reports by printing one ``RESULT {json}`` line on
stdout and ``STREAM ...`` lines on stderr; :func:`run_phase` collects them.

Database: ``DATABASE_URL`` when set (fresh databases are created on that server), else the
machine's PostgreSQL on 127.0.0.1:5432 when it answers, else an embedded one (pgserver).
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".crmsync" / "bench"
RESULT_PREFIX = "RESULT "
STREAM_PREFIX = "STREAM "


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, token_path: str = "/connect/token", timeout: float = 300) -> None:
    """Until the emulator's token endpoint answers at all (a 400 for an empty grant means up).

    The default path is ServiceTitan's; LeadPerfection uses ``/token``, Salesforce
    ``/services/oauth2/token``. Large emulators build their data before listening, hence the
    long timeout.
    """
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.post(url + token_path, data={"grant_type": "x"}, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.25)
    raise SystemExit(f"emulator at {url} did not start")


def admin_url() -> str:
    """A URL on a server where we may create databases (see the module docstring)."""
    import psycopg

    url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"
    try:
        with psycopg.connect(url, connect_timeout=3):
            return url
    except psycopg.OperationalError:
        import pgserver

        server = pgserver.get_server(ROOT / ".crmsync" / "bench-pg", cleanup_mode=None)
        return str(server.get_uri())


def database_url(admin: str, name: str) -> str:
    """``admin`` with its database replaced by ``name`` (query string kept)."""
    base, _, query = admin.partition("?")
    return base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")


@contextmanager
def fresh_database(admin: str, prefix: str = "crmsync_bench") -> Iterator[str]:
    """A new, empty database on ``admin``'s server; yields its URL and drops it afterwards.

    A random suffix lets several benchmarks share a server; ``WITH (FORCE)`` drops it even if a
    killed child left a connection behind.
    """
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_env(db_url: str, **extra: str) -> dict[str, str]:
    """The environment of a benchmark's children: the fresh hub, quiet local-mode Prefect.

    ``PREFECT_HOME`` stays the caller's when set, so a benchmark can reuse a Prefect server.
    """
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CRMSYNC_DATA_DIR": str(BENCH_DIR),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        **extra,
    }
    env.setdefault("PREFECT_HOME", str(BENCH_DIR / "prefect"))
    return env


@contextmanager
def emulator(
    module: str,
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    stdout: int | IO[Any] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m <module> <args>`` from the repository root, terminated on the way out."""
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env, stdout=stdout)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def apply_tenants(
    path: Path, text: str, env: Mapping[str, str], *, quiet: bool = False
) -> subprocess.CompletedProcess[bytes]:
    """Write a tenants file and ``crmsync tenants apply`` it (which also migrates the hub)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "ops", "tenants", "apply", str(path)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=quiet,
    )


def run_phase(
    script: str | Path,
    phase: str,
    env: Mapping[str, str],
    extra_args: Sequence[str] = (),
) -> dict[str, Any]:
    """Run ``script --phase <phase>`` in a child, echo its STREAM lines, return its RESULT."""
    proc = subprocess.run(
        [sys.executable, str(script), "--phase", phase, *extra_args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise SystemExit(f"phase {phase} failed:\n{proc.stderr[-3000:]}")
    print(f"{phase}:")
    print("\n".join(ln for ln in proc.stderr.splitlines() if ln.startswith(STREAM_PREFIX)))
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX))
    result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
    return result


def emit_result(result: Mapping[str, Any]) -> None:
    """The child's side of :func:`run_phase`."""
    print(RESULT_PREFIX + json.dumps(result))


def emit_streams(counts: Mapping[str, Mapping[str, Any]]) -> None:
    """One STREAM line per stream of a sync summary, for the parent to echo."""
    for stream, c in counts.items():
        print(
            f"{STREAM_PREFIX}{stream}: " + ", ".join(f"{k}={v}" for k, v in c.items()),
            file=sys.stderr,
        )


def peak_rss_mib() -> float:
    """This process's peak resident set so far (Linux reports ``ru_maxrss`` in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def print_table(results: Sequence[Mapping[str, Any]]) -> None:
    """Results as ``a | b | c`` rows under a header taken from the first result's keys."""
    cols = list(results[0])
    print(" | ".join(cols))
    for r in results:
        print(" | ".join(str(r[c]) for c in cols))
