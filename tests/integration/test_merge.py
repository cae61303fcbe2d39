"""The seeds' merge rules, against a real PostgreSQL (crmsync.merge)."""

from __future__ import annotations

import asyncio
import copy
import itertools
import random
import uuid
from typing import Any

import psycopg
import pytest

from crmsync import db
from crmsync.merge import MergeBatch, MergeCounts, merge_batch
from models.mappings.improveit360 import map_sales_opportunity
from models.mappings.servicetitan import map_job
from models.standard import MappedOpportunity, RejectedRecord
from tests.factories import make_integration, make_tenant, opp, ts

pytestmark = pytest.mark.usefixtures("clean_db")


def merge(
    tenant: int,
    integ: int,
    opps: list[MappedOpportunity],
    *,
    placeholders: frozenset[str] = frozenset(),
    on_created: bool = False,
    cursor: str | None = None,
    rejects: list[RejectedRecord] | None = None,
) -> MergeCounts:
    batch = MergeBatch(
        tenant_id=tenant,
        integration_id=integ,
        stream="jobs",
        opportunities=opps,
        placeholder_emails=placeholders,
        match_on_created_at=on_created,
        cursor=cursor,
        set_cursor=cursor is not None,
        rejects=rejects or [],
        fetched=len(opps),
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


def test_opportunity_replaces_the_existing_one_when_external_id_matches(
    st: tuple[int, int],
) -> None:
    merge(*st, [opp("J1", status="Scheduled", updated=ts(2))])
    counts = merge(*st, [opp("J1", status="Completed", updated=ts(3))])
    assert (counts.created, counts.updated) == (0, 1)
    assert rows("SELECT external_id, status FROM opportunity") == [("J1", "Completed")]


def test_new_opportunity_is_created_when_external_id_does_not_match(st: tuple[int, int]) -> None:
    merge(*st, [opp("J1")])
    counts = merge(*st, [opp("J2")])
    assert counts.created == 1
    assert rows("SELECT count(*), count(DISTINCT contact_id) FROM opportunity") == [(2, 1)]


def test_same_external_id_in_another_model_is_a_different_opportunity(st: tuple[int, int]) -> None:
    merge(*st, [opp("7", model="job"), opp("7", model="membership")])
    assert rows("SELECT count(*) FROM opportunity") == [(2,)]


def test_opportunity_attaches_to_the_contact_of_the_same_external_contact_id(
    st: tuple[int, int],
) -> None:
    merge(*st, [opp("J1", contact="C9", phone="+15550000001")])
    merge(*st, [opp("J2", contact="C9", phone="+15550000002", email="new@x.com")])
    assert rows("SELECT count(*) FROM contact") == [(1,)]


def test_contact_matches_by_phone_when_the_external_contact_id_is_new(st: tuple[int, int]) -> None:
    merge(*st, [opp("J1", contact="C1", phone="+15551230000")])
    merge(*st, [opp("J2", contact="C2", phone="+15551230000", email="b@x.com")])
    assert rows("SELECT count(*) FROM contact") == [(1,)]
    assert rows("SELECT count(DISTINCT contact_id) FROM opportunity") == [(1,)]


def test_contact_matches_by_email_when_neither_id_nor_phone_match(st: tuple[int, int]) -> None:
    merge(*st, [opp("J1", contact="C1", phone="+15551230000", email="ann@x.com")])
    merge(*st, [opp("J2", contact="C2", phone="+15559990000", email="ann@x.com")])
    assert rows("SELECT count(*) FROM contact") == [(1,)]


def test_phone_match_wins_over_email_match(st: tuple[int, int]) -> None:
    merge(*st, [opp("J1", contact="C1", phone="+15551110000", email="a@x.com")])
    merge(*st, [opp("J2", contact="C2", phone="+15552220000", email="b@x.com")])
    merge(*st, [opp("J3", contact="C3", phone="+15552220000", email="a@x.com")])
    owner = rows(
        "SELECT o.external_id FROM opportunity o JOIN opportunity j3 ON j3.contact_id = o.contact_id "
        "WHERE j3.external_id = 'J3' AND o.external_id <> 'J3'"
    )
    assert owner == [("J2",)]


def test_placeholder_email_never_matches_a_contact(st: tuple[int, int]) -> None:
    ph = frozenset({"noemail@acme.com"})
    merge(*st, [opp("J1", contact="C1", email="noemail@acme.com")], placeholders=ph)
    merge(*st, [opp("J2", contact="C2", email="noemail@acme.com")], placeholders=ph)
    assert rows("SELECT count(*) FROM contact") == [(2,)]
    assert rows("SELECT count(*) FROM contact WHERE email IS NOT NULL") == [(0,)]
    assert rows("SELECT DISTINCT email FROM opportunity") == [("noemail@acme.com",)]


def test_placeholder_email_in_the_same_page_never_merges_two_people(st: tuple[int, int]) -> None:
    ph = frozenset({"noemail@acme.com"})
    merge(
        *st,
        [
            opp("J1", contact="C1", email="noemail@acme.com"),
            opp("J2", contact="C2", email="noemail@acme.com"),
        ],
        placeholders=ph,
    )
    assert rows("SELECT count(*) FROM contact") == [(2,)]


def test_new_contact_is_created_when_nothing_matches(st: tuple[int, int]) -> None:
    counts = merge(*st, [opp("J1", contact="C1", phone="+15550001111", email="z@x.com")])
    assert counts.contacts_created == 1
    assert rows("SELECT email, phone, first_name, last_name FROM contact") == [
        ("z@x.com", "+15550001111", "Ann", "Lee")
    ]


def test_records_of_one_page_that_share_a_phone_get_one_new_contact(st: tuple[int, int]) -> None:
    counts = merge(
        *st,
        [
            opp("J1", contact="C1", phone="+15550002222"),
            opp("J2", contact="C2", phone="+15550002222"),
        ],
    )
    assert counts.contacts_created == 1
    assert rows("SELECT count(DISTINCT contact_id) FROM opportunity") == [(1,)]


def test_older_data_never_overwrites_newer(st: tuple[int, int]) -> None:
    merge(*st, [opp("J1", status="Completed", updated=ts(5))])
    counts = merge(*st, [opp("J1", status="Scheduled", updated=ts(3))])
    assert (counts.updated, counts.unchanged) == (0, 1)
    assert rows("SELECT status FROM opportunity") == [("Completed",)]


def test_newest_record_wins_when_a_page_repeats_an_external_id(st: tuple[int, int]) -> None:
    merge(*st, [opp("J1", status="New", updated=ts(4)), opp("J1", status="Old", updated=ts(3))])
    assert rows("SELECT status FROM opportunity") == [("New",)]


def test_two_tenants_with_the_same_email_and_phone_never_share_a_contact() -> None:
    a = make_tenant("a")
    b = make_tenant("b")
    ia, ib = make_integration(a), make_integration(b)
    same = {"contact": "C1", "phone": "+15553334444", "email": "same@x.com"}
    merge(a, ia, [opp("J1", **same)])  # type: ignore[arg-type]
    merge(b, ib, [opp("J1", **same)])  # type: ignore[arg-type]
    assert rows("SELECT tenant_id, count(*) FROM contact GROUP BY 1 ORDER BY 1") == [(a, 1), (b, 1)]
    assert rows(
        "SELECT count(*) FROM opportunity o JOIN contact c ON c.id = o.contact_id "
        "WHERE c.tenant_id <> o.tenant_id"
    ) == [(0,)]


def test_merging_the_same_page_twice_changes_nothing(st: tuple[int, int]) -> None:
    page = [opp(f"J{i}", contact=f"C{i % 3}", phone=f"+1555000{i:04d}") for i in range(20)]
    first = merge(*st, page)
    before = rows("SELECT id, contact_id, updated_at FROM opportunity ORDER BY id")
    second = merge(*st, page)
    assert (first.created, second.created, second.updated, second.unchanged) == (20, 0, 0, 20)
    assert rows("SELECT id, contact_id, updated_at FROM opportunity ORDER BY id") == before
    assert rows("SELECT count(*) FROM contact") == [(3,)]


def test_matched_contact_gains_missing_fields_but_keeps_existing_ones(st: tuple[int, int]) -> None:
    merge(*st, [opp("J1", contact="C1", email=None, phone="+15550009999", first="Ann")])
    merge(*st, [opp("J2", contact="C1", email="ann@x.com", phone="+15550008888", first="Anne")])
    assert rows("SELECT email, phone, first_name FROM contact") == [
        ("ann@x.com", "+15550009999", "Ann")
    ]


def test_leadperfection_updates_only_when_external_id_and_created_at_both_match(
    st: tuple[int, int],
) -> None:
    merge(*st, [opp("L1", created=ts(1), status="A")], on_created=True)
    merge(*st, [opp("L1", created=ts(1), status="B", updated=ts(3))], on_created=True)
    merge(*st, [opp("L1", created=ts(2), status="C", updated=ts(3))], on_created=True)
    assert rows("SELECT status FROM opportunity ORDER BY external_created_at") == [("B",), ("C",)]


def test_cursor_commits_in_the_same_transaction_as_the_page(st: tuple[int, int]) -> None:
    merge(*st, [opp("J1")], cursor="tok-1")
    assert rows("SELECT stream, cursor FROM sync_cursor") == [("jobs", "tok-1")]
    bad = opp("J2")
    bad.external_created_at = "not a time"  # type: ignore[assignment]  # PostgreSQL refuses it
    with pytest.raises(psycopg.Error):
        merge(*st, [bad], cursor="tok-2")
    assert rows("SELECT cursor FROM sync_cursor") == [("tok-1",)]
    assert rows("SELECT external_id FROM opportunity") == [("J1",)]


def test_rejected_record_is_kept_with_reason_and_payload_once(st: tuple[int, int]) -> None:
    rej = RejectedRecord("jobs", "J9", "job J9: modifiedOn is not a timestamp: 'x'", {"id": 9})
    merge(*st, [], rejects=[rej])
    merge(*st, [], rejects=[rej])
    assert rows("SELECT external_key, reason, payload, times_seen FROM rejected_record") == [
        ("J9", rej.reason, {"id": 9}, 2)
    ]


def test_rejection_is_cleared_once_the_record_merges(st: tuple[int, int]) -> None:
    merge(*st, [], rejects=[RejectedRecord("jobs", "J9", "bad", {"id": 9})])
    merge(*st, [opp("J9")])
    assert rows("SELECT count(*) FROM rejected_record") == [(0,)]


def test_nul_characters_in_crm_text_do_not_fail_the_page(st: tuple[int, int]) -> None:
    merge(*st, [opp("J1", first="A\x00nn", details={"summary": "a\x00b"})])
    assert rows("SELECT first_name, details->>'summary' FROM opportunity") == [("Ann", "ab")]


def test_merge_uses_a_fixed_number_of_statements_per_page(st: tuple[int, int]) -> None:
    page = [opp(f"J{i}", contact=f"C{i}", phone=f"+1555100{i:04d}") for i in range(500)]
    statements = 0
    with db.connect() as conn:

        def count(*_: Any) -> None:
            nonlocal statements
            statements += 1

        conn.add_notice_handler(count)
        original = psycopg.Cursor.execute

        def counting(self: psycopg.Cursor[Any], *a: Any, **k: Any) -> Any:
            nonlocal statements
            statements += 1
            return original(self, *a, **k)

        psycopg.Cursor.execute = counting  # type: ignore[method-assign]
        try:
            merge_batch(
                conn,
                MergeBatch(
                    tenant_id=st[0], integration_id=st[1], stream="jobs", opportunities=page
                ),
                None,
            )
        finally:
            psycopg.Cursor.execute = original  # type: ignore[method-assign]
    assert statements <= 10


# -- the merge result does not depend on how a page is cut ---------------------------------------

_PH = frozenset({"noemail@acme.com"})


def _random_records(rnd: random.Random) -> list[MappedOpportunity]:
    """A page of records drawn from small pools, so ids, people and timestamps collide often."""
    out = []
    for _ in range(rnd.randint(1, 24)):
        out.append(
            MappedOpportunity(
                model=rnd.choice(("job", "job", "job", "membership")),
                external_id=f"J{rnd.randint(0, 5)}",
                external_contact_id=rnd.choice((None, "C0", "C1", "C2", "C3", "C4")),
                external_created_at=ts(1),
                external_updated_at=rnd.choice((None, ts(2), ts(3), ts(4), ts(5), ts(6))),
                email=rnd.choice((None, None, "a@x.com", "b@x.com", "c@x.com", "noemail@acme.com")),
                first_name=rnd.choice((None, "Ann", "Bob")),
                last_name=rnd.choice((None, "Lee", "Roe")),
                phone=rnd.choice((None, None, "+15550000001", "+15550000002", "+15550000003")),
                status=rnd.choice(("Scheduled", "Completed", None)),
                details={"v": rnd.randint(0, 3)},
                source_stamps={
                    part: rnd.choice((None, ts(2), ts(3), ts(4), ts(5)))
                    for part in rnd.sample(
                        ("root", "estimates:1", "estimates:2"), rnd.randint(0, 3)
                    )
                },
            )
        )
    return out


def _merge_in_parts(records: list[MappedOpportunity], cuts: list[int]) -> tuple[int, int]:
    tenant = make_tenant(f"t{uuid.uuid4().hex[:12]}")
    integ = make_integration(tenant)
    bounds = [0, *cuts, len(records)]
    for start, end in itertools.pairwise(bounds):
        part = copy.deepcopy(records[start:end])
        batch = MergeBatch(
            tenant_id=tenant,
            integration_id=integ,
            stream="jobs",
            opportunities=part,
            placeholder_emails=_PH,
            fetched=len(part),
        )
        with db.connect() as conn:
            merge_batch(conn, batch, None)
    return tenant, integ


def _canonical(tenant: int) -> dict[str, Any]:
    """The tenant's contacts, links and opportunities with contacts named by creation rank."""
    contacts = rows(
        "SELECT id, email, phone, first_name, last_name FROM contact WHERE tenant_id = %s "
        "ORDER BY id",
        tenant,
    )
    rank = {row[0]: i for i, row in enumerate(contacts)}
    links = rows(
        "SELECT external_contact_id, contact_id FROM contact_link WHERE tenant_id = %s", tenant
    )
    opps = rows(
        "SELECT model, match_key, external_id, external_contact_id, external_created_at, "
        "external_updated_at, email, first_name, last_name, phone, status, details, contact_id "
        "FROM opportunity WHERE tenant_id = %s ORDER BY model, match_key",
        tenant,
    )
    return {
        "contacts": [row[1:] for row in contacts],
        "links": sorted((ext, rank[cid]) for ext, cid in links),
        "opportunities": [(*row[:-1], rank[row[-1]]) for row in opps],
    }


def test_merge_result_does_not_depend_on_how_a_page_is_cut() -> None:
    for case in range(120):
        rnd = random.Random(case)
        records = _random_records(rnd)
        n = len(records)
        size = rnd.randint(1, max(1, n - 1))
        random_cuts = sorted(rnd.sample(range(1, n), rnd.randint(0, n - 1))) if n > 1 else []
        whole = _canonical(_merge_in_parts(records, [])[0])
        for label, cuts in (
            ("parts of one size", list(range(size, n, size))),
            ("parts of random sizes", random_cuts),
            ("one by one", list(range(1, n))),
        ):
            got = _canonical(_merge_in_parts(records, cuts)[0])
            assert got == whole, f"case {case}, {label} {cuts}: {records}"


def test_record_refused_as_older_data_creates_no_contact(st: tuple[int, int]) -> None:
    merge(*st, [opp("J1", contact="C1", phone="+15550001000", updated=ts(5))])
    counts = merge(*st, [opp("J1", contact="C2", phone="+15550002000", updated=ts(3))])
    assert (counts.unchanged, counts.contacts_created) == (1, 0)
    assert rows("SELECT phone FROM contact") == [("+15550001000",)]
    assert rows("SELECT external_contact_id FROM contact_link") == [("C1",)]


# -- the stale-write guard protects against older CRM data, not against a recomputation ----------


def _iso(day: int) -> str:
    return ts(day).isoformat()


def _job(modified: int = 2, status: str = "Scheduled") -> dict[str, Any]:
    return {
        "id": 7,
        "customerId": 70,
        "jobStatus": status,
        "createdOn": _iso(1),
        "modifiedOn": _iso(modified),
    }


def _child(ident: int, created: int, modified: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "jobId": 7,
        "active": True,
        "createdOn": _iso(created),
        "modifiedOn": _iso(modified),
        **fields,
    }


def _deleted(child: dict[str, Any], modified: int) -> dict[str, Any]:
    """A deletion as the export feeds carry it: the record, inactive, with a newer modifiedOn."""
    return {**child, "active": False, "modifiedOn": _iso(modified)}


def _job_opp(
    job: dict[str, Any] | None = None,
    appointments: list[dict[str, Any]] | None = None,
    estimates: list[dict[str, Any]] | None = None,
) -> MappedOpportunity:
    return map_job(job or _job(), None, [], appointments or [], estimates or [])


def _stored_job() -> tuple[Any, ...]:
    (row,) = rows("SELECT external_updated_at, status, details FROM opportunity")
    return row


@pytest.mark.parametrize(
    "deletion_passed", [True, False], ids=["deletion-passed", "deletion-left-out-by-caller"]
)
def test_deleting_the_newest_estimate_removes_it_and_lowers_external_updated_at(
    st: tuple[int, int], deletion_passed: bool
) -> None:
    older, newest = _child(1, created=2, modified=3), _child(2, created=4, modified=5)
    merge(*st, [_job_opp(estimates=[older, newest])])
    assert _stored_job()[0] == ts(5)
    remaining = [older, _deleted(newest, modified=6)] if deletion_passed else [older]
    counts = merge(*st, [_job_opp(estimates=remaining)])
    updated, _, details = _stored_job()
    assert counts.updated == 1
    assert updated == ts(3)
    assert details["estimates:1:id"] == 1 and "estimates:2:id" not in details


def test_a_stale_copy_from_before_a_deletion_never_brings_the_child_back(
    st: tuple[int, int],
) -> None:
    older, newest = _child(1, created=2, modified=3), _child(2, created=4, modified=5)
    merge(*st, [_job_opp(estimates=[older, newest])])
    merge(*st, [_job_opp(estimates=[older, _deleted(newest, modified=6)])])
    counts = merge(*st, [_job_opp(estimates=[older, newest])])
    assert counts.updated == 0
    assert "estimates:2:id" not in _stored_job()[2]


def test_edited_newest_estimate_reaches_a_job_whose_own_modified_on_did_not_change(
    st: tuple[int, int],
) -> None:
    estimate = _child(1, created=2, modified=3, summary="v1")
    merge(*st, [_job_opp(estimates=[estimate])])
    counts = merge(
        *st, [_job_opp(estimates=[{**estimate, "modifiedOn": _iso(6), "summary": "v2"}])]
    )
    updated, _, details = _stored_job()
    assert counts.updated == 1
    assert updated == ts(6) and details["estimates:1:summary"] == "v2"


def test_deselecting_a_job_resource_removes_it_from_the_opportunity(st: tuple[int, int]) -> None:
    appointment = _child(1, created=2, modified=9)
    estimate = _child(2, created=2, modified=4, summary="v1")
    merge(*st, [_job_opp(appointments=[appointment], estimates=[estimate])])
    assert _stored_job()[0] == ts(9)
    edited = {**estimate, "modifiedOn": _iso(5), "summary": "v2"}
    merge(*st, [_job_opp(estimates=[edited])])  # appointments no longer selected
    updated, _, details = _stored_job()
    assert updated == ts(5) and details["estimates:1:summary"] == "v2"
    assert not any(key.startswith("appointments:") for key in details)


def test_an_older_copy_of_a_job_never_overwrites_a_newer_one(st: tuple[int, int]) -> None:
    newer_estimate = _child(1, created=2, modified=6, summary="new")
    older_estimate = {**newer_estimate, "modifiedOn": _iso(4), "summary": "old"}
    merge(*st, [_job_opp(_job(5, "Completed"), estimates=[newer_estimate])])
    lower_everywhere = _job_opp(_job(3, "Scheduled"), estimates=[older_estimate])
    older_estimate_only = _job_opp(_job(5, "Completed"), estimates=[older_estimate])
    for stale in (lower_everywhere, older_estimate_only):
        counts = merge(*st, [stale])
        assert counts.updated == 0
        assert _stored_job()[:2] == (ts(6), "Completed")
        assert _stored_job()[2]["estimates:1:summary"] == "new"


def test_deleting_the_newest_appointment_of_a_sales_opportunity_removes_it(
    st: tuple[int, int],
) -> None:
    def sf(day: int) -> str:
        return f"2026-11-{day:02d}T12:00:00.000+0000"

    sales_opp = {"Id": "a0O1", "CreatedDate": sf(1), "LastModifiedDate": sf(2)}
    kept = {"Id": "a0A1", "CreatedDate": sf(2), "LastModifiedDate": sf(3), "IsDeleted": False}
    newest = {"Id": "a0A2", "CreatedDate": sf(4), "LastModifiedDate": sf(5), "IsDeleted": False}
    merge(*st, [map_sales_opportunity(sales_opp, None, None, [kept, newest])])
    deleted = {**newest, "IsDeleted": True, "SystemModstamp": sf(6)}
    merge(*st, [map_sales_opportunity(sales_opp, None, None, [kept, deleted])])
    updated, _, details = _stored_job()
    assert updated == ts(3)
    assert details["appointments:1:Id"] == "a0A1" and "appointments:2:Id" not in details


def test_rows_stored_before_source_stamps_keep_the_external_updated_at_guard(
    st: tuple[int, int],
) -> None:
    merge(*st, [opp("J1", status="Completed", updated=ts(5))])
    with db.connect() as conn:
        conn.execute("UPDATE opportunity SET source_stamps = NULL")
        conn.commit()
    assert merge(*st, [opp("J1", status="Scheduled", updated=ts(3))]).updated == 0
    assert merge(*st, [opp("J1", status="Canceled", updated=ts(6))]).updated == 1
    assert rows("SELECT status, source_stamps IS NOT NULL FROM opportunity") == [("Canceled", True)]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_a_deleted_estimate_leaves_its_job_on_the_next_sync() -> None:
    """Flow level: ServiceTitan emulator over HTTP → sync flow → PostgreSQL."""
    from flows.sync import sync_tenant
    from sandbox.servicetitan import TenantSpec, run_emulator

    spec = TenantSpec(
        tenant_id=301,
        client_id="cid.301",
        client_secret="cs1.301",
        app_key="ak1.merge",
        customers=4,
        jobs=6,
        memberships=0,
        seed=3,
    )
    with run_emulator([spec], port=0) as emu:
        make_integration(
            make_tenant("deletes"),
            credentials={
                "client_id": "cid.301",
                "client_secret": "cs1.301",
                "app_key": "ak1.merge",
                "tenant_id": "301",
            },
            settings={"opportunity_models": ["job"]},
            base_url=emu.url,
            auth_url=emu.url + "/connect/token",
        )
        asyncio.run(sync_tenant("deletes"))
        job_id = int(sorted(rows("SELECT external_id FROM opportunity"))[0][0])

        def composed() -> MappedOpportunity:
            """What the job maps to from the CRM's live records (the expected opportunity)."""
            (job,) = [j for j in emu.state.get_records(301, "jobs") if j["id"] == job_id]
            children = [
                [r for r in emu.state.get_records(301, resource) if r["jobId"] == job_id]
                for resource in ("appointments", "estimates")
            ]
            return map_job(job, None, [], *children)

        def stored() -> tuple[Any, ...]:
            (row,) = rows(
                "SELECT external_updated_at, details FROM opportunity WHERE external_id = %s",
                str(job_id),
            )
            return row

        emu.state.advance_clock(3600)
        estimate = emu.state.upsert_record(301, "estimates", {"jobId": job_id, "name": "Quote"})
        asyncio.run(sync_tenant("deletes"))
        assert stored()[1]["estimates:1:id"] == estimate["id"]
        before = stored()[0]

        emu.state.advance_clock(3600)
        emu.state.upsert_record(301, "estimates", {"id": estimate["id"], "active": False})
        asyncio.run(sync_tenant("deletes"))
        updated, details = stored()
        ids = [v for k, v in details.items() if k.startswith("estimates:") and k.endswith(":id")]
        assert estimate["id"] not in ids
        assert updated == composed().external_updated_at and updated < before


# -- placeholder emails as patterns -----------------------------------------------------------


@pytest.mark.parametrize("same_page", [True, False], ids=["same-page", "separate-pages"])
def test_placeholder_email_pattern_never_merges_two_people(
    st: tuple[int, int], same_page: bool
) -> None:
    patterns = frozenset({"noemail@*", "*@example.com"})
    people = [  # as mappings hand them over (trimmed, lower-cased), and raw
        opp("J1", contact="C1", email="noemail@acme.com", first="Ann"),
        opp("J2", contact="C2", email="noemail@acme.com", first="Bob"),
        opp("J3", contact="C3", email="NoEmail@Acme.com ", first="Cid"),
        opp("J4", contact="C4", email="office@example.com", first="Dee"),
        opp("J5", contact="C5", email="office@example.com", first="Eve"),
    ]
    for page in [people] if same_page else [[p] for p in people]:
        merge(*st, page, placeholders=patterns)
    assert rows("SELECT count(*), count(email) FROM contact") == [(5, 0)]
    assert rows("SELECT count(DISTINCT contact_id) FROM opportunity") == [(5,)]
