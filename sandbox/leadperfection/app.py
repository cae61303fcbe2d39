"""The LP emulator as a Starlette app: LP's wire format on the outside, the state on the inside.

LeadPerfection is an ASP.NET Web API in front of a Delphi system (crm-apis.md §2.1), so the app
answers the way that stack does, not the way a modern API would:

* ``POST /token`` is OWIN's password grant, form-encoded only, plus LP's ``clientid``/``appkey``;
* data routes are ``POST /api/{Controller}/{Method}`` with a form body (JSON is tolerated),
  parameter names and paths are case-insensitive, answers are bare JSON arrays or strings;
* errors are ASP.NET's ``{"Message": ...}`` bodies: 401 "Authorization has been denied for this
  request.", 404 "No HTTP resource was found...", 405, 400 "The request is invalid.", 500 "An
  error has occurred.";
* ``AddNotes`` answers ``"UPDATED SUCCESSFULLY!"`` whether or not the note landed (§2.4);
* an API user without seed 001's APISecurity permission still gets a token, and every refused
  data call gets the 401 above (``[Authorize]``), or a 403 when so armed (control route
  ``POST /__emulator/clients/{clientid}/api-security``, ``LPEmulatorState.revoke_api_security``).

Everything under ``/__emulator`` is the control API (JSON, no auth, never faulted or logged).
Faults and the request log are the kit's (:class:`sandbox.kit.EmulatorMiddleware`); this module
gives it LP's error bodies and what to log of a request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import wraps
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from sandbox.kit import EmulatorMiddleware, Fault, bearer_token, control_routes, drop_mid_body
from sandbox.leadperfection.data import LPClientSpec
from sandbox.leadperfection.state import (
    NOTE_RECTYPES,
    WRITE_OK,
    BadRequest,
    LPEmulatorState,
    RequestRecord,
    Window,
)

JSON = "application/json; charset=utf-8"
TOKEN_PATH = "/token"
CONTROL_PREFIX = "/__emulator"
DEFAULT_PAGE_SIZE = 10

_DENIED = b'{"Message":"Authorization has been denied for this request."}'
_INVALID = b'{"Message":"The request is invalid."}'
_ERROR = b'{"Message":"An error has occurred."}'
_REDACTED = frozenset({"password", "appkey", "client_secret", "access_token"})

Handler = Callable[[Request], Awaitable[Response]]


def _json(content: bytes, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(content, status_code=status, media_type=JSON, headers=headers)


def _denied() -> Response:
    return _json(_DENIED, 401, {"WWW-Authenticate": "Bearer"})


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def _read_params(request: Request, *, form_only: bool = False) -> dict[str, str]:
    """Query string plus body, keys lower-cased (ASP.NET model binding ignores case)."""
    params = {k.lower(): v for k, v in request.query_params.multi_items()}
    body = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and ctype == "application/json" and not form_only:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest("malformed JSON") from exc
        if not isinstance(parsed, dict):
            raise BadRequest("JSON body must be an object")
        params.update((str(k).lower(), _scalar(v)) for k, v in parsed.items())
    elif body and ctype in ("", "application/x-www-form-urlencoded"):
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        params.update((k.lower(), v) for k, v in pairs)
    request.scope["lp.params"] = params
    return params


def _int(params: Mapping[str, str], *names: str, zero_is_none: bool = True) -> int | None:
    for name in names:
        raw = params.get(name, "").strip()
        if raw:
            try:
                value = int(raw)
            except ValueError:
                raise BadRequest(f"{name} must be an integer") from None
            return None if zero_is_none and value == 0 else value
    return None


def _page(ids: Sequence[int], params: Mapping[str, str]) -> Sequence[int]:
    """LP paging: ``PageSize`` (default 10) records from the 1-based ``StartIndex``."""
    size = _int(params, "pagesize") or DEFAULT_PAGE_SIZE
    start = _int(params, "startindex") or 1
    size = DEFAULT_PAGE_SIZE if size < 1 else size
    start = max(start, 1)
    return ids[start - 1 : start - 1 + size]


class _Api:
    """The LP routes, bound to one state."""

    def __init__(self, state: LPEmulatorState) -> None:
        self.state = state

    def _window(self, clientid: str, params: Mapping[str, str]) -> Window:
        return self.state.window(clientid, params.get("startdate"), params.get("enddate"))

    def route(self, func: Callable[[Request, str, dict[str, str]], Awaitable[Response]]) -> Handler:
        """Auth, parameter parsing and ASP.NET-shaped errors around one data route."""

        @wraps(func)
        async def endpoint(request: Request) -> Response:
            try:
                params = await _read_params(request)
                token = bearer_token(request.headers.get("authorization"))
                clientid = self.state.authenticate(token)
                if clientid is None:
                    return _denied()
                request.scope["lp.clientid"] = clientid
                refused = self.state.api_refusal(clientid, request.url.path)
                if refused == 403:
                    return _json(_DENIED, 403)
                if refused is not None:
                    return _denied()
                return await func(request, clientid, params)
            except BadRequest:
                return _json(_INVALID, 400)
            except Exception:
                logging.getLogger(__name__).exception("LP emulator handler failed")
                return _json(_ERROR, 500)

        return endpoint

    async def token(self, request: Request) -> Response:
        try:
            params = await _read_params(request, form_only=True)
        except BadRequest:
            params = {}
        status, body = self.state.issue_token(params)
        if status == 200:
            request.scope["lp.clientid"] = params.get("clientid")
        headers = {"Cache-Control": "no-cache", "Pragma": "no-cache"}
        return _json(orjson.dumps(body), status, headers)

    async def get_lead(self, request: Request, clientid: str, params: dict[str, str]) -> Response:
        return self._prospects(clientid, params, extended=False)

    async def get_prospect_data(
        self, request: Request, clientid: str, params: dict[str, str]
    ) -> Response:
        return self._prospects(clientid, params, extended=True)

    def _prospects(self, clientid: str, params: dict[str, str], *, extended: bool) -> Response:
        ids = self.state.query_prospects(
            clientid,
            self._window(clientid, params),
            cst_id=_int(params, "cst_id"),
            lds_id=_int(params, "lds_id"),
            ils_id=_int(params, "ils_id"),
            descending="desc" in params.get("sortorder", "").lower(),
        )
        page = _page(ids, params)
        return _json(self.state.render_prospects(clientid, page, extended=extended))

    async def get_lead_data(
        self, request: Request, clientid: str, params: dict[str, str]
    ) -> Response:
        ids = self.state.query_leads(
            clientid,
            self._window(clientid, params),
            cst_id=_int(params, "cst_id"),
            lds_id=_int(params, "lds_id"),
            ils_id=_int(params, "ils_id"),
        )
        milestones = params.get("milestones", "").strip().lower() in ("1", "true", "y", "yes")
        return _json(self.state.render_leads(clientid, _page(ids, params), milestones=milestones))

    async def get_sales_appointments(
        self, request: Request, clientid: str, params: dict[str, str]
    ) -> Response:
        ids = self.state.query_children(
            clientid,
            "appointments",
            self._window(clientid, params),
            cst_id=_int(params, "cst_id"),
            lds_id=_int(params, "lds_id"),
            child_id=_int(params, "ils_id"),
        )
        return _json(self.state.render_children(clientid, "appointments", _page(ids, params)))

    async def get_job_status_changes(
        self, request: Request, clientid: str, params: dict[str, str]
    ) -> Response:
        ids = self.state.query_children(
            clientid,
            "jobs",
            self._window(clientid, params),
            cst_id=_int(params, "cst_id"),
            child_id=_int(params, "job_id"),
        )
        return _json(self.state.render_children(clientid, "jobs", _page(ids, params)))

    async def add_notes(self, request: Request, clientid: str, params: dict[str, str]) -> Response:
        rectype = params.get("rectype", "").strip().lower()
        recid = _int(params, "recid", zero_is_none=False)
        text = params.get("notes", "")
        if rectype not in NOTE_RECTYPES or recid is None or not text.strip():
            raise BadRequest("rectype, recid and notes are required")
        nct_id = params.get("nct_id", "").strip() or None
        self.state.add_note(clientid, rectype, recid, text, nct_id=nct_id)
        return _json(orjson.dumps(WRITE_OK))

    async def add_call_history(
        self, request: Request, clientid: str, params: dict[str, str]
    ) -> Response:
        cust_id = _int(params, "custid", zero_is_none=False)
        if cust_id is None:
            raise BadRequest("CustID is required")
        self.state.add_call(clientid, cust_id, params)
        return _json(orjson.dumps(WRITE_OK))

    async def add_installer_job_notes(
        self, request: Request, clientid: str, params: dict[str, str]
    ) -> Response:
        job_id = _int(params, "job_id", "jobid", zero_is_none=False)
        text = params.get("notes", "")
        if job_id is None or not text.strip():
            raise BadRequest("job_id and notes are required")
        self.state.add_production_note(clientid, job_id, text)
        return _json(orjson.dumps(WRITE_OK))


DATA_ROUTES: dict[str, str] = {
    "/api/Customers/GetLead": "get_lead",
    "/api/Customers/GetProspectData": "get_prospect_data",
    "/api/Leads/GetLeadData": "get_lead_data",
    "/api/Customers/GetSalesAppointments": "get_sales_appointments",
    "/api/Customers/GetJobStatusChanges": "get_job_status_changes",
    "/api/SalesApi/AddNotes": "add_notes",
    "/api/Customers/AddCallHistory": "add_call_history",
    "/api/Installer/AddInstallerJobNotes": "add_installer_job_notes",
}
_CANONICAL = {path.lower(): path for path in (*DATA_ROUTES, TOKEN_PATH)}


def canonical_path(path: str) -> str:
    """IIS routes ignore case and a trailing slash; map both onto the declared route."""
    return _CANONICAL.get(path.rstrip("/").lower(), path)


# --- control API -------------------------------------------------------------------------------


class _Control:
    """``/__emulator``: the same operations as the state's methods, as JSON over HTTP."""

    def __init__(self, state: LPEmulatorState) -> None:
        self.state = state

    @staticmethod
    def wrap(func: Callable[[Request], Awaitable[Any]]) -> Handler:
        @wraps(func)
        async def endpoint(request: Request) -> Response:
            try:
                result = await func(request)
            except KeyError as exc:
                return _json(orjson.dumps({"error": str(exc.args[0] if exc.args else exc)}), 404)
            except (ValueError, TypeError) as exc:
                return _json(orjson.dumps({"error": str(exc)}), 400)
            return _json(orjson.dumps(result))

        return endpoint

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        parsed = orjson.loads(raw) if raw.strip() else {}
        if not isinstance(parsed, dict):
            raise ValueError("expected a JSON object")
        return parsed

    @staticmethod
    def _touch(request: Request) -> bool:
        return request.query_params.get("touch", "true").lower() not in ("0", "false", "no")

    @staticmethod
    def _qint(request: Request, name: str) -> int | None:
        raw = request.query_params.get(name)
        return int(raw) if raw not in (None, "") else None

    async def stats(self, request: Request) -> Any:
        return self.state.stats()

    async def reset(self, request: Request) -> Any:
        self.state.reset()
        return {"reset": True}

    async def expire_tokens(self, request: Request) -> Any:
        self.state.expire_tokens()
        return {"expired": True}

    async def prospects(self, request: Request) -> Any:
        clientid = request.path_params["clientid"]
        if request.method == "POST":
            body = await self._body(request)
            return self.state.upsert_prospect(clientid, body, touch=self._touch(request))
        return self.state.get_prospects(clientid)

    async def prospect(self, request: Request) -> Any:
        found = self.state.get_prospect(
            request.path_params["clientid"], request.path_params["cst_id"]
        )
        if found is None:
            raise KeyError(f"unknown cst_id {request.path_params['cst_id']}")
        return found

    async def leads(self, request: Request) -> Any:
        p = request.path_params
        body = await self._body(request)
        return self.state.upsert_lead(p["clientid"], p["cst_id"], body, touch=self._touch(request))

    async def jobs(self, request: Request) -> Any:
        p = request.path_params
        body = await self._body(request)
        return self.state.upsert_job(p["clientid"], p["lds_id"], body, touch=self._touch(request))

    async def appointments(self, request: Request) -> Any:
        p = request.path_params
        body = await self._body(request)
        return self.state.upsert_appointment(
            p["clientid"], p["lds_id"], body, touch=self._touch(request)
        )

    async def api_security(self, request: Request) -> Any:
        """``GET`` what the API user is refused; ``POST {"granted": false, "functions": [...],
        "status": 401}`` revokes (all data routes when ``functions`` is absent), ``{"granted":
        true}`` grants again."""
        clientid = request.path_params["clientid"]
        if request.method == "POST":
            body = await self._body(request)
            if body.get("granted", True):
                self.state.grant_api_security(clientid)
            else:
                functions = body.get("functions")
                if functions is not None and not isinstance(functions, list):
                    raise ValueError("functions must be a list of LP method names or paths")
                self.state.revoke_api_security(
                    clientid,
                    functions=None if functions is None else [str(f) for f in functions],
                    status=int(body.get("status", 401)),
                )
        return self.state.api_security(clientid)

    async def notes(self, request: Request) -> Any:
        return self.state.get_notes(
            request.path_params["clientid"],
            rectype=request.query_params.get("rectype"),
            recid=self._qint(request, "recid"),
        )

    async def call_logs(self, request: Request) -> Any:
        return self.state.get_call_logs(
            request.path_params["clientid"], cst_id=self._qint(request, "cst_id")
        )

    async def production_notes(self, request: Request) -> Any:
        return self.state.get_production_notes(
            request.path_params["clientid"], job_id=self._qint(request, "job_id")
        )

    def routes(self) -> list[BaseRoute]:
        c, w = CONTROL_PREFIX, self.wrap
        client = f"{c}/clients/{{clientid}}"
        return [
            *control_routes(self.state, prefix=c),
            Route(f"{c}/stats", w(self.stats), methods=["GET"]),
            Route(f"{c}/expire-tokens", w(self.expire_tokens), methods=["POST"]),
            Route(f"{c}/reset", w(self.reset), methods=["POST"]),
            Route(f"{client}/prospects", w(self.prospects), methods=["GET", "POST"]),
            Route(f"{client}/prospects/{{cst_id:int}}", w(self.prospect), methods=["GET"]),
            Route(f"{client}/prospects/{{cst_id:int}}/leads", w(self.leads), methods=["POST"]),
            Route(f"{client}/leads/{{lds_id:int}}/jobs", w(self.jobs), methods=["POST"]),
            Route(
                f"{client}/leads/{{lds_id:int}}/appointments",
                w(self.appointments),
                methods=["POST"],
            ),
            Route(f"{client}/api-security", w(self.api_security), methods=["GET", "POST"]),
            Route(f"{client}/notes", w(self.notes), methods=["GET"]),
            Route(f"{client}/call-logs", w(self.call_logs), methods=["GET"]),
            Route(f"{client}/production-notes", w(self.production_notes), methods=["GET"]),
        ]


