"""Seed 002: 60 requests/second per ServiceTitan app, shared by every tenant and worker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.servicetitan import TenantSpec, run_emulator
from tests.factories import make_integration, make_tenant

pytestmark = [pytest.mark.usefixtures("clean_db", "prefect_api"), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
APP_KEY = "ak1.shared-app"
LIMIT = (
    10  # requests/second of the emulated app (ServiceTitan's is 60; smaller keeps the test short)
)


@pytest.fixture
def emulator() -> Iterator[Any]:
    specs = [
        TenantSpec(
            tenant_id=t,
            client_id=f"cid.{t}",
            client_secret=f"cs1.{t}",
            app_key=APP_KEY,
            customers=8,
            jobs=10,
            memberships=0,
            seed=t,
        )
        for t in (301, 302)
    ]
    with run_emulator(specs, port=0, export_page_size=3, rate_limit_per_second=LIMIT) as emu:
        yield emu


def test_tenants_of_one_app_on_two_workers_stay_within_the_app_rate_limit(emulator: Any) -> None:
    from prefect.settings import PREFECT_API_URL

    for slug, st_id in (("north", 301), ("south", 302)):
        make_integration(
            make_tenant(slug),
            credentials={
                "client_id": f"cid.{st_id}",
                "client_secret": f"cs1.{st_id}",
                "app_key": APP_KEY,
                "tenant_id": str(st_id),
            },
            settings={"opportunity_models": ["job"]},
            base_url=emulator.url,
            auth_url=emulator.url + "/connect/token",
        )
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "CRMSYNC_RATE_BUDGET": "prefect",
        "CRMSYNC_SERVICETITAN_REQUESTS_PER_SECOND": str(LIMIT),
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "ops", "sync", "--tenant", slug],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for slug in ("north", "south")
    ]
    outputs = [w.communicate(timeout=240)[0].decode() for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    stats = emulator.state.stats()[APP_KEY]
    assert stats["total_requests"] > 3 * LIMIT, "the test must need several seconds of budget"
    assert stats["responses_429"] == 0
    assert stats["peak_requests_per_second"] <= LIMIT
