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
from crmsync.settings import PushPolicy, get_settings
from flows.push import push_failures_report, retry_failed_pushes
from ops.cli import app
from sandbox.servicetitan import TenantSpec, run_emulator
from tests.factories import make_integration, make_tenant
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
from tests.sinks import smtp_sink, webhook_sink

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


# -- seed 003: "Once every several hours, Hover Lead will report by email (using the email address
# that the user has signed in with) a summary with the integrations and leads that have failed"


def failing_tenant(emu: Any, slug: str, index: int, contact_email: str | None = None) -> int:
    """A tenant whose campaign message became not_integrated (the CRM answered 503, one attempt
    allowed); returns the activity id."""
    tenant, integ = st_tenant(emu, slug, 201, push_outgoing_campaign_messages="job")
    act = activity(tenant, synced_contact(tenant, integ, job_of(emu, 201, index)))
    if contact_email:
        with db.connect() as conn:
            conn.execute(
                "UPDATE tenant SET contact_email = %s WHERE id = %s", (contact_email, tenant)
            )
            conn.commit()
    emu.state.arm_fault("status", route="*/notes", times=None, status=503)
    push.plan(tenant)
    counts = push.deliver(tenant, policy=PushPolicy(max_attempts=1, retry_delay_seconds=0))
    assert counts.not_integrated == 1
    return act


async def _artifact(flow_run_id: Any, key: str) -> str | None:
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
    return str(found[0].data) if found else None


def run_report(hours: float = 1) -> tuple[dict[str, Any], Any]:
    async def call() -> Any:
        return await push_failures_report(hours, return_state=True)  # type: ignore[call-overload]

    state = asyncio.run(call())
    assert state.is_completed(), state.message
    return state.result(), state.state_details.flow_run_id


def test_push_failures_report_flow_keeps_a_summary_per_tenant_listing_each_failed_activity(
    emulator: Any,
) -> None:
    acme = failing_tenant(emulator, "acme", 0)
    bravo = failing_tenant(emulator, "bravo", 1)
    make_integration(make_tenant("calm"))
    result, flow_run_id = run_report()
    assert result["failures"] == 2
    assert result["tenants"] == {"acme": 1, "bravo": 1}
    summary = asyncio.run(_artifact(flow_run_id, "push-failures-acme"))
    assert summary is not None
    (line,) = [row for row in summary.splitlines() if row.startswith(f"| {acme} |")]
    for expected in ("Ann Lee", "outbound_campaign_message (sms)", "st-main", "not_integrated"):
        assert expected in line
    assert "503" in line and line.rstrip(" |").split(" | ")[5] == "1", "attempts"
    assert f"| {bravo} |" not in summary, "each tenant sees only its own"
    assert asyncio.run(_artifact(flow_run_id, "push-failures-bravo")) is not None
    assert asyncio.run(_artifact(flow_run_id, "push-failures-calm")) is None
    assert "| acme | st-main | not_integrated | 1 |" in (
        asyncio.run(_artifact(flow_run_id, "push-failures")) or ""
    ), "the operators' overview stays"


def test_push_failures_report_flow_emails_each_tenant_summary_to_its_contact_address(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = failing_tenant(emulator, "acme", 2, contact_email="owner@acme.example")
    failing_tenant(emulator, "bravo", 3)  # no contact address: artifact only
    with smtp_sink() as smtp:
        monkeypatch.setenv("CRMSYNC_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("CRMSYNC_SMTP_PORT", str(smtp.server_address[1]))
        monkeypatch.setenv("CRMSYNC_SMTP_USER", "hub")
        monkeypatch.setenv("CRMSYNC_SMTP_PASSWORD", "smtp-secret")
        monkeypatch.setenv("CRMSYNC_SMTP_FROM", "crmsync@hub.example")
        result, _ = run_report()
    assert result["emailed"] == ["acme"]
    (mail,) = smtp.mails
    assert mail.recipients == ["owner@acme.example"]
    assert mail.sender == "crmsync@hub.example" and mail.auth, "signed in to the SMTP server"
    assert mail.message["To"] == "owner@acme.example"
    assert "1 push" in mail.message["Subject"] and "Acme" in mail.message["Subject"]
    assert f"| {acme} |" in mail.text and "503" in mail.text and "st-main" in mail.text


def test_push_failures_report_flow_sends_each_tenant_summary_through_the_notification_block(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    acme = failing_tenant(emulator, "acme", 4)
    with webhook_sink() as hook:
        block = CustomWebhookNotificationBlock(
            name="ops",
            url=hook.url,
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
            headers=None,
            cookies=None,
        )
        block.save("crmsync-push-report", overwrite=True)
        monkeypatch.setattr(
            get_settings(), "notification_block", "custom-webhook/crmsync-push-report"
        )
        run_report()
    (post,) = hook.posts
    assert "acme" in post["subject"].lower() and f"| {acme} |" in post["body"]


def test_retry_failed_pushes_flow_requeues_not_integrated_pushes_and_delivers_them_once(
    emulator: Any,
) -> None:
    failing_tenant(emulator, "acme", 5)
    emulator.state.clear_faults()
    result = asyncio.run(retry_failed_pushes("acme"))
    assert (result["requeued"], result["delivered"]) == (1, 1)
    again = asyncio.run(retry_failed_pushes("acme", integration="st-main"))
    assert (again["requeued"], again["delivered"]) == (0, 0)
    notes = hatch_notes(emulator, 201, "job", job_of(emulator, 201, 5)["id"])
    assert len(notes) == 1


def test_a_failure_summary_that_cannot_be_emailed_fails_the_run_after_every_tenant_was_tried(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.push
    from tasks.push import email_push_failures

    monkeypatch.setattr(
        flows.push, "email_push_failures", email_push_failures.with_options(retries=0)
    )
    failing_tenant(emulator, "acme", 6, contact_email="owner@acme.example")
    failing_tenant(emulator, "bravo", 7, contact_email="owner@bravo.example")
    with smtp_sink() as smtp:
        port = smtp.server_address[1]
    monkeypatch.setenv("CRMSYNC_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CRMSYNC_SMTP_PORT", str(port))  # nothing listens there any more

    async def call() -> Any:
        return await push_failures_report(1, return_state=True)  # type: ignore[call-overload]

    state = asyncio.run(call())
    assert state.is_failed()
    assert "acme (email)" in str(state.message) and "bravo (email)" in str(state.message)
    flow_run_id = state.state_details.flow_run_id
    for slug in ("acme", "bravo"):
        assert asyncio.run(_artifact(flow_run_id, f"push-failures-{slug}")) is not None
