"""Issue 14 item 2 for improveit360: an integration user without API access, or without Read on
one object, gets a message naming the refused call, the cause and the Salesforce admin's fix.

Real HTTP to the Salesforce emulator, which takes the permissions away as an admin editing the
user's profile would (``/__emulator/orgs/{org}/permissions``) and answers in Salesforce's wire
format: 403 ``API_CURRENTLY_DISABLED`` for every data call, 400 ``INVALID_TYPE`` for a query of
an object the user cannot read, 404 for its describe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from connectors.errors import ConnectorError, ForbiddenError
from crmsync import db, report, sync
from crmsync.providers.improveit360 import clear_clients
from sandbox.salesforce import OrgSpec, RunningEmulator, run_emulator
from tests.factories import make_integration, make_tenant
from tests.integration.test_check import _stream_lines
from tests.integration.test_cli import crmsync

pytestmark = pytest.mark.usefixtures("clean_db")

ORG = "00D000000000004AAA"
NS = "i360core__"
PROJECT = f"{NS}Project__c"
SPEC = OrgSpec(
    org_id=ORG,
    client_id="3MVG9.i360perm",
    client_secret="sfsecret.i360perm",
    username="api@i360perm.example",
    password="pw-i360perm",
    refresh_token="5Aep861.i360perm-refresh",
    opportunities=15,
    seed=11,
)
STREAMS = ["accounts", "contacts", "appointments", "projects", "opportunities"]
SECRETS = (SPEC.client_secret, SPEC.refresh_token, SPEC.password)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningEmulator]:
    with run_emulator([SPEC], port=0) as running:
        yield running


@pytest.fixture
def emu(server: RunningEmulator) -> RunningEmulator:
    server.reset()
    clear_clients()
    return server


def add_i360(emu: RunningEmulator, slug: str = "acme") -> int:
    return make_integration(
        make_tenant(slug),
        name="i360",
        provider="improveit360",
        credentials={
            "client_id": SPEC.client_id,
            "client_secret": SPEC.client_secret,
            "refresh_token": SPEC.refresh_token,
        },
        auth_url=emu.url,
    )


def permissions(emu: RunningEmulator, **body: Any) -> dict[str, Any]:
    """Edit the API user's profile through the emulator's control route."""
    response = httpx.post(f"{emu.url}/__emulator/orgs/{ORG}/permissions", json=body)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def pull(iid: int) -> tuple[dict[str, int], dict[str, ConnectorError]]:
    """Every stream to its end, as the flow reads them; a failing stream is reported and the
    next one still runs (crmsync.pipeline). Returns (records fetched, errors) per stream."""
    started = datetime.now(UTC)
    fetched: dict[str, int] = {}
    errors: dict[str, ConnectorError] = {}
    for stream in sync.streams(iid):
        after: str | None = None
        fetched[stream] = 0
        try:
            while True:
                page = sync.fetch_page(iid, stream, started, after)
                sync.merge(sync.map_page(iid, page), None)
                fetched[stream] += len(page.records)
                if not page.has_more:
                    break
                after = page.next_cursor
        except ConnectorError as exc:
            errors[stream] = exc
    return fetched, errors


def q(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute(sql, params).fetchall()


def assert_safe(message: str, *, one_line: bool = True) -> None:
    assert "Traceback" not in message
    assert "\n" not in message or not one_line
    for secret in SECRETS:
        assert secret not in message


# -- a user without API access -----------------------------------------------------------------


def test_a_user_without_api_access_is_told_which_call_was_refused_why_and_what_the_admin_does(
    emu: RunningEmulator,
) -> None:
    assert permissions(emu, api_enabled=False)["api_enabled"] is False
    iid = add_i360(emu)
    sync.authenticate(iid)  # Salesforce still issues a session: the data calls are refused

    with pytest.raises(ForbiddenError) as caught:
        sync.fetch_page(iid, "accounts", datetime.now(UTC), None)
    message = str(caught.value)
    assert "Salesforce refused the describe of Account (HTTP 403 API_CURRENTLY_DISABLED)" in message
    assert 'lack "API Enabled"' in message
    assert 'a Salesforce admin enables "API Enabled" for the integration user' in message
    assert "Permission Set" in message and "settings.objects" not in message
    assert_safe(message)


def test_without_api_access_every_stream_fails_with_the_fix_and_nothing_is_stored(
    emu: RunningEmulator,
) -> None:
    permissions(emu, api_enabled=False)
    iid = add_i360(emu)
    _, errors = pull(iid)
    assert list(errors) == STREAMS
    for exc in errors.values():
        assert isinstance(exc, ForbiddenError) and "API_CURRENTLY_DISABLED" in str(exc)
    assert q("SELECT count(*) FROM sync_cursor") == [(0,)]
    assert q("SELECT count(*) FROM opportunity") == [(0,)]


# -- an object the user cannot read --------------------------------------------------------------


def test_an_object_without_read_fails_its_stream_naming_the_object_and_the_others_keep_syncing(
    emu: RunningEmulator,
) -> None:
    permissions(emu, unreadable_objects=[PROJECT])
    iid = add_i360(emu)
    fetched, errors = pull(iid)

    assert list(errors) == ["projects"]
    message = str(errors["projects"])
    assert f"Salesforce refused the describe of {PROJECT} (HTTP 404 NOT_FOUND)" in message
    assert f"the integration user cannot read {PROJECT}" in message
    assert f"a Salesforce admin grants Read on {PROJECT} to the integration user" in message
    assert "settings.objects.project" in message and "The other streams sync." in message
    assert_safe(message)
    assert fetched["opportunities"] == SPEC.opportunities
    assert q("SELECT count(*) FROM opportunity") == [(SPEC.opportunities,)]


def test_read_taken_away_after_a_sync_fails_the_query_with_invalid_type_and_the_fix(
    emu: RunningEmulator,
) -> None:
    iid = add_i360(emu)
    assert pull(iid)[1] == {}
    permissions(emu, unreadable_objects=[PROJECT])  # the describe is cached: the query meets it
    emu.state.upsert(ORG, "Account", {"Name": "New Household"})
    _, errors = pull(iid)

    assert list(errors) == ["projects"]
    message = str(errors["projects"])
    assert f"Salesforce refused the queryAll of {PROJECT} (HTTP 400 INVALID_TYPE)" in message
    assert f"grants Read on {PROJECT}" in message
    assert_safe(message)


def test_read_given_back_lets_the_stream_sync_again(emu: RunningEmulator) -> None:
    permissions(emu, unreadable_objects=[PROJECT])
    iid = add_i360(emu)
    assert list(pull(iid)[1]) == ["projects"]
    permissions(emu, unreadable_objects=[])
    clear_clients()
    fetched, errors = pull(iid)
    assert errors == {} and fetched["projects"] > 0


# -- the check command and the run report ------------------------------------------------------------


def test_integrations_check_reports_missing_api_access_on_every_stream(
    emu: RunningEmulator,
) -> None:
    add_i360(emu, "chk-api")
    permissions(emu, api_enabled=False)
    code, out, err, _ = crmsync("integrations", "check", "chk-api", "i360")
    assert code == 1, out + err
    assert "signed in; 0 of 5 stream(s) OK" in out
    lines = _stream_lines(out)
    assert list(lines) == STREAMS
    for line in lines.values():
        assert line.split()[0] == "FAILED"
        assert "API_CURRENTLY_DISABLED" in line and "API Enabled" in line
    assert_safe(out + err, one_line=False)


def test_integrations_check_reports_the_unreadable_object_on_its_stream_only(
    emu: RunningEmulator,
) -> None:
    add_i360(emu, "chk-read")
    permissions(emu, unreadable_objects=[PROJECT])
    code, out, err, _ = crmsync("integrations", "check", "chk-read", "i360")
    assert code == 1, out + err
    lines = _stream_lines(out)
    projects = lines.pop("projects")
    assert projects.split()[0] == "FAILED"
    assert f"grants Read on {PROJECT}" in projects
    assert {line.split()[0] for line in lines.values()} == {"OK"}
    assert "4 of 5 stream(s) OK" in out


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_a_sync_runs_report_shows_the_refused_object_and_the_other_streams_counts(
    emu: RunningEmulator,
) -> None:
    from flows.sync import TenantSyncError, sync_tenant

    add_i360(emu, "perm")
    permissions(emu, unreadable_objects=[PROJECT])
    with pytest.raises(TenantSyncError, match="cannot read"):
        asyncio.run(sync_tenant("perm"))
    ((status, counts, errors),) = q("SELECT status, counts, errors FROM sync_run")
    assert status == "partial" and set(errors) == {"i360:projects"}
    assert f"grants Read on {PROJECT}" in errors["i360:projects"]
    rows = {row["stream"]: row for row in report.run_table(counts, errors)}
    assert f"grants Read on {PROJECT}" in rows["projects"]["error"]
    assert rows["opportunities"]["error"] == ""
    assert q("SELECT count(*) FROM opportunity") == [(SPEC.opportunities,)]
