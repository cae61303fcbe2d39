"""Benchmark: a tenant with 100,000 CRM activities through the inbound-activity merge (issue 15).

    .venv/bin/python bench/bench_activities.py --activities 100000

Measures :mod:`crmsync.activities` inside :func:`crmsync.merge.merge_batch`, against a fresh hub
database, in batches of ``--batch`` (a chunk's merge batch), in one run so the figures compare:

* ``opportunities only``: the tenant's opportunities (one per five activities), with no activity:
  what the merge cost before issue 15, plus the (empty) waiting-activity link step;
* ``first read, parents in hub``: every activity new, linked at once;
* ``re-read unchanged``: the same activities again (LeadPerfection re-reads its window every
  round): nothing may be written;
* ``edits``: every tenth activity edited;
* ``echo check``: a batch where a tenth of the activities carry a push key of the tenant's ledger;
* ``parent first``: activities of a second integration read before their opportunities, then
  the opportunities merged, linking them (the link step's cost is in that phase).

Each line: seconds, activities (or opportunities) per second, activities written, and peak RSS
of the process so far. The CRM's HTTP and mapping are not in these figures: each CRM's own
benchmark (``bench_<crm>.py``) measures the pull end to end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.harness import admin_url, fresh_database, peak_rss_mib, print_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--activities", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=5_000)
    args = ap.parse_args()
    with fresh_database(admin_url(), "crmsync_actbench") as url:
        os.environ["DATABASE_URL"] = url
        try:
            print_table(_run(args.activities, args.batch))
        finally:
            from crmsync import db

            db.close_pools()


def _run(n: int, size: int) -> list[dict[str, Any]]:
    from crmsync import crypto, db
    from crmsync.merge import MergeBatch, MergeCounts, merge_batch
    from models.standard import InboundActivity, MappedOpportunity

    db.upgrade()
    base = datetime(2026, 11, 1, tzinfo=UTC)
    with db.connect() as conn:
        (tenant,) = conn.execute(
            "INSERT INTO tenant (slug, name) VALUES ('bench', 'Bench') RETURNING id"
        ).fetchone() or (0,)
        integrations = [
            conn.execute(
                "INSERT INTO integration (tenant_id, name, provider, credentials, settings) "
                "VALUES (%s, %s, 'servicetitan', %s, '{}') RETURNING id",
                (tenant, name, crypto.encrypt_json({})),
            ).fetchone()[0]  # type: ignore[index]
            for name in ("st-main", "st-second")
        ]
        conn.commit()

    jobs = max(1, n // 5)

    def opportunities() -> list[MappedOpportunity]:
        return [
            MappedOpportunity(
                model="job",
                external_id=str(j),
                external_contact_id=f"c{j}",
                external_created_at=base,
                external_updated_at=base,
                email=None,
                first_name="Ann",
                last_name=f"Lee{j}",
                phone=f"+1555{j:07d}",
                status="Scheduled",
                details={"id": j},
            )
            for j in range(jobs)
        ]

    def activities(edit: int = 0, keys: list[str] | None = None) -> list[InboundActivity]:
        out = []
        for i in range(n):
            job = i % jobs
            text = f"CSR note {i}: called back about the estimate"
            modified = base + timedelta(hours=1)
            if edit and i % edit == 0:
                text += " (edited)"
                modified += timedelta(hours=1)
            if keys and i % 10 == 0:
                text += f"\n[ref {keys[i // 10 % len(keys)]}]"
            out.append(
                InboundActivity(
                    kind="note",
                    external_id=str(i),
                    parent=f"jobs:{job}",
                    contact_ref=f"c{job}",
                    opportunity_ref=("job", str(job)),
                    created_at=base,
                    modified_at=modified,
                    author="Dana",
                    body=text,
                    payload={"id": i, "jobId": job, "text": text},
                )
            )
        return out

    def merge(integration: int, opps: list[Any], acts: list[Any], label: str) -> dict[str, Any]:
        total = MergeCounts()
        started = time.perf_counter()
        for start in range(0, max(len(opps), len(acts)), size):
            batch = MergeBatch(
                tenant_id=tenant,
                integration_id=integration,
                stream="notes",
                opportunities=opps[start : start + size],
                activities=acts[start : start + size],
            )
            with db.connect() as conn:
                total.add(merge_batch(conn, batch, None))
        seconds = time.perf_counter() - started
        count = len(acts) or len(opps)
        return {
            "phase": label,
            "records": count,
            "seconds": round(seconds, 2),
            "per_second": round(count / seconds),
            "activities written": total.activities,
            "waiting": total.activities_waiting,
            "echoes": total.echoes,
            "peak_rss_mib": peak_rss_mib(),
        }

    main_integ, second = integrations
    results = [merge(main_integ, opportunities(), [], "opportunities only")]
    results.append(merge(main_integ, [], activities(), "first read, parents in hub"))
    results.append(merge(main_integ, [], activities(), "re-read unchanged"))
    results.append(merge(main_integ, [], activities(edit=10), "edits (1 in 10)"))
    keys = _ledger_keys(tenant, main_integ, 100)
    results.append(merge(main_integ, [], activities(edit=10, keys=keys), "echo check (1 in 10)"))
    results.append(merge(second, [], activities(), "parent first: read before parents"))
    results.append(merge(second, opportunities(), [], "parent first: parents arrive, link"))
    with db.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE contact_id IS NULL), count(*) FROM crm_activity"
        ).fetchone()
    print(f"crm_activity rows: {row[1] if row else 0}, unlinked: {row[0] if row else 0}")
    return results


def _ledger_keys(tenant: int, integration: int, count: int) -> list[str]:
    """``count`` delivered push ledger rows, as crmsync.push leaves them; their keys."""
    from crmsync import db
    from crmsync.push import idempotency_key

    keys = []
    with db.connect() as conn:
        (contact,) = conn.execute("SELECT min(id) FROM contact").fetchone() or (0,)
        for _ in range(count):
            (aid,) = conn.execute(
                "INSERT INTO activity (tenant_id, contact_id, kind, channel, body, occurred_at) "
                "VALUES (%s, %s, 'outbound_manual_message', 'sms', 'hi', now()) RETURNING id",
                (tenant, contact),
            ).fetchone() or (0,)
            key = idempotency_key(aid, integration, "job_note")
            conn.execute(
                "INSERT INTO push_ledger (tenant_id, activity_id, integration_id, target, "
                "idempotency_key, status) VALUES (%s, %s, %s, 'job_note', %s, 'delivered')",
                (tenant, aid, integration, key),
            )
            keys.append(key)
        conn.commit()
    return keys


if __name__ == "__main__":
    main()
