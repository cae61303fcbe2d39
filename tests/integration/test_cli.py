"""The ``crmsync`` command line as an operator meets it: run as a process (``python -m ops``),
output piped, against the test hub database. Mistakes get one line and exit 2, fast; nothing a
user types shows a traceback; tables are not cut when piped.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from crmsync import report

pytestmark = pytest.mark.usefixtures("clean_db")
ROOT = Path(__file__).resolve().parents[2]
VALID_URL_SHAPE = "postgresql://user:password@host:5432/dbname"
LONG_SLUG = "northwest-heating-and-air-conditioning"
LONG_INTEGRATION = "servicetitan-main-account"

TENANTS = f"""\
tenants:
  - slug: acme-hvac
    name: Acme HVAC
    integrations:
      - name: st-main
        provider: servicetitan
        base_url: http://127.0.0.1:9
        auth_url: http://127.0.0.1:9/connect/token
        credentials: {{client_id: cid.acme, client_secret: "${{CLI_TEST_SECRET}}", app_key: ak1.cli, tenant_id: "1001"}}
        settings: {{opportunity_models: [job]}}
  - slug: {LONG_SLUG}
    name: Northwest Heating
    integrations:
      - name: {LONG_INTEGRATION}
        provider: servicetitan
        base_url: http://127.0.0.1:9
        auth_url: http://127.0.0.1:9/connect/token
        credentials: {{client_id: cid.nw, client_secret: "${{CLI_TEST_SECRET}}", app_key: ak1.cli, tenant_id: "1002"}}
        settings: {{opportunity_models: [job]}}
