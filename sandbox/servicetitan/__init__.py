"""ServiceTitan API emulator (sandbox) for crmsync's tests, demo and benchmarks.

Follows the vendor wire format (shared/reference/crm-apis.md §1 and §5.1; vendor OpenAPI documents
in tests/fixtures/servicetitan-openapi/), not the product's convenience: the product is also checked
against independent emulators written from the vendor docs.

    from sandbox.servicetitan import TenantSpec, EmulatorState, create_app, run_emulator

    spec = TenantSpec(tenant_id=1234, client_id="cid.acme", client_secret="cs1.acme",
                      app_key="ak1.demo", customers=40, jobs=60, memberships=20, seed=1)
    with run_emulator([spec], port=0) as emu:
        emu.url     # base URL of the API and of POST /connect/token
        emu.state   # EmulatorState: upsert_record, arm_fault, advance_clock, stats, get_notes, ...

From a shell: `python -m sandbox.servicetitan --help`. Not imported by production code.
"""

from sandbox.kit import Fault

from .app import create_app
from .data import TenantSpec, generate_tenant
from .server import RunningEmulator, run_emulator, start_emulator
from .state import EmulatorState, Note, RequestRecord

__all__ = [
    "EmulatorState",
    "Fault",
    "Note",
    "RequestRecord",
    "RunningEmulator",
    "TenantSpec",
    "create_app",
    "generate_tenant",
    "run_emulator",
    "start_emulator",
]
