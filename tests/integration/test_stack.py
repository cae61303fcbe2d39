"""``crmsync up`` / ``down`` (issue 5): a Prefect server on its own PostgreSQL database, the
``prefect.yaml`` deployments on the process pool, workers online, and ``down`` stopping exactly
the processes ``up`` recorded.

One stack serves the module's first tests (starting it costs ~30 s) and its ``down`` test stops
it; the Redis-backed multi-process stack (``--api-workers 2 --redis``) comes after, on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import TypeAdapter

from ops import stack

pytestmark = pytest.mark.slow
POOL = "crmsync-process"
REDIS = os.environ.get("CRMSYNC_TEST_REDIS", "redis://127.0.0.1:6379").rstrip("/")
APP_KEY = "ak1.stacktests"
DEPLOYMENTS = {
    "sync-all-tenants",
    "sync-tenant",
    "sync-tenant-batch",
    "push-pending",
    "retry-failed-pushes",
    "push-failures-report",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _hub_server_has_pg_trgm() -> bool:
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        return row.fetchone() is not None


def _pid_exists(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # our own exited children would linger as zombies
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A stack with one worker, on the Prefect database named after its data directory; stopped
    and that database dropped whatever happens."""
    data = tmp_path_factory.mktemp("stack") / "data"
    database = stack.default_database(data)
    # The hub's embedded test server (pgserver) lacks pg_trgm: Prefect then gets a private cluster.
    prefect_pg = None if _hub_server_has_pg_trgm() else "embedded"
    lines: list[str] = []
    try:
        state = stack.up(
            workers=1,
            port=_free_port(),
            data_dir=data,
            prefect_pg=prefect_pg,
            timeout=90,
            echo=lines.append,
        )
        yield {**state, "printed": lines, "data": data, "database": database}
    finally:
        with contextlib.suppress(stack.StackError):
            stack.down(data_dir=data, echo=lambda _: None)
        if prefect_pg is None:
            with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _duration(value: Any) -> timedelta:
    return TypeAdapter(timedelta).validate_python(value)