"""


def crmsync(*args: str, **env: str) -> tuple[int, str, str, float]:
    """Run the console command as a user would, output piped: (exit code, stdout, stderr, s)."""
    environment = {**os.environ, "CLI_TEST_SECRET": "cs1.cli-test-secret", **env}
    environment.pop("COLUMNS", None)  # a pipe's default width, as for `crmsync status | cat`
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ops", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - t0


@pytest.fixture
def tenants_file(tmp_path: Path) -> Path:
    path = tmp_path / "tenants.yaml"
    path.write_text(TENANTS)
    code, out, err, _ = crmsync("tenants", "apply", str(path))
    assert code == 0, out + err
    return path


def sql(query: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def add_run(slug: str, integration: str, rejects: dict[str, str]) -> int:
    """A finished run of ``slug`` that fetched 12 records of ``integration``'s jobs and rejected
    ``rejects`` (external key → reason)."""
    counts = {
        f"{integration}:jobs": {
            "fetched": 12,
            "rejected": len(rejects),
            "created": 7,
            "updated": 2,
            "unchanged": 1,
            "contacts_created": 3,
            "chunks": 1,
        }
    }
    ((run_id, tenant_id, integration_id),) = sql(
        "INSERT INTO sync_run (tenant_id, status, finished_at, counts) "
        "SELECT t.id, 'completed', now(), %s::jsonb FROM tenant t WHERE t.slug = %s "
        "RETURNING id, tenant_id, (SELECT i.id FROM integration i "
        "WHERE i.tenant_id = sync_run.tenant_id AND i.name = %s)",
        json.dumps(counts),
        slug,
        integration,
    )
    for key, reason in rejects.items():
        sql(
            "INSERT INTO rejected_record (tenant_id, integration_id, run_id, stream, external_key, "
            "reason) VALUES (%s, %s, %s, 'jobs', %s, %s)",
            tenant_id,
            integration_id,
            run_id,
            key,
            reason,
        )
    return int(run_id)  # type: ignore[call-overload]


def test_an_unknown_tenant_is_refused_in_one_line_that_lists_the_known_ones_within_seconds(
    tenants_file: Path,
) -> None:
    code, out, err, seconds = crmsync("sync", "--tenant", "doesnotexist")
    assert code == 2
    assert err.strip() == (
        f"error: unknown tenant 'doesnotexist'; known tenants: acme-hvac, {LONG_SLUG}"
    )
    assert "Traceback" not in out + err
    assert "prefect" not in (out + err).lower()  # refused before any Prefect server starts
    assert seconds < 5


@pytest.mark.parametrize(
    "url",
    [
        "localhost:5432/hub",  # no scheme: used to connect to host "2" (0.0.0.2)
        "mysql://app:s3cr3t-pw@db.example/hub",
        "postgresql://app:s3cr3t-pw@db.example:port/hub",
        "postgresql://app:s3cr3t-pw@db.example:5432",  # no database
    ],
)
def test_a_malformed_database_url_is_one_line_that_shows_what_a_valid_one_looks_like(
    url: str,
) -> None:
    code, out, err, _ = crmsync("status", DATABASE_URL=url)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: DATABASE_URL is not a valid PostgreSQL URL")
    assert VALID_URL_SHAPE in lines[0]
    assert "s3cr3t-pw" not in err  # the password is never echoed


def test_applying_an_unchanged_tenants_file_again_reports_everything_unchanged(
    tenants_file: Path,
) -> None:
    code, out, err, _ = crmsync("tenants", "apply", str(tenants_file))
    assert code == 0, err
    assert out.splitlines()[:2] == [
        "tenants: 0 created, 0 updated, 2 unchanged",
        "integrations: 0 created, 0 updated, 2 unchanged",
    ]
    assert "ApplyResult" not in out


def test_applying_a_changed_secret_names_the_integration_and_what_changed_never_the_value(
    tenants_file: Path,
) -> None:
    code, out, _, _ = crmsync(
        "tenants", "apply", str(tenants_file), CLI_TEST_SECRET="cs1.rotated-secret"
    )
    assert code == 0
    assert "integrations: 0 created, 2 updated, 0 unchanged" in out
    assert "updated acme-hvac/st-main: credentials" in out
    assert "rotated" not in out


def test_tenants_apply_promises_a_first_sync_only_to_integrations_without_cursors(
    tenants_file: Path,
) -> None:
    sql(
        "INSERT INTO sync_cursor (tenant_id, integration_id, stream, cursor) "
        "SELECT i.tenant_id, i.id, 'jobs', 'token-1' FROM integration i WHERE i.name = 'st-main'"
    )
    _, out, _, _ = crmsync("tenants", "apply", str(tenants_file))
    assert out.splitlines()[-1] == (
        "next sync: 1 integration(s) without cursors read the last 90 days (first sync); "
        "1 resume from their stored cursors"
    )


def test_runs_show_lists_every_rejected_record_with_its_reason(tenants_file: Path) -> None:
    rejects = {
        "job:101": "job 101: missing Job.customerId",
        "job:102": "job 102: unknown job status 'Teleported'",
    }
    run_id = add_run("acme-hvac", "st-main", rejects)
    code, out, err, _ = crmsync("runs", "show", str(run_id))
    assert code == 0, err
    assert "Rejected CRM records: 2" in out
    for key, reason in rejects.items():
        line = next(line for line in out.splitlines() if key in line)
        assert reason in line
    for column in report.COLUMNS:  # the run table, in the run report's words
        if column not in report.ACTIVITY_COLUMNS:  # shown only for runs that read activities
            assert column in out


def test_runs_show_of_a_run_that_does_not_exist_is_one_line() -> None:
    code, out, err, _ = crmsync("runs", "show", "999999")
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [
        "error: no run 999999 (crmsync runs list shows the recent ones)"
    ]


def test_piped_status_is_not_cut_and_shows_each_integrations_last_run(
    tenants_file: Path,
) -> None:
    add_run(LONG_SLUG, LONG_INTEGRATION, {"job:7": "job 7: missing Job.customerId"})
    code, out, err, _ = crmsync("status")
    assert code == 0, err
    assert "…" not in out
    assert LONG_SLUG in out and LONG_INTEGRATION in out
    header = next(line for line in out.splitlines() if "CRM records fetched" in line)
    for column in report.INTEGRATION_COLUMNS:  # every column, named as in the run report
        assert column in header
    row = next(
        line for line in out.splitlines() if LONG_INTEGRATION in line and "completed" in line
    )
    cells = [c.strip() for c in row.strip("│ \n").split("│")]
    assert cells[:2] == [LONG_SLUG, LONG_INTEGRATION]
    assert cells[5:11] == ["12", "1", "7", "2", "1", "3"]  # fetched … contacts created


def test_an_unexpected_error_is_one_line_with_its_traceback_in_the_log_or_with_debug(
    tmp_path: Path,
) -> None:
    bug = (
        "import sys; from crmsync import overview; from ops.cli import main\n"
        "def broken(): raise KeyError('a bug')\n"
        "overview.tenant_slugs = broken\n"
        "main(sys.argv[1:])\n"
    )
    data = tmp_path / "data"
    env = {**os.environ, "CRMSYNC_DATA_DIR": str(data)}
    quiet = subprocess.run(
        [sys.executable, "-c", bug, "status", "--tenant", "x"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    log = data.resolve() / "logs" / "cli.log"
    assert quiet.returncode == 1
    assert quiet.stderr.strip().splitlines() == [
        f"error: unexpected KeyError: 'a bug' (traceback in {log}; rerun with --debug to print it)"
    ]
    assert "Traceback (most recent call last)" in log.read_text()
    loud = subprocess.run(
        [sys.executable, "-c", bug, "--debug", "status", "--tenant", "x"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loud.returncode == 1
    assert "KeyError" in loud.stderr and "broken" in loud.stderr


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports (the demo's three emulators)."""
    import socket

    for base in range(20000, 30000, 10):
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + count):
                    s = stack.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free ports")


