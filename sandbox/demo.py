"""``make demo``: the sandbox CRMs on loopback (ServiceTitan, LeadPerfection, improveit360),
four demo tenants, two full syncs through Prefect.

The first sync loads everything; the second, after a few records change in the emulator, shows
the incremental path (only the changes are fetched and merged).
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console

DEMO_FILE = Path(__file__).with_name("demo-tenants.yaml")
ST_TENANTS = {"acme": 1001, "bolt": 1002, "cool": 1003}


def run_demo(port: int, jobs: int, console: Console) -> bool:
    from crmsync import db, tenants
    from crmsync.cli import print_status, run_async
    from flows.sync import sync_all_tenants
    from sandbox.leadperfection import LPClientSpec
    from sandbox.leadperfection import run_emulator as run_lp
    from sandbox.salesforce import OrgSpec
    from sandbox.salesforce import run_emulator as run_sf
    from sandbox.servicetitan import TenantSpec, run_emulator

    app_key = "ak1.demo-" + secrets.token_hex(4)
    specs = []
    for i, (short, st_id) in enumerate(ST_TENANTS.items()):
        secret = "cs1." + secrets.token_hex(8)
        os.environ[f"DEMO_{short.upper()}_SECRET"] = secret
        specs.append(
            TenantSpec(
                tenant_id=st_id,
                client_id=f"cid.{short}",
                client_secret=secret,
                app_key=app_key,
                customers=max(10, jobs // 2),
                jobs=jobs,
                memberships=max(5, jobs // 4),
                seed=i + 1,
            )
        )
    os.environ["DEMO_ST_APP_KEY"] = app_key
    lp_password, lp_appkey = secrets.token_hex(8), str(uuid.uuid4())
    sf_secret, sf_refresh = secrets.token_hex(8), "5Aep861." + secrets.token_hex(8)
    os.environ.update(
        DEMO_LP_PASSWORD=lp_password,
        DEMO_LP_APPKEY=lp_appkey,
        DEMO_SF_SECRET=sf_secret,
        DEMO_SF_REFRESH=sf_refresh,
    )
    lp_spec = LPClientSpec("wq55a", "api.demo", lp_password, lp_appkey, prospects=jobs, seed=5)
    sf_spec = OrgSpec(
        org_id="00D000000000001AAA",
        client_id="3MVG9.demo",
        client_secret=sf_secret,
        username="api@dunn.example",
        password="pw",
        refresh_token=sf_refresh,
        opportunities=jobs,
        seed=6,
    )
    console.rule("crmsync demo")
    t0 = time.perf_counter()
    db.upgrade()
    where = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded PostgreSQL"
    console.print(f"hub database ready ({where})")
    with (
        run_emulator(specs, port=port) as emu,
        run_lp([lp_spec], port=port + 1) as lp,
        run_sf([sf_spec], port=port + 2) as sf,
    ):
        os.environ.update(DEMO_ST_URL=emu.url, DEMO_LP_URL=lp.url, DEMO_SF_URL=sf.url)
        console.print(
            f"ServiceTitan emulator on {emu.url} with tenants {list(ST_TENANTS.values())}"
        )
        console.print(f"LeadPerfection emulator on {lp.url}, improveit360 (Salesforce) on {sf.url}")
        result = tenants.apply(tenants.load(DEMO_FILE))
        console.print(f"tenants applied from {DEMO_FILE.name}: {result}")

        console.rule("first sync (last 90 days)")
        state: Any = run_async(sync_all_tenants(return_state=True))
        console.print(f"sync-all-tenants: {state.name} — {state.message}")
        print_status()

        changed = _change_some_records(emu.state)
        console.rule(f"second sync after {changed} changes in the CRM")
        state = run_async(sync_all_tenants(return_state=True))
        console.print(f"sync-all-tenants: {state.name} — {state.message}")
        print_status()
    console.print(f"demo finished in {time.perf_counter() - t0:.1f} s")
    return bool(state.is_completed())


def _change_some_records(state: Any) -> int:
    """Move a few jobs forward and rename a customer, as a dispatcher would during the day."""
    changed = 0
    for st_id in ST_TENANTS.values():
        jobs = state.get_records(st_id, "jobs")[:3]
        for job in jobs:
            state.upsert_record(st_id, "jobs", {"id": job["id"], "jobStatus": "Completed"})
            changed += 1
    return changed
