"""LeadPerfection notes and call history as hub activities (issue 15; crm-apis.md §2.3, §2.5):
the pure mapping of :func:`models.mappings.leadperfection.map_activities`, on GetLead payloads
as LP sends them (notes without ids or as bare strings, calls without ids, naive Eastern time)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from models.mappings.leadperfection import call_log_ids, map_activities, note_id
from models.standard import InboundActivity

EASTERN = ZoneInfo("America/New_York")


def note(text: str, on: str = "2025-04-16T17:00:07", by: str = "Pat Morgan", **kw: Any) -> Any:
    return {
        "notes": text,
        "rectype": "cst",
        "category": "Sales",
        "enteredby": by,
        "enteredon": on,
        **kw,
    }


def call(at: str, ctype: str = "O", result: str = "LM", **kw: Any) -> dict[str, Any]:
    return {
        "calldatetime": at,
        "phone": "407-555-0101",
        "resultcode": result,
        "resultdescr": "Left Message" if result == "LM" else "",
        "calltype": ctype,
        "calltypedescr": "Outbound" if ctype == "O" else "Inbound",
        "agent": "E12",
        "agentname": "Dana Cruz",
        **kw,
    }


def prospect(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "cst_id": 100001,
        "notes": [note("Wants both floors quoted.")],
        "calls": [call("2025-04-16T13:05:00")],
        "leads": [
            {
                "id": 2000001,
                "notes": [note("Rep: bring samples.", rectype="ils")],
                "jobs": [{"id": 5000001, "notes": [note("Crew needs gate code.")]}],
            }
        ],
    }
    base.update(kw)
    return base


def mapped(
    *prospects: Any, kinds: tuple[str, ...] = ("note", "call")
) -> tuple[list[InboundActivity], list[tuple[str, str]], list[Any]]:
    return map_activities(list(prospects), tz=EASTERN, kinds=kinds)


def by_parent(acts: list[InboundActivity]) -> dict[str, list[InboundActivity]]:
    out: dict[str, list[InboundActivity]] = {}
    for a in acts:
        out.setdefault(a.parent, []).append(a)
    return out


def test_prospect_notes_and_calls_reach_the_contact_through_the_prospect() -> None:
    acts, _, rejects = mapped(prospect())
    (p_note,) = [a for a in acts if a.parent == "prospects:100001" and a.kind == "note"]
    (p_call,) = [a for a in acts if a.kind == "call"]
    assert rejects == []
    assert (p_note.contact_ref, p_note.opportunity_ref) == ("100001", None)
    assert (p_note.author, p_note.subject, p_note.body) == (
        "Pat Morgan",
        "Sales",
        "Wants both floors quoted.",
    )
    assert (p_call.parent, p_call.contact_ref, p_call.opportunity_ref) == (
        "prospects:100001",
        "100001",
        None,
    )
    assert (p_call.author, p_call.subject) == ("Dana Cruz", "Outbound call: Left Message")


def test_lead_and_job_notes_name_the_leads_opportunity_and_its_prospect() -> None:
    acts, _, _ = mapped(prospect())
    groups = by_parent(acts)
    (lead_note,) = groups["leads:2000001"]
    (job_note,) = groups["jobs:5000001"]
    assert lead_note.opportunity_ref == job_note.opportunity_ref == ("lead", "2000001")
    assert lead_note.contact_ref == job_note.contact_ref == "100001"
    assert job_note.body == "Crew needs gate code."


def test_times_are_the_integrations_wall_clock_in_utc() -> None:
    acts, _, _ = mapped(prospect())
    stamps = {a.kind: a.created_at for a in acts if a.parent == "prospects:100001"}
    assert stamps["note"] == datetime(2025, 4, 16, 21, 0, 7, tzinfo=UTC)
    assert stamps["call"] == datetime(2025, 4, 16, 17, 5, 0, tzinfo=UTC)


def test_a_bare_string_note_is_a_note_with_that_text_and_no_author_or_date() -> None:
    acts, _, rejects = mapped(
        prospect(notes=["Duplicate of an older prospect?"], calls=[], leads=[])
    )
    (only,) = acts
    assert (only.body, only.author, only.created_at) == (
        "Duplicate of an older prospect?",
        None,
        None,
    )
    assert only.payload == {"notes": "Duplicate of an older prospect?"} and rejects == []


def test_an_id_less_note_keeps_its_id_wherever_it_sits_in_the_list() -> None:
    first, _, _ = mapped(prospect(notes=[note("A"), note("B")], calls=[], leads=[]))
    later, _, _ = mapped(prospect(notes=[note("new"), note("B"), note("A")], calls=[], leads=[]))
    ids = {a.body: a.external_id for a in first}
    assert {a.body: a.external_id for a in later if a.body in ids} == ids
    assert ids["A"].startswith("prospects:100001/")


def test_an_edit_of_an_id_less_notes_text_is_a_new_note_since_lp_does_not_version_notes() -> None:
    (before,), _, _ = mapped(prospect(notes=[note("Call after 5")], calls=[], leads=[]))
    (after,), _, _ = mapped(prospect(notes=[note("Call after 6")], calls=[], leads=[]))
    (moved,), _, _ = mapped(
        prospect(notes=[note("Call after 5", category="General")], calls=[], leads=[])
    )
    assert before.external_id != after.external_id
    assert moved.external_id == before.external_id, "a re-categorised note is the same note"


def test_identical_notes_in_one_list_are_told_apart_and_lps_own_id_wins() -> None:
    acts, _, _ = mapped(
        prospect(notes=[note("x"), note("x"), note("y", id=77)], calls=[], leads=[])
    )
    assert [a.external_id for a in acts][2] == "77"
    assert acts[1].external_id == acts[0].external_id + "#2"
    assert note_id("prospects:1", "same text") == note_id("prospects:1", "same text")
    assert note_id("prospects:1", "same text") != note_id("prospects:2", "same text")


def test_a_call_without_an_id_gets_the_stand_in_the_push_adapter_records_in_the_push_ledger() -> (
    None
):
    """``call_log:<cst_id>:<CallDate>``: what crmsync.providers.leadperfection._find_call has
    always recorded as ``crm_record_id`` for a call log it wrote."""
    (only,), _, _ = mapped(prospect(notes=[], leads=[], calls=[call("2025-04-16 13:05:00")]))
    assert only.external_id == "call_log:100001:2025-04-16T13:05:00"


def test_calls_of_the_same_second_get_distinct_ids_that_stay_when_more_are_appended() -> None:
    calls = [call("2025-04-16T13:05:00"), call("2025-04-16T13:05:00", "I", "TX")]
    ids = call_log_ids(100001, calls)
    more = call_log_ids(100001, [*calls, call("2025-04-16T13:05:00"), "garbage"])
    assert ids == [
        "call_log:100001:2025-04-16T13:05:00",
        "call_log:100001:2025-04-16T13:05:00/I/TX",
    ]
    assert more[:2] == ids
    assert more[2:] == ["call_log:100001:2025-04-16T13:05:00/O/LM#2", None]
    assert call_log_ids(1, [call("2025-04-16T13:05:00", id=9)]) == ["9"]


def test_every_list_lp_sent_is_whole_and_a_list_it_did_not_send_is_not() -> None:
    _, sets, _ = mapped(prospect(), prospect(cst_id=100002, notes=None, leads=[{"id": 7}]))
    assert sorted(sets) == [
        ("jobs:5000001", "note"),
        ("leads:2000001", "note"),
        ("prospects:100001", "call"),
        ("prospects:100001", "note"),
        ("prospects:100002", "call"),
    ]


def test_only_the_kinds_chosen_are_mapped() -> None:
    acts, sets, _ = mapped(prospect(), kinds=("call",))
    assert {a.kind for a in acts} == {"call"} and {k for _, k in sets} == {"call"}
    assert mapped(prospect(), kinds=()) == ([], [], [])


def test_an_item_that_is_no_note_or_call_is_rejected_with_a_reason_not_raised() -> None:
    acts, _, rejects = mapped(prospect(notes=[42, note("ok")], calls=["x"], leads=[]))
    assert [a.body for a in acts] == ["ok"]
    assert sorted(r.reason for r in rejects) == [
        "call is not an object",
        "note is not an object or text",
    ]
    assert sorted(r.external_id for r in rejects) == [
        "prospects:100001:calls[0]",
        "prospects:100001:notes[0]",
    ]


def test_a_list_with_a_malformed_item_marks_nothing_deleted() -> None:
    """The malformed item may be a note stored earlier in a readable form: taking the list as
    whole would mark that note deleted for a fault in LP's answer."""
    _, sets, rejects = mapped(prospect(notes=[42, note("ok")], calls=["x"], leads=[]))
    assert len(rejects) == 2
    assert ("prospects:100001", "note") not in sets
    assert ("prospects:100001", "call") not in sets
