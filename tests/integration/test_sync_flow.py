"""End to end: the ServiceTitan emulator over real HTTP → Prefect flows → PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmsync import db
from flows.sync import sync_all_tenants, sync_tenant
from sandbox.servicetitan import TenantSpec, run_emulator
from tests.factories import make_integration, make_tenant

pytestmark = [pytest.mark.usefixtures("clean_db", "prefect_api"), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
APP_KEY = "ak1.flowtests"


def spec(st_id: int, seed: int = 1, jobs: int = 40) -> TenantSpec:
    return TenantSpec(
        tenant_id=st_id,
        client_id=f"cid.{st_id}",
        client_secret=f"cs1.{st_id}",
        app_key=APP_KEY,
        customers=25,
        jobs=jobs,
        memberships=10,
        seed=seed,
    )


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    specs = [spec(101), spec(102, seed=2), spec(103, seed=1), spec(104, seed=1), spec(105, seed=1)]
    with run_emulator(specs, port=0, export_page_size=15) as emu:
        yield emu


def add_st_tenant(
    emu: Any, slug: str, st_id: int, *, secret: str | None = None, models: list[str] | None = None
) -> int:
    tenant = make_tenant(slug)
    return make_integration(
        tenant,
        credentials={
            "client_id": f"cid.{st_id}",
            "client_secret": secret or f"cs1.{st_id}",
            "app_key": APP_KEY,
            "tenant_id": str(st_id),
        },
        settings={
            "opportunity_models": models or ["job", "membership"],
            "placeholder_emails": [f"noemail@{st_id}.example"],
        },
        base_url=emu.url,
        auth_url=emu.url + "/connect/token",
    )


def q(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute(sql, params).fetchall()


def expected_external_ids(emu: Any, st_id: int, resource: str) -> set[str]:
    """What a 90-day first sync must bring: every record modified in the last 90 days."""
    from datetime import timedelta

    from models.normalize import parse_timestamp

    now = emu.state.now()
    cutoff = (now - timedelta(days=90)).date()
    return {
        str(r["id"])
        for r in emu.state.get_records(st_id, resource)
        if parse_timestamp(r["modifiedOn"]).date() >= cutoff  # type: ignore[union-attr]
    }


def opportunity_ids(slug: str, model: str) -> set[str]:
    return {
        r[0]
        for r in q(
            "SELECT o.external_id FROM opportunity o JOIN tenant t ON t.id = o.tenant_id "
            "WHERE t.slug = %s AND o.model = %s",
            slug,
            model,
        )
    }


def snapshot(slug: str) -> list[tuple[Any, ...]]:
    """Every stored field of a tenant's opportunities, in external id order."""
    return q(
        "SELECT o.external_id, o.external_updated_at, o.email, o.phone, o.first_name, "
        "o.last_name, o.status, o.details FROM opportunity o JOIN tenant t ON t.id = o.tenant_id "
        "WHERE t.slug = %s ORDER BY o.external_id",
        slug,
    )


def fix_credentials(integration_id: int, st_id: int) -> None:
    """What the operator does before pressing Retry: store the right client secret."""
    from crmsync import crypto

    creds = {
        "client_id": f"cid.{st_id}",
        "client_secret": f"cs1.{st_id}",
        "app_key": APP_KEY,
        "tenant_id": str(st_id),
    }
    with db.connect() as conn:
        conn.execute(
            "UPDATE integration SET credentials = %s WHERE id = %s",
            (crypto.encrypt_json(creds), integration_id),
        )


