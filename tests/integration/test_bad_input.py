"""Malformed or hostile CRM records: each is rejected with a reason or stored safely, and the rest
of the page merges (ARCHITECTURE §2.6)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from crmsync import db, sync
from crmsync.providers.base import FetchedPage
from tests.factories import make_integration, make_tenant

pytestmark = pytest.mark.usefixtures("clean_db")

HOSTILE_TEXT = [
    "'; DROP TABLE opportunity; --",
    "Robert'); DELETE FROM contact WHERE ('1'='1",
    "a\x00b",  # NUL: PostgreSQL text and jsonb refuse it
    "\u202eevil\u202c",
    "Zoë 🦄 名前 \ud7ff",
    "x" * 200_000,
    "${ST_SECRET}",
]


def good_job(i: int) -> dict[str, Any]:
    return {
        "id": 1_000 + i,
        "customerId": 50,
        "locationId": 60,
        "jobStatus": "Scheduled",
        "createdOn": "2026-11-01T10:00:00Z",
        "modifiedOn": "2026-11-02T10:00:00Z",
    }


def hostile_jobs(rng: random.Random, n: int) -> list[Any]:
    out: list[Any] = []
    for i in range(n):
        job = good_job(10_000 + i)
        pick = i % 10
        if pick == 0:
            job["modifiedOn"] = rng.choice(["yesterday", 12345, None, "2026-13-45T99:00:00Z"])
        elif pick == 1:
            del job["id"]
        elif pick == 2:
            job["createdOn"] = ["not", "a", "date"]
        elif pick == 3:
            job["jobStatus"] = rng.choice(HOSTILE_TEXT)
        elif pick == 4:
            job["summary"] = rng.choice(HOSTILE_TEXT)
        elif pick == 5:
            job["customerId"] = {"nested": rng.choice(HOSTILE_TEXT)}
        elif pick == 6:
            job = rng.choice([None, "a string", 42, ["list"]])
        elif pick == 7:
            job["id"] = rng.choice(HOSTILE_TEXT)
        elif pick == 8:
            job[rng.choice(HOSTILE_TEXT)[:50]] = rng.choice(HOSTILE_TEXT)
        out.append(job)
    return out


def test_hostile_records_are_rejected_with_a_reason_or_stored_safely_and_the_rest_merge() -> None:
    tenant = make_tenant("acme")
    integ = make_integration(tenant, settings={"opportunity_models": ["job"]})
    rng = random.Random(7)
    good = [good_job(i) for i in range(200)]
    bad = hostile_jobs(rng, 10_000)
    records = good + bad
    rng.shuffle(records)
    page = FetchedPage(
        "jobs",
        [r for r in records if isinstance(r, dict) and r.get("id") is not None],
        "cursor-1",
        False,
        invalid=[
            (r, "jobs record without an id")
            for r in records
            if not (isinstance(r, dict) and r.get("id") is not None)
        ],
    )
    batch = sync.map_page(integ, page)
    counts = sync.merge(batch, None)
    with db.connect() as conn:
        opps = conn.execute("SELECT count(*) FROM opportunity").fetchone()[0]  # type: ignore[index]
        rejected = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE reason = '') FROM rejected_record"
        ).fetchone()
        (cursor,) = conn.execute("SELECT cursor FROM sync_cursor").fetchone()  # type: ignore[misc]
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('opportunity', 'contact')"
        ).fetchone()
    assert counts.fetched == len(records)
    # Every record is accounted for: merged (good or harmless oddities) or rejected with a reason.
    assert opps + rejected[0] >= len({str(r["id"]) for r in good}) + 1
    assert opps >= len(good), "the good records all merge"
    assert rejected[0] > 0 and rejected[1] == 0, "every rejection names its reason"
    assert cursor == "cursor-1", "the page (and its cursor) committed despite the bad records"
    assert tables == (2,)


def test_a_record_whose_timestamp_is_not_a_timestamp_is_rejected_naming_the_field() -> None:
    tenant = make_tenant("acme")
    integ = make_integration(tenant, settings={"opportunity_models": ["job"]})
    job = good_job(1) | {"modifiedOn": "yesterday"}
    batch = sync.map_page(integ, FetchedPage("jobs", [job, good_job(2)], "c", False))
    sync.merge(batch, None)
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT external_key, reason, payload->>'modifiedOn' FROM rejected_record"
        ).fetchall()
        merged = conn.execute("SELECT external_id FROM opportunity").fetchall()
    assert rows == [("1001", rows[0][1], "yesterday")] and "modifiedOn" in rows[0][1]
    assert merged == [("1002",)]
