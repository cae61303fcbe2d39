"""A retried round marks the failures it made good: the earlier failed ``sync-tenant-<slug>``
runs of the round get the tag ``superseded`` once the same tenant's run in that round completed,
and tagging never decides the round's outcome."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crmsync import rounds
from flows.sync import sync_all_tenants
from tests.integration.test_sync_flow import add_st_tenant, emulator, fix_credentials

__all__ = ["emulator"]
pytestmark = [pytest.mark.usefixtures("clean_db", "prefect_api"), pytest.mark.slow]


async def _tenant_runs(round_id: str) -> dict[str, list[tuple[str, list[str]]]]:
    """Per flow run name, (state type, tags) of each run of the round, oldest first."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"round:{round_id}"])),
            sort=FlowRunSort.START_TIME_ASC,
        )
    found: dict[str, list[tuple[str, list[str]]]] = {}
    for run in runs:
        assert run.state_type is not None
        found.setdefault(run.name, []).append((run.state_type.value, sorted(run.tags)))
    return found


def test_a_retried_round_tags_the_tenants_earlier_failed_runs_superseded(emulator: Any) -> None:
    add_st_tenant(emulator, "alpha", 101)
    broken = add_st_tenant(emulator, "broken", 103, secret="cs1.wrong")
    first = asyncio.run(sync_all_tenants(round_id="round-s", return_state=True))  # type: ignore[call-overload]
    assert first.is_failed()
    before = asyncio.run(_tenant_runs("round-s"))
    assert before["sync-tenant-broken"] == [("FAILED", ["round:round-s"])], "no later run yet"

    fix_credentials(broken, 103)  # then the operator presses Retry
    second = asyncio.run(sync_all_tenants(round_id="round-s", return_state=True))  # type: ignore[call-overload]
    assert second.is_completed(), second.message

    after = asyncio.run(_tenant_runs("round-s"))
    assert after["sync-tenant-broken"] == [
        ("FAILED", ["round:round-s", "superseded"]),
        ("COMPLETED", ["round:round-s"]),
    ]
    assert after["sync-tenant-alpha"] == [("COMPLETED", ["round:round-s"])]
    assert asyncio.run(rounds.mark_superseded("round:round-s")) == 0, "tagged once"


def test_a_failed_run_whose_tenant_did_not_complete_later_is_not_superseded(
    emulator: Any,
) -> None:
    add_st_tenant(emulator, "broken", 103, secret="cs1.wrong")
    for _ in range(2):  # Retry without fixing anything: both runs failed, neither is resolved
        state = asyncio.run(sync_all_tenants(round_id="round-f", return_state=True))  # type: ignore[call-overload]
        assert state.is_failed()
    runs = asyncio.run(_tenant_runs("round-f"))
    assert runs["sync-tenant-broken"] == [("FAILED", ["round:round-f"])] * 2


def test_a_prefect_api_error_while_tagging_superseded_runs_does_not_fail_the_round(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = add_st_tenant(emulator, "broken", 103, secret="cs1.wrong")
    assert asyncio.run(sync_all_tenants(round_id="round-e", return_state=True)).is_failed()  # type: ignore[call-overload]
    fix_credentials(broken, 103)

    def api_down() -> Any:
        raise RuntimeError("Prefect API unreachable")

    monkeypatch.setattr(rounds, "_client", api_down)
    second = asyncio.run(sync_all_tenants(round_id="round-e", return_state=True))  # type: ignore[call-overload]
    assert second.is_completed(), second.message
    runs = asyncio.run(_tenant_runs("round-e"))
    assert runs["sync-tenant-broken"] == [
        ("FAILED", ["round:round-e"]),
        ("COMPLETED", ["round:round-e"]),
    ]
