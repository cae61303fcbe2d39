"""improveit360 (i360 Lightning) emulator: a Salesforce org speaking the REST wire format.

crmsync's i360 connector talks to Salesforce; this package stands in for it in tests, demos and
benchmarks, faithful to crm-apis.md §3 and the emulator contract in §5.3: OAuth token grants
without ``expires_in``, idle session expiry, SOQL queries paged through ``nextRecordsUrl``,
Note/Task creation with Salesforce's validation errors, the daily request limit
(``Sforce-Limit-Info``, ``403 REQUEST_LIMIT_EXCEEDED``), fault injection and a controllable clock.

The i360 Lightning object names are our assumption (see :mod:`sandbox.salesforce.schema`).

    spec = OrgSpec(org_id="00D000000000001AAA", client_id="3MVG9.demo", client_secret="sfsecret",
                   username="api@acme.example", password="pw", security_token="tok",
                   refresh_token="5Aep861.demo", opportunities=50, seed=1, daily_limit=15000)
    with run_emulator([spec], port=0, batch_size=2000) as emu:
        emu.url     # POST {url}/services/oauth2/token; also the instance_url
        emu.state   # SalesforceEmulatorState: upsert, arm_fault, advance_clock, requests, ...
"""

from sandbox.salesforce.app import create_app
from sandbox.salesforce.schema import DEFAULT_NAMESPACE, Schema, build_schema
from sandbox.salesforce.server import RunningEmulator, run_emulator
from sandbox.salesforce.state import FAULT_KINDS, OrgSpec, SalesforceEmulatorState, SfApiError

__all__ = [
    "DEFAULT_NAMESPACE",
    "FAULT_KINDS",
    "OrgSpec",
    "RunningEmulator",
    "SalesforceEmulatorState",
    "Schema",
    "SfApiError",
    "build_schema",
    "create_app",
    "run_emulator",
]
