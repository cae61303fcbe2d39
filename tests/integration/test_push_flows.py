"""The push flows themselves, under a Prefect API: retry-failed-pushes (requeue, and a chosen
backlog on purpose), push-failures-report (per tenant: artifact, email), and the command line
around them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.servicetitan import DEFAULT_TOKEN_CACHE
from crmsync import db, push
from crmsync.providers import servicetitan as st_provider
from flows.push import retry_failed_pushes
from ops.cli import app
from sandbox.servicetitan import TenantSpec, run_emulator
from tests.integration.test_push import (
    CONTENT,
    activity,
    hatch_notes,
    job_of,
    planned_activities,
    set_integration,
    st_tenant,
    synced_contact,
)

pytestmark = [pytest.mark.usefixtures("clean_db", "prefect_api"), pytest.mark.slow]
APP_KEY = "ak1.push"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    specs = [
        TenantSpec(
            tenant_id=201,
            client_id="cid.201",
            client_secret="cs1.201",
            app_key=APP_KEY,
            customers=5,
            jobs=8,
            memberships=0,
            seed=201,
        )
    ]
    with run_emulator(specs, port=0) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _fresh(emulator: Any) -> Iterator[None]:
    emulator.state.reset()
    st_provider._clients.clear()
    DEFAULT_TOKEN_CACHE.clear()
    yield
    emulator.state.clear_faults()


def disabled_backlog(emu: Any, index: int) -> tuple[int, int, dict[str, Any], list[int]]:
    """A tenant whose integration was disabled while two activities were recorded, then
    re-enabled; returns tenant, integration, job and the two activity ids."""
    tenant, integ = st_tenant(
        emu, "acme", 201, push_outgoing_campaign_messages="customer", **CONTENT
    )
    job = job_of(emu, 201, index)
    contact = synced_contact(tenant, integ, job)
    set_integration(integ, enabled=False)
    ids = [activity(tenant, contact, body=f"backlog {i}") for i in range(2)]
    set_integration(integ, enabled=True)
    assert push.push_tenant(tenant).delivered == 0, "the cutoff leaves them out"
    return tenant, integ, job, ids


def created_at(activity_id: int) -> datetime:
    with db.connect() as conn:
        (at,) = conn.execute(
            "SELECT created_at FROM activity WHERE id = %s", (activity_id,)
        ).fetchone()  # type: ignore[misc]
    return at  # type: ignore[no-any-return]


def test_retry_failed_pushes_flow_pushes_a_chosen_backlog_on_purpose(emulator: Any) -> None:
    tenant, _, job, (first, second) = disabled_backlog(emulator, 0)
    result = asyncio.run(
        retry_failed_pushes(
            "acme", integration="st-main", since=created_at(first), until=created_at(second)
        )
    )
    assert result["backlog"] == 1 and result["delivered"] == 1
    assert planned_activities(tenant) == [first]
    (note,) = hatch_notes(emulator, 201, "customer", job["customerId"])
    assert "backlog 0" in note["text"]


def test_retry_failed_pushes_flow_refuses_a_backlog_without_an_integration() -> None:
    async def call() -> Any:
        return await retry_failed_pushes(  # type: ignore[call-overload]
            "acme", since=datetime.now().astimezone(), return_state=True
        )

    state = asyncio.run(call())
    assert state.is_failed() and "integration" in str(state.message)


def test_push_backlog_command_plans_and_delivers_the_chosen_window(emulator: Any) -> None:
    tenant, _, job, (first, second) = disabled_backlog(emulator, 1)
    until = created_at(second).isoformat()
    since = created_at(first).isoformat()
    result = CliRunner().invoke(
        app, ["push-backlog", "acme", "st-main", "--since", since, "--until", until]
    )
    assert result.exit_code == 0, result.output
    assert "1 push(es) planned" in result.output
    assert planned_activities(tenant) == [first]
    assert len(hatch_notes(emulator, 201, "customer", job["customerId"])) == 1
    bad = CliRunner().invoke(
        app, ["push-backlog", "acme", "nope", "--since", since, "--until", until]
    )
    assert bad.exit_code == 2 and "no integration 'nope'" in bad.output
