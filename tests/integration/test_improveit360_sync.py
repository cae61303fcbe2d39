"""improveit360 end to end: the Salesforce emulator over real HTTP → provider → PostgreSQL.

Most tests drive the provider through the Prefect-free steps of :mod:`crmsync.sync` (what the
tasks call); the last ones run the ``sync-tenant`` flow unchanged. One emulator serves the
module, reset to fresh data for every test; queries come back in batches of 20, so the org's
~50 Sales Opportunities arrive as a 3-batch SOQL result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.errors import AuthError, PermanentError, QuotaExceededError
from crmsync import db, sync
from crmsync.merge import MergeCounts
from crmsync.providers.base import FetchedPage
from crmsync.providers.improveit360 import Improveit360Provider, clear_clients
from models.normalize import normalize_phone, parse_timestamp
from sandbox.salesforce import OrgSpec, RunningEmulator, run_emulator
from tests.factories import make_integration, make_tenant

pytestmark = pytest.mark.usefixtures("clean_db")

ORG = "00D000000000001AAA"
NS = "i360core__"
OPP = f"{NS}Sales_Opportunity__c"
APPT = f"{NS}Sales_Appointment__c"
PROJECT = f"{NS}Project__c"
ACTIVITY = f"{NS}Project_Activity__c"
SPEC = OrgSpec(
    org_id=ORG,
    client_id="3MVG9.i360",
    client_secret="sfsecret.i360",
    username="api@i360.example",
    password="pw-i360",
    security_token="tok360",
    refresh_token="5Aep861.i360-refresh",
    opportunities=50,
    seed=3,
)
PLACEHOLDER = "none@none.com"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningEmulator]:
    with run_emulator([SPEC], port=0, batch_size=20) as running:
        yield running


@pytest.fixture
def emu(server: RunningEmulator) -> RunningEmulator:
    server.reset()
    clear_clients()  # cached sessions, describes and usage readings belong to the old state
    return server


def add_i360(
    emu: RunningEmulator,
    slug: str = "acme",
    *,
    settings: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
) -> int:
    tenant = make_tenant(slug)
    return make_integration(
        tenant,
        name="i360",
        provider="improveit360",
        credentials=credentials
        or {"client_id": SPEC.client_id, "refresh_token": SPEC.refresh_token},
        settings={"placeholder_emails": [PLACEHOLDER], **(settings or {})},
        auth_url=emu.url,
    )


def sync_stream(
    iid: int, stream: str, started_at: datetime, pages: list[FetchedPage] | None = None
) -> MergeCounts:
    """Every page of one stream, as the flow reads them: fetch → map → merge (+ cursor)."""
    counts = MergeCounts()
    after: str | None = None
    while True:
        page = sync.fetch_page(iid, stream, started_at, after)
        if pages is not None:
            pages.append(page)
        counts.add(sync.merge(sync.map_page(iid, page), None))
        if not page.has_more:
            return counts
        after = page.next_cursor


def sync_all(iid: int, *, skip: tuple[str, ...] = ()) -> dict[str, MergeCounts]:
    started_at = datetime.now(UTC)
    return {s: sync_stream(iid, s, started_at) for s in sync.streams(iid) if s not in skip}


def q(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute(sql, params).fetchall()


def live(emu: RunningEmulator, sobject: str) -> list[dict[str, Any]]:
    return [r for r in emu.state.get_records(ORG, sobject) if not r["IsDeleted"]]


def hub_opportunity_ids() -> list[str]:
    return [r[0] for r in q("SELECT external_id FROM opportunity ORDER BY external_id")]


def hub_opportunity(external_id: str) -> dict[str, Any]:
    cols = (
        "contact_id, external_contact_id, external_created_at, external_updated_at, email, "
        "first_name, last_name, phone, status, details"
    )
    ((*values,),) = q(f"SELECT {cols} FROM opportunity WHERE external_id = %s", external_id)
    return dict(zip(cols.split(", "), values, strict=True))


def total(counts: dict[str, MergeCounts], name: str) -> int:
    return sum(getattr(c, name) for c in counts.values())


def opp_with_appointments(emu: RunningEmulator) -> dict[str, Any]:
    with_appts = {a[f"{NS}Sales_Opportunity__c"] for a in live(emu, APPT)}
    return next(o for o in live(emu, OPP) if o["Id"] in with_appts)


# -- first sync and the standard fields ------------------------------------------------------------


def test_every_sales_opportunity_becomes_one_opportunity_with_its_contact_and_account(
    emu: RunningEmulator,
) -> None:
    iid = add_i360(emu)
    counts = sync_all(iid)

    opps = live(emu, OPP)
    assert hub_opportunity_ids() == sorted(o["Id"] for o in opps)
    assert counts["opportunities"].created == len(opps)
    contacts = {c["Id"]: c for c in emu.state.get_records(ORG, "Contact")}
    accounts = {a["Id"]: a for a in emu.state.get_records(ORG, "Account")}
    opp = next(
        o for o in opps if contacts[o[f"{NS}Contact__c"]]["Email"] not in (None, PLACEHOLDER)
    )
    contact = contacts[opp[f"{NS}Contact__c"]]
    hub = hub_opportunity(opp["Id"])
    assert hub["external_contact_id"] == contact["Id"]
    assert hub["email"] == contact["Email"].lower()
    assert (hub["first_name"], hub["last_name"]) == (contact["FirstName"], contact["LastName"])
    assert hub["phone"] == (
        normalize_phone(contact["MobilePhone"]) or normalize_phone(contact["Phone"])
    )
    assert hub["status"] == opp[f"{NS}Status__c"]
    assert hub["external_created_at"] == parse_timestamp(opp["CreatedDate"])
    details = hub["details"]
    assert details["Id"] == opp["Id"] and details[f"{NS}Status__c"] == opp[f"{NS}Status__c"]
    assert details["contact:Email"] == contact["Email"]
    assert details["account:Name"] == accounts[opp[f"{NS}Account__c"]]["Name"]
    assert not any(key.startswith("attributes") for key in details)


def test_a_three_batch_soql_result_is_followed_through_next_records_url_into_one_page(
    emu: RunningEmulator,
) -> None:
    iid = add_i360(emu)
    started = datetime.now(UTC)
    for stream in ("accounts", "contacts", "appointments", "projects"):
        sync_stream(iid, stream, started)
    emu.state.clear_requests()
    pages: list[FetchedPage] = []

    sync_stream(iid, "opportunities", started, pages)

    opps = live(emu, OPP)
    assert 40 < len(opps) <= 60  # three batches of 20
    queries = [r for r in emu.state.requests if "/query" in r["path"]]
    assert [r["path"].count("/query/") for r in queries] == [0, 1, 1]  # first batch + 2 more
    assert len(pages) == 1 and not pages[0].has_more
    assert sorted(r["Id"] for r in pages[0].records) == sorted(o["Id"] for o in opps)


def test_records_sharing_one_system_modstamp_are_neither_missed_nor_doubled_across_pages(
    emu: RunningEmulator,
) -> None:
    same = emu.state.now().strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    for opp in emu.state.get_records(ORG, OPP):
        emu.state.upsert(ORG, OPP, {"Id": opp["Id"], "SystemModstamp": same})
    iid = add_i360(emu, settings={"page_size": 10})
    started = datetime.now(UTC)
    for stream in ("accounts", "contacts", "appointments", "projects"):
        sync_stream(iid, stream, started)
    pages: list[FetchedPage] = []

    sync_stream(iid, "opportunities", started, pages)

    read = [r["Id"] for p in pages for r in p.records]
    assert len(pages) > 5 and {r["SystemModstamp"] for p in pages for r in p.records} == {same}
    assert len(read) == len(set(read)), "a record was read twice in one run"
    assert set(read) == {o["Id"] for o in live(emu, OPP)}, "a record was missed"
    assert len(hub_opportunity_ids()) == len(read)


def test_a_second_run_with_no_changes_creates_and_updates_nothing(emu: RunningEmulator) -> None:
    iid = add_i360(emu)
    first = sync_all(iid)
    second = sync_all(iid)

    assert total(first, "created") == len(live(emu, OPP))
    assert total(second, "created") == 0 and total(second, "updated") == 0, second
    assert total(second, "contacts_created") == 0


def test_a_new_run_rereads_the_overlap_before_the_stored_cursor(emu: RunningEmulator) -> None:
    iid = add_i360(emu, settings={"overlap_seconds": 600})
    sync_all(iid)
    ((cursor,),) = q("SELECT cursor FROM sync_cursor WHERE stream = 'opportunities'")
    stamp = parse_timestamp(cursor.split("|")[0])
    assert stamp is not None
    emu.state.clear_requests()

    sync_all(iid)

    soql = next(r["soql"] for r in emu.state.requests if f"FROM {OPP}" in r.get("soql", ""))
    since = stamp.timestamp() - 600
    assert f"SystemModstamp >= {datetime.fromtimestamp(since, UTC):%Y-%m-%dT%H:%M:%SZ}" in soql


# -- opportunity creation & update (seed 000) ------------------------------------------------------


def test_existing_opportunity_is_replaced_when_the_external_id_matches(
    emu: RunningEmulator,
) -> None:
    iid = add_i360(emu)
    sync_all(iid)
    opp = live(emu, OPP)[0]
    emu.state.advance_clock(60)
    emu.state.upsert(ORG, OPP, {"Id": opp["Id"], f"{NS}Status__c": "Cancelled"})

    counts = sync_all(iid)

    assert counts["opportunities"].updated == 1 and total(counts, "created") == 0
    assert q("SELECT status FROM opportunity WHERE external_id = %s", opp["Id"]) == [("Cancelled",)]
    assert len(hub_opportunity_ids()) == len(live(emu, OPP))


def test_a_new_sales_opportunity_of_a_known_contact_is_added_to_that_contact(
    emu: RunningEmulator,
) -> None:
    iid = add_i360(emu)
    sync_all(iid)
    opp = live(emu, OPP)[0]
    emu.state.advance_clock(60)
    new = emu.state.upsert(
        ORG,
        OPP,
        {
            f"{NS}Contact__c": opp[f"{NS}Contact__c"],
            f"{NS}Account__c": opp[f"{NS}Account__c"],
            f"{NS}Status__c": "New",
        },
    )

    counts = sync_all(iid)

    assert counts["opportunities"].created == 1 and counts["opportunities"].contacts_created == 0
    assert hub_opportunity(new["Id"])["contact_id"] == hub_opportunity(opp["Id"])["contact_id"]


def test_contacts_sharing_a_phone_become_one_hub_contact(emu: RunningEmulator) -> None:
    by_contact = {o[f"{NS}Contact__c"]: o for o in live(emu, OPP)}
    first, second = list(by_contact.values())[:2]
    phone = "(614) 555-0101"
    for opp in (first, second):
        emu.state.upsert(
            ORG,
            "Contact",
            {"Id": opp[f"{NS}Contact__c"], "Phone": phone, "MobilePhone": None, "Email": None},
        )
    iid = add_i360(emu)

    sync_all(iid)

    a, b = hub_opportunity(first["Id"]), hub_opportunity(second["Id"])
    assert a["contact_id"] == b["contact_id"] and a["phone"] == "+16145550101"


def test_placeholder_email_never_matches_a_contact(emu: RunningEmulator) -> None:
    by_contact = {o[f"{NS}Contact__c"]: o for o in live(emu, OPP)}
    first, second = list(by_contact.values())[:2]
    for opp in (first, second):
        emu.state.upsert(
            ORG,
            "Contact",
            {
                "Id": opp[f"{NS}Contact__c"],
                "Email": "None@None.com",
                "Phone": None,
                "MobilePhone": None,
            },
        )
        emu.state.upsert(ORG, "Account", {"Id": opp[f"{NS}Account__c"], "Phone": None})
    iid = add_i360(emu)

    sync_all(iid)

    a, b = hub_opportunity(first["Id"]), hub_opportunity(second["Id"])
    assert a["contact_id"] != b["contact_id"]
    assert a["details"]["hub:placeholder_email"] is True
    assert q("SELECT count(*) FROM contact WHERE email = %s", PLACEHOLDER) == [(0,)]


# -- related records reach their opportunity -------------------------------------------------------


def test_an_appointment_change_updates_its_opportunity(emu: RunningEmulator) -> None:
    iid = add_i360(emu)
    sync_all(iid)
    opp = opp_with_appointments(emu)
    appt = next(a for a in live(emu, APPT) if a[f"{NS}Sales_Opportunity__c"] == opp["Id"])
    emu.state.advance_clock(3600)
    changed = emu.state.upsert(ORG, APPT, {"Id": appt["Id"], f"{NS}Result__c": "Reset"})

    counts = sync_all(iid)

    assert counts["appointments"].updated == 1
    assert total(counts, "updated") == 1, "only the one opportunity changed"
    hub = hub_opportunity(opp["Id"])
    index = next(k.split(":")[1] for k, v in hub["details"].items() if v == appt["Id"])
    assert hub["details"][f"appointments:{index}:{NS}Result__c"] == "Reset"
    assert hub["external_updated_at"] == parse_timestamp(changed["LastModifiedDate"])


def test_a_deleted_appointment_disappears_from_its_opportunity(emu: RunningEmulator) -> None:
    iid = add_i360(emu)
    sync_all(iid)
    opp = opp_with_appointments(emu)
    appt = next(a for a in live(emu, APPT) if a[f"{NS}Sales_Opportunity__c"] == opp["Id"])
    emu.state.advance_clock(60)
    emu.state.upsert(ORG, APPT, {"Id": appt["Id"], "IsDeleted": True})

    sync_all(iid)

    assert appt["Id"] not in hub_opportunity(opp["Id"])["details"].values()


def test_a_project_activity_change_updates_its_opportunity_when_activities_sync(
    emu: RunningEmulator,
) -> None:
    iid = add_i360(emu, settings={"sync_project_activities": True})
    sync_all(iid)
    activity = live(emu, ACTIVITY)[0]
    project = emu.state.get_record(ORG, activity[f"{NS}Project__c"])
    assert project is not None
    opp_id = project[f"{NS}Sales_Opportunity__c"]
    emu.state.advance_clock(3600)
    changed = emu.state.upsert(ORG, ACTIVITY, {"Id": activity["Id"], f"{NS}Status__c": "Cancelled"})

    counts = sync_all(iid)

    assert counts["project_activities"].updated == 1
    hub = hub_opportunity(opp_id)
    key = next(k for k, v in hub["details"].items() if v == activity["Id"])
    assert key.startswith("projects:") and ":activities:" in key
    assert hub["details"][key.replace(":Id", f":{NS}Status__c")] == "Cancelled"
    assert hub["external_updated_at"] == parse_timestamp(changed["LastModifiedDate"])


def test_project_activities_are_not_read_unless_the_setting_is_on(emu: RunningEmulator) -> None:
    iid = add_i360(emu)
    counts = sync_all(iid)

    assert "project_activities" not in counts
    assert not any(":activities:" in k for (d,) in q("SELECT details FROM opportunity") for k in d)


def test_a_contact_change_updates_the_opportunities_of_that_contact(emu: RunningEmulator) -> None:
    iid = add_i360(emu)
    sync_all(iid)
    opp = live(emu, OPP)[0]
    emu.state.advance_clock(60)
    emu.state.upsert(ORG, "Contact", {"Id": opp[f"{NS}Contact__c"], "MobilePhone": "614.555.0199"})

    counts = sync_all(iid)

    assert counts["contacts"].updated >= 1
    assert hub_opportunity(opp["Id"])["phone"] == "+16145550199"


def test_a_contact_created_after_the_contacts_stream_is_fetched_with_its_opportunity(
    emu: RunningEmulator,
) -> None:
    iid = add_i360(emu)
    started = datetime.now(UTC)
    for stream in ("accounts", "contacts"):
        sync_stream(iid, stream, started)
    emu.state.advance_clock(5)
    account = emu.state.upsert(ORG, "Account", {"Name": "Late Comer", "Phone": "614-555-0142"})
    contact = emu.state.upsert(
        ORG,
        "Contact",
        {
            "AccountId": account["Id"],
            "FirstName": "Late",
            "LastName": "Comer",
            "Email": "late@example.com",
        },
    )
    opp = emu.state.upsert(
        ORG, OPP, {f"{NS}Contact__c": contact["Id"], f"{NS}Account__c": account["Id"]}
    )

    for stream in ("appointments", "projects", "opportunities"):
        sync_stream(iid, stream, started)

    hub = hub_opportunity(opp["Id"])
    assert (hub["email"], hub["first_name"], hub["phone"]) == (
        "late@example.com",
        "Late",
        "+16145550142",
    )
    assert q(
        "SELECT resource FROM crm_record WHERE external_id = ANY(%s) ORDER BY resource",
        [contact["Id"], account["Id"]],
    ) == [("accounts",), ("contacts",)]


# -- auth, sessions, limits and configuration ------------------------------------------------------


def test_session_expiry_mid_run_is_transparent(emu: RunningEmulator) -> None:
    iid = add_i360(emu)
    # Once while following nextRecordsUrl (accounts), once on a describe (opportunities).
    emu.state.arm_fault("expire_session", route="/services/data/v60.0/query/*")
    emu.state.arm_fault("expire_session", route=f"*/sobjects/{OPP}/describe")

    sync_all(iid)

    assert hub_opportunity_ids() == sorted(o["Id"] for o in live(emu, OPP))
    client = Improveit360Provider().client(sync.load_integration(iid))
    assert client.token_fetches == 3  # the login, then one refresh per expired session
    statuses = [r["status"] for r in emu.state.requests if r["path"].startswith("/services/data")]
    assert statuses.count(401) == 2


def test_username_password_grant_logs_in_with_password_and_security_token(
    emu: RunningEmulator,
) -> None:
    iid = add_i360(
        emu,
        credentials={
            "client_id": SPEC.client_id,
            "client_secret": SPEC.client_secret,
            "username": SPEC.username,
            "password": SPEC.password,
            "security_token": SPEC.security_token,
        },
    )
    sync.authenticate(iid)
    counts = sync_all(iid)
    assert counts["opportunities"].created == len(live(emu, OPP))


def test_a_rejected_refresh_token_is_an_auth_error_that_names_no_secret(
    emu: RunningEmulator,
) -> None:
    iid = add_i360(emu, credentials={"client_id": SPEC.client_id, "refresh_token": "5Aep.revoked"})
    with pytest.raises(AuthError, match="invalid_grant") as caught:
        sync.authenticate(iid)
    assert "5Aep.revoked" not in str(caught.value)


def settled_request_count(emu: RunningEmulator) -> int:
    """The emulator logs a request when its response is finished, on its own thread: wait until
    the log stops growing so a late entry is not mistaken for a new request."""
    import time

    count = -1
    while count != len(emu.state.requests):
        count = len(emu.state.requests)
        time.sleep(0.3)
    return count


def test_request_limit_exceeded_stops_the_integration_cleanly_and_loses_no_cursor(
    emu: RunningEmulator,
) -> None:
    iid = add_i360(emu)
    emu.state.arm_fault("request_limit_exceeded", route=f"*/sobjects/{APPT}/describe")
    started = datetime.now(UTC)
    for stream in ("accounts", "contacts"):
        sync_stream(iid, stream, started)

    with pytest.raises(QuotaExceededError, match="REQUEST_LIMIT_EXCEEDED"):
        sync_stream(iid, "appointments", started)
    sent = settled_request_count(emu)
    for stream in ("projects", "opportunities"):
        with pytest.raises(QuotaExceededError, match="REQUEST_LIMIT_EXCEEDED"):
            sync_stream(iid, stream, started)

    assert settled_request_count(emu) == sent, "no request is spent once the limit is hit"
    assert {s for (s,) in q("SELECT stream FROM sync_cursor")} == {"accounts", "contacts"}
    clear_clients()  # the next run (a new process, or minutes later)
    sync_all(iid)
    assert hub_opportunity_ids() == sorted(o["Id"] for o in live(emu, OPP))


def test_min_remaining_api_calls_stops_before_the_org_runs_out(emu: RunningEmulator) -> None:
    iid = add_i360(emu, settings={"min_remaining_api_calls": 14_990})
    emu.state.set_api_usage(ORG, 5)

    with pytest.raises(QuotaExceededError, match="min_remaining_api_calls=14990"):
        sync_all(iid)
    used, limit = emu.state.api_usage(ORG)
    assert limit - used == 14_990, "the requests left to the org's other users are kept"


def test_an_object_name_the_org_lacks_fails_naming_the_setting(emu: RunningEmulator) -> None:
    iid = add_i360(emu, settings={"objects": {"sales_appointment": f"{NS}Appointment__c"}})
    with pytest.raises(PermanentError, match=r"settings\.objects"):
        sync_stream(iid, "appointments", datetime.now(UTC))


def test_a_standard_field_path_the_org_lacks_fails_naming_the_setting(
    emu: RunningEmulator,
) -> None:
    iid = add_i360(emu, settings={"standard_fields": {"opportunity_status": "Stage__c"}})
    with pytest.raises(PermanentError, match=r"settings\.standard_fields\.opportunity_status"):
        sync_stream(iid, "opportunities", datetime.now(UTC))


# -- the sync-tenant flow, unchanged ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_sync_tenant_flow_reports_request_limit_exceeded_and_the_next_run_resumes(
    emu: RunningEmulator,
) -> None:
    from flows.sync import TenantSyncError, sync_tenant

    iid = add_i360(emu, "quota")
    emu.state.arm_fault("request_limit_exceeded", route=f"*/sobjects/{PROJECT}/describe")

    with pytest.raises(TenantSyncError, match="REQUEST_LIMIT_EXCEEDED") as caught:
        asyncio.run(sync_tenant("quota"))
    # The quota stops the integration at the stream that met it: later streams are not tried.
    assert "i360:projects" in str(caught.value) and "i360:opportunities" not in str(caught.value)
    ((status, errors),) = q("SELECT status, errors FROM sync_run")
    assert status == "partial" and set(errors) == {"i360:projects"}
    committed = {s for (s,) in q("SELECT stream FROM sync_cursor")}
    assert committed == {"accounts", "contacts", "appointments"}
    assert hub_opportunity_ids() == []

    clear_clients()  # the next run (a new process, or minutes later)
    counts = sync_all(iid)
    assert counts["projects"].fetched > 0  # from the start: no projects cursor was committed
    assert counts["opportunities"].created == len(live(emu, OPP))
    assert hub_opportunity_ids() == sorted(o["Id"] for o in live(emu, OPP))
