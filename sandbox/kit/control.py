"""`/__emulator/{faults,clock,requests}`: the kit's controls over HTTP, for an emulator run in
another process (benchmarks, the demo, a developer's shell). Each emulator adds its own routes
for its data next to these.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .core import EmulatorCore


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    parsed = orjson.loads(raw) if raw.strip() else {}
    if not isinstance(parsed, dict):
        raise ValueError("expected a JSON object")
    return parsed


def control_routes(
    core: EmulatorCore[Any], *, prefix: str = "/__emulator", armed_status: int = 200
) -> list[BaseRoute]:
    """GET/POST/DELETE `faults` (POST `{"kind", ...arm_fault options}` answers `armed_status`),
    GET/POST `clock` (POST `{"advance_seconds"}` or `{"seconds"}`), GET/DELETE `requests`
    (GET `?since=<seq>` for the newer entries only)."""

    async def faults(request: Request) -> Response:
        if request.method == "GET":
            return _json([fault.as_dict() for fault in core.faults()])
        if request.method == "DELETE":
            core.clear_faults()
            return _json({"cleared": True})
        try:
            options = await _body(request)
            fault = core.arm_fault(options.pop("kind"), **options)
        except (KeyError, TypeError, ValueError) as exc:
            return _json({"error": f"bad fault: {exc}"}, 400)
        return _json(fault.as_dict(), armed_status)

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await _body(request)
                core.advance_clock(float(body.get("advance_seconds", body.get("seconds", 0))))
            except (TypeError, ValueError) as exc:
                return _json({"error": f"bad clock change: {exc}"}, 400)
        return _json({"now": core.timestamp()})

    async def requests(request: Request) -> Response:
        if request.method == "DELETE":
            core.clear_requests()
            return _json({"cleared": True})
        since = int(request.query_params.get("since") or 0)
        return _json([entry.as_dict() for entry in core.requests if entry.seq > since])

    return [
        Route(f"{prefix}/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route(f"{prefix}/clock", clock, methods=["GET", "POST"]),
        Route(f"{prefix}/requests", requests, methods=["GET", "DELETE"]),
    ]
