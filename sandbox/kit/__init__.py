"""The emulator kit: what the ServiceTitan, LeadPerfection and Salesforce emulators share.

- `Clock` (clock.py): the emulator clock, frozen or running, moved forward by tests.
- `TokenStore`, `bearer_token` (tokens.py): issued tokens, absolute or idle expiry.
- `Fault`, `FaultBook`, `FaultPlan` (faults.py): armed faults and which requests they hit.
- `LoggedRequest`, `RequestLog` (requestlog.py): what connectors sent and got.
- `EmulatorCore` (core.py): the same test-facing methods on every emulator state.
- `EmulatorMiddleware` (middleware.py): the ASGI layer that logs requests and applies faults.
- `control_routes` (control.py): `/__emulator/{faults,clock,requests}`.
- `ServedApp`, `serve_forever` (serve.py): uvicorn on loopback, in a thread or the foreground.

Vendor behaviour (error bodies, extra fault kinds, auth rules) stays in each emulator and plugs in
through the FaultBook's kinds and the middleware's hooks.
"""

from .clock import Clock
from .control import control_routes
from .core import EmulatorCore
from .faults import (
    ANSWER,
    DROP,
    EXPIRE,
    HOLD,
    LATENCY,
    STANDARD_KINDS,
    UNSET,
    Fault,
    FaultBook,
    FaultPlan,
)
from .middleware import EmulatorMiddleware, close_connection, drop_mid_body
from .requestlog import LoggedRequest, RequestLog
from .serve import ServedApp, serve_forever
from .tokens import TokenStore, bearer_token

__all__ = [
    "ANSWER",
    "DROP",
    "EXPIRE",
    "HOLD",
    "LATENCY",
    "STANDARD_KINDS",
    "UNSET",
    "Clock",
    "EmulatorCore",
    "EmulatorMiddleware",
    "Fault",
    "FaultBook",
    "FaultPlan",
    "LoggedRequest",
    "RequestLog",
    "ServedApp",
    "TokenStore",
    "bearer_token",
    "close_connection",
    "control_routes",
    "drop_mid_body",
    "serve_forever",
]
