"""Push: hub communications → LeadPerfection notes, call logs and production notes (seed 001).

Real PostgreSQL and real HTTP to the LP emulator. Parents come from a real pull (the provider's
own fetch → map → merge), so the details keys the push reads are the ones the mapping writes.
LP has no "include content" option: notes always carry the message, call logs never can.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.leadperfection import DEFAULT_TOKEN_CACHE
from crmsync import db, push, sync
from crmsync.merge import MergeBatch, merge_batch
from crmsync.providers import leadperfection as lp_provider
from crmsync.providers.leadperfection import STREAM
from crmsync.settings import PushPolicy
from sandbox.leadperfection import LPClientSpec, RunningEmulator, run_emulator
from tests.factories import make_integration, make_tenant, opp

pytestmark = pytest.mark.usefixtures("clean_db")

APPKEY = "6f1c9d2e-0b7a-4c55-9e1f-2d3c4b5a6978"
SPEC = LPClientSpec("wq55a", "api.user", "pw", APPKEY, prospects=0, fixtures=False)
EASTERN = ZoneInfo("America/New_York")
NOW_POLICY = PushPolicy(retry_delay_seconds=0, defer_seconds=0, orphan_after_seconds=3600)
BODY = "Hi Ann, your window quote is ready!"
WRITES = (
    "/api/SalesApi/AddNotes",
    "/api/Customers/AddCallHistory",
    "/api/Installer/AddInstallerJobNotes",
)


@pytest.fixture(scope="module")
def served() -> Iterator[RunningEmulator]:
    with run_emulator([SPEC], port=0) as running:
        yield running


@pytest.fixture(autouse=True)
def emu(served: RunningEmulator) -> Iterator[RunningEmulator]:
    served.state.reset()
    DEFAULT_TOKEN_CACHE.clear()
    lp_provider._clients.clear()
    yield served
    served.state.clear_faults()


def lp_tenant(emu: RunningEmulator, **settings: Any) -> tuple[int, int]:
    tenant = make_tenant("acme")
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
        settings=settings,
        base_url=emu.url,
    )
    return tenant, integ


def lp_prospect(
    emu: RunningEmulator, n: int, *, jobs: int = 1, email: str | None = None
) -> dict[str, Any]:
    """A prospect with one lead and ``jobs`` jobs in LP; returns the stored record."""
    lead: dict[str, Any] = {"disposition": "Sold" if jobs else "", "source": "Internet"}
    if jobs:
        lead["jobs"] = [{"jobstatus": "Sold"} for _ in range(jobs)]
    return emu.state.upsert_prospect(
        None,
        {
            "firstname": "Ann",
            "lastname": f"Lee{n}",
            "email": email or f"ann.lee{n}@example.com",
            "phone1": f"(407) 555-01{n:02d}",
            "leads": [lead],
        },
    )


def pull(integ: int) -> None:
    """One pull of the integration, as the sync flow runs it."""
    started = datetime.now(UTC) + timedelta(seconds=1)
    while True:
        page = sync.fetch_page(integ, STREAM, started)
        sync.merge(sync.map_page(integ, page), None)
        if not page.has_more:
            return


def contact_of(integ: int, cst_id: int) -> int:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT contact_id FROM opportunity WHERE integration_id = %s AND "
            "external_contact_id = %s",
            (integ, str(cst_id)),
        ).fetchone()
    assert row is not None, f"prospect {cst_id} was not pulled"
    return int(row[0])


def synced(
    emu: RunningEmulator, integ: int, n: int = 1, *, jobs: int = 1
) -> tuple[dict[str, Any], int]:
    p = lp_prospect(emu, n, jobs=jobs)
    pull(integ)
    return p, contact_of(integ, p["cst_id"])


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


def written(emu: RunningEmulator) -> tuple[int, int, int]:
    """(prospect notes, call logs, production notes) LP stored through the write endpoints."""
    s = emu.state
    return len(s.get_notes(rectype="cst")), len(s.get_call_logs()), len(s.get_production_notes())


def first_job(p: dict[str, Any]) -> int:
    return int(p["leads"][0]["jobs"][0]["id"])


def test_communication_becomes_a_prospect_note_with_its_content_by_default(
    emu: RunningEmulator,
) -> None:
    tenant, integ = lp_tenant(emu)  # seed 001 defaults: communications on, notes only
    p, contact = synced(emu, integ)
    activity(tenant, contact)
    assert run(tenant).delivered == 1
    (note,) = emu.state.get_notes(rectype="cst", recid=p["cst_id"])
    assert BODY in note["notes"], "LP has no content option: the communication is the content"
    assert "Text" in note["notes"] and "Spring Windows" in note["notes"]
    assert ledger(tenant) == [("prospect_note", "delivered", 1)]
    assert written(emu) == (1, 0, 0)


@pytest.mark.parametrize(
    ("flags", "targets"),
    [
        ({"push_to_notes": False, "push_to_call_logs": True}, ["call_log"]),
        ({"push_to_notes": False, "push_to_production_notes": True}, ["production_note"]),
        (
            {"push_to_call_logs": True, "push_to_production_notes": True},
            ["prospect_note", "call_log", "production_note"],
        ),
        ({"push_to_notes": False}, []),
        (
            {
                "push_communications": False,
                "push_to_call_logs": True,
                "push_to_production_notes": True,
            },
            [],
        ),
    ],
    ids=["call-log-only", "production-note-only", "all-three", "no-target", "gate-off"],
)
def test_each_flag_gives_its_own_record_and_push_communications_gates_them_all(
    emu: RunningEmulator, flags: dict[str, bool], targets: list[str]
) -> None:
    tenant, integ = lp_tenant(emu, **flags)
    p, contact = synced(emu, integ)
    activity(tenant, contact, "inbound_message")
    assert run(tenant).delivered == len(targets)
    expected = [(t, "delivered", 1) for t in targets] or [("none", "skipped", 0)]
    assert ledger(tenant) == expected
    assert written(emu) == tuple(
        int(t in targets) for t in ("prospect_note", "call_log", "production_note")
    )
    for note in emu.state.get_production_notes():
        assert note["job_id"] == first_job(p) and BODY in note["notes"]


def test_production_note_goes_to_the_first_job_of_the_lead(emu: RunningEmulator) -> None:
    tenant, integ = lp_tenant(emu, push_to_notes=False, push_to_production_notes=True)
    p, contact = synced(emu, integ, jobs=2)
    activity(tenant, contact, "outbound_manual_message", channel="email")
    assert run(tenant).delivered == 1
    (note,) = emu.state.get_production_notes()
    assert note["job_id"] == first_job(p)
    assert "Email" in note["notes"] and BODY in note["notes"]


def test_call_log_records_direction_and_channel_but_never_the_content(
    emu: RunningEmulator,
) -> None:
    tenant, integ = lp_tenant(emu, push_to_notes=False, push_to_call_logs=True)
    p, contact = synced(emu, integ)
    at = datetime(2026, 11, 20, 15, 4, 5, 678000, tzinfo=UTC)
    activity(tenant, contact, "inbound_message", channel="sms", occurred_at=at)
    activity(
        tenant,
        contact,
        "outbound_manual_message",
        channel="email",
        occurred_at=at + timedelta(minutes=1),
    )
    activity(
        tenant,
        contact,
        "outbound_campaign_message",
        channel="voicemail",
        occurred_at=at + timedelta(minutes=2),
    )
    assert run(tenant).delivered == 3
    calls = emu.state.get_call_logs(cst_id=p["cst_id"])
    local = at.astimezone(EASTERN)
    got = [(c["calldatetime"], c["calltype"], c["resultcode"], c["phone"]) for c in calls]
    assert got == [
        (f"{local:%Y-%m-%dT%H:%M:%S}", "I", "TX", "(407) 555-0101"),
        (f"{local + timedelta(minutes=1):%Y-%m-%dT%H:%M:%S}", "O", "EM", ""),
        (f"{local + timedelta(minutes=2):%Y-%m-%dT%H:%M:%S}", "O", "LM", "(407) 555-0101"),
    ]
    assert all(BODY not in str(c.values()) for c in calls)


def test_campaign_events_never_reach_leadperfection(emu: RunningEmulator) -> None:
    tenant, integ = lp_tenant(emu, push_to_call_logs=True, push_to_production_notes=True)
    _, contact = synced(emu, integ)
    for event in ("launched", "first_message_sent", "removed", "completed"):
        activity(tenant, contact, "campaign_event", campaign_event=event)
    assert run(tenant).delivered == 0
    assert ledger(tenant) == [("none", "skipped", 0)] * 4
    assert not [r for r in emu.state.requests if r.path in WRITES]


def test_note_goes_to_the_prospect_of_the_activitys_own_opportunity_else_the_most_recent(
    emu: RunningEmulator,
) -> None:
    tenant, integ = lp_tenant(emu)
    older = lp_prospect(emu, 1)
    newer = lp_prospect(emu, 2, email="ann.lee1@example.com")
    pull(integ)
    contact = contact_of(integ, older["cst_id"])
    assert contact_of(integ, newer["cst_id"]) == contact, "one person, two LP prospects"
    with db.connect() as conn:
        conn.execute(
            "UPDATE opportunity SET external_updated_at = now() - interval '1 day' "
            "WHERE integration_id = %s AND external_contact_id = %s",
            (integ, str(older["cst_id"])),
        )
        (older_opp,) = conn.execute(
            "SELECT id FROM opportunity WHERE external_contact_id = %s", (str(older["cst_id"]),)
        ).fetchone()  # type: ignore[misc]
        conn.commit()
    activity(tenant, contact, body="about the newer lead")
    activity(tenant, contact, body="about the older lead", opportunity_id=older_opp)
    assert run(tenant).delivered == 2
    (on_newer,) = emu.state.get_notes(recid=newer["cst_id"])
    (on_older,) = emu.state.get_notes(recid=older["cst_id"])
    assert "newer" in on_newer["notes"] and "older" in on_older["notes"]


def test_push_is_deferred_until_the_prospect_is_pulled_then_delivered_once(
    emu: RunningEmulator,
) -> None:
    tenant, integ = lp_tenant(emu, push_to_production_notes=True)
    with db.connect() as conn:
        (contact,) = conn.execute(
            "INSERT INTO contact (tenant_id, email) VALUES (%s, 'ann.lee7@example.com') "
            "RETURNING id",
            (tenant,),
        ).fetchone()  # type: ignore[misc]
        conn.commit()
    activity(tenant, contact)
    assert run(tenant).deferred == 2
    p = lp_prospect(emu, 7, jobs=0)  # the lead is not sold yet: no job for a production note
    pull(integ)
    counts = push.deliver(tenant, recheck_deferred_before=datetime.now(UTC), policy=NOW_POLICY)
    assert (counts.delivered, counts.deferred) == (1, 1)
    assert ledger(tenant) == [("prospect_note", "delivered", 1), ("production_note", "deferred", 0)]
    emu.state.upsert_job(None, p["leads"][0]["id"], {"jobstatus": "Sold"})
    pull(integ)
    counts = push.deliver(tenant, recheck_deferred_before=datetime.now(UTC), policy=NOW_POLICY)
    assert counts.delivered == 1
    assert written(emu) == (1, 0, 1)
    assert run(tenant).delivered == 0


@pytest.mark.parametrize("target", ["prospect_note", "production_note"])
def test_note_acknowledged_but_not_stored_is_not_marked_delivered(
    emu: RunningEmulator, target: str
) -> None:
    tenant, integ = lp_tenant(
        emu,
        push_to_notes=target == "prospect_note",
        push_to_production_notes=target == "production_note",
    )
    real = lp_prospect(emu, 1)
    details = {"Prospect.cst_id": 999_999, "Prospect.leads[0].jobs[0].id": 888_888}
    if target == "production_note":  # a real prospect, a job LP does not know
        details["Prospect.cst_id"] = real["cst_id"]
    o = opp(
        "777",
        contact=str(details["Prospect.cst_id"]),
        email="gone@example.com",
        model="lead",
        details=details,
    )
    with db.connect() as conn:
        merge_batch(
            conn,
            MergeBatch(tenant_id=tenant, integration_id=integ, stream=STREAM, opportunities=[o]),
            None,
        )
        (contact,) = conn.execute(
            "SELECT contact_id FROM opportunity WHERE integration_id = %s", (integ,)
        ).fetchone()  # type: ignore[misc]
    activity(tenant, contact)
    counts = run(tenant)
    assert (counts.delivered, counts.failed) == (0, 1)
    writes = [r for r in emu.state.requests if r.path in WRITES]
    assert [(r.status, r.path.rsplit("/", 1)[1]) for r in writes] == [
        (200, "AddNotes" if target == "prospect_note" else "AddInstallerJobNotes")
    ]
    assert "is not on" in next(iter(counts.errors.values()))
    with db.connect() as conn:
        assert conn.execute(
            "SELECT status, ambiguous, crm_record_id FROM push_ledger WHERE tenant_id = %s",
            (tenant,),
        ).fetchall() == [("failed", True, None)]
    assert written(emu) == (0, 0, 0)


@pytest.mark.parametrize(
    ("flag", "route", "count"),
    [
        ("push_to_notes", "*/AddNotes", lambda s: len(s.get_notes())),
        ("push_to_call_logs", "*/AddCallHistory", lambda s: len(s.get_call_logs())),
        (
            "push_to_production_notes",
            "*/AddInstallerJobNotes",
            lambda s: len(s.get_production_notes()),
        ),
    ],
    ids=["prospect-note", "call-log", "production-note"],
)
def test_record_stored_by_lp_before_a_timeout_is_not_pushed_twice(
    emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch, flag: str, route: str, count: Any
) -> None:
    from crmsync.settings import get_settings

    monkeypatch.setattr(get_settings(), "http_timeout_seconds", 0.8)
    flags = {"push_to_notes": False, flag: True}
    tenant, integ = lp_tenant(emu, **flags)
    _, contact = synced(emu, integ)
    activity(tenant, contact)
    emu.state.arm_fault("timeout_after_store", route=route, times=1, latency_ms=1500)
    first = run(tenant)
    assert first.failed == 1
    assert count(emu.state) == 1  # LP did store it
    second = run(tenant)
    assert second.delivered == 1
    assert count(emu.state) == 1
    assert [row[1:] for row in ledger(tenant)] == [("delivered", 2)]


def test_three_failures_make_a_push_not_integrated_and_an_operator_retry_delivers_it_once(
    emu: RunningEmulator,
) -> None:
    tenant, integ = lp_tenant(emu)
    p, contact = synced(emu, integ)
    activity(tenant, contact)
    emu.state.arm_fault("status", route="*/AddNotes", times=None, status=503)
    assert [run(tenant).failed for _ in range(2)] == [1, 1]
    assert run(tenant).not_integrated == 1
    assert ledger(tenant) == [("prospect_note", "not_integrated", 3)]
    report, failures = push.failures_report(hours=1)
    assert failures == 1 and "| acme | lp | not_integrated | 1 |" in report and "503" in report
    emu.state.clear_faults()
    assert run(tenant).delivered == 0, "not_integrated waits for an operator"
    assert push.requeue(tenant) == 1
    assert run(tenant).delivered == 1
    assert len(emu.state.get_notes(recid=p["cst_id"])) == 1
    assert run(tenant).delivered == 0
