"""Push: hub activities → ServiceTitan notes, exactly once (seeds 002, 003, 004)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.servicetitan import DEFAULT_TOKEN_CACHE
from crmsync import db, push
from crmsync.merge import MergeBatch, merge_batch
from crmsync.providers import servicetitan as st_provider
from crmsync.settings import PushPolicy, get_settings
from sandbox.servicetitan import TenantSpec, run_emulator
from tests.factories import make_integration, make_tenant, opp

pytestmark = pytest.mark.usefixtures("clean_db")
APP_KEY = "ak1.push"
NOW_POLICY = PushPolicy(retry_delay_seconds=0, defer_seconds=0, orphan_after_seconds=3600)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    specs = [
        TenantSpec(
            tenant_id=t,
            client_id=f"cid.{t}",
            client_secret=f"cs1.{t}",
            app_key=APP_KEY,
            customers=5,
            jobs=8,
            memberships=0,
            seed=t,
        )
        for t in (201, 202)
    ]
    with run_emulator(specs, port=0) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _fresh(emulator: Any) -> Iterator[None]:
    emulator.state.reset()
    st_provider._clients.clear()
    DEFAULT_TOKEN_CACHE.clear()
    yield
    emulator.state.clear_faults()


def st_tenant(emu: Any, slug: str, st_id: int, **settings: Any) -> tuple[int, int]:
    tenant = make_tenant(slug)
    integ = make_integration(
        tenant,
        credentials={
            "client_id": f"cid.{st_id}",
            "client_secret": f"cs1.{st_id}",
            "app_key": APP_KEY,
            "tenant_id": str(st_id),
        },
        settings={"opportunity_models": ["job"], **settings},
        base_url=emu.url,
        auth_url=emu.url + "/connect/token",
    )
    return tenant, integ


def job_of(emu: Any, st_id: int, index: int = 0) -> dict[str, Any]:
    return sorted(emu.state.get_records(st_id, "jobs"), key=lambda j: j["id"])[index]


def synced_contact(tenant: int, integ: int, job: dict[str, Any]) -> int:
    """Merge one job opportunity the way a pull would; returns its contact id."""
    o = opp(
        str(job["id"]),
        contact=str(job["customerId"]),
        details={"customer:id": job["customerId"], "locationId": job["locationId"]},
    )
    with db.connect() as conn:
        merge_batch(
            conn,
            MergeBatch(tenant_id=tenant, integration_id=integ, stream="jobs", opportunities=[o]),
            None,
        )
        (cid,) = conn.execute(
            "SELECT contact_id FROM opportunity WHERE integration_id = %s AND external_id = %s",
            (integ, str(job["id"])),
        ).fetchone()  # type: ignore[misc]
    return int(cid)


def activity(tenant: int, contact: int, kind: str = "outbound_campaign_message", **kw: Any) -> int:
    defaults: dict[str, Any] = {
        "channel": "sms",
        "campaign_name": "Spring Tune-up",
        "body": "Hi Ann, time for your tune-up!",
    }
    if kind == "campaign_event":
        defaults = {"campaign_event": "launched", "campaign_name": "Spring Tune-up"}
    return push.record_activity(
        push.ActivityIn(tenant_id=tenant, contact_id=contact, kind=kind, **{**defaults, **kw})  # type: ignore[arg-type]
    )


def run(tenant: int, policy: PushPolicy = NOW_POLICY, **kw: Any) -> push.PushCounts:
    push.plan(tenant)
    return push.deliver(tenant, policy=policy, **kw)


def ledger(tenant: int) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute(
            "SELECT target, status, attempts FROM push_ledger WHERE tenant_id = %s ORDER BY id",
            (tenant,),
        ).fetchall()


def test_campaign_message_becomes_a_job_note_with_content_when_configured(emulator: Any) -> None:
    tenant, integ = st_tenant(
        emulator,
        "acme",
        201,
        push_outgoing_campaign_messages="job",
        push_outgoing_campaign_messages_content=True,
    )
    job = job_of(emulator, 201)
    activity(tenant, synced_contact(tenant, integ, job))
    assert run(tenant).delivered == 1
    (note,) = emulator.state.get_notes(201, "job", job["id"])
    assert "Hi Ann, time for your tune-up!" in note["text"]
    assert "Spring Tune-up" in note["text"] and "Text" in note["text"]


def test_message_content_is_left_out_when_not_configured(emulator: Any) -> None:
    tenant, integ = st_tenant(emulator, "acme", 201, push_outgoing_campaign_messages="job")
    job = job_of(emulator, 201, 1)
    activity(tenant, synced_contact(tenant, integ, job))
    run(tenant)
    (note,) = emulator.state.get_notes(201, "job", job["id"])
    assert "tune-up!" not in note["text"] and "Spring Tune-up" in note["text"]


@pytest.mark.parametrize(
    ("kind", "setting", "where", "extra"),
    [
        ("inbound_message", "push_incoming_messages", "customer", {"channel": "call"}),
        (
            "outbound_manual_message",
            "push_outgoing_manual_messages",
            "location",
            {"channel": "email"},
        ),
        ("campaign_event", "push_campaign_events", "customer", {}),
    ],
)
def test_each_category_goes_to_the_record_its_setting_names(
    emulator: Any, kind: str, setting: str, where: str, extra: dict[str, Any]
) -> None:
    tenant, integ = st_tenant(emulator, "acme", 201, **{setting: where})
    job = job_of(emulator, 201, 2)
    activity(tenant, synced_contact(tenant, integ, job), kind, **extra)
    assert run(tenant).delivered == 1
    parent = job["customerId"] if where == "customer" else job["locationId"]
    notes = [n for n in emulator.state.get_notes(201, where, parent) if "hatch-" in n["text"]]
    assert len(notes) == 1


def test_category_set_to_none_pushes_nothing(emulator: Any) -> None:
    tenant, integ = st_tenant(emulator, "acme", 201)
    activity(tenant, synced_contact(tenant, integ, job_of(emulator, 201, 3)))
    assert run(tenant).delivered == 0
    assert ledger(tenant) == [("none", "skipped", 0)]


def test_rerunning_push_any_number_of_times_never_creates_a_second_note(emulator: Any) -> None:
    tenant, integ = st_tenant(emulator, "acme", 201, push_outgoing_campaign_messages="job")
    job = job_of(emulator, 201, 4)
    activity(tenant, synced_contact(tenant, integ, job))
    for _ in range(4):
        run(tenant)
    assert len(emulator.state.get_notes(201, "job", job["id"])) == 1
    assert ledger(tenant) == [("job_note", "delivered", 1)]


def test_push_is_deferred_until_the_parent_record_is_synced(emulator: Any) -> None:
    tenant, integ = st_tenant(emulator, "acme", 201, push_outgoing_campaign_messages="job")
    with db.connect() as conn:
        (contact,) = conn.execute(
            "INSERT INTO contact (tenant_id, email) VALUES (%s, 'x@y.com') RETURNING id", (tenant,)
        ).fetchone()  # type: ignore[misc]
        conn.commit()
    activity(tenant, contact)
    assert run(tenant).deferred == 1
    job = job_of(emulator, 201, 5)
    o = opp(str(job["id"]), contact="late-customer", email="x@y.com")
    with db.connect() as conn:
        merge_batch(
            conn,
            MergeBatch(tenant_id=tenant, integration_id=integ, stream="jobs", opportunities=[o]),
            None,
        )
    counts = push.deliver(tenant, recheck_deferred_before=datetime.now(UTC), policy=NOW_POLICY)
    assert counts.delivered == 1
    assert len(emulator.state.get_notes(201, "job", job["id"])) == 1


def test_push_is_orphaned_after_the_grace_period(emulator: Any) -> None:
    tenant, _ = st_tenant(emulator, "acme", 201, push_outgoing_campaign_messages="job")
    with db.connect() as conn:
        (contact,) = conn.execute(
            "INSERT INTO contact (tenant_id) VALUES (%s) RETURNING id", (tenant,)
        ).fetchone()  # type: ignore[misc]
        conn.commit()
    activity(tenant, contact, occurred_at=datetime.now(UTC) - timedelta(hours=2))
    assert run(tenant).orphaned == 1
    assert ledger(tenant) == [("job_note", "orphaned", 0)]


def test_note_stored_by_the_crm_before_a_timeout_is_not_pushed_twice(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "http_timeout_seconds", 1.0)
    tenant, integ = st_tenant(emulator, "acme", 201, push_outgoing_campaign_messages="job")
    job = job_of(emulator, 201, 6)
    activity(tenant, synced_contact(tenant, integ, job))
    emulator.state.arm_fault("timeout_after_store", route="*/notes", times=1, latency_ms=3000)
    first = run(tenant)
    assert first.failed == 1
    assert len(emulator.state.get_notes(201, "job", job["id"])) == 1  # the CRM did store it
    second = run(tenant)
    assert second.delivered == 1
    assert len(emulator.state.get_notes(201, "job", job["id"])) == 1
    assert ledger(tenant) == [("job_note", "delivered", 2)]


def test_three_failures_make_a_push_not_integrated_and_an_operator_retry_delivers_it_once(
    emulator: Any,
) -> None:
    tenant, integ = st_tenant(emulator, "acme", 201, push_outgoing_campaign_messages="job")
    job = job_of(emulator, 201, 7)
    activity(tenant, synced_contact(tenant, integ, job))
    emulator.state.arm_fault("status", route="*/notes", times=None, status=503)
    assert [run(tenant).failed for _ in range(2)] == [1, 1]  # attempts 1 and 2: retried later
    assert run(tenant).not_integrated == 1  # attempt 3
    assert ledger(tenant) == [("job_note", "not_integrated", 3)]
    report, failures = push.failures_report(hours=1)
    assert failures == 1 and "| acme | st-main | not_integrated | 1 |" in report
    assert "503" in report
    emulator.state.clear_faults()
    assert run(tenant).delivered == 0, "not_integrated waits for an operator"
    assert push.requeue(tenant) == 1
    assert run(tenant).delivered == 1
    assert len(emulator.state.get_notes(201, "job", job["id"])) == 1


def test_paused_integration_keeps_its_outbox_until_resumed(emulator: Any) -> None:
    tenant, integ = st_tenant(emulator, "acme", 201, push_outgoing_campaign_messages="customer")
    job = job_of(emulator, 201, 0)
    activity(tenant, synced_contact(tenant, integ, job), body="paused one")
    with db.connect() as conn:
        conn.execute("UPDATE integration SET paused = true WHERE id = %s", (integ,))
        conn.commit()
    assert run(tenant).delivered == 0
    with db.connect() as conn:
        conn.execute("UPDATE integration SET paused = false WHERE id = %s", (integ,))
        conn.commit()
    assert run(tenant).delivered == 1


def test_two_tenants_outboxes_never_cross(emulator: Any) -> None:
    a, ia = st_tenant(emulator, "alpha", 201, push_campaign_events="job")
    b, ib = st_tenant(emulator, "bravo", 202, push_campaign_events="job")
    ja, jb = job_of(emulator, 201, 1), job_of(emulator, 202, 1)
    activity(a, synced_contact(a, ia, ja), "campaign_event", campaign_event="completed")
    activity(b, synced_contact(b, ib, jb), "campaign_event", campaign_event="removed")
    assert run(a).delivered == 1
    assert ledger(b) == []
    assert run(b).delivered == 1
    (na,) = [n for n in emulator.state.get_notes(201, "job", ja["id"]) if "hatch-" in n["text"]]
    (nb,) = [n for n in emulator.state.get_notes(202, "job", jb["id"]) if "hatch-" in n["text"]]
    assert "completed" in na["text"] and "removed" in nb["text"]


def test_activity_for_a_contact_of_another_tenant_is_refused() -> None:
    a, b = make_tenant("alpha"), make_tenant("bravo")
    with db.connect() as conn:
        (contact,) = conn.execute(
            "INSERT INTO contact (tenant_id) VALUES (%s) RETURNING id", (b,)
        ).fetchone()  # type: ignore[misc]
        conn.commit()
    with pytest.raises(LookupError, match="does not exist in tenant"):
        activity(a, contact)


def test_activity_shape_is_validated_before_it_reaches_the_outbox() -> None:
    with pytest.raises(ValueError, match="needs a channel"):
        push.ActivityIn(tenant_id=1, contact_id=1, kind="inbound_message")
    with pytest.raises(ValueError, match="campaign_event needs"):
        push.ActivityIn(tenant_id=1, contact_id=1, kind="campaign_event", channel="sms")


# -- seed 003: "wait a few minutes and then try again ... after three failed attempts" ----------
# The production policy (no zero delay) with the clock passed to deliver(): nothing sleeps.

RETRY_POLICY = PushPolicy(defer_seconds=0, orphan_after_seconds=86_400)


def failing_push(emulator: Any, index: int) -> tuple[int, datetime]:
    """A tenant with one campaign message whose note the CRM keeps refusing (503); the first
    attempt is made at the returned time."""
    tenant, integ = st_tenant(emulator, "acme", 201, push_outgoing_campaign_messages="job")
    activity(tenant, synced_contact(tenant, integ, job_of(emulator, 201, index)))
    emulator.state.arm_fault("status", route="*/notes", times=None, status=503)
    push.plan(tenant)  # the row is due from the time it is planned (the database's clock)
    start = datetime.now(UTC)
    assert run(tenant, RETRY_POLICY, now=start).failed == 1
    return tenant, start


def next_attempt_at(tenant: int) -> datetime:
    with db.connect() as conn:
        (at,) = conn.execute(
            "SELECT next_attempt_at FROM push_ledger WHERE tenant_id = %s", (tenant,)
        ).fetchone()  # type: ignore[misc]
    return at  # type: ignore[no-any-return]


def test_retry_delay_is_a_few_minutes() -> None:
    assert 60 <= RETRY_POLICY.retry_delay_seconds <= 15 * 60


def test_a_push_run_right_after_a_failure_does_not_retry_the_row(emulator: Any) -> None:
    tenant, start = failing_push(emulator, 0)
    delay = timedelta(seconds=RETRY_POLICY.retry_delay_seconds)
    assert next_attempt_at(tenant) == start + delay
    for later in (timedelta(0), timedelta(seconds=1), delay - timedelta(seconds=1)):
        counts = run(tenant, RETRY_POLICY, now=start + later)
        assert (counts.failed, counts.delivered, counts.not_integrated) == (0, 0, 0)
        assert ledger(tenant) == [("job_note", "failed", 1)]


def test_the_attempt_after_the_retry_delay_retries_the_row(emulator: Any) -> None:
    tenant, start = failing_push(emulator, 1)
    delay = timedelta(seconds=RETRY_POLICY.retry_delay_seconds)
    emulator.state.clear_faults()
    assert run(tenant, RETRY_POLICY, now=start + delay).delivered == 1
    assert ledger(tenant) == [("job_note", "delivered", 2)]
    assert len(emulator.state.get_notes(201, "job", job_of(emulator, 201, 1)["id"])) == 1


def test_three_failed_attempts_a_few_minutes_apart_make_the_row_not_integrated(
    emulator: Any,
) -> None:
    tenant, start = failing_push(emulator, 2)
    delay = timedelta(seconds=RETRY_POLICY.retry_delay_seconds)
    assert run(tenant, RETRY_POLICY, now=start + delay).failed == 1
    assert ledger(tenant) == [("job_note", "failed", 2)]
    assert run(tenant, RETRY_POLICY, now=start + delay + delay / 2).failed == 0  # not yet
    assert run(tenant, RETRY_POLICY, now=start + 2 * delay).not_integrated == 1
    assert ledger(tenant) == [("job_note", "not_integrated", 3)]
    emulator.state.clear_faults()
    assert run(tenant, RETRY_POLICY, now=start + 100 * delay).delivered == 0
    assert ledger(tenant) == [("job_note", "not_integrated", 3)]


# -- seed 003: "it is recommended that the integration to the CRM to be first disabled" ---------
# Pause holds the outbox and delivers on resume; disable (and not existing yet) means "not these".


CONTENT = {"push_outgoing_campaign_messages_content": True}


def set_integration(integ: int, **values: bool) -> None:
    with db.connect() as conn:
        for column, value in values.items():
            conn.execute(f"UPDATE integration SET {column} = %s WHERE id = %s", (value, integ))
        conn.commit()


def planned_activities(tenant: int) -> list[int]:
    with db.connect() as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT activity_id FROM push_ledger WHERE tenant_id = %s ORDER BY 1",
                (tenant,),
            )
        ]


def hatch_notes(emu: Any, st_id: int, where: str, parent: int) -> list[dict[str, Any]]:
    return [n for n in emu.state.get_notes(st_id, where, parent) if "hatch-" in n["text"]]


def test_activities_recorded_while_an_integration_is_disabled_are_never_pushed(
    emulator: Any,
) -> None:
    tenant, integ = st_tenant(
        emulator, "acme", 201, push_outgoing_campaign_messages="customer", **CONTENT
    )
    job = job_of(emulator, 201, 0)
    contact = synced_contact(tenant, integ, job)
    set_integration(integ, enabled=False)
    bulk = [activity(tenant, contact, body=f"bulk {i}") for i in range(3)]
    assert run(tenant).delivered == 0
    set_integration(integ, enabled=True)
    after = activity(tenant, contact, body="after re-enable")
    assert run(tenant).delivered == 1
    assert planned_activities(tenant) == [after]
    assert not set(bulk) & set(planned_activities(tenant))
    (note,) = hatch_notes(emulator, 201, "customer", job["customerId"])
    assert "bulk" not in note["text"]
    assert push.due_tenants(tenant_id=tenant) == [], "the sweep agrees: nothing is due"


def test_activities_recorded_before_an_integration_existed_are_never_pushed(
    emulator: Any,
) -> None:
    tenant = make_tenant("acme")
    with db.connect() as conn:
        (contact,) = conn.execute(
            "INSERT INTO contact (tenant_id, email) VALUES (%s, 'x@y.com') RETURNING id", (tenant,)
        ).fetchone()  # type: ignore[misc]
        conn.commit()
    old = activity(tenant, contact, body="recorded before the CRM was connected")
    integ = st_tenant_integration(emulator, tenant, 201, "customer")
    job = job_of(emulator, 201, 1)
    with db.connect() as conn:
        merge_batch(
            conn,
            MergeBatch(
                tenant_id=tenant,
                integration_id=integ,
                stream="jobs",
                opportunities=[
                    opp(
                        str(job["id"]),
                        contact=str(job["customerId"]),
                        email="x@y.com",
                        details={"customer:id": job["customerId"]},
                    )
                ],
            ),
            None,
        )
    assert push.due_tenants(tenant_id=tenant) == []
    assert run(tenant).delivered == 0
    new = activity(tenant, contact, body="recorded after")
    assert push.due_tenants(tenant_id=tenant) == [(tenant, "acme")]
    assert run(tenant).delivered == 1
    assert planned_activities(tenant) == [new]
    assert old not in planned_activities(tenant)


def st_tenant_integration(emu: Any, tenant: int, st_id: int, where: str) -> int:
    return make_integration(
        tenant,
        credentials={
            "client_id": f"cid.{st_id}",
            "client_secret": f"cs1.{st_id}",
            "app_key": APP_KEY,
            "tenant_id": str(st_id),
        },
        settings={
            "opportunity_models": ["job"],
            "push_outgoing_campaign_messages": where,
            **CONTENT,
        },
        base_url=emu.url,
        auth_url=emu.url + "/connect/token",
    )


def test_an_activity_recorded_before_a_disable_is_still_pushed_after_re_enabling(
    emulator: Any,
) -> None:
    """Disable excludes only what was recorded while disabled: an activity recorded while the
    integration was enabled but not yet planned when it was disabled goes out on re-enable."""
    tenant, integ = st_tenant(
        emulator, "acme", 201, push_outgoing_campaign_messages="customer", **CONTENT
    )
    job = job_of(emulator, 201, 2)
    contact = synced_contact(tenant, integ, job)
    before = activity(tenant, contact, body="before the disable")
    set_integration(integ, enabled=False)
    during = activity(tenant, contact, body="during the disable")
    set_integration(integ, enabled=True)
    set_integration(integ, enabled=False)  # a second disable keeps the first period excluded
    set_integration(integ, enabled=True)
    assert run(tenant).delivered == 1
    assert planned_activities(tenant) == [before]
    assert during not in planned_activities(tenant)


def test_activities_recorded_while_an_integration_is_paused_are_delivered_on_resume(
    emulator: Any,
) -> None:
    tenant, integ = st_tenant(
        emulator, "acme", 201, push_outgoing_campaign_messages="customer", **CONTENT
    )
    job = job_of(emulator, 201, 3)
    contact = synced_contact(tenant, integ, job)
    set_integration(integ, paused=True)
    held = [activity(tenant, contact, body=f"held {i}") for i in range(2)]
    assert run(tenant).delivered == 0
    set_integration(integ, paused=False)
    assert push.due_tenants(tenant_id=tenant) == [(tenant, "acme")]
    assert run(tenant).delivered == 2
    assert planned_activities(tenant) == held


def test_an_operator_pushes_a_chosen_backlog_of_a_disabled_period_on_purpose(
    emulator: Any,
) -> None:
    tenant, integ = st_tenant(
        emulator, "acme", 201, push_outgoing_campaign_messages="customer", **CONTENT
    )
    job = job_of(emulator, 201, 4)
    contact = synced_contact(tenant, integ, job)
    set_integration(integ, enabled=False)
    first = activity(tenant, contact, body="wanted")
    later = activity(tenant, contact, body="not wanted")
    set_integration(integ, enabled=True)
    assert run(tenant).delivered == 0
    with db.connect() as conn:
        since, until = (
            r[0]
            for r in conn.execute(
                "SELECT created_at FROM activity WHERE id IN (%s, %s) ORDER BY id", (first, later)
            )
        )
    assert since < until
    assert push.push_backlog(tenant, integ, since, until) == 1
    assert push.push_backlog(tenant, integ, since, until) == 0, "planned once"
    assert run(tenant).delivered == 1
    assert planned_activities(tenant) == [first]
    (note,) = hatch_notes(emulator, 201, "customer", job["customerId"])
    assert "wanted" in note["text"] and "not wanted" not in note["text"]
    with pytest.raises(LookupError, match="no integration"):
        push.push_backlog(tenant, integ + 1000, since, until)


# -- seed 003: "The Integration object with all details reported is available for developers" --


def attempts_of(tenant: int) -> list[dict[str, Any]]:
    with db.connect() as conn:
        cur = conn.execute(
            "SELECT attempt, outcome, request, response, crm_record_id, error FROM push_attempt "
            "WHERE tenant_id = %s ORDER BY id",
            (tenant,),
        )
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_every_push_attempt_is_kept_with_its_request_summary_and_the_crms_response(
    emulator: Any,
) -> None:
    tenant, integ = st_tenant(emulator, "acme", 201, push_outgoing_campaign_messages="job")
    job = job_of(emulator, 201, 5)
    activity(tenant, synced_contact(tenant, integ, job))
    emulator.state.arm_fault("status", route="*/notes", times=1, status=503)
    assert run(tenant).failed == 1
    assert run(tenant).delivered == 1
    first, second = attempts_of(tenant)

    assert (first["attempt"], first["outcome"], first["crm_record_id"]) == (1, "failed", None)
    assert first["request"]["target"] == "job_note"
    assert first["request"]["parent"] == str(job["id"])
    assert first["request"]["idempotency_key"].startswith("hatch-")
    assert first["request"]["check_first"] is False
    notes_path = f"/jobs/{job['id']}/notes"
    (refused,) = [x for x in first["response"]["exchanges"] if x["path"].endswith(notes_path)]
    assert (refused["method"], refused["status"]) == ("POST", 503)
    assert "503" in first["error"]

    assert (second["attempt"], second["outcome"]) == (2, "delivered")
    assert second["request"]["check_first"] is True, "after a failure it looks for a copy first"
    calls = [(x["method"], x["status"]) for x in second["response"]["exchanges"]]
    assert ("GET", 200) in calls and calls[-1][0] == "POST" and calls[-1][1] < 300
    with db.connect() as conn:
        (crm_id,) = conn.execute(
            "SELECT crm_record_id FROM push_ledger WHERE tenant_id = %s", (tenant,)
        ).fetchone()  # type: ignore[misc]
    assert crm_id and second["crm_record_id"] == crm_id == second["response"]["crm_record_id"]


def test_push_attempts_never_keep_a_token_or_a_credential(emulator: Any) -> None:
    from connectors.http import TokenCache

    tenant, integ = st_tenant(emulator, "acme", 201, push_outgoing_campaign_messages="job")
    activity(tenant, synced_contact(tenant, integ, job_of(emulator, 201, 6)))
    emulator.state.arm_fault("expire_token", times=1)  # a re-authentication inside the attempt
    assert run(tenant).delivered == 1
    key = TokenCache.key(emulator.url + "/connect/token", "cid.201", "cs1.201")
    token = DEFAULT_TOKEN_CACHE.get(key)
    assert token is not None
    kept = repr(attempts_of(tenant))
    assert "/connect/token" in kept, "the re-authentication is part of the attempt"
    for needle in (token.access_token, "cs1.201", APP_KEY):
        assert needle not in kept


def test_push_attempt_summaries_mask_credential_values_the_crm_echoes() -> None:
    from models.integrations.servicetitan import ServiceTitanCredentialsModel

    creds = ServiceTitanCredentialsModel.model_validate(
        {
            "client_id": "cid.1",
            "client_secret": "cs1.very-secret",
            "app_key": "ak1.app-key",
            "tenant_id": "1",
        }
    )
    kept = push.redact(
        {"exchanges": [{"excerpt": "bad app key ak1.app-key for cs1.very-secret"}]}, creds
    )
    assert kept == {"exchanges": [{"excerpt": "bad app key *** for ***"}]}


def test_activity_show_lists_every_attempt_for_developers(emulator: Any) -> None:
    from typer.testing import CliRunner

    from ops.cli import app

    tenant, integ = st_tenant(emulator, "acme", 201, push_outgoing_campaign_messages="job")
    job = job_of(emulator, 201, 7)
    act = activity(tenant, synced_contact(tenant, integ, job))
    emulator.state.arm_fault("status", route="*/notes", times=1, status=503)
    run(tenant)
    run(tenant)
    with db.connect() as conn:
        (crm_id,) = conn.execute(
            "SELECT crm_record_id FROM push_ledger WHERE tenant_id = %s", (tenant,)
        ).fetchone()  # type: ignore[misc]
    result = CliRunner().invoke(app, ["activity", "show", str(act)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "outbound_campaign_message" in out and "st-main" in out and "delivered" in out
    assert f"/jobs/{job['id']}/notes" in out and "503" in out and crm_id in out
    missing = CliRunner().invoke(app, ["activity", "show", "999999"])
    assert missing.exit_code == 2 and "no activity 999999" in missing.output
