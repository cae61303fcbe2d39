"""Push: hub activities → improveit360 Notes under the Contact and completed Tasks on the Sales
Opportunity (seed 000 "Hatch → improveit360"), exactly once from Salesforce's view.

Real PostgreSQL and real HTTP to the Salesforce emulator. Parents come from a real pull (the
provider's own fetch → map → merge), so the columns and details the push reads are the ones the
mapping writes. Every test builds its own Account/Contact/Sales Opportunity, so which record is
"the contact's" never depends on the generated data.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.salesforce import NOTE_TITLE_MAX
from crmsync import db, push, sync
from crmsync.providers.improveit360 import clear_clients
from crmsync.settings import PushPolicy, get_settings
from sandbox.salesforce import OrgSpec, RunningEmulator, run_emulator
from tests.factories import make_integration, make_tenant

pytestmark = pytest.mark.usefixtures("clean_db")

ORG = "00D000000000002AAA"
NS = "i360core__"
OPP = f"{NS}Sales_Opportunity__c"
SPEC = OrgSpec(
    org_id=ORG,
    client_id="3MVG9.i360push",
    client_secret="sfsecret.i360push",
    username="api@i360push.example",
    password="pw-i360push",
    refresh_token="5Aep861.i360push-refresh",
    opportunities=3,
    seed=7,
)
NOW_POLICY = PushPolicy(retry_delay_seconds=0, defer_seconds=0, orphan_after_seconds=3600)
BODY = "Hi Ann, your window quote is ready!"
NOTE_ROUTE = "POST */sobjects/Note/*"
TASK_ROUTE = "POST */sobjects/Task/*"
LOCATIONS = ("contact_note", "opportunity_task")


@pytest.fixture(scope="module")
def served() -> Iterator[RunningEmulator]:
    with run_emulator([SPEC], port=0) as running:
        yield running


@pytest.fixture(autouse=True)
def emu(served: RunningEmulator) -> Iterator[RunningEmulator]:
    served.reset()
    clear_clients()  # sessions and usage readings belong to the old state
    yield served
    served.state.clear_faults()


def i360_tenant(emu: RunningEmulator, **settings: Any) -> tuple[int, int]:
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


def person(emu: RunningEmulator, n: int, *, opportunities: int = 1) -> dict[str, Any]:
    """An Account, a Contact and its Sales Opportunities in the org: {contact, opps}."""
    account = emu.state.upsert(ORG, "Account", {"Name": f"Lee Household {n}"})
    contact = emu.state.upsert(
        ORG,
        "Contact",
        {
            "AccountId": account["Id"],
            "FirstName": "Ann",
            "LastName": f"Lee{n}",
            "Email": f"ann.lee{n}@example.com",
        },
    )
    opps = [
        emu.state.upsert(
            ORG, OPP, {f"{NS}Contact__c": contact["Id"], f"{NS}Account__c": account["Id"]}
        )
        for _ in range(opportunities)
    ]
    return {"contact": contact["Id"], "opps": [o["Id"] for o in opps]}


def pull(integ: int) -> None:
    """One pull of every stream, as the sync flow runs it."""
    started = datetime.now(UTC)
    for stream in sync.streams(integ):
        after: str | None = None
        while True:
            page = sync.fetch_page(integ, stream, started, after)
            sync.merge(sync.map_page(integ, page), None)
            if not page.has_more:
                break
            after = page.next_cursor


def contact_of(integ: int, sf_contact: str) -> int:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT contact_id FROM opportunity WHERE integration_id = %s "
            "AND external_contact_id = %s LIMIT 1",
            (integ, sf_contact),
        ).fetchone()
    assert row is not None, f"contact {sf_contact} was not pulled"
    return int(row[0])


def synced(emu: RunningEmulator, integ: int, n: int = 1, **kw: Any) -> tuple[dict[str, Any], int]:
    p = person(emu, n, **kw)
    pull(integ)
    return p, contact_of(integ, p["contact"])


def activity(tenant: int, contact: int, kind: str = "outbound_campaign_message", **kw: Any) -> int:
    defaults: dict[str, Any] = {"channel": "sms", "campaign_name": "Spring Windows", "body": BODY}
    if kind == "campaign_event":
        defaults = {"campaign_event": "launched", "campaign_name": "Spring Windows"}
    fields = {"tenant_id": tenant, "contact_id": contact, "kind": kind, **defaults, **kw}
    return push.record_activity(push.ActivityIn.model_validate(fields))


def run(tenant: int, policy: PushPolicy = NOW_POLICY, **kw: Any) -> push.PushCounts:
    push.plan(tenant)
    return push.deliver(tenant, policy=policy, **kw)


def ledger(tenant: int) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute(
            "SELECT target, status, attempts FROM push_ledger WHERE tenant_id = %s ORDER BY id",
            (tenant,),
        ).fetchall()


def keys(tenant: int) -> list[str]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT idempotency_key FROM push_ledger WHERE tenant_id = %s ORDER BY id", (tenant,)
        ).fetchall()
    return [r[0] for r in rows]


def notes(emu: RunningEmulator, parent: str | None = None) -> list[dict[str, Any]]:
    return [
        n for n in emu.state.get_records(ORG, "Note") if parent is None or n["ParentId"] == parent
    ]


def tasks(emu: RunningEmulator, what: str | None = None) -> list[dict[str, Any]]:
    return [t for t in emu.state.get_records(ORG, "Task") if what is None or t["WhatId"] == what]


def creates(emu: RunningEmulator) -> list[dict[str, Any]]:
    return [r for r in emu.state.requests if r["method"] == "POST" and "/sobjects/" in r["path"]]


# -- where each trigger goes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "setting", "location", "extra"),
    [
        ("outbound_campaign_message", "push_outgoing_campaign_messages", "contact_note", {}),
        (
            "outbound_manual_message",
            "push_outgoing_manual_messages",
            "opportunity_task",
            {"channel": "email"},
        ),
        ("inbound_message", "push_incoming_messages", "contact_note", {"channel": "call"}),
        *[
            ("campaign_event", "push_campaign_events", "opportunity_task", {"campaign_event": e})
            for e in ("launched", "first_message_sent", "removed", "completed")
        ],
    ],
    ids=["outbound-campaign", "outbound-manual", "inbound", *[f"event-{i}" for i in range(1, 5)]],
)
def test_each_trigger_goes_to_the_location_its_setting_lists(
    emu: RunningEmulator, kind: str, setting: str, location: str, extra: dict[str, Any]
) -> None:
    tenant, integ = i360_tenant(emu, **{setting: [location]})
    p, contact = synced(emu, integ)
    activity(tenant, contact, kind, **extra)
    assert run(tenant).delivered == 1
    assert ledger(tenant) == [(location, "delivered", 1)]
    (key,) = keys(tenant)
    if location == "contact_note":
        (note,) = notes(emu)
        assert note["ParentId"] == p["contact"] and tasks(emu) == []
        title, text = note["Title"], note["Body"]
        assert len(title) <= NOTE_TITLE_MAX
    else:
        (task,) = tasks(emu)
        assert task["WhatId"] == p["opps"][0] and notes(emu) == []
        title, text = task["Subject"], task["Description"]
    assert title.startswith("Hatch: ") and title.endswith(f"[{key}]")
    assert text.splitlines()[-1] == f"[ref {key}]" and "Spring Windows" in text
    if kind != "campaign_event":
        assert BODY in text, "the communication itself is what seed 000 syncs"


def test_note_is_a_note_under_the_contact_and_task_a_completed_task_on_the_opportunity(
    emu: RunningEmulator,
) -> None:
    tenant, integ = i360_tenant(
        emu,
        push_outgoing_campaign_messages=["contact_note"],
        push_incoming_messages=["opportunity_task"],
    )
    p, contact = synced(emu, integ)
    at = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    activity(tenant, contact, occurred_at=at)
    activity(tenant, contact, "inbound_message", occurred_at=at + timedelta(hours=1))
    assert run(tenant).delivered == 2
    (note,) = notes(emu)
    assert (note["ParentId"], note["IsPrivate"]) == (p["contact"], False)
    assert "Text campaign message sent" in note["Title"]
    (task,) = tasks(emu)
    assert (task["WhatId"], task["WhoId"]) == (p["opps"][0], p["contact"])
    assert (task["Status"], task["IsClosed"]) == ("Completed", True)
    assert task["ActivityDate"] == "2026-11-21", "the activity's (UTC) date"
    assert "Text message received" in task["Subject"] and BODY in task["Description"]


def test_both_locations_give_two_ledger_rows_and_two_records(emu: RunningEmulator) -> None:
    tenant, integ = i360_tenant(emu, push_outgoing_manual_messages=list(LOCATIONS))
    p, contact = synced(emu, integ)
    activity(tenant, contact, "outbound_manual_message")
    assert run(tenant).delivered == 2
    assert ledger(tenant) == [(loc, "delivered", 1) for loc in LOCATIONS]
    note_key, task_key = keys(tenant)
    assert note_key != task_key
    (note,) = notes(emu, p["contact"])
    (task,) = tasks(emu, p["opps"][0])
    assert note["Title"].endswith(f"[{note_key}]") and task["Subject"].endswith(f"[{task_key}]")
    assert run(tenant).delivered == 0 and len(creates(emu)) == 2


def test_unlisted_trigger_and_unlisted_campaign_event_push_nothing(emu: RunningEmulator) -> None:
    tenant, integ = i360_tenant(
        emu,
        push_campaign_events=["contact_note"],
        campaign_events=["launched", "completed"],
    )
    _, contact = synced(emu, integ)
    activity(tenant, contact)  # outbound campaign messages: not configured
    activity(tenant, contact, "campaign_event", campaign_event="removed")
    activity(tenant, contact, "campaign_event", campaign_event="completed")
    assert run(tenant).delivered == 1
    assert ledger(tenant) == [
        ("none", "skipped", 0),
        ("none", "skipped", 0),
        ("contact_note", "delivered", 1),
    ]
    (note,) = notes(emu)
    assert "completed campaign" in note["Title"]


# -- which parent --------------------------------------------------------------------------------


def test_task_goes_to_the_activitys_own_opportunity_else_the_most_recent_live_one(
    emu: RunningEmulator,
) -> None:
    tenant, integ = i360_tenant(emu, push_outgoing_campaign_messages=["opportunity_task"])
    p, contact = synced(emu, integ, opportunities=3)
    older, newer, deleted = p["opps"]
    with db.connect() as conn:
        for ext, age in ((older, 2), (newer, 1), (deleted, 0)):
            conn.execute(
                "UPDATE opportunity SET external_updated_at = now() - make_interval(days => %s) "
                "WHERE integration_id = %s AND external_id = %s",
                (age, integ, ext),
            )
        conn.execute(
            """UPDATE opportunity SET details = details || '{"IsDeleted": true}'
               WHERE integration_id = %s AND external_id = %s""",
            (integ, deleted),
        )
        (older_hub,) = conn.execute(
            "SELECT id FROM opportunity WHERE external_id = %s", (older,)
        ).fetchone()  # type: ignore[misc]
        conn.commit()
    activity(tenant, contact, body="about the newest live opportunity")
    activity(tenant, contact, body="about the older one", opportunity_id=older_hub)
    assert run(tenant).delivered == 2
    (on_newer,) = tasks(emu, newer)
    (on_older,) = tasks(emu, older)
    assert "newest live" in on_newer["Description"] and "older one" in on_older["Description"]
    assert tasks(emu, deleted) == []


def test_push_is_deferred_until_the_sales_opportunity_is_pulled_then_delivered_once(
    emu: RunningEmulator,
) -> None:
    tenant, integ = i360_tenant(emu, push_incoming_messages=list(LOCATIONS))
    with db.connect() as conn:
        (contact,) = conn.execute(
            "INSERT INTO contact (tenant_id, email) VALUES (%s, 'ann.lee5@example.com') "
            "RETURNING id",
            (tenant,),
        ).fetchone()  # type: ignore[misc]
        conn.commit()
    activity(tenant, contact, "inbound_message")
    assert run(tenant).deferred == 2
    assert ledger(tenant) == [(loc, "deferred", 0) for loc in LOCATIONS]
    assert creates(emu) == []
    p = person(emu, 5)
    pull(integ)
    assert contact_of(integ, p["contact"]) == contact, "the pull matched the contact by email"
    counts = push.deliver(tenant, recheck_deferred_before=datetime.now(UTC), policy=NOW_POLICY)
    assert counts.delivered == 2
    assert len(notes(emu, p["contact"])) == 1 and len(tasks(emu, p["opps"][0])) == 1
    assert run(tenant).delivered == 0 and len(creates(emu)) == 2


def test_push_is_orphaned_after_the_grace_period(emu: RunningEmulator) -> None:
    tenant, _ = i360_tenant(emu, push_outgoing_campaign_messages=["contact_note"])
    with db.connect() as conn:
        (contact,) = conn.execute(
            "INSERT INTO contact (tenant_id) VALUES (%s) RETURNING id", (tenant,)
        ).fetchone()  # type: ignore[misc]
        conn.commit()
    activity(tenant, contact, occurred_at=datetime.now(UTC) - timedelta(hours=2))
    assert run(tenant).orphaned == 1
    assert ledger(tenant) == [("contact_note", "orphaned", 0)]
    assert creates(emu) == []


# -- exactly once, failures and quota ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "route"), [("contact_note", NOTE_ROUTE), ("opportunity_task", TASK_ROUTE)]
)
def test_record_stored_by_salesforce_before_a_timeout_is_not_pushed_twice(
    emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch, location: str, route: str
) -> None:
    monkeypatch.setattr(get_settings(), "http_timeout_seconds", 0.8)
    tenant, integ = i360_tenant(emu, push_outgoing_campaign_messages=[location])
    _, contact = synced(emu, integ)
    activity(tenant, contact)
    emu.state.arm_fault("timeout_after_store", route=route, times=1, latency_ms=1500)
    first = run(tenant)
    assert first.failed == 1
    stored = notes(emu) + tasks(emu)
    assert len(stored) == 1, "Salesforce did store it"
    with db.connect() as conn:
        assert conn.execute("SELECT ambiguous FROM push_ledger").fetchall() == [(True,)]
    second = run(tenant)
    assert second.delivered == 1
    assert notes(emu) + tasks(emu) == stored
    assert ledger(tenant) == [(location, "delivered", 2)]
    with db.connect() as conn:
        assert conn.execute("SELECT crm_record_id FROM push_ledger").fetchall() == [
            (stored[0]["Id"],)
        ]


def test_three_failures_make_a_push_not_integrated_and_an_operator_retry_delivers_it_once(
    emu: RunningEmulator,
) -> None:
    tenant, integ = i360_tenant(emu, push_outgoing_campaign_messages=["opportunity_task"])
    p, contact = synced(emu, integ)
    activity(tenant, contact)
    emu.state.arm_fault("status", route=TASK_ROUTE, times=None, status=503)
    assert [run(tenant).failed for _ in range(2)] == [1, 1]
    assert run(tenant).not_integrated == 1
    assert ledger(tenant) == [("opportunity_task", "not_integrated", 3)]
    report, failures = push.failures_report(hours=1)
    assert failures == 1 and "| acme | i360 | not_integrated | 1 |" in report and "503" in report
    emu.state.clear_faults()
    assert run(tenant).delivered == 0, "not_integrated waits for an operator"
    assert push.requeue(tenant) == 1
    assert run(tenant).delivered == 1
    assert len(tasks(emu, p["opps"][0])) == 1
    assert run(tenant).delivered == 0


def test_request_limit_exceeded_fails_the_push_without_losing_it(emu: RunningEmulator) -> None:
    tenant, integ = i360_tenant(emu, push_outgoing_campaign_messages=["contact_note"])
    p, contact = synced(emu, integ)
    activity(tenant, contact)
    emu.state.arm_fault("request_limit_exceeded", route=NOTE_ROUTE, times=1)
    first = run(tenant)
    assert (first.failed, first.delivered) == (1, 0)
    assert "REQUEST_LIMIT_EXCEEDED" in next(iter(first.errors.values()))
    assert ledger(tenant) == [("contact_note", "failed", 1)]
    sent = len(emu.state.requests)
    # The client now refuses to spend requests for a while: the retry fails without sending.
    second = run(tenant)
    assert second.failed == 1 and "request not sent" in next(iter(second.errors.values()))
    assert len(emu.state.requests) == sent
    clear_clients()  # the usage reading aged out (or a fresh worker): requests go out again
    assert run(tenant).delivered == 1
    assert ledger(tenant) == [("contact_note", "delivered", 3)]
    assert len(notes(emu, p["contact"])) == 1