def test_sync_all_tenants_syncs_every_tenant_and_names_the_failing_one(emulator: Any) -> None:
    add_st_tenant(emulator, "alpha", 101)
    add_st_tenant(emulator, "bravo", 102)
    add_st_tenant(emulator, "broken", 103, secret="cs1.wrong")
    state = asyncio.run(sync_all_tenants(return_state=True))  # type: ignore[call-overload]
    assert state.is_failed()
    assert "2 of 3 tenants synced" in state.message and "broken" in state.message
    assert opportunity_ids("alpha", "job") == expected_external_ids(emulator, 101, "jobs")
    assert opportunity_ids("alpha", "membership") == expected_external_ids(
        emulator, 101, "memberships"
    )
    assert opportunity_ids("bravo", "job") == expected_external_ids(emulator, 102, "jobs")
    assert opportunity_ids("broken", "job") == set()
    ((status, errors),) = q(
        "SELECT r.status, r.errors FROM sync_run r JOIN tenant t ON t.id = r.tenant_id WHERE t.slug = 'broken'"
    )
    assert status == "failed" and "AuthError" in str(errors)
    assert "cs1.wrong" not in str(errors)


def test_second_run_of_an_unchanged_tenant_creates_and_updates_nothing(emulator: Any) -> None:
    add_st_tenant(emulator, "alpha", 101)
    first = asyncio.run(sync_tenant("alpha"))
    second = asyncio.run(sync_tenant("alpha"))
    pulls = lambda summary: [c for k, c in summary["counts"].items() if k != "push"]  # noqa: E731
    created = sum(c["created"] for c in pulls(first))
    assert created == len(expected_external_ids(emulator, 101, "jobs")) + len(
        expected_external_ids(emulator, 101, "memberships")
    )
    assert all(c["created"] == 0 and c["updated"] == 0 for c in pulls(second)), second


def test_a_changed_job_is_updated_on_the_next_run(emulator: Any) -> None:
    add_st_tenant(emulator, "delta", 104)
    asyncio.run(sync_tenant("delta"))
    job = sorted(expected_external_ids(emulator, 104, "jobs"))[0]
    emulator.state.upsert_record(104, "jobs", {"id": int(job), "jobStatus": "Canceled"})
    summary = asyncio.run(sync_tenant("delta"))
    assert summary["counts"]["st-main:jobs"]["updated"] == 1
    assert q("SELECT status FROM opportunity WHERE external_id = %s AND model = 'job'", job) == [
        ("Canceled",)
    ]


def test_a_new_estimate_moves_the_job_external_updated_at(emulator: Any) -> None:
    add_st_tenant(emulator, "delta", 104, models=["job"])
    asyncio.run(sync_tenant("delta"))
    job = sorted(expected_external_ids(emulator, 104, "jobs"))[1]
    emulator.state.advance_clock(3600)
    est = emulator.state.upsert_record(
        104,
        "estimates",
        {"jobId": int(job), "name": "New quote", "status": {"value": 0, "name": "Open"}},
    )
    asyncio.run(sync_tenant("delta"))
    ((updated_at, details),) = q(
        "SELECT external_updated_at, details FROM opportunity WHERE external_id = %s", job
    )
    assert details["estimates:1:id"] == est["id"]
    from models.normalize import parse_timestamp

    assert updated_at == parse_timestamp(est["modifiedOn"])


