"""Seed 002's object selector over real HTTP (issue 14 item 1): a Job and a Membership synced
from the emulator with every optional resource selected carry each resource's details; reference
data changes re-compose the opportunities that show it; a missing scope names the resource."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest

from crmsync import db, tenants
from flows.sync import sync_tenant
from models.integrations.servicetitan import JobResource, MembershipResource
from sandbox.servicetitan import TenantSpec, run_emulator
from tests.factories import make_integration, make_tenant

pytestmark = [pytest.mark.usefixtures("clean_db", "prefect_api"), pytest.mark.slow]
APP_KEY = "ak1.selector"
ST_ID = 301
ALL_JOB: list[JobResource] = list(get_args(JobResource))
ALL_MEMBERSHIP: list[MembershipResource] = list(get_args(MembershipResource))


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    spec = TenantSpec(
        tenant_id=ST_ID,
        client_id=f"cid.{ST_ID}",
        client_secret=f"cs1.{ST_ID}",
        app_key=APP_KEY,
        customers=40,
        jobs=120,
        memberships=40,
        seed=3,
    )
    with run_emulator([spec], port=0, export_page_size=50) as emu:
        yield emu


@pytest.fixture
def full_selector(emulator: Any) -> str:
    emulator.state.reset()
    tenant = make_tenant("selector")
    make_integration(
        tenant,
        credentials={
            "client_id": f"cid.{ST_ID}",
            "client_secret": f"cs1.{ST_ID}",
            "app_key": APP_KEY,
            "tenant_id": str(ST_ID),
        },
        settings={
            "opportunity_models": ["job", "membership"],
            "job_resources": ALL_JOB,
            "membership_resources": ALL_MEMBERSHIP,
        },
        base_url=emulator.url,
        auth_url=emulator.url + "/connect/token",
    )
    return "selector"


def _details(model: str) -> dict[str, dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT external_id, details FROM opportunity WHERE model = %s", (model,)
        ).fetchall()
    return {ext: details for ext, details in rows}


def _carrying(details: dict[str, dict[str, Any]], key: str) -> list[str]:
    return [ext for ext, d in details.items() if d.get(key) is not None]


def test_a_full_selector_sync_carries_every_resources_details_on_jobs_and_memberships(
    emulator: Any, full_selector: str
) -> None:
    asyncio.run(sync_tenant(full_selector))
    jobs, memberships = _details("job"), _details("membership")
    assert jobs and memberships
    for key in (
        "appointments:1:id",
        "appointments:1:assignments:1:technicianName",
        "estimates:1:id",
        "cancelReasons:1:name",
        "tagTypes:1:name",
        "customer:tagTypes:1:name",
        "campaign:name",
        "location:name",
        "zone:name",
        "soldByEmployee:name",
        "invoices:1:total",
        "invoices:1:items:1:skuName",
        "businessUnit:name",
        "jobType:name",
    ):
        assert _carrying(jobs, key), f"no job carries {key}"
    assert any(
        k.startswith("estimates:") and (":soldByEmployee:" in k or ":soldByTechnician:" in k)
        for d in jobs.values()
        for k in d
    )
    for key in (
        "membershipType:name",
        "recurringServices:1:name",
        "recurringServiceEvents:1:status",
        "businessUnit:name",
        "zone:name",
        "soldByTechnician:name",
    ):
        assert _carrying(memberships, key), f"no membership carries {key}"

    state = emulator.state
    invoices = {r["id"]: r for r in state.get_records(ST_ID, "invoices")}
    campaigns = {r["id"]: r["name"] for r in state.get_records(ST_ID, "campaigns")}
    reasons = {r["id"]: r["name"] for r in state.get_records(ST_ID, "cancel_reasons")}
    logs = {r["jobId"]: r for r in state.get_records(ST_ID, "job_canceled_logs")}
    for job in state.get_records(ST_ID, "jobs"):
        details = jobs.get(str(job["id"]))
        if details is None:
            continue
        assert details["campaign:name"] == campaigns[job["campaignId"]]
        if invoices[job["invoiceId"]]["active"]:
            assert details["invoices:1:id"] == job["invoiceId"]
        if job["id"] in logs:
            assert details["cancelReasons:1:name"] == reasons[logs[job["id"]]["reasonId"]]
        assert (
            any(k.startswith("invoices:") for k in details)
            or not invoices[job["invoiceId"]]["active"]
        )
    types = {r["id"]: r["name"] for r in state.get_records(ST_ID, "membership_types")}
    for membership in state.get_records(ST_ID, "memberships"):
        details = memberships.get(str(membership["id"]))
        if details is not None:
            assert details["membershipType:name"] == types[membership["membershipTypeId"]]


def test_a_renamed_tag_type_re_composes_the_jobs_that_carry_it_on_the_next_sync(
    emulator: Any, full_selector: str
) -> None:
    asyncio.run(sync_tenant(full_selector))
    tagged = {
        str(j["id"])
        for j in emulator.state.get_records(ST_ID, "jobs")
        if 5_502 in (j["tagTypeIds"] or [])
    }
    jobs = _details("job")
    tagged &= set(jobs)
    assert tagged, "the tenant has jobs tagged VIP"
    emulator.state.upsert_record(ST_ID, "tag_types", {"id": 5_502, "name": "VIP customer"})
    asyncio.run(sync_tenant(full_selector))
    after = _details("job")
    for ext in tagged:
        names = {
            v for k, v in after[ext].items() if k.startswith("tagTypes:") and k.endswith(":name")
        }
        assert "VIP customer" in names and "VIP" not in names, ext


def test_a_removed_invoices_scope_names_accounting_invoices_and_the_rest_syncs(
    emulator: Any, full_selector: str
) -> None:
    emulator.state.arm_fault("status", route="*/export/invoices", status=403, times=None)
    try:
        state = asyncio.run(sync_tenant(full_selector, return_state=True))  # type: ignore[call-overload]
    finally:
        emulator.state.clear_faults()
    assert state.is_failed()
    with db.connect() as conn:
        ((errors,),) = conn.execute("SELECT errors FROM sync_run ORDER BY id DESC LIMIT 1")
    assert set(errors) == {"st-main:invoices"}
    assert "'Accounting: Invoices'" in errors["st-main:invoices"]
    assert _details("membership"), "the other resources keep syncing"


def test_assignments_without_appointments_are_refused_naming_the_rule_file_line_and_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(
        """\
tenants:
  - slug: acme
    name: Acme
    integrations:
      - name: st-main
        provider: servicetitan
        credentials: {client_id: cid.a, client_secret: cs1.a, app_key: ak1.a, tenant_id: "1"}
        settings:
          opportunity_models: [job]
          job_resources: [estimates, appointment_assignments]
"""
    )
    with pytest.raises(tenants.ConfigError) as info:
        tenants.load(path)
    message = str(info.value)
    assert "tenants.yaml:10:" in message
    assert "settings.job_resources" in message
    assert "can only be selected together with appointments" in message
    assert "Can only be enabled if Appointments is selected" in message