def _on_the_test_server(database: str) -> str:
    """The test hub's URL with another database name (same server, same options)."""
    base, _, query = os.environ["DATABASE_URL"].partition("?")
    return f"{base.rsplit('/', 1)[0]}/{database}" + (f"?{query}" if query else "")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_local_mode_runs_the_demo_on_postgresql_quietly_and_ends_with_what_to_try_next(
    tmp_path: Path,
) -> None:
    """``crmsync demo`` in local mode (no PREFECT_API_URL) on a fresh data directory and a fresh
    hub: Prefect's temporary server runs on PostgreSQL (no SQLite, so no "database is locked"),
    without telemetry errors or warnings, and the output ends with the next steps."""
    from ops.stack.postgres import default_database

    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"
        ).fetchone():
            pytest.skip("the test PostgreSQL has no pg_trgm, which Prefect needs")
    data = tmp_path / "data"
    hub = f"crmsync_demo_test_{uuid.uuid4().hex[:8]}"
    prefect_db = default_database(data)
    admin = _on_the_test_server("postgres")
    sql(f'CREATE DATABASE "{hub}"')
    env = {**os.environ, "CRMSYNC_DATA_DIR": str(data), "DATABASE_URL": _on_the_test_server(hub)}
    for name in ("PREFECT_HOME", "XDG_RUNTIME_DIR", "PREFECT_API_URL", "PREFECT_LOGGING_LEVEL"):
        env.pop(name, None)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ops", "demo", "--jobs", "20", "--port", str(_free_ports(3))],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
        )
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            runs_with_rejects = {r for (r,) in conn.execute("SELECT run_id FROM rejected_record")}
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in (hub, prefect_db):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Prefect (local mode) on PostgreSQL: " in output and f"/{prefect_db} " in output
    for noise in ("sqlite", "SQLite", "ERROR", "Warning", "Traceback", "telemetry"):
        assert noise not in output, f"{noise!r} in the demo's output:\n{output}"
    last = [line.strip() for line in done.stdout.strip().splitlines()[-6:]]
    assert "what to try next" in last[0]
    assert last[1].startswith(".venv/bin/crmsync status")
    assert last[2].startswith(".venv/bin/crmsync runs list")
    assert last[3].startswith(".venv/bin/crmsync runs show ") and "rejected" in last[3]
    assert int(last[3].split()[3]) in runs_with_rejects
    assert last[4].startswith(".venv/bin/crmsync up")
    assert "rejected_record" in last[5]
