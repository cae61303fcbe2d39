"""A ServiceTitan app without a resource's read scope (seed 002, "How to upgrade the
ServiceTitan app"): the run says which resource, which scope and the two steps that fix it, and
every other resource keeps syncing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flows.sync import sync_tenant
from tests.integration.test_sync_flow import add_st_tenant, emulator, opportunity_ids, q

__all__ = ["emulator"]
pytestmark = [pytest.mark.usefixtures("clean_db", "prefect_api"), pytest.mark.slow]


def test_a_missing_read_scope_names_the_resource_the_scope_and_the_fix(emulator: Any) -> None:
    add_st_tenant(emulator, "scoped", 102, models=["job"])
    emulator.state.arm_fault("status", route="*/estimates/export", status=403, times=None)
    try:
        state = asyncio.run(sync_tenant("scoped", return_state=True))  # type: ignore[call-overload]
    finally:
        emulator.state.clear_faults()
    assert state.is_failed()
    ((errors, counts),) = q("SELECT errors, counts FROM sync_run ORDER BY id DESC LIMIT 1")
    message = errors["st-main:estimates"]
    assert "ServiceTitan refused to export estimates (HTTP 403)" in message
    assert "'Sales & Estimates: Estimates'" in message
    assert "Change API Scopes" in message and "upgrade version" in message
    assert set(errors) == {"st-main:estimates"}, "only the resource without its scope fails"
    assert counts["st-main:jobs"]["created"] > 0 and opportunity_ids("scoped", "job")
