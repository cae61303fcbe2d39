"""Seed 003 points 1-2: background delivery by default, real-time on request; and the push
worker, the background path that delivers within a second or so."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.servicetitan import DEFAULT_TOKEN_CACHE
from crmsync import db
from crmsync.providers import servicetitan as st_provider
from crmsync.settings import PushPolicy
from sandbox.servicetitan import TenantSpec, run_emulator
from tests.integration.test_push import (
    APP_KEY,
    activity,
    hatch_notes,
    job_of,
    ledger,
    run,
    set_integration,
    st_tenant,
    synced_contact,
)

pytestmark = pytest.mark.usefixtures("clean_db")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    spec = TenantSpec(
        tenant_id=201,
        client_id="cid.201",
        client_secret="cs1.201",
        app_key=APP_KEY,
        customers=5,
        jobs=8,
        memberships=0,
        seed=201,
    )
    with run_emulator([spec], port=0) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _fresh(emulator: Any) -> Iterator[None]:
    emulator.state.reset()
    st_provider._clients.clear()
    DEFAULT_TOKEN_CACHE.clear()
    yield
    emulator.state.clear_faults()


def customer_notes(emu: Any, job: dict[str, Any]) -> list[dict[str, Any]]:
    return hatch_notes(emu, 201, "customer", job["customerId"])


def settled(tenant: int, within: float = 10) -> list[tuple[Any, ...]]:
    """The tenant's ledger once no row is being sent any more."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        rows = ledger(tenant)
        if all(status != "sending" for _, status, _ in rows):
            return rows
        time.sleep(0.05)
    raise AssertionError(f"still sending after {within} s: {ledger(tenant)}")


def test_background_delivery_stays_the_default(emulator: Any) -> None:
    tenant, integ = st_tenant(emulator, "acme", 201, push_outgoing_campaign_messages="customer")
    job = job_of(emulator, 201, 0)
    activity(tenant, synced_contact(tenant, integ, job))
    assert ledger(tenant) == [] and customer_notes(emulator, job) == []
    assert run(tenant).delivered == 1


def test_a_real_time_integration_delivers_before_record_activity_returns(emulator: Any) -> None:
    tenant, integ = st_tenant(
        emulator, "acme", 201, push_outgoing_campaign_messages="customer", real_time=True
    )
    job = job_of(emulator, 201, 1)
    activity(tenant, synced_contact(tenant, integ, job))
    assert ledger(tenant) == [("customer_note", "delivered", 1)]
    assert len(customer_notes(emulator, job)) == 1
    assert run(tenant).delivered == 0, "nothing left for the background"
    assert len(customer_notes(emulator, job)) == 1


def test_a_real_time_integration_that_is_paused_or_disabled_delivers_nothing_at_once(
    emulator: Any,
) -> None:
    tenant, integ = st_tenant(
        emulator, "acme", 201, push_outgoing_campaign_messages="customer", real_time=True
    )
    job = job_of(emulator, 201, 2)
    contact = synced_contact(tenant, integ, job)
    set_integration(integ, paused=True)
    activity(tenant, contact, body="held")
    set_integration(integ, paused=False, enabled=False)
    activity(tenant, contact, body="left out")
    assert customer_notes(emulator, job) == []
    assert [status for _, status, _ in ledger(tenant)] in ([], ["pending"])


def test_a_slow_crm_makes_real_time_fall_back_to_the_outbox_and_the_note_is_written_once(
    emulator: Any,
) -> None:
    tenant, integ = st_tenant(
        emulator,
        "acme",
        201,
        push_outgoing_campaign_messages="customer",
        real_time=True,
        real_time_timeout_seconds=0.5,
    )
    job = job_of(emulator, 201, 3)
    contact = synced_contact(tenant, integ, job)
    emulator.state.arm_fault("latency", route="*/notes", times=1, latency_ms=2500, phase="after")
    started = time.monotonic()
    activity(tenant, contact)
    assert time.monotonic() - started < 2.0, "the caller waited for the timeout, not the CRM"
    assert run(tenant).delivered == 0, "the in-flight claim keeps the background off the row"
    assert settled(tenant) == [("customer_note", "delivered", 1)]
    assert run(tenant).delivered == 0
    assert len(customer_notes(emulator, job)) == 1


def test_a_failed_real_time_push_is_retried_by_the_background(emulator: Any) -> None:
    tenant, integ = st_tenant(
        emulator, "acme", 201, push_outgoing_campaign_messages="customer", real_time=True
    )
    job = job_of(emulator, 201, 4)
    emulator.state.arm_fault("status", route="*/notes", times=1, status=400)
    activity(tenant, synced_contact(tenant, integ, job))
    assert ledger(tenant) == [("customer_note", "failed", 1)]
    assert run(tenant).delivered == 0, "retried a few minutes later (seed 003)"
    later = datetime.now(UTC) + timedelta(seconds=PushPolicy().retry_delay_seconds + 1)
    assert run(tenant, now=later).delivered == 1
    assert len(customer_notes(emulator, job)) == 1


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_push_worker_delivers_a_new_activity_within_seconds(emulator: Any) -> None:
    from prefect.settings import PREFECT_API_URL

    tenant, integ = st_tenant(emulator, "acme", 201, push_outgoing_campaign_messages="customer")
    job = job_of(emulator, 201, 5)
    contact = synced_contact(tenant, integ, job)
    env = {
        **os.environ,
        "DATABASE_URL": db.database_url(),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PYTHONUNBUFFERED": "1",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "ops", "push-worker", "--idle-sweep-seconds", "600"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert worker.stdout is not None
        deadline = time.monotonic() + 60
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = worker.stdout.readline()
            seen.append(line)
            if "listening" in line or not line:
                break
        assert any("listening" in line for line in seen), "".join(seen)
        time.sleep(1)  # its start-up sweep runs first
        started = time.monotonic()
        activity(tenant, contact, body="at once")
        while time.monotonic() - started < 10 and not customer_notes(emulator, job):
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        assert len(customer_notes(emulator, job)) == 1, f"no note after {elapsed:.1f} s"
        assert elapsed < 5, f"the note took {elapsed:.1f} s"
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
