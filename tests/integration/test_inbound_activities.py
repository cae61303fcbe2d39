"""Issue 15's rules for activities read from a CRM, at the merge (crmsync.activities).

Each CRM's own tests (``test_*_activities.py``) read the same rules over real HTTP from its
emulator; these pin the engine they all share, with hand-made activities.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from crmsync import db
from crmsync.merge import MergeBatch, MergeCounts, merge_batch
from crmsync.providers.base import PushActivity
from crmsync.push import idempotency_key, render_text
from models.standard import InboundActivity, MappedOpportunity
from tests.factories import make_integration, make_tenant, opp, ts

pytestmark = pytest.mark.usefixtures("clean_db")


def note(
    ident: str,
    *,
    job: str | None = "J1",
    customer: str | None = "c1",
    body: str = "called back, wants a quote",
    modified: datetime | None = None,
    deleted: bool = False,
    kind: str = "note",
    parent: str | None = None,
) -> InboundActivity:
    return InboundActivity(
        kind=kind,
        external_id=ident,
        parent=parent or (f"jobs:{job}" if job else f"customers:{customer}"),
        contact_ref=customer,
        opportunity_ref=("job", job) if job else None,
        created_at=ts(3),
        modified_at=modified or ts(3),
        author="Dana (CSR)",
        body=body,
        deleted=deleted,
        payload={"id": ident, "text": body},
    )


def merge(
    tenant: int,
    integ: int,
    *,
    opps: list[MappedOpportunity] | None = None,
    acts: list[InboundActivity] | None = None,
    sets: list[tuple[str, str]] | None = None,
) -> MergeCounts:
    batch = MergeBatch(
        tenant_id=tenant,
        integration_id=integ,
        stream="notes",
        opportunities=opps or [],
        activities=acts or [],
        activity_sets=sets or [],
    )
    with db.connect() as conn:
        return merge_batch(conn, batch, None)


def rows(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def st() -> tuple[int, int]:
    tenant = make_tenant("acme")
    return tenant, make_integration(tenant)


def contact_of(external_id: str) -> int:
    ((cid,),) = rows("SELECT contact_id FROM opportunity WHERE external_id = %s", external_id)
    return int(cid)


def test_an_activity_is_linked_to_the_contact_of_the_opportunity_it_names(
    st: tuple[int, int],
) -> None:
    merge(*st, opps=[opp("J1", contact="c1")])
    counts = merge(*st, acts=[note("n1")])
    assert (counts.activities, counts.activities_waiting) == (1, 0)
    assert rows("SELECT contact_id, opportunity_id IS NOT NULL, body FROM crm_activity") == [
        (contact_of("J1"), True, "called back, wants a quote")
    ]


def test_parent_first_an_activity_whose_parent_is_not_in_the_hub_waits_and_is_linked_when_it_arrives(
    st: tuple[int, int],
) -> None:
    merge(*st, opps=[opp("J9", contact="c9", phone="+15550009999")])
    counts = merge(*st, acts=[note("n1", job="J1", customer="c1")])
    assert (counts.activities, counts.activities_waiting) == (1, 1)
    assert rows("SELECT contact_id FROM crm_activity") == [(None,)]
    merge(*st, opps=[opp("J1", contact="c1", phone="+15550001111")])
    assert rows("SELECT contact_id, linked_at IS NOT NULL FROM crm_activity") == [
        (contact_of("J1"), True)
    ]
    assert contact_of("J1") != contact_of("J9")


def test_parent_first_an_activity_is_never_linked_by_phone_or_email_to_another_record(
    st: tuple[int, int],
) -> None:
    """The waiting note's customer shares a phone with a synced contact; only its own record
    may link it."""
    merge(*st, opps=[opp("J9", contact="c9", phone="+15550001111")])
    merge(*st, acts=[note("n1", job=None, customer="c1")])
    merge(*st, opps=[opp("J8", contact="c8", phone="+15550008888")])
    assert rows("SELECT contact_id FROM crm_activity") == [(None,)]


def test_an_activity_on_a_customer_is_linked_through_the_contact_link(
    st: tuple[int, int],
) -> None:
    merge(*st, opps=[opp("J1", contact="c1")])
    merge(*st, acts=[note("n1", job=None, customer="c1")])
    assert rows("SELECT contact_id, opportunity_id FROM crm_activity") == [(contact_of("J1"), None)]


def test_an_edited_note_updates_its_row(st: tuple[int, int]) -> None:
    merge(*st, opps=[opp("J1")])
    merge(*st, acts=[note("n1", body="first draft")])
    counts = merge(*st, acts=[note("n1", body="corrected", modified=ts(4))])
    assert counts.activities == 1
    assert rows("SELECT body, external_modified_at FROM crm_activity") == [("corrected", ts(4))]


def test_an_older_copy_of_a_note_never_overwrites_a_newer_one(st: tuple[int, int]) -> None:
    merge(*st, acts=[note("n1", body="corrected", modified=ts(4))])
    counts = merge(*st, acts=[note("n1", body="first draft", modified=ts(3))])
    assert counts.activities == 0
    assert rows("SELECT body FROM crm_activity") == [("corrected",)]


def test_reading_an_unchanged_note_again_writes_nothing(st: tuple[int, int]) -> None:
    merge(*st, opps=[opp("J1")])
    merge(*st, acts=[note("n1")])
    (before,) = rows("SELECT updated_at FROM crm_activity")
    counts = merge(*st, acts=[note("n1")])
    assert counts.activities == 0
    assert rows("SELECT updated_at FROM crm_activity") == [before]


def test_a_deleted_note_is_marked_deleted(st: tuple[int, int]) -> None:
    merge(*st, acts=[note("n1")])
    merge(*st, acts=[note("n1", deleted=True, modified=ts(5))])
    assert rows("SELECT count(*), count(deleted_at) FROM crm_activity") == [(1, 1)]


def test_a_note_missing_from_its_parents_complete_list_is_marked_deleted(
    st: tuple[int, int],
) -> None:
    merge(*st, acts=[note("n1"), note("n2"), note("c1", kind="call")])
    merge(*st, acts=[note("n2")], sets=[("jobs:J1", "note")])
    assert rows("SELECT kind, external_id FROM crm_activity WHERE deleted_at IS NOT NULL") == [
        ("note", "n1")
    ]


def _pushed_note(tenant: int, integ: int, crm_id: str) -> str:
    """A push ledger row as crmsync.push leaves it after delivering a note; returns its text."""
    merge(tenant, integ, opps=[opp("J1")])
    contact = contact_of("J1")
    with db.connect() as conn:
        (activity_id,) = conn.execute(
            "INSERT INTO activity (tenant_id, contact_id, kind, channel, body, occurred_at) "
            "VALUES (%s, %s, 'outbound_manual_message', 'sms', 'See you at 3', now()) "
            "RETURNING id",
            (tenant, contact),
        ).fetchone() or (0,)
        key = idempotency_key(activity_id, integ, "job_note")
        conn.execute(
            "INSERT INTO push_ledger (tenant_id, activity_id, integration_id, target, "
            "idempotency_key, status, crm_record_id, target_ref) "
            "VALUES (%s, %s, %s, 'job_note', %s, 'delivered', %s, 'J1')",
            (tenant, activity_id, integ, key, crm_id),
        )
        conn.commit()
    act = PushActivity(
        activity_id,
        tenant,
        contact,
        None,
        "outbound_manual_message",
        "sms",
        None,
        None,
        "See you at 3",
        ts(3),
    )
    return render_text(act, True, key)


def test_no_echo_a_note_crmsync_wrote_never_comes_back_in(st: tuple[int, int]) -> None:
    text = _pushed_note(*st, crm_id="n77")
    counts = merge(*st, acts=[note("n1", body=text), note("n2")])
    assert (counts.activities, counts.echoes) == (1, 1)
    assert rows("SELECT external_id FROM crm_activity") == [("n2",)]


def test_no_echo_a_record_without_the_key_is_known_by_the_crm_id_the_ledger_recorded(
    st: tuple[int, int],
) -> None:
    _pushed_note(*st, crm_id="call:J1:2026-11-03T12:00:00")
    counts = merge(*st, acts=[note("call:J1:2026-11-03T12:00:00", kind="call", body="")])
    assert (counts.activities, counts.echoes) == (0, 1)
    assert rows("SELECT count(*) FROM crm_activity") == [(0,)]


def test_no_echo_a_row_read_before_the_ledger_knew_its_id_is_removed_once_it_does(
    st: tuple[int, int],
) -> None:
    merge(*st, acts=[note("n77", body="Call logged")])
    _pushed_note(*st, crm_id="n77")
    merge(*st, acts=[note("n77", body="Call logged")])
    assert rows("SELECT count(*) FROM crm_activity") == [(0,)]


def test_no_echo_another_integrations_push_copied_into_this_crm_is_recognised(
    st: tuple[int, int],
) -> None:
    tenant, integ = st
    other = make_integration(tenant, name="st-second")
    text = _pushed_note(tenant, other, crm_id="n1")
    counts = merge(tenant, integ, acts=[note("n5", body=text)])
    assert counts.echoes == 1


def test_an_inbound_activity_is_never_pushed_to_any_crm(st: tuple[int, int]) -> None:
    tenant, integ = st
    make_integration(tenant, name="st-second")
    merge(tenant, integ, opps=[opp("J1")])
    merge(tenant, integ, acts=[note("n1")])
    assert rows("SELECT count(*) FROM activity") == [(0,)]
    assert rows("SELECT count(*) FROM push_ledger") == [(0,)]
