"""Health rules per integration (issue 12): what operators of Airbyte, Hightouch or Census rely
on. An integration failing sync after sync is paused automatically, with the reason and time
recorded and a notification; a sync that rejects a large share of what it fetched raises one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from crmsync import db, health
from crmsync.settings import get_settings
from tests.factories import make_integration, make_tenant
from tests.sinks import webhook_sink

pytestmark = pytest.mark.usefixtures("clean_db")

AUTH_ERROR = "AuthError: servicetitan: POST /connect/token -> HTTP 401: bad credentials"


def sync_run(
    tenant: int, counts: dict[str, Any] | None = None, errors: dict[str, str] | None = None
) -> int:
    """A finished tenant run as finish_run() records it."""
    with db.connect() as conn:
        (run_id,) = conn.execute(
            "INSERT INTO sync_run (tenant_id, status, finished_at, counts, errors) "
            "VALUES (%s, 'completed', now(), %s::jsonb, %s::jsonb) RETURNING id",
            (tenant, orjson.dumps(counts or {}).decode(), orjson.dumps(errors or {}).decode()),
        ).fetchone()  # type: ignore[misc]
        conn.commit()
    return int(run_id)


def failed(tenant: int, name: str = "st-main", error: str = AUTH_ERROR) -> int:
    return sync_run(tenant, errors={name: error})


def ok(tenant: int, name: str = "st-main", fetched: int = 5, rejected: int = 0) -> int:
    return sync_run(tenant, counts={f"{name}:jobs": {"fetched": fetched, "rejected": rejected}})


def state(integration: int) -> tuple[bool, str | None, Any]:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT paused, paused_reason, paused_at FROM integration WHERE id = %s",
            (integration,),
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


@pytest.fixture
def acme() -> Iterator[tuple[int, int]]:
    tenant = make_tenant("acme")
    yield tenant, make_integration(tenant)


def test_an_integration_is_paused_after_five_consecutive_failed_syncs(
    acme: tuple[int, int],
) -> None:
    tenant, integ = acme
    assert health.HealthPolicy().pause_after_failures == 5
    for _ in range(4):
        assert health.check_run(failed(tenant)) == []
    assert state(integ)[0] is False
    (event,) = health.check_run(failed(tenant, error="AuthError: the last one"))
    assert (event.kind, event.integration) == ("paused", "st-main")
    assert "5 consecutive failed syncs" in event.message and "the last one" in event.message
    paused, reason, at = state(integ)
    assert paused and at is not None
    assert (
        reason is not None and "5 consecutive failed syncs" in reason and "the last one" in reason
    )
    assert health.check_run(failed(tenant)) == [], "paused once, notified once"


def test_a_successful_sync_resets_the_failure_count(acme: tuple[int, int]) -> None:
    tenant, integ = acme
    for _ in range(4):
        health.check_run(failed(tenant))
    health.check_run(ok(tenant))
    for _ in range(4):
        assert health.check_run(failed(tenant)) == []
    assert state(integ)[0] is False


def test_a_stream_failure_is_a_failed_sync_and_other_integrations_runs_do_not_count(
    acme: tuple[int, int],
) -> None:
    tenant, integ = acme
    other = make_integration(tenant, name="lp-main")
    for i in range(5):
        run = sync_run(
            tenant,
            counts={"st-main:customers": {"fetched": 3}, "lp-main:prospects": {"fetched": 2}},
            errors={"st-main:jobs": "TransientError: servicetitan: GET /jobs -> HTTP 503"},
        )
        if i == 2:
            sync_run(tenant)  # a run that synced neither (both skipped) breaks nothing
        events = health.check_run(run)
    assert [e.integration for e in events] == ["st-main"]
    assert "st-main:jobs" in events[0].message
    assert state(integ)[0] is True and state(other)[0] is False


def test_pause_after_failures_is_configurable(
    acme: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant, integ = acme
    monkeypatch.setenv("CRMSYNC_PAUSE_AFTER_FAILURES", "2")
    health.check_run(failed(tenant))
    assert [e.kind for e in health.check_run(failed(tenant))] == ["paused"]
    assert "2 consecutive failed syncs" in (state(integ)[1] or "")


def test_resume_clears_the_auto_pause_and_the_count_starts_over(acme: tuple[int, int]) -> None:
    from ops.cli import app

    tenant, integ = acme
    for _ in range(5):
        health.check_run(failed(tenant))
    assert state(integ)[0] is True
    result = CliRunner().invoke(app, ["integrations", "resume", "acme", "st-main"])
    assert result.exit_code == 0, result.output
    assert state(integ) == (False, None, None)
    for _ in range(4):
        assert health.check_run(failed(tenant)) == [], "the failures before the pause are gone"
    assert [e.kind for e in health.check_run(failed(tenant))] == ["paused"]


def test_a_rejected_rate_above_the_threshold_raises_a_notification(
    acme: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant, integ = acme
    policy = health.HealthPolicy()
    assert (policy.rejected_alert_rate, policy.rejected_alert_min_fetched) == (0.2, 20)
    (event,) = health.check_run(ok(tenant, fetched=30, rejected=7))
    assert (event.kind, event.integration) == ("rejected_rate", "st-main")
    assert "7 of 30" in event.message and "23%" in event.message
    assert health.check_run(ok(tenant, fetched=19, rejected=19)) == [], "too few to judge"
    assert health.check_run(ok(tenant, fetched=100, rejected=20)) == [], "not above 20 %"
    monkeypatch.setenv("CRMSYNC_REJECTED_ALERT_RATE", "0.1")
    assert [e.kind for e in health.check_run(ok(tenant, fetched=100, rejected=20))] == [
        "rejected_rate"
    ]
    assert state(integ)[0] is False, "a rejected rate notifies, it does not pause"


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_sync_tenant_pauses_an_integration_that_keeps_failing_and_notifies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from flows.sync import sync_tenant
    from sandbox.servicetitan import TenantSpec, run_emulator

    monkeypatch.setenv("CRMSYNC_PAUSE_AFTER_FAILURES", "2")
    spec = TenantSpec(
        tenant_id=301, client_id="cid.301", client_secret="cs1.301", app_key="ak1.h", seed=3
    )
    with run_emulator([spec], port=0) as emu, webhook_sink() as hook:
        block = CustomWebhookNotificationBlock(
            name="ops",
            url=hook.url,
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
            headers=None,
            cookies=None,
        )
        block.save("crmsync-health", overwrite=True)
        monkeypatch.setattr(get_settings(), "notification_block", "custom-webhook/crmsync-health")
        integ = make_integration(
            make_tenant("sick"),
            credentials={
                "client_id": "cid.301",
                "client_secret": "cs1.wrong",
                "app_key": "ak1.h",
                "tenant_id": "301",
            },
            settings={"opportunity_models": ["job"]},
            base_url=emu.url,
            auth_url=emu.url + "/connect/token",
        )

        async def run() -> Any:
            return await sync_tenant("sick", return_state=True)  # type: ignore[call-overload]

        seen = _Collect()
        flow_logs = logging.getLogger("prefect.flow_runs")  # Prefect's run logger
        flow_logs.addHandler(seen)
        try:
            first, second = asyncio.run(run()), asyncio.run(run())
        finally:
            flow_logs.removeHandler(seen)
        assert first.is_failed() and second.is_failed()
        paused, reason, _ = state(integ)
        assert paused and reason and "2 consecutive failed syncs" in reason
        warnings = [r.getMessage() for r in seen.records if r.levelno == logging.WARNING]
        assert any("st-main" in w and "paused" in w and "AuthError" in w for w in warnings)
        (post,) = hook.posts
        assert "st-main" in post["subject"] and "AuthError" in post["body"]
        artifact = asyncio.run(_artifact(second.state_details.flow_run_id, "health-sick"))
        assert artifact is not None and "2 consecutive failed syncs" in artifact
        third = asyncio.run(run())
        assert third.is_completed(), "a paused integration is not synced: nothing fails"
        assert len(hook.posts) == 1


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


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
