"""Issue 15 for ServiceTitan: job, customer and location notes made in ServiceTitan come into the
hub as inbound activities (``crm_activity``), over real HTTP from the emulator, each rule named.

A CSR's work in ServiceTitan is played through the emulator's control routes (add, edit, delete
a note; edit a record). Pulls run the provider's own fetch → map → merge, stream by stream in
read order, as the flow does; the push of the no-echo test is the real push path.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connectors.servicetitan import DEFAULT_TOKEN_CACHE
from crmsync import db, push, report, sync
from crmsync.merge import MergeCounts
from crmsync.providers import servicetitan as st_provider
from crmsync.settings import PushPolicy
from sandbox.servicetitan import TenantSpec, run_emulator
from tests.factories import make_integration, make_tenant

pytestmark = pytest.mark.usefixtures("clean_db")
APP_KEY = "ak1.notes"
ST = 401
SPEC = TenantSpec(
    tenant_id=ST,
    client_id=f"cid.{ST}",
    client_secret=f"cs1.{ST}",
    app_key=APP_KEY,
    customers=6,
    jobs=10,
    memberships=0,
    seed=ST,
)
ON: dict[str, Any] = {"inbound_activities": {"enabled": True}, "note_sweep_customers": 0}
NOW_POLICY = PushPolicy(retry_delay_seconds=0, defer_seconds=0, orphan_after_seconds=3600)


@pytest.fixture(scope="module")
def served() -> Iterator[Any]:
    with run_emulator([SPEC], port=0, export_page_size=50) as running:
        yield running


@pytest.fixture
def emu(served: Any) -> Iterator[Any]:
    served.state.reset()
    st_provider._clients.clear()
    DEFAULT_TOKEN_CACHE.clear()
    yield served
    served.state.clear_faults()


def st(emu: Any, **settings: Any) -> tuple[int, int]:
    tenant = make_tenant("acme")
    integ = make_integration(
        tenant,
        credentials={
            "client_id": SPEC.client_id,
            "client_secret": SPEC.client_secret,
            "app_key": APP_KEY,
            "tenant_id": str(ST),
        },
        settings={"opportunity_models": ["job"], **settings},
        base_url=emu.url,
        auth_url=emu.url + "/connect/token",
    )
    return tenant, integ


def pull(integ: int, lookback_days: int | None = None) -> dict[str, MergeCounts]:
    """Every stream in read order, chunk by chunk as the flow runs them: fetch-modified → map →
    merge-opportunity, a chunk with nothing new neither mapped nor merged."""
    started = datetime.now(UTC)
    counts: dict[str, MergeCounts] = {s: MergeCounts() for s in sync.streams(integ)}
    start: sync.ChunkStart | None = sync.ChunkStart()
    while start is not None:
        chunk = sync.fetch_chunk(integ, started, start, lookback_days)
        if chunk.moves_cursor:
            for stream, merged in sync.merge_chunk(sync.map_chunk(integ, chunk), None).items():
                counts[stream].add(merged)
        start = chunk.next
    return counts


def total(counts: dict[str, MergeCounts]) -> MergeCounts:
    out = MergeCounts()
    for c in counts.values():
        out.add(c)
    return out


def job(emu: Any, index: int = 0) -> dict[str, Any]:
    live = [j for j in emu.state.get_records(ST, "jobs") if j["active"]]
    return sorted(live, key=lambda j: j["id"])[index]


def note(emu: Any, kind: str, parent: int, text: str = "Gate code 1234", **kw: Any) -> int:
    url = f"{emu.url}/__emulator/tenants/{ST}/notes/{kind}/{parent}"
    response = httpx.post(url, json={"text": text, **kw})
    response.raise_for_status()
    return int(response.json()["id"])


def edit(emu: Any, kind: str, parent: int, ident: int, text: str) -> None:
    url = f"{emu.url}/__emulator/tenants/{ST}/notes/{kind}/{parent}/{ident}"
    httpx.patch(url, json={"text": text}).raise_for_status()


def delete(emu: Any, kind: str, parent: int, ident: int) -> None:
    httpx.delete(
        f"{emu.url}/__emulator/tenants/{ST}/notes/{kind}/{parent}/{ident}"
    ).raise_for_status()


def touch(emu: Any, resource: str, ident: int) -> None:
    """A CSR edits the record in ServiceTitan (its ``modifiedOn`` moves)."""
    emu.state.upsert_record(ST, resource, {"id": ident})


def rows(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute(sql, params).fetchall()


def activity(external_id: int) -> dict[str, Any]:
    cols = (
        "kind, parent, contact_ref, opportunity_model, opportunity_ref, contact_id, "
        "opportunity_id, subject, body, author, deleted_at"
    )
    found = rows(f"SELECT {cols} FROM crm_activity WHERE external_id = %s", str(external_id))
    assert len(found) == 1, f"{external_id}: {found}"
    return dict(zip(cols.split(", "), found[0], strict=True))


def hub_contact(customer: int) -> int:
    ((cid,),) = rows(
        "SELECT DISTINCT contact_id FROM opportunity WHERE external_contact_id = %s", str(customer)
    )
    return int(cid)


def note_requests(emu: Any) -> list[str]:
    return [r.path for r in emu.state.requests if "/notes" in r.path or "job-notes" in r.path]


# -- what comes in ----------------------------------------------------------------------------------


def test_a_job_note_comes_in_linked_to_the_jobs_opportunity_and_contact(emu: Any) -> None:
    _, integ = st(emu, **ON)
    j = job(emu)
    ident = note(emu, "job", j["id"], "Customer wants a morning slot", createdById=42)
    counts = pull(integ)

    assert counts["job_notes"].activities == 1
    ((opp_id,),) = rows("SELECT id FROM opportunity WHERE external_id = %s", str(j["id"]))
    assert activity(ident) == {
        "kind": "note",
        "parent": f"jobs:{j['id']}",
        "contact_ref": None,
        "opportunity_model": "job",
        "opportunity_ref": str(j["id"]),
        "contact_id": hub_contact(j["customerId"]),
        "opportunity_id": opp_id,
        "subject": None,
        "body": "Customer wants a morning slot",
        "author": "42",
        "deleted_at": None,
    }


def test_customer_and_location_notes_are_linked_to_the_customers_contact(emu: Any) -> None:
    _, integ = st(emu, **ON)
    j = job(emu)
    on_customer = note(emu, "customer", j["customerId"], "Has a dog")
    on_location = note(emu, "location", j["locationId"], "Side gate")
    pull(integ)

    contact = hub_contact(j["customerId"])
    assert activity(on_customer) | {"contact_id": contact} == activity(on_customer)
    assert activity(on_customer)["parent"] == f"customers:{j['customerId']}"
    assert activity(on_customer)["contact_ref"] == str(j["customerId"])
    assert activity(on_location)["parent"] == f"locations:{j['locationId']}"
    assert activity(on_location)["contact_ref"] == str(j["customerId"])
    assert activity(on_location)["contact_id"] == contact
    assert activity(on_location)["opportunity_id"] is None


def test_a_location_note_reaches_the_locations_own_customer_from_the_mirror(emu: Any) -> None:
    _, integ = st(emu, job_resources=["zones"], **ON)  # zones mirror the locations
    j, other = job(emu), job(emu, 5)
    assert j["customerId"] != other["customerId"]
    pull(integ)
    ident = note(emu, "location", other["locationId"], "Meter in the back")
    # Only a job of another customer naming that location changes: the location's customer
    # comes from the mirror, not from the job.
    emu.state.upsert_record(
        ST, "jobs", {"customerId": j["customerId"], "locationId": other["locationId"]}
    )
    pull(integ)
    assert activity(ident)["contact_ref"] == str(other["customerId"])
    assert activity(ident)["contact_id"] == hub_contact(other["customerId"])


# -- parent first ------------------------------------------------------------------------------------


def test_parent_first_a_note_on_a_job_outside_the_window_waits_and_is_linked_when_it_syncs(
    emu: Any,
) -> None:
    _, integ = st(emu, **ON)
    j = job(emu)
    ident = note(emu, "job", j["id"], "Asked about financing")
    counts = pull(integ, lookback_days=0)  # the job (changed days ago) is not read yet

    assert counts["job_notes"].activities == 1 and counts["job_notes"].activities_waiting == 1
    assert rows("SELECT count(*) FROM opportunity WHERE external_id = %s", str(j["id"])) == [(0,)]
    assert activity(ident)["contact_id"] is None

    touch(emu, "jobs", j["id"])  # the CSR edits the job: it syncs
    pull(integ)
    assert activity(ident)["contact_id"] == hub_contact(j["customerId"])
    assert activity(ident)["opportunity_id"] is not None


# -- no echo ---------------------------------------------------------------------------------------


def test_no_echo_job_and_customer_notes_crmsync_pushed_never_come_back_in(emu: Any) -> None:
    tenant, integ = st(
        emu, push_outgoing_campaign_messages="job", push_incoming_messages="customer", **ON
    )
    j = job(emu)
    pull(integ)
    contact = hub_contact(j["customerId"])
    for kind in ("outbound_campaign_message", "inbound_message"):
        push.record_activity(
            push.ActivityIn.model_validate(
                {
                    "tenant_id": tenant,
                    "contact_id": contact,
                    "kind": kind,
                    "channel": "sms",
                    "campaign_name": "Spring Tune-up",
                    "body": "Hi Ann, time for your tune-up!",
                }
            )
        )
    push.plan(tenant)
    assert push.deliver(tenant, policy=NOW_POLICY).delivered == 2
    assert [n["text"][-30:] for n in emu.state.get_notes(ST, "customer", j["customerId"])]
    csr = note(emu, "customer", j["customerId"], "Ann called about the tune-up")
    touch(emu, "customers", j["customerId"])  # the customer's notes are read this sync

    counts = pull(integ)
    assert total(counts).echoes == 2
    assert [r[0] for r in rows("SELECT external_id FROM crm_activity")] == [str(csr)]
    assert rows("SELECT count(*) FROM push_ledger") == [(2,)], "nothing is pushed back out"


# -- edits and deletions ---------------------------------------------------------------------------


def test_edit_an_edited_job_note_and_customer_note_update_their_rows(emu: Any) -> None:
    _, integ = st(emu, **ON)
    j = job(emu)
    on_job = note(emu, "job", j["id"], "first draft")
    on_customer = note(emu, "customer", j["customerId"], "dog: friendly")
    pull(integ)
    emu.state.advance_clock(60)
    edit(emu, "job", j["id"], on_job, "corrected: Friday 3pm")
    edit(emu, "customer", j["customerId"], on_customer, "dog: keep inside")
    touch(emu, "customers", j["customerId"])
    counts = pull(integ)

    assert counts["job_notes"].activities == 1 and counts["customers"].activities == 1
    assert activity(on_job)["body"] == "corrected: Friday 3pm"
    assert activity(on_customer)["body"] == "dog: keep inside"
    assert rows("SELECT count(*) FROM crm_activity") == [(2,)]


def test_delete_a_job_note_exported_inactive_and_a_customer_note_gone_from_its_list_are_marked(
    emu: Any,
) -> None:
    _, integ = st(emu, **ON)
    j = job(emu)
    gone_job, kept_job = note(emu, "job", j["id"], "Wrong house"), note(emu, "job", j["id"])
    gone = note(emu, "customer", j["customerId"], "Wrong number")
    kept = note(emu, "customer", j["customerId"], "Right number")
    pull(integ)
    emu.state.advance_clock(60)
    delete(emu, "job", j["id"], gone_job)
    delete(emu, "customer", j["customerId"], gone)
    touch(emu, "customers", j["customerId"])
    pull(integ)

    assert activity(gone_job)["deleted_at"] is not None
    assert activity(gone)["deleted_at"] is not None
    assert activity(kept_job)["deleted_at"] is None and activity(kept)["deleted_at"] is None


# -- settings ----------------------------------------------------------------------------------------


def test_off_by_setting_no_notes_route_is_even_requested(emu: Any) -> None:
    _, integ = st(emu)  # inbound_activities off by default
    j = job(emu)
    note(emu, "job", j["id"])
    note(emu, "customer", j["customerId"])
    assert "job_notes" not in sync.streams(integ) and "note_sweep" not in sync.streams(integ)
    pull(integ)
    assert note_requests(emu) == []
    assert rows("SELECT count(*) FROM crm_activity") == [(0,)]
    assert rows("SELECT count(*) FROM opportunity") != [(0,)], "the records still sync"


def test_job_notes_are_read_only_when_the_job_model_is(emu: Any) -> None:
    _, integ = st(emu, **{**ON, "opportunity_models": ["membership"]})
    assert "job_notes" not in sync.streams(integ)
    pull(integ)
    assert not [p for p in note_requests(emu) if "job-notes" in p or "/jobs/" in p]


def test_note_sources_job_only_reads_the_export_and_polls_no_customer_or_location(
    emu: Any,
) -> None:
    """Customer and location notes have no export: a tenant can keep to job notes and spare its
    rate budget the request per touched customer."""
    _, integ = st(emu, **{**ON, "note_sources": ["job"]})
    j = job(emu)
    n = note(emu, "job", j["id"])
    note(emu, "customer", j["customerId"])
    assert "note_sweep" not in sync.streams(integ)
    pull(integ)
    assert [p for p in note_requests(emu) if "job-notes" not in p] == []
    assert rows("SELECT external_id FROM crm_activity") == [(str(n),)]


def test_kinds_other_than_note_are_refused_with_a_clear_message() -> None:
    from pydantic import ValidationError

    from models.integrations.servicetitan import ServiceTitanSettings

    with pytest.raises(ValidationError, match="ServiceTitan has no call, task activities"):
        ServiceTitanSettings.model_validate(
            {"inbound_activities": {"enabled": True, "kinds": ["note", "task", "call"]}}
        )
    assert ServiceTitanSettings.model_validate({"inbound_activities": {"enabled": True}})


def test_first_sync_window_a_note_older_than_first_sync_days_is_not_read(emu: Any) -> None:
    _, integ = st(emu, **ON)
    j = job(emu)
    old_stamp = (datetime.now(UTC) - timedelta(days=120)).isoformat()
    old = note(emu, "job", j["id"], "Last year's visit", createdOn=old_stamp)
    recent = note(emu, "job", j["id"], "This week's visit")
    counts = pull(integ)
    assert counts["job_notes"].fetched == 1
    assert [r[0] for r in rows("SELECT external_id FROM crm_activity")] == [str(recent)]
    assert old != recent


# -- what it costs -----------------------------------------------------------------------------------


def test_an_idle_round_with_inbound_on_costs_no_notes_request(emu: Any) -> None:
    _, integ = st(emu, **ON)
    pull(integ)
    assert [p for p in note_requests(emu) if "/customers/" in p], "the first sync polled"
    emu.state.clear_requests()
    counts = pull(integ)
    assert note_requests(emu) == ["/jpm/v2/tenant/401/export/job-notes"]
    assert total(counts).activities == 0


def test_a_first_sync_polls_only_customers_changed_in_the_window_not_the_whole_tenant() -> None:
    """The customers feed is read from its start (a job of the window often belongs to an
    older customer), but only customers changed in the last first_sync_days have their notes
    read: a tenant's history would otherwise cost a request per customer it ever had."""
    old_start = datetime.now(UTC) - timedelta(days=120)
    with run_emulator([SPEC], port=0, export_page_size=50, start_time=old_start) as old:
        st_provider._clients.clear()
        DEFAULT_TOKEN_CACHE.clear()
        _, integ = st(old, **ON)
        counts = pull(integ)
        assert counts["customers"].fetched > 0, "the whole customers feed was read"
        assert [p for p in note_requests(old) if "/customers/" in p] == []
        assert [p for p in note_requests(old) if "/locations/" in p] == []


