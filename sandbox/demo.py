"""The demo's CRMs: the three sandbox emulators on loopback (ServiceTitan, LeadPerfection,
improveit360), seeded for the tenants of ``demo-tenants.yaml``.

``crmsync demo`` (``ops/demo.py``) starts them with :func:`demo_crms`, applies the tenants file
and syncs twice; between the syncs :meth:`DemoCRMs.change_some_records` edits a few records, so
the second sync shows the incremental path. The credentials reach the tenants file through the
``DEMO_*`` environment variables it names; they are fixed demo values (loopback emulators guard
nothing), so applying the file again to the same hub changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sandbox.leadperfection import LPClientSpec
from sandbox.leadperfection import run_emulator as run_lp
from sandbox.salesforce import OrgSpec
from sandbox.salesforce import run_emulator as run_sf
from sandbox.servicetitan import EmulatorState, TenantSpec, run_emulator

DEMO_FILE = Path(__file__).with_name("demo-tenants.yaml")
ST_TENANTS = {"acme": 1001, "bolt": 1002, "cool": 1003}


def _demo_value(name: str, length: int = 16) -> str:
    """A fixed, credential-shaped demo value (hex), the same on every run."""
    return hashlib.sha256(f"crmsync demo {name}".encode()).hexdigest()[:length]


@dataclass(frozen=True)
class DemoCRMs:
    """The running emulators: their base URLs, and the ServiceTitan one's state to edit."""

    st_url: str
    lp_url: str
    sf_url: str
    st_state: EmulatorState

    def change_some_records(self) -> int:
        """Move a few jobs forward, as a dispatcher would during the day; how many changed."""
        changed = 0
        for st_id in ST_TENANTS.values():
            for job in self.st_state.get_records(st_id, "jobs")[:3]:
                self.st_state.upsert_record(
                    st_id, "jobs", {"id": job["id"], "jobStatus": "Completed"}
                )
                changed += 1
        return changed


@contextmanager
def demo_crms(port: int, jobs: int) -> Iterator[DemoCRMs]:
    """ServiceTitan on ``port``, LeadPerfection on ``port + 1``, improveit360 on ``port + 2``,
    each with ``jobs`` records per demo tenant; ``DEMO_*`` set for ``demo-tenants.yaml``."""
    app_key = "ak1.demo-" + _demo_value("st app key", 8)
    specs = []
    for i, (short, st_id) in enumerate(ST_TENANTS.items()):
        secret = "cs1." + _demo_value(f"st secret {short}")
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
    lp_password = _demo_value("lp password")
    lp_appkey = str(uuid.UUID(_demo_value("lp app key", 32)))
    sf_secret, sf_refresh = _demo_value("sf secret"), "5Aep861." + _demo_value("sf refresh")
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
    with (
        run_emulator(specs, port=port) as st,
        run_lp([lp_spec], port=port + 1) as lp,
        run_sf([sf_spec], port=port + 2) as sf,
    ):
        os.environ.update(DEMO_ST_URL=st.url, DEMO_LP_URL=lp.url, DEMO_SF_URL=sf.url)
        yield DemoCRMs(st_url=st.url, lp_url=lp.url, sf_url=sf.url, st_state=st.state)