def test_sync_killed_mid_stream_then_rerun_ends_with_exactly_the_records_of_a_clean_run(
    emulator: Any,
) -> None:
    """SIGKILL a real `crmsync sync` process after its first committed page, rerun, compare."""
    from prefect.settings import PREFECT_API_URL

    add_st_tenant(emulator, "killed", 105, models=["job"])
    add_st_tenant(emulator, "clean", 105, models=["job"])  # the same CRM tenant, synced cleanly
    emulator.state.arm_fault("latency", route="*/export/jobs", times=None, latency_ms=300)
    # One 15-record page per chunk, so the kill can land between two committed chunks of jobs.
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "CRMSYNC_CHUNK_RECORDS": "15",
    }
    cmd = [sys.executable, "-m", "ops", "sync", "--tenant", "killed"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if q(
                "SELECT 1 FROM sync_cursor c JOIN tenant t ON t.id = c.tenant_id "
                "WHERE t.slug = 'killed' AND c.stream = 'jobs'"
            ):
                break
            assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
            time.sleep(0.05)
        else:
            pytest.fail("the sync never committed a jobs page")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = len(opportunity_ids("killed", "job"))
    total = len(expected_external_ids(emulator, 105, "jobs"))
    assert 0 < partial < total, "the kill must land in the middle of the jobs stream"
    emulator.state.clear_faults()
    asyncio.run(sync_tenant("killed"))
    asyncio.run(sync_tenant("clean"))
    statuses = q(
        "SELECT r.status FROM sync_run r JOIN tenant t ON t.id = r.tenant_id "
        "WHERE t.slug = 'killed' ORDER BY r.id"
    )
    assert statuses == [("crashed",), ("completed",)], "the killed run is closed by the next one"

    killed, clean = snapshot("killed"), snapshot("clean")
    assert len(killed) == total
    assert [r[0] for r in killed] == sorted({r[0] for r in killed}), "no duplicates"
    strip = lambda rows: [r[:7] for r in rows]  # noqa: E731
    assert strip(killed) == strip(clean)


def test_a_retried_round_runs_only_the_tenants_that_failed(emulator: Any) -> None:
    add_st_tenant(emulator, "alpha", 101)
    broken = add_st_tenant(emulator, "broken", 103, secret="cs1.wrong")
    first = asyncio.run(sync_all_tenants(round_id="round-1", return_state=True))  # type: ignore[call-overload]
    assert first.is_failed() and "broken" in first.message
    fix_credentials(broken, 103)  # then the operator presses Retry
    second = asyncio.run(sync_all_tenants(round_id="round-1", return_state=True))  # type: ignore[call-overload]
    assert second.is_completed(), second.message
    assert "1 already completed earlier in this round" in second.message
    runs = q(
        "SELECT t.slug, count(*) FROM sync_run r JOIN tenant t ON t.id = r.tenant_id "
        "WHERE r.round_id = 'round-1' GROUP BY 1 ORDER BY 1"
    )
    assert runs == [("alpha", 1), ("broken", 2)]


def test_a_tenant_already_being_synced_is_not_started_twice(emulator: Any) -> None:
    from crmsync import sync

    add_st_tenant(emulator, "alpha", 101)
    held = sync.start_run("alpha", None)
    try:
        summary = asyncio.run(sync_tenant("alpha"))
        assert summary["status"] == "skipped"
        assert opportunity_ids("alpha", "job") == set()
    finally:
        sync.finish_run(held, {}, {})
    assert asyncio.run(sync_tenant("alpha"))["status"] == "completed"


def test_each_run_records_which_crm_records_it_created_and_updated(emulator: Any) -> None:
    add_st_tenant(emulator, "delta", 104, models=["job"])
    first = asyncio.run(sync_tenant("delta"))
    job = sorted(expected_external_ids(emulator, 104, "jobs"))[2]
    emulator.state.upsert_record(104, "jobs", {"id": int(job), "jobStatus": "Hold"})
    second = asyncio.run(sync_tenant("delta"))
    created = q(
        "SELECT count(*) FROM sync_lineage WHERE run_id = %s AND action = 'created' "
        "AND stream = 'jobs'",
        first["run_id"],
    )
    assert created == [(len(expected_external_ids(emulator, 104, "jobs")),)]
    assert q(
        "SELECT external_id, action FROM sync_lineage WHERE run_id = %s AND stream = 'jobs'",
        second["run_id"],
    ) == [(job, "updated")]


def test_backfill_rereads_an_integration_and_duplicates_nothing(emulator: Any) -> None:
    from flows.sync import backfill

    add_st_tenant(emulator, "delta", 104, models=["job"])
    asyncio.run(sync_tenant("delta", lookback_days=1))
    recent = opportunity_ids("delta", "job")
    assert recent < expected_external_ids(emulator, 104, "jobs"), "1 day reads only recent jobs"
    summary = asyncio.run(backfill("delta", "st-main", days=90))
    assert opportunity_ids("delta", "job") == expected_external_ids(emulator, 104, "jobs")
    assert summary["counts"]["st-main:jobs"]["updated"] == 0
    assert q("SELECT count(*) - count(DISTINCT external_id) FROM opportunity") == [(0,)]


def test_pages_merged_in_parts_end_with_exactly_the_records_of_whole_pages(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CRM page larger than merge_chunk_records is mapped and merged in parts (bounded memory);
    a failure after a committed part leaves the page's cursor where it was, and the rerun ends
    identical to a sync of whole pages."""
    from crmsync import sync as steps
    from crmsync.settings import get_settings

    add_st_tenant(emulator, "whole", 104, models=["job"])
    add_st_tenant(emulator, "parts", 104, models=["job"])
    asyncio.run(sync_tenant("whole"))

    monkeypatch.setattr(get_settings(), "merge_chunk_records", 4)  # pages of 15 → 4 parts
    real_merge = steps.merge
    calls = {"jobs": 0}

    def failing_merge(batch: Any, run_id: int | None) -> Any:
        if batch.stream == "jobs":
            calls["jobs"] += 1
            if calls["jobs"] == 2:
                raise RuntimeError("merge of the second part fails")
        return real_merge(batch, run_id)

    monkeypatch.setattr(steps, "merge", failing_merge)
    with pytest.raises(Exception, match="second part fails"):
        asyncio.run(sync_tenant("parts"))
    cursor = q(
        "SELECT c.cursor FROM sync_cursor c JOIN tenant t ON t.id = c.tenant_id "
        "WHERE t.slug = 'parts' AND c.stream = 'jobs'"
    )
    assert cursor == [], "a part that is not the page's last must not commit the cursor"
    assert 0 < len(opportunity_ids("parts", "job")) <= 4  # the first part did merge

    monkeypatch.setattr(steps, "merge", real_merge)
    asyncio.run(sync_tenant("parts"))

    assert snapshot("parts") == snapshot("whole")
    assert len(snapshot("parts")) == len(expected_external_ids(emulator, 104, "jobs"))


def test_a_batched_round_names_only_the_tenants_that_failed_and_its_retry_runs_only_those(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dispatch=deployment with batch_size > 1: a batch run fails when one of its tenants fails,
    but the round blames (and its Retry re-runs) only the tenants whose run did not complete.

    The sync-tenant-batch deployment run is replaced by the same flow as a subflow (what the
    worker would run), so the dispatcher's own bookkeeping is what is under test."""
    import flows.sync as flows_sync

    async def batch_as_subflow(
        slugs: list[str], round_id: str, max_concurrency: int, attempt: int
    ) -> Any:
        return await sync_all_tenants(  # type: ignore[call-overload]
            max_concurrency, slugs, "subflow", round_id, return_state=True
        )

    monkeypatch.setattr(flows_sync, "_run_batch", batch_as_subflow)
    for slug, st in (("b-one", 101), ("b-two", 102), ("b-three", 104)):
        add_st_tenant(emulator, slug, st)
    broken = add_st_tenant(emulator, "b-broken", 103, secret="cs1.wrong")
    slugs = ["b-broken", "b-one", "b-three", "b-two"]
    first = asyncio.run(
        sync_all_tenants(  # type: ignore[call-overload]
            tenants=slugs,
            dispatch="deployment",
            batch_size=2,
            round_id="round-b",
            return_state=True,
        )
    )
    assert first.is_failed()
    assert first.message.endswith("failed: b-broken"), first.message  # not b-one, its batch-mate

    fix_credentials(broken, 103)
    second = asyncio.run(
        sync_all_tenants(  # type: ignore[call-overload]
            tenants=slugs,
            dispatch="deployment",
            batch_size=2,
            round_id="round-b",
            return_state=True,
        )
    )
    assert second.is_completed(), second.message
    runs = q(
        "SELECT t.slug, count(*) FROM sync_run r JOIN tenant t ON t.id = r.tenant_id "
        "WHERE r.round_id = 'round-b' GROUP BY 1 ORDER BY 1"
    )
    assert runs == [("b-broken", 2), ("b-one", 1), ("b-three", 1), ("b-two", 1)]
