"""An LP API user without seed 001's APISecurity permission (issue 14 item 2), over real HTTP.

Seed 001, Requirements: "check that your LeadPerfection user has the correct security permissions
to authorize the necessary API access" (Security → User Access → Function Level Security →
APISecurity → Check All). Such a user still signs in; LP refuses the data calls with the same 401
as an expired token (the emulator's ``api-security`` control). The sync run's report and
``crmsync integrations check`` must then say which call was refused, that the user lacks the
permission and the steps that grant it: one line, no traceback, no secret.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.leadperfection import DEFAULT_TOKEN_CACHE
from crmsync import db
from crmsync.providers import leadperfection as lp_provider
from flows.sync import sync_tenant
from sandbox.leadperfection import LPClientSpec, RunningEmulator, run_emulator
from tests.factories import make_integration, make_tenant
from tests.integration.test_cli import crmsync

pytestmark = pytest.mark.usefixtures("clean_db")

PASSWORD = "pw.lp-permission-secret"
APPKEY = "3b2f6a0c-41de-4f7b-9a55-7e0c9d1b2a64"
SPEC = LPClientSpec("wq55a", "api.hatch", PASSWORD, APPKEY, prospects=12, seed=5)
STEPS = (
    "Security → User Access",
    "select Assign",
    "Function Level Security",
    "select APISecurity from the dropdown list",
    "select Check All and click Save",
)


@pytest.fixture(scope="module")
def served() -> Iterator[RunningEmulator]:
    with run_emulator([SPEC], port=0) as running:
        yield running


@pytest.fixture
def emu(served: RunningEmulator) -> Iterator[RunningEmulator]:
    served.state.reset()
    DEFAULT_TOKEN_CACHE.clear()
    lp_provider._clients.clear()
    yield served
    served.state.grant_api_security(None)


def add_lp(emu: RunningEmulator, slug: str) -> int:
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
        settings={"page_size": 5},
        base_url=emu.url,
    )


def assert_explains_the_missing_permission(text: str) -> None:
    assert "LeadPerfection refused GetLead (POST /api/Customers/GetLead -> HTTP 401" in text
    assert "user 'api.hatch' signed in: the user lacks the APISecurity permission" in text
    for step in STEPS:
        assert step in text, step
    assert "Traceback" not in text and "\n" not in text
    assert PASSWORD not in text and APPKEY not in text


def q(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute(sql, params).fetchall()


@pytest.mark.usefixtures("prefect_api")
def test_a_sync_by_a_user_without_apisecurity_reports_the_refused_call_and_how_to_grant_it(
    emu: RunningEmulator,
) -> None:
    add_lp(emu, "lp-denied")
    emu.state.revoke_api_security(None)

    state = asyncio.run(sync_tenant("lp-denied", return_state=True))  # type: ignore[call-overload]

    assert state.is_failed()
    ((errors, counts),) = q("SELECT errors, counts FROM sync_run ORDER BY id DESC LIMIT 1")
    assert set(errors) == {"lp:prospects"}, "signing in worked; the read was refused"
    message = errors["lp:prospects"]
    assert message.startswith("ForbiddenError: ")
    assert_explains_the_missing_permission(message)
    assert q("SELECT count(*) FROM opportunity") == [(0,)]
    assert counts["lp:prospects"]["fetched"] == 0

    emu.state.grant_api_security(None)
    assert asyncio.run(sync_tenant("lp-denied", return_state=True)).is_completed()  # type: ignore[call-overload]
    assert q("SELECT count(*) FROM opportunity")[0][0] > 0, "granted: the next sync reads"


def test_integrations_check_reports_the_missing_apisecurity_permission_on_the_stream(
    emu: RunningEmulator,
) -> None:
    add_lp(emu, "lp-check")
    emu.state.revoke_api_security(None)

    code, out, err, _ = crmsync("integrations", "check", "lp-check", "lp")

    assert code == 1, out + err
    assert "lp-check/lp (leadperfection): signed in; 0 of 1 stream(s) OK" in out
    (line,) = [line for line in out.splitlines() if line.split()[:2] == ["FAILED", "prospects"]]
    assert_explains_the_missing_permission(line)
    assert "Traceback" not in out + err and PASSWORD not in out + err

    emu.state.grant_api_security(None)
    code, out, err, _ = crmsync("integrations", "check", "lp-check", "lp")
    assert code == 0, out + err
    assert "lp-check/lp (leadperfection): signed in; 1 of 1 stream(s) OK" in out
