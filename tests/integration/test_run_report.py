"""What a tenant run tells its reader (issue 12): a table with the same columns on every row,
rejected records listed with their reasons, a visible state message and a WARNING when a run
rejected records."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from crmsync import db, report
from flows.sync import sync_tenant
from sandbox.leadperfection import LPClientSpec, run_emulator
from tests.factories import make_integration, make_tenant

pytestmark = [pytest.mark.usefixtures("clean_db", "prefect_api"), pytest.mark.slow]
SPEC = LPClientSpec("rep01", "api.user", "pw", "0f8fad5b-d9cb-469f-a165-70867728950e", prospects=20)
NO_LEADS = 100003  # the emulator's hand-written prospect without a lead (sandbox/leadperfection)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    with run_emulator([SPEC], port=0, freeze_clock=True) as running:
        yield running


def add_tenant(emu: Any, slug: str) -> int:
    return make_integration(
        make_tenant(slug),
        name="lp",
        provider="leadperfection",
        credentials={
            "clientid": SPEC.clientid,
            "username": SPEC.username,
            "password": SPEC.password,
            "appkey": SPEC.appkey,
        },
        base_url=emu.url,
    )


async def _artifacts(key: str) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )


def test_streams_with_nothing_new_leave_the_table_and_are_named_once() -> None:
    counts = {
        "st-main:customers": {"fetched": 0, "created": 0, "updated": 0, "rejected": 0},
        "st-main:jobs": {"fetched": 2, "created": 1, "updated": 1, "rejected": 0},
    }
    assert [r["stream"] for r in report.run_table(counts, {})] == ["jobs"]
    assert report.quiet_streams(counts, {}) == ["st-main:customers"]
    assert report.quiet_streams(counts, {"st-main:customers": "boom"}) == []
    quiet = {"lp-main:prospects": {"fetched": 0, "created": 0, "rejected": 0}}
    assert [r["integration"] for r in report.integration_rows({**counts, **quiet}, {})] == [
        "st-main",
        "lp-main",
    ], "crmsync status keeps an integration that had nothing new"


def test_every_row_of_the_run_table_has_every_column_and_the_push_and_error_rows_show() -> None:
    rows = report.run_table(
        {
            "st-main:customers": {"fetched": 3, "created": 0, "updated": 2, "rejected": 0},
            "st-main:jobs": {"fetched": 5, "created": 4, "updated": 0, "rejected": 1},
            "push": {"planned": 2, "delivered": 1, "deferred": 1, "failed": 0},
        },
        {"st-main:jobs": "RuntimeError: boom", "lp-main": "AuthError: bad password"},
    )
    without_activities = tuple(c for c in report.COLUMNS if c not in report.ACTIVITY_COLUMNS)
    assert [tuple(r) for r in rows] == [without_activities] * 4
    by_stream = {(r["integration"], r["stream"]): r for r in rows}
    assert by_stream[("st-main", "jobs")]["error"] == "RuntimeError: boom"
    assert by_stream[("st-main", "jobs")]["opportunities created"] == 4
    assert by_stream[("(all)", "push-activity")]["pushes deferred"] == 1
    assert by_stream[("lp-main", "(sign-in)")]["error"] == "AuthError: bad password"


def test_the_activity_columns_show_only_when_a_row_has_activity_figures() -> None:
    quiet = report.run_table({"st:jobs": {"fetched": 5, "created": 5}}, {})
    assert "CRM activities stored" not in quiet[0]
    busy = report.run_table(
        {"st:jobs": {"fetched": 5, "created": 5}, "st:job_notes": {"fetched": 2, "activities": 2}},
        {},
    )
    assert [tuple(r) for r in busy] == [report.COLUMNS] * 2
    assert {r["stream"]: r["CRM activities stored"] for r in busy} == {"jobs": 0, "job_notes": 2}


def test_a_run_that_rejected_records_says_so_in_its_state_log_and_artifacts(
    emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    add_tenant(emulator, "rejecting")
    with caplog.at_level(logging.WARNING):
        state = asyncio.run(sync_tenant("rejecting", return_state=True))  # type: ignore[call-overload]
    assert state.is_completed()
    with db.connect() as conn:
        (run_id, counts) = conn.execute(
            "SELECT id, counts FROM sync_run ORDER BY id DESC LIMIT 1"
        ).fetchone() or (0, {})
    rejected = sum(c["rejected"] for k, c in counts.items() if k != "push")
    assert rejected > 0, "the emulator's seed holds prospects LeadPerfection sends without a lead"
    message = f"{rejected} CRM record(s) rejected"
    assert state.message == f"{message}: see artifact rejected-rejecting"
    assert any(r.levelno == logging.WARNING and message in r.getMessage() for r in caplog.records)

    total, shown = report.rejected_records(run_id)
    assert total == rejected == len(shown)
    no_lead = [r for r in shown if r.record == f"cst:{NO_LEADS}"]
    assert no_lead and "missing Prospect.leads[0].id" in no_lead[0].reason, shown

    (artifact,) = asyncio.run(_artifacts("rejected-rejecting"))
    assert no_lead[0].reason[:40] in artifact.data
    (table,) = asyncio.run(_artifacts("sync-rejecting"))
    assert "CRM records rejected" in str(table.data)

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = asyncio.run(sync_tenant("rejecting", return_state=True))  # type: ignore[call-overload]
    assert again.is_completed() and "rejected" not in (again.message or "")
    with db.connect() as conn:
        (recounts,) = conn.execute(
            "SELECT counts FROM sync_run ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert sum(c["rejected"] for k, c in recounts.items() if k != "push") > 0, "sent again"
    assert not any("rejected" in r.getMessage() for r in caplog.records), (
        "the same bad records sent again are not news"
    )


def test_a_failed_run_leaves_no_untitled_result_artifact_with_a_storage_path(
    emulator: Any,
) -> None:
    tenant = make_tenant("failing")
    make_integration(
        tenant,
        name="lp",
        provider="leadperfection",
        credentials={
            "clientid": SPEC.clientid,
            "username": SPEC.username,
            "password": "not-the-password",
            "appkey": SPEC.appkey,
        },
        base_url=emulator.url,
    )
    state = asyncio.run(sync_tenant("failing", return_state=True))  # type: ignore[call-overload]
    assert state.is_failed() and "lp: authentication failed" not in state.message
    assert state.message.startswith("tenant failing: lp: AuthError")
    of_run = asyncio.run(_artifacts_of(state.state_details.flow_run_id))
    assert [a.key for a in of_run] == ["sync-failing"], "the run table, no untitled artifacts"
    assert not any("storage_key" in str(a.data) for a in of_run)


async def _artifacts_of(flow_run_id: Any) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )


def test_an_integration_whose_credentials_cannot_be_read_fails_alone(emulator: Any) -> None:
    tenant = make_tenant("half-broken")
    for name in ("lp-good", "lp-garbled"):
        make_integration(
            tenant,
            name=name,
            provider="leadperfection",
            credentials={
                "clientid": SPEC.clientid,
                "username": SPEC.username,
                "password": SPEC.password,
                "appkey": SPEC.appkey,
            },
            base_url=emulator.url,
        )
    with db.connect() as conn:
        conn.execute(
            "UPDATE integration SET credentials = %s WHERE name = 'lp-garbled'", (b"not fernet",)
        )
    state = asyncio.run(sync_tenant("half-broken", return_state=True))  # type: ignore[call-overload]
    assert state.is_failed()
    with db.connect() as conn:
        ((errors, counts),) = conn.execute(
            "SELECT errors, counts FROM sync_run ORDER BY id DESC LIMIT 1"
        ).fetchall()
    assert set(errors) == {"lp-garbled"}
    assert counts["lp-good:prospects"]["fetched"] > 0
