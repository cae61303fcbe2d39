"""A full cycle under ~10 % injected CRM faults (429, 5xx, latency, dropped connections, token
expiry) ends, after recovery, with exactly the records of an undisturbed run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.servicetitan import DEFAULT_TOKEN_CACHE
from crmsync import db
from crmsync.providers import servicetitan as st_provider
from flows.sync import sync_tenant
from sandbox.servicetitan import TenantSpec, run_emulator
from tests.factories import make_integration, make_tenant

pytestmark = [pytest.mark.usefixtures("clean_db", "prefect_api"), pytest.mark.slow]
APP_KEY = "ak1.faults"


@pytest.fixture
def emulator() -> Iterator[Any]:
    spec = TenantSpec(
        tenant_id=501,
        client_id="cid.501",
        client_secret="cs1.501",
        app_key=APP_KEY,
        customers=25,
        jobs=40,
        memberships=10,
        seed=9,
    )
    with run_emulator([spec], port=0, export_page_size=6, fault_seed=3) as emu:
        yield emu


def snapshot(slug: str) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute(
            "SELECT o.model, o.external_id, o.external_updated_at, o.email, o.phone, o.first_name, "
            "o.last_name, o.status, o.details FROM opportunity o JOIN tenant t ON t.id = o.tenant_id "
            "WHERE t.slug = %s ORDER BY 1, 2",
            (slug,),
        ).fetchall()


def test_ten_percent_crm_faults_lose_and_double_nothing(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmsync.settings import get_settings

    monkeypatch.setattr(get_settings(), "http_timeout_seconds", 2.0)
    for slug in ("faulty", "clean"):
        make_integration(
            make_tenant(slug),
            credentials={
                "client_id": "cid.501",
                "client_secret": "cs1.501",
                "app_key": APP_KEY,
                "tenant_id": "501",
            },
            settings={"opportunity_models": ["job", "membership"]},
            base_url=emulator.url,
            auth_url=emulator.url + "/connect/token",
        )
    for kind, extra in (
        ("status", {"status": 429, "retry_after": 1}),
        ("status", {"status": 500}),
        ("status", {"status": 503}),
        ("latency", {"latency_ms": 3000}),  # longer than the client timeout: a read timeout
        ("drop_connection", {}),
        ("expire_token", {}),
    ):
        emulator.state.arm_fault(kind, route="*/export/*", rate=0.1 / 6 * 2, **extra)
    statuses = []
    for _ in range(6):  # the next scheduled runs: resume from the committed cursors
        statuses.append(asyncio.run(sync_tenant("faulty", return_state=True)).is_completed())  # type: ignore[call-overload]
        if statuses[-1]:
            break
    assert statuses[-1], f"never recovered: {statuses}"
    faults_seen = sum(1 for r in emulator.state.requests if getattr(r, "fault", None))
    emulator.state.clear_faults()
    st_provider._clients.clear()
    DEFAULT_TOKEN_CACHE.clear()
    asyncio.run(sync_tenant("clean"))
    faulty, clean = snapshot("faulty"), snapshot("clean")
    assert faults_seen > 5, "the cycle must really have met faults"
    assert len(faulty) == len(clean) > 40
    assert [r[:2] for r in faulty] == sorted({r[:2] for r in faulty}), "no duplicates"
    assert faulty == clean