def _api(running: dict[str, Any], method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(method, f"{running['local_api_url']}{path}", timeout=10, **kwargs)
    response.raise_for_status()
    return response.json()


def test_prefect_server_runs_on_its_own_postgres_database_with_bounded_retention(
    running: dict[str, Any],
) -> None:
    assert _api(running, "GET", "/health") is True
    assert running["prefect_database"].split("?")[0].endswith(f"/{running['database']}")
    assert running["database"] not in os.environ["DATABASE_URL"]
    settings = _api(running, "GET", "/admin/settings")
    assert settings["ui_url"] == running["ui_url"]  # notification links point at this UI
    server = settings["server"]
    vacuum = server["services"]["db_vacuum"]
    assert set(vacuum["enabled"]) == {"events", "flow_runs"}
    assert _duration(vacuum["retention_period"]) == stack.FLOW_RUN_RETENTION
    assert _duration(server["events"]["retention_period"]) == stack.EVENT_RETENTION
    assert f"export PREFECT_API_URL={running['api_url']}" in running["printed"]


def test_every_prefect_yaml_deployment_is_registered_on_the_process_pool(
    running: dict[str, Any],
) -> None:
    assert _api(running, "GET", f"/work_pools/{POOL}")["type"] == "process"
    body = {"limit": 200, "offset": 0, "sort": "NAME_ASC"}
    deployments = {d["name"]: d for d in _api(running, "POST", "/deployments/filter", json=body)}
    assert set(deployments) >= DEPLOYMENTS
    for name in DEPLOYMENTS:
        assert deployments[name]["work_pool_name"] == POOL
        # Left as a template: each worker machine resolves its own checkout.
        (step,) = deployments[name]["pull_steps"]
        directory = step["prefect.deployments.steps.set_working_directory"]["directory"]
        assert directory == "{{ $CRMSYNC_HOME }}"


def test_runs_whose_heartbeats_stop_are_crashed_by_an_automation_the_stack_installs(
    running: dict[str, Any],
) -> None:
    """A killed worker's runs must not stay Running (the next round would be cancelled)."""
    body = {"limit": 50, "offset": 0}
    automations = {a["name"]: a for a in _api(running, "POST", "/automations/filter", json=body)}
    zombie = automations[stack.ZOMBIE_AUTOMATION_NAME]
    assert zombie["enabled"]
    trigger = zombie["trigger"]
    assert trigger["posture"] == "Proactive"
    assert set(trigger["after"]) == {"prefect.flow-run.heartbeat"}
    assert "prefect.flow-run.heartbeat" in trigger["expect"]
    assert _duration(trigger["within"]) > timedelta(seconds=stack.HEARTBEAT_SECONDS * 2)
    (action,) = zombie["actions"]
    assert action["type"] == "change-flow-run-state" and action["state"] == "CRASHED"
    settings = _api(running, "GET", "/admin/settings")
    assert settings["server"]["services"]["triggers"]["enabled"] is True


def test_the_worker_process_is_alive_and_online_in_the_pool(running: dict[str, Any]) -> None:
    (worker,) = [stack.Proc(**p) for p in running["processes"] if p["role"] == "worker"]
    assert stack.is_alive(worker)
    body = {"limit": 10, "offset": 0}
    workers = _api(running, "POST", f"/work_pools/{POOL}/workers/filter", json=body)
    assert {w["name"]: w["status"] for w in workers}[worker.name] == "ONLINE"


def test_the_scheduler_creates_runs_for_scheduled_deployments(running: dict[str, Any]) -> None:
    body = {
        "limit": 5,
        "offset": 0,
        "sort": "EXPECTED_START_TIME_ASC",
        "deployments": {"name": {"any_": ["sync-all-tenants"]}},
    }
    deadline = time.monotonic() + 30
    while not (runs := _api(running, "POST", "/flow_runs/filter", json=body)):
        assert time.monotonic() < deadline, "no scheduled run of sync-all-tenants"
        time.sleep(0.5)
    assert all(r["expected_start_time"].endswith(("00:00Z", "15:00Z", "30:00Z", "45:00Z"))
               for r in runs if r["state_type"] == "SCHEDULED")  # fmt: skip


def test_up_again_while_running_starts_nothing(running: dict[str, Any]) -> None:
    printed: list[str] = []
    again = stack.up(workers=1, port=running["port"], data_dir=running["data"], echo=printed.append)
    assert again["processes"] == running["processes"]
    assert any("nothing to do" in line for line in printed)


def test_each_stack_gets_a_prefect_database_of_its_own_and_says_which(
    running: dict[str, Any], tmp_path: Path
) -> None:
    """Two data directories (two checkouts, two stacks) on one PostgreSQL never share Prefect's
    database by default; ``up`` names the one it uses."""
    assert running["database"].startswith("crmsync_prefect_")
    assert running["database"] != stack.PREFECT_DATABASE
    assert stack.default_database(tmp_path / "other") != running["database"]
    assert stack.default_database(running["data"]) == running["database"]  # stable
    assert any(
        line.startswith("Prefect database: ") and f"/{running['database']}" in line
        for line in running["printed"]
    )


def test_a_second_stack_on_the_prefect_database_of_a_running_stack_is_refused_in_one_line(
    running: dict[str, Any], tmp_path: Path
) -> None:
    """``crmsync up --prefect-database NAME`` from another data directory, NAME being the database
    of the running stack (its server pid alive): one line, exit 1, nothing started."""
    if not _hub_server_has_pg_trgm():
        pytest.skip("the running stack is on a private cluster, not on a shared server")
    other = tmp_path / "other"
    env = {**os.environ, "CRMSYNC_DATA_DIR": str(other)}
    env.pop("PREFECT_API_URL", None)
    port = str(_free_port())
    done = subprocess.run(
        [sys.executable, "-m", "ops", "up", "--workers", "0", "--port", port,
         "--prefect-database", running["database"]],
        cwd=stack.ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: Prefect database {running['database']!r} is used by the ")
    assert str(running["data"]) in line and "--prefect-database" in line
    assert "prefect server" not in done.stdout  # nothing started
    assert not stack.stack_file(other).exists()
    assert _api(running, "GET", "/health") is True  # the running stack is untouched


def test_down_stops_every_recorded_process_and_forgets_the_stack(running: dict[str, Any]) -> None:
    recorded = [p["pid"] for p in running["processes"]]
    assert {p["role"] for p in running["processes"]} >= {"server", "worker"}
    stopped = stack.down(data_dir=running["data"], echo=lambda _: None)
    assert sorted(p.pid for p in stopped) == sorted(recorded)
    assert [pid for pid in recorded if _pid_exists(pid)] == []
    assert not stack.stack_file(running["data"]).exists()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{running['local_api_url']}/health", timeout=2)


# --------------------------------------------------------------------------- Redis-backed stack


@contextlib.contextmanager
def _private_redis_db() -> Iterator[str]:
    """A Redis database of this test's own: the first empty one, claimed with SET NX so a
    parallel run picks another; flushed afterwards. Redis must answer: the test fails without."""
    import redis

    try:
        admin = redis.Redis.from_url(f"{REDIS}/0", socket_connect_timeout=3)
        admin.ping()
        databases = int(admin.config_get("databases").get("databases") or 16)
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis at {REDIS} does not answer ({exc}); the multi-process Prefect stack needs "
            "it. Start it (.ci/run does) or point CRMSYNC_TEST_REDIS at one."
        )
    token = uuid.uuid4().hex
    for number in range(1, databases):
        client = redis.Redis.from_url(f"{REDIS}/{number}")
        if client.dbsize() == 0 and client.set("crmsync:test-claim", token, nx=True, ex=3600):
            try:
                yield f"{REDIS}/{number}"
            finally:
                client.flushdb()
            return
    pytest.fail(f"no empty database left on the Redis at {REDIS} (of {databases})")


def _api_processes(master: int) -> list[int]:
    """The uvicorn worker processes (API processes) the server's master process spawned."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
            if ppid == master and b"spawn_main" in cmdline:
                found.append(int(stat.parent.name))
    return found


async def _run_round(api_url: str, slugs: list[str]) -> Any:
    """Pause the schedules (no scheduled round competes), start sync-all-tenants, wait for it."""
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        async with get_client() as client:
            for deployment in await client.read_deployments():
                await client.pause_deployment(deployment.id)
        return await run_deployment(  # type: ignore[misc]
            "sync-all-tenants/sync-all-tenants",
            parameters={
                "tenants": slugs,
                "dispatch": "deployment",
                "batch_size": 1,
                "max_concurrency": 4,
            },
            timeout=300,
        )


@pytest.mark.timeout(600)
@pytest.mark.usefixtures("clean_db")
def test_a_redis_backed_stack_with_two_api_processes_completes_a_round(
    tmp_path: Path,
) -> None:
    """Prefect's documented scale-out: two API processes behind one port and the background
    services in a third, coordinated through Redis; a sync-all-tenants round dispatched to the
    workers completes every tenant, and ``down`` leaves none of those processes behind."""
    from crmsync import db
    from sandbox.servicetitan import TenantSpec, run_emulator
    from tests.factories import make_integration, make_tenant

    data = tmp_path / "data"
    database = f"crmsync_prefect_test_{uuid.uuid4().hex[:8]}"
    prefect_pg = None if _hub_server_has_pg_trgm() else "embedded"
    st_ids = {"redis-alpha": 301, "redis-bravo": 302, "redis-charlie": 303}
    specs = [
        TenantSpec(
            tenant_id=st_id,
            client_id=f"cid.{st_id}",
            client_secret=f"cs1.{st_id}",
            app_key=APP_KEY,
            customers=10,
            jobs=20,
            memberships=0,
            seed=st_id,
        )
        for st_id in st_ids.values()
    ]
    with _private_redis_db() as redis_url, run_emulator(specs, port=0) as emu:
        for slug, st_id in st_ids.items():
            make_integration(
                make_tenant(slug),
                credentials={
                    "client_id": f"cid.{st_id}",
                    "client_secret": f"cs1.{st_id}",
                    "app_key": APP_KEY,
                    "tenant_id": str(st_id),
                },
                settings={"opportunity_models": ["job"]},
                base_url=emu.url,
                auth_url=emu.url + "/connect/token",
            )
        api_pids: list[int] = []
        recorded: list[int] = []
        try:
            state = stack.up(
                workers=1,
                port=_free_port(),
                data_dir=data,
                prefect_pg=prefect_pg,
                database=database,
                api_workers=2,
                redis=redis_url,
                timeout=120,
                echo=lambda _: None,
            )
            recorded = [p["pid"] for p in state["processes"]]
            roles = {p["role"]: p for p in state["processes"]}
            assert set(roles) >= {"server", "services", "worker"}
            assert "--no-services" in roles["server"]["command"]
            assert roles["services"]["command"][-3:] == ["server", "services", "start"]
            api_pids = _api_processes(roles["server"]["pid"])
            assert len(api_pids) == 2
            assert state["redis"] == redis_url and state["api_workers"] == 2
            server = _api(state, "GET", "/admin/settings")["server"]
            assert server["events"]["messaging_broker"] == "prefect_redis.messaging"
            assert server["events"]["causal_ordering"] == "prefect_redis.ordering"
            assert server["concurrency"]["lease_storage"] == "prefect_redis.lease_storage"

            run = asyncio.run(_run_round(state["local_api_url"], sorted(st_ids)))
            assert run.state.is_completed(), run.state
            with db.connect() as conn:
                rows = conn.execute(
                    "SELECT t.slug, r.status, (SELECT count(*) FROM opportunity o "
                    "WHERE o.tenant_id = t.id) FROM sync_run r JOIN tenant t ON t.id = r.tenant_id "
                    "WHERE r.round_id = %s ORDER BY t.slug",
                    (str(run.id),),
                ).fetchall()
            assert [(slug, status) for slug, status, _ in rows] == [
                (slug, "completed") for slug in sorted(st_ids)
            ]
            assert all(opportunities > 0 for _, _, opportunities in rows)
            import redis

            assert redis.Redis.from_url(redis_url).dbsize() > 1  # events went through Redis
        finally:
            with contextlib.suppress(stack.StackError):
                stack.down(data_dir=data, echo=lambda _: None)
            if prefect_pg is None:
                with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    assert [pid for pid in [*recorded, *api_pids] if _pid_exists(pid)] == []
    assert not stack.stack_file(data).exists()