def test_each_touched_customer_costs_one_notes_request_per_round(emu: Any) -> None:
    _, integ = st(emu, **ON)
    j, other = job(emu), job(emu, 5)
    pull(integ)
    emu.state.clear_requests()
    touch(emu, "customers", j["customerId"])
    touch(emu, "jobs", j["id"])  # the same customer, named twice in one sync
    pull(integ)
    customer_reads = [p for p in note_requests(emu) if "/customers/" in p]
    assert customer_reads == [f"/crm/v2/tenant/{ST}/customers/{j['customerId']}/notes"]
    assert str(other["customerId"]) not in " ".join(note_requests(emu))


def test_the_rolling_sweep_reads_a_quiet_customers_note_within_n_over_k_rounds(emu: Any) -> None:
    _, integ = st(emu, **{**ON, "note_sweep_customers": 2})
    pull(integ)
    customers = rows("SELECT count(*) FROM crm_record WHERE resource = 'customers'")[0][0]
    quiet = job(emu)["customerId"]
    ident = note(emu, "customer", quiet, "Mentioned a second property")
    emu.state.clear_requests()
    pull(integ)
    sweep = [p for p in note_requests(emu) if "/customers/" in p]
    assert len(sweep) == 2, "a round's sweep reads its setting's number of customers, no more"
    for _ in range(-(-customers // 2)):
        pull(integ)
    assert activity(ident)["contact_id"] == hub_contact(quiet)


# -- counts ----------------------------------------------------------------------------------------


def test_counts_in_the_run_activities_stored_waiting_and_echoes_show_in_the_run_table(
    emu: Any,
) -> None:
    _, integ = st(emu, **ON)
    j = job(emu)
    note(emu, "job", j["id"])
    note(emu, "job", job(emu, 1)["id"])
    note(emu, "customer", j["customerId"])
    counts = pull(integ, lookback_days=0)  # no job is read yet: every note waits
    assert (counts["job_notes"].activities, counts["job_notes"].activities_waiting) == (2, 2)
    assert (counts["customers"].activities, counts["customers"].activities_waiting) == (1, 1)

    table = report.run_table({f"st:{s}": c.as_dict() for s, c in counts.items()}, {})
    by_stream = {row["stream"]: row for row in table}
    assert by_stream["job_notes"]["CRM activities stored"] == 2
    assert by_stream["job_notes"]["CRM activities waiting"] == 2
    assert by_stream["customers"]["CRM activities stored"] == 1
