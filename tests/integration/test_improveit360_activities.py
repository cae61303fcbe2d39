"""Issue 15 for improveit360: Notes and Tasks made in the org come into the hub as inbound
activities (``crm_activity``), over real HTTP from the Salesforce emulator, each rule named.

A CSR's work in the org is played through the emulator's control routes (create and edit a
record, delete it into the recycle bin). Pulls run the provider's own fetch → map → merge, stream
by stream in read order, as the flow does; the push of the no-echo test is the real push path.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from crmsync import db, push, report, sync
from crmsync.merge import MergeCounts
from crmsync.providers.improveit360 import clear_clients
from crmsync.settings import PushPolicy
from sandbox.salesforce import OrgSpec, RunningEmulator, run_emulator
from tests.factories import make_integration, make_tenant

pytestmark = pytest.mark.usefixtures("clean_db")

ORG = "00D000000000005AAA"
NS = "i360core__"
OPP = f"{NS}Sales_Opportunity__c"
PROJECT = f"{NS}Project__c"
APPT = f"{NS}Sales_Appointment__c"
SPEC = OrgSpec(
    org_id=ORG,
    client_id="3MVG9.i360act",
    client_secret="sfsecret.i360act",
    username="api@i360act.example",
    password="pw-i360act",
    refresh_token="5Aep861.i360act-refresh",
    opportunities=3,
    seed=5,
)
ON = {"inbound_activities": {"enabled": True}}
NOW_POLICY = PushPolicy(retry_delay_seconds=0, defer_seconds=0, orphan_after_seconds=3600)


@pytest.fixture(scope="module")
def served() -> Iterator[RunningEmulator]:
    with run_emulator([SPEC], port=0, batch_size=20) as running:
        yield running


@pytest.fixture
def emu(served: RunningEmulator) -> Iterator[RunningEmulator]:
    served.reset()
    clear_clients()
    yield served
    served.state.clear_faults()


def i360(emu: RunningEmulator, **settings: Any) -> tuple[int, int]:
    tenant = make_tenant("acme")
    integ = make_integration(
        tenant,
        name="i360",
        provider="improveit360",
        credentials={"client_id": SPEC.client_id, "refresh_token": SPEC.refresh_token},
        settings=settings,
        auth_url=emu.url,
    )
    return tenant, integ


def ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def stamped(days: float) -> dict[str, Any]:
    """System stamps ``days`` back, as a record last touched then has them."""
    moment = ago(days)
    return {"CreatedDate": moment, "LastModifiedDate": moment, "SystemModstamp": moment}


def person(emu: RunningEmulator, n: int = 1, *, days: float | None = None) -> dict[str, str]:
    """An Account, a Contact, its Sales Opportunity and a Project of it (``days`` back)."""
    old = stamped(days) if days is not None else {}
    account = emu.state.upsert(ORG, "Account", {"Name": f"Lee Household {n}", **old})
    contact = emu.state.upsert(
        ORG,
        "Contact",
        {
            "AccountId": account["Id"],
            "FirstName": "Ann",
            "LastName": f"Lee{n}",
            "Email": f"ann.lee{n}@example.com",
            **old,
        },
    )
    opp = emu.state.upsert(
        ORG, OPP, {f"{NS}Contact__c": contact["Id"], f"{NS}Account__c": account["Id"], **old}
    )
    project = emu.state.upsert(ORG, PROJECT, {f"{NS}Sales_Opportunity__c": opp["Id"], **old})
    return {"contact": contact["Id"], "opp": opp["Id"], "project": project["Id"]}


def note(emu: RunningEmulator, parent: str, title: str = "Called back", **kw: Any) -> str:
    body = kw.pop("body", "Wants the quote by Friday")
    rec = emu.state.upsert(ORG, "Note", {"ParentId": parent, "Title": title, "Body": body, **kw})
    return str(rec["Id"])


def task(emu: RunningEmulator, subtype: str = "Task", **kw: Any) -> str:
    values = {"Subject": f"{subtype} with Ann", "Status": "Completed", "TaskSubtype": subtype}
    return str(emu.state.upsert(ORG, "Task", {**values, **kw})["Id"])


def pull(integ: int) -> dict[str, MergeCounts]:
    """Every stream in read order, page by page: fetch → map → merge (+ cursor)."""
    started = datetime.now(UTC)
    counts: dict[str, MergeCounts] = {}
    for stream in sync.streams(integ):
        merged = counts.setdefault(stream, MergeCounts())
        after: str | None = None
        while True:
            page = sync.fetch_page(integ, stream, started, after)
            merged.add(sync.merge(sync.map_page(integ, page), None))
            if not page.has_more:
                break
            after = page.next_cursor
    return counts


def rows(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute(sql, params).fetchall()


def activity(external_id: str) -> dict[str, Any]:
    cols = (
        "kind, parent, contact_ref, opportunity_ref, contact_id, opportunity_id, subject, body, "
        "author, deleted_at"
    )
    found = rows(f"SELECT {cols} FROM crm_activity WHERE external_id = %s", external_id)
    assert len(found) == 1, f"{external_id}: {found}"
    return dict(zip(cols.split(", "), found[0], strict=True))


def hub_contact(sf_contact: str) -> int:
    ((cid,),) = rows(
        "SELECT DISTINCT contact_id FROM opportunity WHERE external_contact_id = %s", sf_contact
    )
    return int(cid)


def soql_sent(emu: RunningEmulator) -> list[str]:
    return [r["soql"] for r in emu.state.requests if r.get("soql")]


# -- what comes in ----------------------------------------------------------------------------------


def test_notes_and_tasks_come_in_linked_to_the_opportunity_or_contact_they_hang_under(
    emu: RunningEmulator,
) -> None:
    _, integ = i360(emu, **ON)
    p = person(emu)
    on_opp = note(emu, p["opp"], "Measured the windows")
    on_contact = note(emu, p["contact"], "Prefers texts")
    on_project = note(emu, p["project"], "Install moved to May")
    call = task(emu, "Call", WhatId=p["opp"], WhoId=p["contact"], Description="Left a voicemail")
    pull(integ)

    contact = hub_contact(p["contact"])
    ((opp_id,),) = rows("SELECT id FROM opportunity WHERE external_id = %s", p["opp"])
    assert activity(on_opp) | {"deleted_at": None} == {
        "kind": "note",
        "parent": f"opportunities:{p['opp']}",
        "contact_ref": p["contact"],
        "opportunity_ref": p["opp"],
        "contact_id": contact,
        "opportunity_id": opp_id,
        "subject": "Measured the windows",
        "body": "Wants the quote by Friday",
        "author": "Integration User",
        "deleted_at": None,
    }
    assert (activity(on_contact)["contact_id"], activity(on_contact)["opportunity_id"]) == (
        contact,
        None,
    )
    assert activity(on_project)["parent"] == f"projects:{p['project']}"
    assert activity(on_project)["opportunity_id"] == opp_id, "a Project's note reaches its opp"
    assert activity(call)["kind"] == "call" and activity(call)["body"] == "Left a voicemail"
    assert activity(call)["contact_id"] == contact


def test_parent_first_a_note_on_an_opportunity_outside_the_window_waits_and_is_linked_when_it_syncs(
    emu: RunningEmulator,
) -> None:
    _, integ = i360(emu, **ON)
    p = person(emu, days=200)  # outside the first sync's 90 days: not read yet
    early = note(emu, p["opp"], "Asked about financing")
    on_project = note(emu, p["project"], "Permit filed")
    counts = pull(integ)

    assert counts["notes"].activities == 2 and counts["notes"].activities_waiting == 2
    assert rows("SELECT count(*) FROM opportunity WHERE external_id = %s", p["opp"]) == [(0,)]
    assert activity(early)["contact_id"] is None and activity(on_project)["contact_id"] is None

    emu.state.upsert(ORG, OPP, {"Id": p["opp"], f"{NS}Status__c": "Quoted"})  # the CSR edits it
    pull(integ)
    contact = hub_contact(p["contact"])
    assert activity(early)["contact_id"] == contact
    assert activity(on_project)["contact_id"] == contact


# -- no echo ---------------------------------------------------------------------------------------


def test_no_echo_a_note_and_a_task_crmsync_pushed_never_come_back_in(emu: RunningEmulator) -> None:
    tenant, integ = i360(
        emu, push_outgoing_campaign_messages=["contact_note", "opportunity_task"], **ON
    )
    p = person(emu)
    pull(integ)
    contact = hub_contact(p["contact"])
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
    assert push.deliver(tenant, policy=NOW_POLICY).delivered == 2
    (pushed_note,) = emu.state.get_records(ORG, "Note")
    (pushed_task,) = emu.state.get_records(ORG, "Task")
    csr = note(emu, p["contact"], "Ann called about the quote")

    counts = pull(integ)
    assert (counts["notes"].echoes, counts["tasks"].echoes) == (1, 1)
    assert [r[0] for r in rows("SELECT external_id FROM crm_activity")] == [csr]
    stored = {r[0] for r in rows("SELECT external_id FROM crm_activity")}
    assert pushed_note["Id"] not in stored and pushed_task["Id"] not in stored
    assert rows("SELECT count(*) FROM push_ledger") == [(2,)], "nothing is pushed back out"


# -- edits and deletions ---------------------------------------------------------------------------


def test_edit_an_edited_note_updates_its_row(emu: RunningEmulator) -> None:
    _, integ = i360(emu, **ON)
    p = person(emu)
    ident = note(emu, p["opp"], body="first draft")
    pull(integ)
    emu.state.advance_clock(60)
    emu.state.upsert(ORG, "Note", {"Id": ident, "Body": "corrected: Friday 3pm"})
    counts = pull(integ)
    assert counts["notes"].activities == 1
    assert activity(ident)["body"] == "corrected: Friday 3pm"
    assert rows("SELECT count(*) FROM crm_activity") == [(1,)]


def test_delete_a_note_and_a_task_deleted_in_the_org_are_marked_deleted_through_query_all(
    emu: RunningEmulator,
) -> None:
    _, integ = i360(emu, **ON)
    p = person(emu)
    gone, kept = note(emu, p["opp"], "Wrong house"), note(emu, p["opp"], "Right house")
    todo = task(emu, WhatId=p["opp"])
    pull(integ)
    emu.state.advance_clock(60)
    for sobject, ident in (("Note", gone), ("Task", todo)):
        response = httpx.delete(f"{emu.url}/__emulator/orgs/{ORG}/sobjects/{sobject}/{ident}")
        response.raise_for_status()
    emu.state.clear_requests()
    pull(integ)

    assert activity(gone)["deleted_at"] is not None and activity(todo)["deleted_at"] is not None
    assert activity(kept)["deleted_at"] is None
    reads = [r["path"] for r in emu.state.requests if r.get("soql") and "FROM Note" in r["soql"]]
    assert reads and all("/queryAll" in path for path in reads)


# -- settings ----------------------------------------------------------------------------------------


def test_off_by_setting_notes_and_tasks_are_not_even_requested(emu: RunningEmulator) -> None:
    _, integ = i360(emu)  # inbound_activities off by default
    p = person(emu)
    note(emu, p["opp"])
    task(emu, "Call", WhatId=p["opp"])
    assert "notes" not in sync.streams(integ) and "tasks" not in sync.streams(integ)
    pull(integ)
    touched = [
        r["path"] + " " + (r.get("soql") or "")
        for r in emu.state.requests
        if "/sobjects/Note" in r["path"]
        or "/sobjects/Task" in r["path"]
        or " FROM Note" in (r.get("soql") or "")
        or " FROM Task" in (r.get("soql") or "")
    ]
    assert touched == []
    assert rows("SELECT count(*) FROM crm_activity") == [(0,)]
    assert rows("SELECT count(*) FROM opportunity") != [(0,)], "the records still sync"


def test_kinds_only_the_chosen_kinds_are_read(emu: RunningEmulator) -> None:
    _, integ = i360(emu, inbound_activities={"enabled": True, "kinds": ["call", "email"]})
    p = person(emu)
    note(emu, p["opp"])
    call, mail = task(emu, "Call", WhatId=p["opp"]), task(emu, "Email", WhatId=p["opp"])
    task(emu, "Task", WhatId=p["opp"])
    assert sync.streams(integ)[-1] == "tasks" and "notes" not in sync.streams(integ)
    pull(integ)

    stored = rows("SELECT kind, external_id FROM crm_activity ORDER BY kind")
    assert stored == [("call", call), ("email", mail)]
    (tasks_soql,) = [s for s in soql_sent(emu) if " FROM Task" in s]
    assert "TaskSubtype IN ('Call', 'Email', 'ListEmail')" in tasks_soql
    assert not [s for s in soql_sent(emu) if " FROM Note" in s]


def test_first_sync_window_an_activity_older_than_first_sync_days_is_not_read(
    emu: RunningEmulator,
) -> None:
    _, integ = i360(emu, **ON)
    p = person(emu)
    old = note(emu, p["opp"], "Last year's visit", **stamped(120))
    recent = note(emu, p["opp"], "This week's visit", **stamped(10))
    counts = pull(integ)
    assert counts["notes"].fetched == 1
    assert [r[0] for r in rows("SELECT external_id FROM crm_activity")] == [recent]
    assert old not in {r[0] for r in rows("SELECT external_id FROM crm_activity")}


# -- counts ----------------------------------------------------------------------------------------


def test_counts_in_the_run_activities_stored_waiting_and_echoes_show_in_the_run_table(
    emu: RunningEmulator,
) -> None:
    _, integ = i360(emu, **ON)
    p = person(emu)
    waiting = person(emu, 2, days=200)
    note(emu, p["opp"])
    note(emu, waiting["opp"])
    task(emu, "Call", WhoId=p["contact"])
    counts = pull(integ)
    assert (counts["notes"].activities, counts["notes"].activities_waiting) == (2, 1)
    assert (counts["tasks"].activities, counts["tasks"].activities_waiting) == (1, 0)

    table = report.run_table({f"i360:{s}": c.as_dict() for s, c in counts.items()}, {})
    by_stream = {row["stream"]: row for row in table}
    assert by_stream["notes"]["CRM activities stored"] == 2
    assert by_stream["notes"]["CRM activities waiting"] == 1
    assert by_stream["tasks"]["CRM activities stored"] == 1
