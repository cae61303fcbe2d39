"""LeadPerfection notes and call history into the hub (issue 15, seed 004), over real HTTP.

LP has no list-notes endpoint (crm-apis.md §2.3): the notes and calls come nested in the GetLead
prospects the sync reads anyway, so every rule here is read from the prospects stream. The tests
act as the CSR through the emulator's state (what LP's screens would do: a note added, edited or
deleted bumps the prospect's ``lastchanged``; a call log bumps nothing, seed 001 "KNOWN
LIMITATIONS") and drive the provider through :mod:`crmsync.sync`'s Prefect-free steps, with the
``sync_tenant`` flow where the run's figures are what is checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import Any

import pytest

from connectors.leadperfection import DEFAULT_TOKEN_CACHE
from crmsync import db, push, sync
from crmsync.merge import MergeCounts
from crmsync.providers import leadperfection as lp_provider
from crmsync.providers.leadperfection import STREAM
from crmsync.settings import PushPolicy
from flows.sync import sync_tenant
from sandbox.leadperfection import LPClientSpec, RunningEmulator, run_emulator
from tests.factories import make_integration, make_tenant

pytestmark = pytest.mark.usefixtures("clean_db")

APPKEY = "9d0c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a"
SPEC = LPClientSpec("wq55a", "api.user", "pw", APPKEY, prospects=0, fixtures=False)
GET_LEAD = "/api/Customers/GetLead"
NOW_POLICY = PushPolicy(retry_delay_seconds=0, defer_seconds=0, orphan_after_seconds=3600)


@pytest.fixture(scope="module")
def served() -> Iterator[RunningEmulator]:
    with run_emulator([SPEC], port=0, freeze_clock=True) as running:
        yield running


@pytest.fixture
def emu(served: RunningEmulator) -> RunningEmulator:
    served.state.reset()
    DEFAULT_TOKEN_CACHE.clear()
    lp_provider._clients.clear()
    return served


def add_lp(emu: RunningEmulator, slug: str = "acme", **settings: Any) -> tuple[int, int]:
    tenant = make_tenant(slug)
    settings.setdefault("inbound_activities", {"enabled": True})
    integ = make_integration(
        tenant,
        name="lp",
        provider="leadperfection",
        credentials={
            "clientid": SPEC.clientid,
            "username": SPEC.username,
            "password": SPEC.password,
            "appkey": SPEC.appkey,
        },
        settings={"page_size": 10, **settings},
        base_url=emu.url,
    )
    return tenant, integ


def csr_note(text: str, by: str = "Office", **kw: Any) -> dict[str, Any]:
    """A note as LP holds one a CSR typed (no id, like LP's)."""
    return {"notes": text, "rectype": "cst", "category": "General", "enteredby": by, **kw}


def lp_prospect(emu: RunningEmulator, n: int, *, leads: bool = True, **fields: Any) -> int:
    """A prospect with one lead (a note on it), a note and a call; returns its cst_id."""
    now = emu.state.now_local()
    record: dict[str, Any] = {
        "firstname": "Ann",
        "lastname": f"Lee{n}",
        "email": f"ann.lee{n}@example.com",
        "phone1": f"(407) 555-01{n:02d}",
        "notes": [csr_note("Wants both floors quoted.", enteredon=now)],
        "calls": [
            {
                "calldatetime": now,
                "phone": f"407-555-01{n:02d}",
                "resultcode": "LM",
                "resultdescr": "Left Message",
                "calltype": "O",
                "calltypedescr": "Outbound",
                "agent": "E12",
                "agentname": "Dana Cruz",
            }
        ],
        **fields,
    }
    if leads:
        record["leads"] = [
            {
                "disposition": "",
                "source": "Internet",
                "notes": [csr_note("Rep: bring samples.", by="Pat Morgan", enteredon=now)],
            }
        ]
    return int(emu.state.upsert_prospect(None, record)["cst_id"])


def edit(emu: RunningEmulator, cst_id: int, **fields: Any) -> None:
    """A CSR's change in LP: the lists given replace the prospect's; ``lastchanged`` moves."""
    emu.state.advance_clock(60)
    emu.state.upsert_prospect(None, {"cst_id": cst_id, **fields})


def run_sync(emu: RunningEmulator, integ: int, after: float = 5) -> MergeCounts:
    """One sync that starts ``after`` seconds past the emulator's now (its clock is frozen)."""
    started = emu.state.now() + timedelta(seconds=after)
    totals = MergeCounts()
    while True:
        page = sync.fetch_page(integ, STREAM, started)
        totals.add(sync.merge(sync.map_page(integ, page), None))
        if not page.has_more:
            return totals


def q(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute(sql, params).fetchall()


def activities(integ: int) -> dict[tuple[str, str], dict[str, Any]]:
    """Stored activities keyed (kind, body or subject)."""
    rows = q(
        "SELECT kind, external_id, parent, body, subject, author, contact_id, opportunity_id, "
        "deleted_at, xmin::text FROM crm_activity WHERE integration_id = %s ORDER BY id",
        integ,
    )
    names = [
        "kind",
        "id",
        "parent",
        "body",
        "subject",
        "author",
        "contact",
        "opp",
        "deleted",
        "xmin",
    ]
    return {(r[0], r[3] or r[4]): dict(zip(names, r, strict=True)) for r in rows}


def contact_of(integ: int, cst_id: int) -> int:
    ((contact,),) = q(
        "SELECT DISTINCT contact_id FROM opportunity WHERE integration_id = %s "
        "AND external_contact_id = %s",
        integ,
        str(cst_id),
    )
    return int(contact)


def test_prospect_and_lead_notes_and_call_history_are_stored_on_the_prospects_contact(
    emu: RunningEmulator,
) -> None:
    _, integ = add_lp(emu)
    cst = lp_prospect(emu, 1)

    counts = run_sync(emu, integ)

    acts = activities(integ)
    assert set(acts) == {
        ("note", "Wants both floors quoted."),
        ("note", "Rep: bring samples."),
        ("call", "Outbound call: Left Message"),
    }
    assert {a["contact"] for a in acts.values()} == {contact_of(integ, cst)}
    lead_note = acts[("note", "Rep: bring samples.")]
    assert lead_note["parent"].startswith("leads:") and lead_note["opp"] is not None
    assert acts[("call", "Outbound call: Left Message")]["author"] == "Dana Cruz"
    assert (counts.activities, counts.activities_waiting) == (3, 0)


def test_inbound_activities_cost_lp_no_request_of_their_own(emu: RunningEmulator) -> None:
    for n in range(1, 4):
        lp_prospect(emu, n)
    _, off = add_lp(emu, "off", inbound_activities={"enabled": False})
    _, on = add_lp(emu, "on")

    before = len(emu.state.requests)
    run_sync(emu, off)
    requests_off = [(r.path, r.body) for r in emu.state.requests[before:] if r.path != "/token"]
    before = len(emu.state.requests)
    run_sync(emu, on)
    requests_on = [(r.path, r.body) for r in emu.state.requests[before:] if r.path != "/token"]

    assert activities(off) == {}, "off by default and by setting: nothing stored"
    assert q("SELECT count(*) FROM crm_activity WHERE integration_id = %s", on) == [(9,)]
    assert requests_on == requests_off and {path for path, _ in requests_on} == {GET_LEAD}


def test_only_the_kinds_chosen_are_stored(emu: RunningEmulator) -> None:
    lp_prospect(emu, 1)
    _, integ = add_lp(emu, inbound_activities={"enabled": True, "kinds": ["call"]})
    run_sync(emu, integ)
    assert set(activities(integ)) == {("call", "Outbound call: Left Message")}


def test_an_unchanged_note_read_again_by_the_20_minute_window_costs_no_write(
    emu: RunningEmulator,
) -> None:
    _, integ = add_lp(emu)
    lp_prospect(emu, 1)
    run_sync(emu, integ)
    stored = activities(integ)
    getleads = len([r for r in emu.state.requests if r.path == GET_LEAD])

    emu.state.advance_clock(300)  # the next round: its window still covers the prospect's change
    again = run_sync(emu, integ)

    reread = [r for r in emu.state.requests[getleads:] if r.path == GET_LEAD]
    assert reread and again.fetched == 1, "the window read the prospect again"
    assert (again.activities, again.echoes) == (0, 0)
    assert activities(integ) == stored, "same rows, same xmin: nothing was written"


def test_parent_first_a_note_of_a_prospect_not_in_the_hub_waits_and_is_linked_when_it_arrives(
    emu: RunningEmulator,
) -> None:
    """Seed 004: never attached to a wrong contact, never lost. A prospect without a lead has no
    External ID (seed 001), so it is rejected and its note and call wait for it."""
    _, integ = add_lp(emu)
    lp_prospect(emu, 2)
    cst = lp_prospect(emu, 1, leads=False)

    first = run_sync(emu, integ)
    waiting = q("SELECT contact_id FROM crm_activity WHERE parent = %s", f"prospects:{cst}")
    assert first.activities_waiting == 2 and waiting == [(None,), (None,)]

    edit(emu, cst, leads=[{"disposition": "", "source": "Internet"}])
    run_sync(emu, integ)

    linked = q("SELECT contact_id FROM crm_activity WHERE parent = %s", f"prospects:{cst}")
    assert linked == [(contact_of(integ, cst),)] * 2


def test_an_edited_note_with_lps_id_updates_its_row(emu: RunningEmulator) -> None:
    _, integ = add_lp(emu)
    now = emu.state.now_local()
    cst = lp_prospect(emu, 1, notes=[csr_note("Call after 5", id=901, enteredon=now)])
    run_sync(emu, integ)
    (before,) = [a for a in activities(integ).values() if a["id"] == "901"]

    edit(emu, cst, notes=[csr_note("Call after 6", id=901, enteredon=now)])
    counts = run_sync(emu, integ)

    (after,) = [a for a in activities(integ).values() if a["id"] == "901"]
    assert (before["body"], after["body"]) == ("Call after 5", "Call after 6")
    assert after["deleted"] is None and counts.activities == 1


def test_an_edited_note_without_an_id_is_the_old_note_deleted_and_a_new_one(
    emu: RunningEmulator,
) -> None:
    """LP does not version notes and mostly sends no id: the id is made of what the note is."""
    _, integ = add_lp(emu)
    now = emu.state.now_local()
    cst = lp_prospect(emu, 1, notes=[csr_note("Call after 5", enteredon=now)])
    run_sync(emu, integ)

    edit(emu, cst, notes=[csr_note("Call after 6", enteredon=now)])
    run_sync(emu, integ)

    acts = activities(integ)
    old, new = acts[("note", "Call after 5")], acts[("note", "Call after 6")]
    assert old["deleted"] is not None and new["deleted"] is None
    assert old["id"] != new["id"] and old["contact"] == new["contact"]


def test_a_deleted_note_is_marked_deleted_and_the_others_of_its_prospect_are_kept(
    emu: RunningEmulator,
) -> None:
    _, integ = add_lp(emu)
    now = emu.state.now_local()
    keep, gone = csr_note("Keep me", enteredon=now), csr_note("Delete me", enteredon=now)
    cst = lp_prospect(emu, 1, notes=[keep, gone])
    run_sync(emu, integ)

    edit(emu, cst, notes=[keep], calls=[])
    counts = run_sync(emu, integ)

    acts = activities(integ)
    assert acts[("note", "Delete me")]["deleted"] is not None
    assert acts[("call", "Outbound call: Left Message")]["deleted"] is not None
    assert acts[("note", "Keep me")]["deleted"] is None
    assert acts[("note", "Rep: bring samples.")]["deleted"] is None, "the lead's list is its own"
    assert counts.activities == 2


def test_no_echo_a_note_and_a_call_log_crmsync_pushed_never_come_back_in(
    emu: RunningEmulator,
) -> None:
    tenant, integ = add_lp(emu, push_to_notes=True, push_to_call_logs=True)
    cst = lp_prospect(emu, 1)
    run_sync(emu, integ)
    contact = contact_of(integ, cst)
    push.record_activity(
        push.ActivityIn.model_validate(
            {
                "tenant_id": tenant,
                "contact_id": contact,
                "kind": "outbound_campaign_message",
                "channel": "sms",
                "campaign_name": "Spring Windows",
                "body": "Hi Ann, your window quote is ready!",
            }
        )
    )
    push.plan(tenant)
    delivered = push.deliver(tenant, policy=NOW_POLICY)
    assert delivered.delivered == 2, "a prospect note and a call log in LP"
    ((call_ref,),) = q("SELECT crm_record_id FROM push_ledger WHERE target = 'call_log'")
    assert call_ref.startswith(f"call_log:{cst}:")

    counts = run_sync(emu, integ, after=60)  # the note bumped the prospect: it is read again

    assert counts.echoes == 2
    acts = activities(integ)
    assert not [a for a in acts.values() if "window quote" in (a["body"] or "")]
    assert call_ref not in {a["id"] for a in acts.values()}
    assert len(acts) == 3, "the CSR's two notes and call stay"
    assert q("SELECT count(*) FROM activity") == [(1,)], "nothing inbound enters the outbox"


def test_the_first_sync_reads_the_notes_of_the_prospects_changed_in_its_90_days_only(
    emu: RunningEmulator,
) -> None:
    _, integ = add_lp(emu)
    old = (emu.state.now() - timedelta(days=120)).astimezone(UTC)
    stale = lp_prospect(emu, 1, dateadded=old, lastchanged=old, leads=False)
    recent = lp_prospect(emu, 2)

    run_sync(emu, integ)

    parents = {a["parent"] for a in activities(integ).values()}
    assert f"prospects:{recent}" in parents and f"prospects:{stale}" not in parents


@pytest.mark.usefixtures("prefect_api")
def test_the_run_counts_the_activities_it_stored(emu: RunningEmulator) -> None:
    add_lp(emu, "counted")
    lp_prospect(emu, 1)
    lp_prospect(emu, 2, leads=False)

    state = asyncio.run(sync_tenant("counted", return_state=True))  # type: ignore[call-overload]

    assert state.is_completed()
    ((counts,),) = q("SELECT counts FROM sync_run ORDER BY id DESC LIMIT 1")
    figures = counts["lp:prospects"]
    assert (figures["activities"], figures["activities_waiting"], figures["echoes"]) == (5, 2, 0)
