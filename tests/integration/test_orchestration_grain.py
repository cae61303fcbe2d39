"""The grain of orchestration (issue 10): Prefect objects follow the work, not streams or tenants.

Counted from the Prefect API, not timed: a small tenant's run is one task run per DAG step
(authenticate, fetch-modified, map, merge-opportunity, and push-activity only when something is
due) and one subflow of its round; an idle push sweep starts nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from crmsync import db, push
from crmsync import sync as steps
from flows.push import push_pending
from flows.sync import sync_all_tenants, sync_tenant
from sandbox.servicetitan import TenantSpec, run_emulator
from tests.factories import make_integration, make_tenant

pytestmark = [pytest.mark.usefixtures("clean_db", "prefect_api"), pytest.mark.slow]
APP_KEY = "ak1.grain"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    specs = [
        TenantSpec(
            tenant_id=st,
            client_id=f"cid.{st}",
            client_secret=f"cs1.{st}",
            app_key=APP_KEY,
            customers=25,
            jobs=20,
            memberships=5,
            seed=st,
        )
        for st in (201, 202)
    ]
    with run_emulator(specs, port=0, export_page_size=15) as emu:
        yield emu


def add_tenant(emu: Any, slug: str, st_id: int) -> int:
    return make_integration(
        make_tenant(slug),
        credentials={
            "client_id": f"cid.{st_id}",
            "client_secret": f"cs1.{st_id}",
            "app_key": APP_KEY,
            "tenant_id": str(st_id),
        },
        settings={"opportunity_models": ["job"]},
        base_url=emu.url,
        auth_url=emu.url + "/connect/token",
    )


def q(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute(sql, params).fetchall()


def tenant_flow_runs(slug: str) -> list[str]:
    return [
        r[0]
        for r in q(
            "SELECT r.flow_run_id FROM sync_run r JOIN tenant t ON t.id = r.tenant_id "
            "WHERE t.slug = %s ORDER BY r.id",
            slug,
        )
    ]


async def _task_runs(flow_run_id: str) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        return await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
        )


async def _subflows(flow_run_id: str) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    async with get_client() as client:
        return await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[UUID(flow_run_id)])
            )
        )


def task_run_steps(flow_run_id: str, settle_s: float = 1.5) -> Counter[str]:
    """The flow run's task runs by step name, once the API has recorded them all (task runs
    reach the server as events, a moment after the flow returns)."""
    deadline = time.monotonic() + 30
    seen: list[Any] = []
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        runs = asyncio.run(_task_runs(flow_run_id))
        if len(runs) != len(seen):
            seen, stable_since = runs, time.monotonic()
        elif time.monotonic() - stable_since >= settle_s:
            break
        time.sleep(0.3)
    return Counter(_step(r.name) for r in seen)


STEPS = ("authenticate", "fetch-modified", "map", "merge-opportunity", "push-activity")


def _step(run_name: str) -> str:
    """``fetch-modified-g-one/st-main`` → ``fetch-modified``."""
    return next((s for s in STEPS if run_name.startswith(s + "-")), run_name)


def newest_job(emu: Any, st_id: int) -> int:
    """A job inside the 90-day window, so that changing it reaches the next sync."""
    jobs = emu.state.get_records(st_id, "jobs")
    return int(max(jobs, key=lambda j: str(j["modifiedOn"]))["id"])


def test_a_small_tenant_costs_one_task_run_per_dag_step_and_one_subflow(emulator: Any) -> None:
    add_tenant(emulator, "g-one", 201)
    add_tenant(emulator, "g-two", 202)
    state = asyncio.run(
        sync_all_tenants(  # type: ignore[call-overload]
            tenants=["g-one", "g-two"], round_id="grain-1", return_state=True
        )
    )
    assert state.is_completed(), state.message
    round_run = str(state.state_details.flow_run_id)
    subflows = asyncio.run(_subflows(round_run))
    assert sorted(f.name for f in subflows) == ["sync-tenant-g-one", "sync-tenant-g-two"]

    pull = Counter({"authenticate": 1, "fetch-modified": 1, "map": 1, "merge-opportunity": 1})
    for slug in ("g-one", "g-two"):
        (run,) = tenant_flow_runs(slug)
        counted = task_run_steps(run)
        assert counted == pull, f"{slug}: {counted}"
    assert q("SELECT count(*) FROM sync_cursor") == [(10,)], "5 streams, 2 tenants"

    # An activity makes the next run of that tenant push: one more task run, and only there.
    (contact_id,) = q(
        "SELECT min(c.id) FROM contact c JOIN tenant t ON t.id = c.tenant_id WHERE t.slug = 'g-one'"
    )[0]
    (tenant_id,) = q("SELECT id FROM tenant WHERE slug = 'g-one'")[0]
    push.record_activity(
        push.ActivityIn(
            tenant_id=tenant_id,
            contact_id=contact_id,
            kind="outbound_manual_message",
            channel="sms",
            body="see you at 9",
        )
    )
    for st in (201, 202):  # one changed job each: the next runs have a chunk to map and merge
        emulator.state.upsert_record(st, "jobs", {"id": newest_job(emulator, st), "summary": "x"})
    asyncio.run(sync_tenant("g-one"))
    asyncio.run(sync_tenant("g-two"))
    assert task_run_steps(tenant_flow_runs("g-one")[-1]) == pull + Counter({"push-activity": 1})
    assert task_run_steps(tenant_flow_runs("g-two")[-1]) == pull
    assert sum(pull.values()) + 1 <= 6, "issue 10: at most 6 task runs for a small tenant"


def test_a_tenant_with_nothing_new_costs_only_authenticate_and_fetch(emulator: Any) -> None:
    add_tenant(emulator, "idle", 201)
    asyncio.run(sync_tenant("idle"))
    with db.connect() as conn:
        before = conn.execute(
            "SELECT stream, cursor, last_success_at FROM sync_cursor ORDER BY stream"
        ).fetchall()
    asyncio.run(sync_tenant("idle"))
    assert task_run_steps(tenant_flow_runs("idle")[-1]) == Counter(
        {"authenticate": 1, "fetch-modified": 1}
    )
    with db.connect() as conn:
        after = conn.execute(
            "SELECT stream, cursor, last_success_at FROM sync_cursor ORDER BY stream"
        ).fetchall()
    assert [r[:2] for r in after] == [r[:2] for r in before], "no cursor moved"
    assert all(a[2] > b[2] for a, b in zip(after, before, strict=True)), "but each stream ran"


def test_an_idle_push_sweep_starts_no_subflow_and_no_task_run(emulator: Any) -> None:
    add_tenant(emulator, "p-one", 201)
    add_tenant(emulator, "p-two", 202)
    asyncio.run(sync_tenant("p-one"))
    asyncio.run(sync_tenant("p-two"))

    idle = asyncio.run(push_pending(return_state=True))  # type: ignore[call-overload]
    assert idle.is_completed()
    assert idle.message == "nothing due: no tenant has pushes to plan or deliver"
    idle_run = str(idle.state_details.flow_run_id)
    assert asyncio.run(_subflows(idle_run)) == []
    assert task_run_steps(idle_run) == Counter()

    (contact_id, tenant_id) = q(
        "SELECT min(c.id), t.id FROM contact c JOIN tenant t ON t.id = c.tenant_id "
        "WHERE t.slug = 'p-two' GROUP BY t.id"
    )[0]
    push.record_activity(
        push.ActivityIn(
            tenant_id=tenant_id,
            contact_id=contact_id,
            kind="campaign_event",
            campaign_event="launched",
            campaign_name="Spring tune-up",
        )
    )
    assert push.due_tenants() == [(tenant_id, "p-two")]
    busy = asyncio.run(push_pending(return_state=True))  # type: ignore[call-overload]
    busy_run = str(busy.state_details.flow_run_id)
    assert asyncio.run(_subflows(busy_run)) == []
    assert task_run_steps(busy_run) == Counter({"push-activity": 1})
    assert push.due_tenants() == [], "planned and settled: the next sweep is idle again"


def snapshot(slug: str) -> list[tuple[Any, ...]]:
    return q(
        "SELECT o.external_id, o.external_updated_at, o.email, o.phone, o.first_name, "
        "o.last_name, o.status, o.details FROM opportunity o JOIN tenant t ON t.id = o.tenant_id "
        "WHERE t.slug = %s ORDER BY o.external_id",
        slug,
    )


def cursors(slug: str) -> list[tuple[Any, ...]]:
    return q(
        "SELECT c.stream, c.cursor FROM sync_cursor c JOIN tenant t ON t.id = c.tenant_id "
        "WHERE t.slug = %s ORDER BY c.stream",
        slug,
    )


def test_a_chunk_that_fails_after_its_first_streams_part_moves_no_cursor_and_the_rerun_equals_an_undisturbed_run(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_tenant(emulator, "c-whole", 201)
    add_tenant(emulator, "c-broken", 201)
    asyncio.run(sync_tenant("c-whole"))

    real_merge = steps.merge
    merged_streams: list[str] = []

    def failing_merge(batch: Any, run_id: int | None) -> Any:
        if batch.stream == "appointments":  # the chunk's customers and contacts merged already
            raise RuntimeError("merge fails inside the chunk")
        merged_streams.append(batch.stream)
        return real_merge(batch, run_id)

    monkeypatch.setattr(steps, "merge", failing_merge)
    with pytest.raises(Exception, match="merge fails inside the chunk"):
        asyncio.run(sync_tenant("c-broken"))
    assert {"customers", "customer_contacts"} <= set(merged_streams)
    assert cursors("c-broken") == [], "no stream of a failed chunk moves its cursor"

    monkeypatch.setattr(steps, "merge", real_merge)
    asyncio.run(sync_tenant("c-broken"))
    assert snapshot("c-broken") == snapshot("c-whole")
    assert [c[0] for c in cursors("c-broken")] == [c[0] for c in cursors("c-whole")]
