"""A local LeadPerfection API emulator (crm-apis.md §2 and §5.2) for tests, demos and benchmarks.

It speaks LP's wire format, not a convenient one: form-encoded POSTs, bare JSON arrays of
prospects with nested ``leads[]``/``jobs[]``/``appointments[]``, naive US-Eastern timestamps,
Delphi zero dates and ``"true"``/``"false"`` strings, so the connector is exercised against the
quirks it will meet in production.

    spec = LPClientSpec(clientid="wq55a", username="api.user", password="pw", appkey="...")
    with run_emulator([spec], port=0) as emu:
        emu.url      # POST {url}/token, POST {url}/api/Customers/GetLead, ...
        emu.state    # LPEmulatorState: upsert records, arm faults, move the clock, read the log
"""

from sandbox.leadperfection.app import create_app
from sandbox.leadperfection.data import DELPHI_ZERO_DATE_WITH_TIME, LPClientSpec
from sandbox.leadperfection.server import RunningEmulator, run_emulator
from sandbox.leadperfection.state import WRITE_OK, LPEmulatorState, Window

__all__ = [
    "DELPHI_ZERO_DATE_WITH_TIME",
    "WRITE_OK",
    "LPClientSpec",
    "LPEmulatorState",
    "RunningEmulator",
    "Window",
    "create_app",
    "run_emulator",
]
