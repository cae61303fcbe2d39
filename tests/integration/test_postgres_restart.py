"""Issue 5, proof under faults: the hub's PostgreSQL restarts while a tenant sync is mid-stream.

The restart happens on a private cluster in a temporary directory (never the machine's 5432
server, which other runs share), with the hub database migrated on it and the sync running as a
real ``crmsync sync`` process, like the SIGKILL test of test_sync_flow.py.

The rule: a restart of a few seconds is a transient fault that the run absorbs by itself. A step
that asks for a connection during the outage waits in the hub pool (``db.connect``: the pool
reconnects and pings what it hands out); a step whose connection is cut fails with
``psycopg.OperationalError``, which ``retry_transient`` retries; a page's merge commits its data
and cursor in one transaction, so a retried page is never half-applied. So the run *completes*:
no rerun, every record once, exactly what an undisturbed sync of the same CRM data stores.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from crmsync import db
from crmsync.settings import get_settings
from flows.sync import sync_tenant
from ops import stack
from sandbox.servicetitan import run_emulator
from tests.integration.test_sync_flow import (
    add_st_tenant,
    expected_external_ids,
    opportunity_ids,
    q,
    spec,
)

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
ST_TENANT = 106
DOWN_FOR_S = 2.0  # longer than one export page takes, so some hub access must meet the outage


class PrivateHub:
    """The hub database on a private PostgreSQL cluster that the test may stop and start."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        admin, self.postmaster = stack.start_private_postgres(pgdata, timeout=60)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE hub")
        self.url = admin.replace("/postgres?", "/hub?", 1)

    def restart(self, down_for: float) -> None:
        """Fast shutdown (backends terminated, open transactions rolled back), a pause, start."""
        assert stack._stop(self.postmaster, 30).startswith("stopped"), "fast shutdown failed"
        time.sleep(down_for)
        _, self.postmaster = stack.start_private_postgres(self.pgdata, timeout=60)

    def stop(self) -> None:
        stack._stop(self.postmaster, 30)


@pytest.fixture
def private_hub(tmp_path: Path) -> Iterator[PrivateHub]:
    """Point crmsync (settings, engine) at a migrated hub on a private cluster, then back."""
    hub = PrivateHub(tmp_path / "pg")
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("DATABASE_URL", hub.url)
        get_settings.cache_clear()
        db.engine.cache_clear()
        db.upgrade()
        yield hub
    finally:
        db.engine().dispose()
        db.close_pools()
        mp.undo()
        get_settings.cache_clear()
        db.engine.cache_clear()
        hub.stop()


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    with run_emulator([spec(ST_TENANT, seed=3, jobs=60)], port=0, export_page_size=15) as emu:
        yield emu


def snapshot(slug: str) -> list[tuple[Any, ...]]:
    return q(
        "SELECT o.model, o.external_id, o.external_updated_at, o.email, o.phone, o.first_name, "
        "o.last_name, o.status, o.details FROM opportunity o JOIN tenant t ON t.id = o.tenant_id "
        "WHERE t.slug = %s ORDER BY o.model, o.external_id",
        slug,
    )


def test_a_hub_postgres_restart_mid_stream_is_absorbed_within_the_run_and_stores_every_record_once(
    emulator: Any, private_hub: PrivateHub
) -> None:
    from prefect.settings import PREFECT_API_URL

    add_st_tenant(emulator, "restarted", ST_TENANT, models=["job"])
    add_st_tenant(emulator, "clean", ST_TENANT, models=["job"])  # same CRM data, undisturbed
    total = len(expected_external_ids(emulator, ST_TENANT, "jobs"))
    emulator.state.arm_fault("latency", route="*/export/jobs", times=None, latency_ms=300)
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "DATABASE_URL": private_hub.url,
        "PREFECT_LOGGING_LEVEL": "INFO",  # task retries are logged at INFO, the pool's at WARNING
        "CRMSYNC_CHUNK_RECORDS": "15",  # one page per chunk: the restart lands between chunks
    }
    cmd = [sys.executable, "-m", "ops", "sync", "--tenant", "restarted"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if q(
                "SELECT 1 FROM sync_cursor c JOIN tenant t ON t.id = c.tenant_id "
                "WHERE t.slug = 'restarted' AND c.stream = 'jobs'"
            ):
                break
            assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
            time.sleep(0.05)
        else:
            pytest.fail("the sync never committed a jobs page")
        partial = len(opportunity_ids("restarted", "job"))
        private_hub.restart(DOWN_FOR_S)
        output, _ = proc.communicate(timeout=45)
    finally:
        if proc.poll() is None:
            proc.kill()
        emulator.state.clear_faults()
    log = output.decode(errors="replace")
    assert 0 < partial < total, "the restart must land in the middle of the jobs stream"
    met = [
        line
        for line in log.splitlines()
        if "Retry 1/2 will start" in line or "error connecting in 'crmsync-hub'" in line
    ]
    assert met, "no hub access met the outage: the test proved nothing"
    assert proc.returncode == 0, log[-3000:]
    runs = q(
        "SELECT r.status FROM sync_run r JOIN tenant t ON t.id = r.tenant_id "
        "WHERE t.slug = 'restarted'"
    )
    assert runs == [("completed",)], "recovered within the run: one run, completed, no rerun"

    asyncio.run(sync_tenant("clean"))
    restarted, clean = snapshot("restarted"), snapshot("clean")
    assert len(restarted) == total
    keys = [r[:2] for r in restarted]
    assert len(keys) == len(set(keys)), "no duplicates"
    assert restarted == clean