# --- faults and request log --------------------------------------------------------------------

_STATUS_BODIES: dict[int, tuple[str, bytes]] = {
    500: (JSON, _ERROR),
    429: (JSON, b'{"Message":"Too many requests."}'),
    502: ("text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    503: ("text/html", b"<html><body><h2>Service Unavailable</h2></body></html>"),
    504: ("text/html", b"<html><body><h1>504 Gateway Time-out</h1></body></html>"),
}


def _fault_answer(fault: Fault, scope: Scope) -> Response:
    code = fault.status or 500
    media, body = _STATUS_BODIES.get(code, (JSON, _ERROR))
    headers = {"content-type": media}
    if fault.retry_after is not None:
        value = fault.retry_after
        headers["retry-after"] = str(int(value)) if float(value).is_integer() else str(value)
    return Response(body, status_code=code, headers=headers)


def _log_details(scope: Scope, entry: RequestRecord) -> None:
    """The client and the parameters the route bound (not the raw body), secrets redacted."""
    entry.clientid = scope.get("lp.clientid")
    params: dict[str, str] | None = scope.get("lp.params")
    if params is not None:
        entry.body = {k: ("***" if k in _REDACTED else v) for k, v in params.items()}


def create_app(
    state: LPEmulatorState | Sequence[LPClientSpec] | LPClientSpec, **state_kwargs: Any
) -> Starlette:
    """The emulator app; pass a state to share it, or specs (and state options) to build one."""
    if not isinstance(state, LPEmulatorState):
        state = LPEmulatorState(state, **state_kwargs)
    api = _Api(state)
    routes: list[BaseRoute] = [Route(TOKEN_PATH, api.token, methods=["POST"])]
    routes += [
        Route(path, api.route(getattr(api, name)), methods=["POST"])
        for path, name in DATA_ROUTES.items()
    ]
    routes += _Control(state).routes()

    async def not_found(request: Request, exc: Exception) -> Response:
        message = f"No HTTP resource was found that matches the request URI '{request.url}'."
        return _json(orjson.dumps({"Message": message}), 404)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        message = f"The requested resource does not support http method '{request.method}'."
        headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
        return _json(orjson.dumps({"Message": message}), 405, headers)

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                EmulatorMiddleware,
                core=state,
                answer=_fault_answer,
                expire=state.expire_tokens,
                # Before the request reached LP, a 200 announcing a JSON array is cut instead.
                drop=drop_mid_body(b'[{"cst_id":0}]' * 64, JSON.encode()),
                entry_type=RequestRecord,
                on_response=_log_details,
                canonical_path=canonical_path,
                control_prefix=CONTROL_PREFIX,
            )
        ],
        exception_handlers={404: not_found, 405: not_allowed},
    )
    app.state.emulator = state
    return app
