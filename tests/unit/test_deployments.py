"""prefect.yaml: loads, every entrypoint is a flow, the pull runs every 15 minutes."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

from prefect import Flow
from prefect._vendor.croniter import croniter
from prefect.client.schemas.schedules import CronSchedule

from deployments.serve import load_spec, resolve_entrypoint


def test_prefect_yaml_loads_and_every_entrypoint_resolves_to_a_flow() -> None:
    spec = load_spec()
    names = {d["name"] for d in spec["deployments"]}
    assert {"sync-all-tenants", "sync-tenant"} <= names
    for d in spec["deployments"]:
        assert isinstance(resolve_entrypoint(d["entrypoint"]), Flow), d["entrypoint"]
        assert d.get("description"), f"{d['name']} needs a description for the UI"
        assert d.get("tags"), f"{d['name']} needs tags"


def test_sync_all_tenants_is_scheduled_every_15_minutes() -> None:
    (dep,) = [d for d in load_spec()["deployments"] if d["name"] == "sync-all-tenants"]
    (sched,) = dep["schedules"]
    cron = CronSchedule(cron=sched["cron"], timezone=sched["timezone"])
    start = datetime(2026, 11, 23, 10, 7, tzinfo=UTC)
    it = croniter(cron.cron, start)
    times = [it.get_next(datetime) for _ in range(5)]
    assert [(b - a).total_seconds() for a, b in pairwise(times)] == [900.0] * 4
    assert dep["concurrency_limit"]["limit"] == 1, "two rounds must never overlap"


def test_default_parameters_validate_against_the_flow_signature() -> None:
    for d in load_spec()["deployments"]:
        flow = resolve_entrypoint(d["entrypoint"])
        schema = flow.parameters.model_dump()
        unknown = set(d.get("parameters") or {}) - set(schema["properties"])
        assert not unknown, f"{d['name']}: unknown parameters {unknown}"


def test_flow_parameters_carry_descriptions_for_the_ui_form() -> None:
    for d in load_spec()["deployments"]:
        props = resolve_entrypoint(d["entrypoint"]).parameters.model_dump()["properties"]
        for name, prop in props.items():
            assert prop.get("description"), f"{d['name']}.{name} has no description"
