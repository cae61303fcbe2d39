"""LeadPerfection end to end: the LP emulator over real HTTP → provider → PostgreSQL.

Tests drive the provider through the Prefect-free steps of :mod:`crmsync.sync` (so each can pick
the run's start time and stop between pages), and through the ``sync_tenant`` flow where the
flow itself is what is checked. Each test is named after the sentence of seed 001 (or issue 3)
it checks. Fixture prospects 100001-100012 are the emulator's hand-written edge cases
(``sandbox/leadperfection/data.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from connectors.leadperfection import DEFAULT_TOKEN_CACHE
from crmsync import db, sync
from crmsync.merge import MergeCounts
from crmsync.providers.leadperfection import STREAM, WindowCursor
from models.normalize import parse_timestamp
from sandbox.leadperfection import LPClientSpec, RunningEmulator, run_emulator
from tests.factories import make_integration, make_tenant

pytestmark = pytest.mark.usefixtures("clean_db")

APPKEY = "0f8fad5b-d9cb-469f-a165-70867728950e"
SPEC = LPClientSpec("wq55a", "api.user", "pw", APPKEY, prospects=40, seed=3)
EASTERN = ZoneInfo("America/New_York")
GET_LEAD = "/api/Customers/GetLead"

ZERO_DATE, SEVERAL_LEADS, NO_LEADS, NO_LASTCHANGED, NO_EMAIL, NULL_EMAIL = range(100001, 100007)
CHILD_ONLY, FALLBACK_ENTERED, FALLBACK_CONTRACT, FALLBACK_APPT = range(100007, 100011)
PLACEHOLDER, SAME_PERSON_AS_SEVERAL_LEADS = 100011, 100012


@pytest.fixture(scope="module")
def served() -> Iterator[RunningEmulator]:
    with run_emulator([SPEC], port=0, freeze_clock=True) as running:
        yield running


@pytest.fixture
def emu(served: RunningEmulator) -> RunningEmulator:
    """The emulator back at its seed, its clock frozen at the real time now; no cached tokens."""
    served.state.reset()
    DEFAULT_TOKEN_CACHE.clear()
    return served


def add_lp(emu: RunningEmulator, slug: str, *, page_size: int = 10) -> int:
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
        settings={"page_size": page_size, "placeholder_emails": ["None@None.com"]},
        base_url=emu.url,
    )


def run_sync(integ: int, started_at: datetime) -> MergeCounts:
    """What the flow does for the stream: fetch → map → merge until the provider is done."""
    totals = MergeCounts()
    while True:
        page = sync.fetch_page(integ, STREAM, started_at)
        totals.add(sync.merge(sync.map_page(integ, page), None))
        if not page.has_more:
            return totals


def q(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute(sql, params).fetchall()


def opportunities(integ: int) -> dict[str, dict[str, Any]]:
    """Opportunities keyed ``external_id|cst_id|external_created_at`` (seed 001's identity)."""
    rows = q(
        "SELECT external_id, external_contact_id, contact_id, external_created_at, "
        "external_updated_at, email, phone, first_name, last_name, status, details "
        "FROM opportunity WHERE integration_id = %s",
        integ,
    )
    names = [
        "external_id",
        "contact_ext",
        "contact_id",
        "created",
        "updated",
        "email",
        "phone",
        "first",
        "last",
        "status",
        "details",
    ]
    return {f"{r[0]}|{r[1]}|{r[3].isoformat()}": dict(zip(names, r, strict=True)) for r in rows}


def of_prospect(integ: int, cst_id: int) -> list[dict[str, Any]]:
    found = [o for o in opportunities(integ).values() if o["contact_ext"] == str(cst_id)]
    return sorted(found, key=lambda o: (o["external_id"], o["created"]))


def utc(local_naive: str) -> datetime:
    stamp = parse_timestamp(local_naive, naive_tz=EASTERN)
    assert stamp is not None
    return stamp


def cursor(integ: int) -> WindowCursor:
    ((text,),) = q("SELECT cursor FROM sync_cursor WHERE integration_id = %s", integ)
    state = WindowCursor.load(text)
    assert state is not None
    return state


def prospect(emu: RunningEmulator, cst_id: int) -> dict[str, Any]:
    """The prospect as the emulator holds it now."""
    found = emu.state.get_prospect(None, cst_id)
    assert found is not None
    return found


def getlead_requests(emu: RunningEmulator) -> list[Any]:
    return [r for r in emu.state.requests if r.path == GET_LEAD]


# --- trigger rules -------------------------------------------------------------------------


def test_a_lead_updated_in_the_window_syncs_the_lead_and_its_prospect(emu: RunningEmulator) -> None:
    integ = add_lp(emu, "acme")
    s1 = emu.state.now()
    run_sync(integ, s1)
    lead_id = prospect(emu, CHILD_ONLY)["leads"][0]["id"]
    emu.state.advance_clock(15 * 60)
    emu.state.upsert_lead(None, CHILD_ONLY, {"id": lead_id, "disposition": "Cancelled"})

    counts = run_sync(integ, emu.state.now())

    (opp,) = of_prospect(integ, CHILD_ONLY)
    assert (opp["external_id"], opp["status"]) == (str(lead_id), "Cancelled")
    assert opp["details"]["Prospect.leads[0].disposition"] == "Cancelled"
    assert opp["details"]["Prospect.firstname"] == "Child"  # the Prospect's fields come along
    assert counts.updated == 1 and counts.created == 0


def test_a_change_to_a_leads_job_or_appointment_is_an_update_of_the_lead(
    emu: RunningEmulator,
) -> None:
    integ = add_lp(emu, "acme")
    run_sync(integ, emu.state.now())
    lead = prospect(emu, CHILD_ONLY)["leads"][0]
    emu.state.advance_clock(15 * 60)
    emu.state.upsert_job(None, lead["id"], {"id": lead["jobs"][0]["id"], "jobstatus": "Installed"})

    counts = run_sync(integ, emu.state.now())

    (opp,) = of_prospect(integ, CHILD_ONLY)
    assert opp["details"]["Prospect.leads[0].jobs[0].jobstatus"] == "Installed"
    assert counts.updated == 1


def test_several_leads_of_a_prospect_give_one_opportunity_for_every_lead_and_prospect_combination(
    emu: RunningEmulator,
) -> None:
    integ = add_lp(emu, "acme")
    run_sync(integ, emu.state.now())

    leads = prospect(emu, SEVERAL_LEADS)["leads"]
    opps = of_prospect(integ, SEVERAL_LEADS)
    assert [o["external_id"] for o in opps] == [str(lead["id"]) for lead in leads]
    assert [o["status"] for o in opps] == ["Sold", "Demo No Sale", None]
    assert len({o["contact_id"] for o in opps}) == 1
    for opp, lead in zip(opps, leads, strict=True):
        assert opp["details"]["Prospect.leads[0].id"] == lead["id"]
        assert "Prospect.leads[1].id" not in opp["details"]  # each holds its own Lead only


def test_a_prospect_updated_in_the_window_not_associated_with_a_synced_lead_syncs_alone(
    emu: RunningEmulator,
) -> None:
    integ = add_lp(emu, "acme")
    run_sync(integ, emu.state.now())
    emu.state.advance_clock(15 * 60)
    emu.state.upsert_prospect(None, {"cst_id": SEVERAL_LEADS, "lastname": "Leadson-Smith"})

    counts = run_sync(integ, emu.state.now())

    first, second, third = of_prospect(integ, SEVERAL_LEADS)
    assert (first["last"], first["details"]["Prospect.lastname"]) == ("Leadson-Smith",) * 2
    assert first["external_id"] == str(prospect(emu, SEVERAL_LEADS)["leads"][0]["id"])
    assert (second["last"], third["last"]) == ("Leadson", "Leadson")  # their leads did not sync
    assert counts.updated == 1 and counts.created == 0


def test_an_unchanged_record_read_again_by_a_later_narrower_window_is_not_updated(
    emu: RunningEmulator,
) -> None:
    # The prospect changed 5 minutes ago, its only lead days ago: the first sync's 90-day window
    # sees a Lead + Prospect, the next run's window only a lone Prospect. Same data, no update.
    local_five_minutes_ago = (emu.state.now() - timedelta(minutes=5)).astimezone(EASTERN)
    emu.state.upsert_prospect(
        None, {"cst_id": CHILD_ONLY, "lastchanged": local_five_minutes_ago.replace(tzinfo=None)}
    )
    lead = prospect(emu, CHILD_ONLY)["leads"][0]
    emu.state.upsert_job(
        None, lead["id"], {"id": lead["jobs"][0]["id"], "lastchangedon": "2024-01-01T00:00:00"}
    )
    integ = add_lp(emu, "acme")
    run_sync(integ, emu.state.now())
    (before,) = of_prospect(integ, CHILD_ONLY)
    emu.state.advance_clock(10 * 60)

    counts = run_sync(integ, emu.state.now())

    assert counts.fetched > 0 and counts.updated == counts.created == 0
    assert of_prospect(integ, CHILD_ONLY) == [before]


def test_records_missing_a_field_mapped_to_a_standard_field_are_not_synced_but_rejected_naming_it(
    emu: RunningEmulator,
) -> None:
    integ = add_lp(emu, "acme")
    counts = run_sync(integ, emu.state.now())

    rejected = dict(
        q("SELECT external_key, reason FROM rejected_record WHERE integration_id = %s", integ)
    )
    no_email = str(prospect(emu, NO_EMAIL)["leads"][0]["id"])
    assert rejected[no_email].endswith(f"lead {no_email}: missing Prospect.email")
    assert (
        "missing Prospect.leads[0].id, Prospect.leads[0].disposition" in rejected[f"cst:{NO_LEADS}"]
    )
    assert "Prospect.email" in rejected[f"cst:{NULL_EMAIL}"]
    for cst_id in (NO_EMAIL, NO_LEADS, NULL_EMAIL):
        assert of_prospect(integ, cst_id) == []
    assert counts.rejected == len(rejected)


def test_a_rejected_record_syncs_once_the_missing_field_is_filled_in(emu: RunningEmulator) -> None:
    integ = add_lp(emu, "acme")
    run_sync(integ, emu.state.now())
    emu.state.advance_clock(15 * 60)
    emu.state.upsert_prospect(None, {"cst_id": NO_EMAIL, "email": "found@example.com"})

    run_sync(integ, emu.state.now())

    (opp,) = of_prospect(integ, NO_EMAIL)
    assert opp["email"] == "found@example.com"
    assert (
        q(
            "SELECT 1 FROM rejected_record WHERE integration_id = %s AND external_key = %s",
            integ,
            opp["external_id"],
        )
        == []
    )


# --- standard fields -----------------------------------------------------------------------


def test_standard_fields_are_mapped_from_the_prospect_and_its_first_lead(
    emu: RunningEmulator,
) -> None:
    integ = add_lp(emu, "acme")
    run_sync(integ, emu.state.now())

    p = prospect(emu, SEVERAL_LEADS)
    opp = of_prospect(integ, SEVERAL_LEADS)[0]
    assert opp["email"] == "multi.leadson@example.com"
    assert opp["external_id"] == str(p["leads"][0]["id"])
    assert opp["contact_ext"] == str(SEVERAL_LEADS)
    assert opp["created"] == utc(p["dateadded"])
    assert opp["updated"] == utc(p["lastchanged"])
    assert (opp["first"], opp["last"]) == ("Multi", "Leadson")
    assert opp["phone"] == "+14075550102"
    assert opp["status"] == "Sold"


@pytest.mark.parametrize(
    ("cst_id", "source"),
    [
        (NO_LASTCHANGED, lambda p: p["leads"][0]["lastchangedon"]),
        (FALLBACK_ENTERED, lambda p: p["leads"][0]["dateentered"]),
        (FALLBACK_CONTRACT, lambda p: p["leads"][0]["jobs"][0]["contractdate"]),
        (FALLBACK_APPT, lambda p: p["leads"][0]["appointments"][0]["lastchangedon"]),
    ],
    ids=["lead-lastchangedon", "lead-dateentered", "job-contractdate", "appointment-lastchangedon"],
)
def test_external_updated_at_falls_back_when_the_field_above_is_missing(
    emu: RunningEmulator, cst_id: int, source: Any
) -> None:
    integ = add_lp(emu, "acme")
    run_sync(integ, emu.state.now())

    (opp,) = of_prospect(integ, cst_id)
    assert opp["updated"] == utc(source(prospect(emu, cst_id)))


def test_naive_times_are_the_integrations_time_zone_zero_dates_missing_and_flags_booleans(
    emu: RunningEmulator,
) -> None:
    integ = add_lp(emu, "acme")
    run_sync(integ, emu.state.now())

    p = prospect(emu, ZERO_DATE)
    (opp,) = of_prospect(integ, ZERO_DATE)
    details = opp["details"]
    assert p["leads"][0]["apptdate"].startswith("1899-12-30")
    assert details["Prospect.leads[0].apptdate"] is None
    assert details["Prospect.leads[0].appointments[0].apptdate"] is None
    assert (details["Prospect.leads[0].apptset"], details["Prospect.leads[0].sat"]) == (True, False)
    local = datetime.fromisoformat(p["dateadded"]).replace(tzinfo=EASTERN)
    assert opp["created"] == local.astimezone(UTC)
    assert details["Prospect.dateadded"] == local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- merge rules ---------------------------------------------------------------------------


def test_a_different_external_created_at_adds_a_new_opportunity_instead_of_updating(
    emu: RunningEmulator,
) -> None:
    integ = add_lp(emu, "acme")
    run_sync(integ, emu.state.now())
    (before,) = of_prospect(integ, CHILD_ONLY)
    emu.state.advance_clock(15 * 60)
    emu.state.upsert_prospect(None, {"cst_id": CHILD_ONLY, "dateadded": "2024-01-02T09:00:00"})

    counts = run_sync(integ, emu.state.now())

    (old,) = [o for o in of_prospect(integ, CHILD_ONLY) if o["created"] == before["created"]]
    (new,) = [o for o in of_prospect(integ, CHILD_ONLY) if o["created"] != before["created"]]
    assert old["external_id"] == new["external_id"] == before["external_id"]
    assert old == before  # untouched
    assert new["created"] == utc("2024-01-02T09:00:00")
    assert new["contact_id"] == old["contact_id"]  # added to the same contact
    assert counts.created == 1 and counts.updated == 0


def test_contacts_match_on_phone_or_email_and_a_placeholder_email_never_matches(
    emu: RunningEmulator,
) -> None:
    emu.state.upsert_prospect(
        None,
        {
            "firstname": "Other",
            "lastname": "Person",
            "email": "none@none.com",
            "phone1": "321-555-0199",
            "leads": [{"disposition": ""}],
        },
    )
    integ = add_lp(emu, "acme")
    run_sync(integ, emu.state.now())

    (same_person,) = of_prospect(integ, SAME_PERSON_AS_SEVERAL_LEADS)
    assert same_person["contact_id"] == of_prospect(integ, SEVERAL_LEADS)[0]["contact_id"]
    placeholder_contacts = q(
        "SELECT DISTINCT c.id, c.email FROM contact c JOIN opportunity o ON o.contact_id = c.id "
        "WHERE o.email = 'none@none.com'"
    )
    assert len(placeholder_contacts) == 2  # same placeholder email, two people
    assert {email for _, email in placeholder_contacts} == {None}


# --- window and cursor -----------------------------------------------------------------------


def test_a_late_run_two_hours_after_the_previous_sync_still_picks_up_everything_changed_since(
    emu: RunningEmulator,
) -> None:
    integ = add_lp(emu, "acme")
    s1 = emu.state.now()
    run_sync(integ, s1)
    emu.state.advance_clock(30 * 60)
    emu.state.upsert_prospect(None, {"cst_id": CHILD_ONLY, "firstname": "Early"})
    emu.state.advance_clock(60 * 60)
    emu.state.upsert_prospect(None, {"cst_id": ZERO_DATE, "firstname": "Middle"})
    emu.state.advance_clock(30 * 60)
    emu.state.clear_requests()

    s2 = emu.state.now()
    run_sync(integ, s2)

    assert s2 - s1 == timedelta(hours=2)
    assert of_prospect(integ, CHILD_ONLY)[0]["first"] == "Early"
    assert of_prospect(integ, ZERO_DATE)[0]["first"] == "Middle"
    first = getlead_requests(emu)[0].body
    assert first["startdate"] == s1.astimezone(EASTERN).strftime("%Y-%m-%dT%H:%M:%S")
    assert first["enddate"] == s2.astimezone(EASTERN).strftime("%Y-%m-%dT%H:%M:%S")


def test_a_regular_run_reads_the_last_20_minutes_before_the_sync_began(
    emu: RunningEmulator,
) -> None:
    integ = add_lp(emu, "acme")
    run_sync(integ, emu.state.now())
    emu.state.advance_clock(15 * 60)
    emu.state.clear_requests()

    s2 = emu.state.now()
    run_sync(integ, s2)

    first = getlead_requests(emu)[0].body
    assert first["startdate"] == (s2 - timedelta(minutes=20)).astimezone(EASTERN).strftime(
        "%Y-%m-%dT%H:%M:%S"
    )
    assert cursor(integ).done == s2


def test_a_crash_mid_window_resumes_the_same_window_and_loses_nothing(emu: RunningEmulator) -> None:
    crashed, clean = add_lp(emu, "crashed"), add_lp(emu, "clean")
    s1 = emu.state.now()
    first = sync.fetch_page(crashed, STREAM, s1)
    sync.merge(sync.map_page(crashed, first), None)
    sync.fetch_page(crashed, STREAM, s1)  # the next page is read, then the process dies
    interrupted = cursor(crashed)
    assert interrupted.next_index is not None and interrupted.done is None

    emu.state.advance_clock(10 * 60)
    emu.state.clear_requests()
    s2 = emu.state.now()
    run_sync(crashed, s2)
    run_sync(clean, s2)

    resumed = getlead_requests(emu)[0].body
    assert resumed["startindex"] == str(interrupted.next_index)
    assert resumed["enddate"] == s1.astimezone(EASTERN).strftime("%Y-%m-%dT%H:%M:%S")
    assert cursor(crashed).done == s2 and cursor(crashed).next_index is None

    def snapshot(integ: int) -> dict[str, tuple[Any, ...]]:
        keys = ("created", "updated", "email", "phone", "status", "details")
        return {key: tuple(o[k] for k in keys) for key, o in opportunities(integ).items()}

    assert snapshot(crashed) == snapshot(clean)
    assert len(snapshot(clean)) > 25


def test_a_record_edited_while_a_window_is_paged_does_not_push_another_out_of_it(
    emu: RunningEmulator,
) -> None:
    integ = add_lp(emu, "acme", page_size=10)
    run_sync(integ, emu.state.now())
    emu.state.advance_clock(15 * 60)
    changed = [p["cst_id"] for p in emu.state.get_prospects()][12:40]
    for cst_id in changed:
        emu.state.upsert_prospect(None, {"cst_id": cst_id, "address1": "1 New Street"})
    emu.state.advance_clock(60)
    s2 = emu.state.now()
    page = sync.fetch_page(integ, STREAM, s2)
    sync.merge(sync.map_page(integ, page), None)
    # Edits after the window's end move three already-read prospects out of it, so every
    # later prospect moves up three places in LP's result.
    emu.state.advance_clock(60)
    for cst_id in changed[:3]:
        emu.state.upsert_prospect(None, {"cst_id": cst_id, "address2": "Apt 1"})

    run_sync(integ, s2)

    def has_new_address(cst_id: int) -> bool:
        opps = of_prospect(integ, cst_id)
        return any(o["details"]["Prospect.address1"] == "1 New Street" for o in opps)

    expected = {c for c in changed if of_prospect(integ, c)}  # those that are not rejected
    assert {c for c in changed if has_new_address(c)} == expected
    # Generated prospects vary with the time of day the emulator starts; most are syncable.
    assert len(expected) >= 14


def test_token_expiry_mid_run_is_transparent(emu: RunningEmulator) -> None:
    integ = add_lp(emu, "acme")
    s1 = emu.state.now()
    page = sync.fetch_page(integ, STREAM, s1)
    sync.merge(sync.map_page(integ, page), None)
    emu.state.arm_fault("expire_token", route=GET_LEAD)

    run_sync(integ, s1)

    log = [(r.path, r.status) for r in emu.state.requests]
    expired = log.index((GET_LEAD, 401))
    assert log[expired + 1 : expired + 3] == [("/token", 200), (GET_LEAD, 200)]
    assert cursor(integ).done == s1.replace(microsecond=0)
    assert len(opportunities(integ)) > 25


# --- through the flow ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_the_sync_tenant_flow_syncs_leadperfection_and_a_second_run_with_no_changes_changes_nothing(
    emu: RunningEmulator,
) -> None:
    from flows.sync import sync_tenant

    integ = add_lp(emu, "acme", page_size=20)

    first = asyncio.run(sync_tenant("acme"))
    second = asyncio.run(sync_tenant("acme"))

    one, two = first["counts"]["lp:prospects"], second["counts"]["lp:prospects"]
    assert one["created"] == len(opportunities(integ)) > 25
    assert one["fetched"] == 40
    assert two["created"] == two["updated"] == 0
    assert two["fetched"] > 0  # the overlap re-read the last 20 minutes, and nothing changed
    ((status, counts),) = q("SELECT status, counts FROM sync_run ORDER BY id DESC LIMIT 1")
    assert status == "completed" and counts["lp:prospects"]["created"] == 0
    assert (
        orjson.loads(q("SELECT cursor FROM sync_cursor WHERE integration_id = %s", integ)[0][0])[
            "next"
        ]
        is None
    )
