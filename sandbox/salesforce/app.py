"""The HTTP face of the emulator: Salesforce's REST wire format, plus ``/__emulator`` controls.

Routes (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/):

==============================================  ====================================================
``POST /services/oauth2/token``                 refresh_token and password grants (form-encoded)
``POST /services/oauth2/revoke``                revoke an access or refresh token
``GET  /id/{orgId}/{userId}``                   identity URL from the token response
``GET  /services/data/``                        API versions (no auth)
``GET  /services/data/vNN.0/``                  resources of a version
``GET  /services/data/vNN.0/limits``            ``DailyApiRequests``
``GET  /services/data/vNN.0/query?q=``          SOQL subset (:mod:`sandbox.salesforce.soql`)
``GET  /services/data/vNN.0/queryAll?q=``       same, deleted rows included
``GET  /services/data/vNN.0/query/<loc>-<n>``   ``nextRecordsUrl`` continuation (also ``queryAll``)
``GET  /services/data/vNN.0/sobjects/``         describeGlobal
``GET  /services/data/vNN.0/sobjects/T/``       basic info; ``POST`` creates a record
``GET  /services/data/vNN.0/sobjects/T/describe``
``GET  /services/data/vNN.0/sobjects/T/{id}``   a record (``?fields=A,B``)
==============================================  ====================================================

Any ``NN`` ≥ 50 is accepted. Errors are Salesforce's JSON arrays ``[{"message", "errorCode",
"fields"?}]``, token errors the OAuth ``{"error", "error_description"}``. Every authenticated API
response carries ``Sforce-Limit-Info: api-usage=n/limit``. Updates and deletes over the API are
not emulated (405): the product only reads and creates; tests change data with
``SalesforceEmulatorState.upsert``.

``POST /__emulator/orgs/{org}/sobjects/{Type}`` creates or edits a record as a CRM user would,
``DELETE /__emulator/orgs/{org}/sobjects/{Type}/{id}`` deletes one into the recycle bin
(``IsDeleted``, seen by ``queryAll``).

``POST /__emulator/orgs/{org}/permissions`` ``{"api_enabled": false, "unreadable_objects":
[…]}`` takes permissions away from the API user (:meth:`SalesforceEmulatorState.set_permissions`):
without "API Enabled" every data call is 403 ``API_CURRENTLY_DISABLED``; an object without Read
is, for that user, an object that does not exist (query 400 ``INVALID_TYPE``, describe 404).

Faults (:meth:`SalesforceEmulatorState.arm_fault`) are applied by the kit's middleware, so they
hit the token endpoint as well as the data API; ``drop_connection`` closes the TCP connection
without an answer when served by :func:`sandbox.salesforce.server.run_emulator` (the kit's server
exposes the transport), or raises ``ConnectionResetError`` in-process.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from sandbox.kit import EmulatorMiddleware, Fault, control_routes
from sandbox.salesforce.state import RequestRecord, SalesforceEmulatorState, SfApiError

__all__ = ["LATEST_API_VERSION", "MIN_API_VERSION", "create_app"]

MIN_API_VERSION = 50
LATEST_API_VERSION = 66
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_VERSION_RE = re.compile(r"^v(\d{2,3})\.0$")


class _Json(Response):
    media_type = "application/json;charset=UTF-8"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _error(exc: SfApiError) -> _Json:
    return _Json(exc.body(), status_code=exc.status)


def _not_found() -> SfApiError:
    return SfApiError(404, "NOT_FOUND", "The requested resource does not exist")


def _method_not_allowed(method: str, allowed: str) -> SfApiError:
    return SfApiError(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}"
    )


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


Handler = Callable[[Request, str, str, str], Awaitable[Response]]


def create_app(state: SalesforceEmulatorState) -> Starlette:
    """The ASGI app serving ``state``; also usable in-process with ``httpx.ASGITransport``."""

    def api(
        handler: Handler, *, allowed: str = "GET", count: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        """Authenticate, count the call, check the version, map SfApiError to its JSON array."""

        async def endpoint(request: Request) -> Response:
            org_id: str | None = None
            try:
                if request.method not in allowed.split(","):
                    org_id, _ = state.authenticate(request.headers.get("authorization"))
                    raise _method_not_allowed(request.method, allowed)
                org_id, user_id = state.authenticate(request.headers.get("authorization"))
                request.state.org_id = org_id
                state.check_api_access(org_id)
                if count:
                    state.count_api_call(org_id)
                version = _version(request)
                response = await handler(request, org_id, user_id, version)
            except SfApiError as exc:
                response = _error(exc)
            if org_id is not None:
                request.state.org_id = org_id
                response.headers["Sforce-Limit-Info"] = state.limit_info(org_id)
            return response

        return endpoint

    def _version(request: Request) -> str:
        raw = request.path_params.get("version")
        if raw is None:
            return f"{LATEST_API_VERSION}.0"
        m = _VERSION_RE.match(raw)
        if m is None or int(m.group(1)) < MIN_API_VERSION:
            raise _not_found()
        return f"{int(m.group(1))}.0"

    # -- OAuth ---------------------------------------------------------------------------------

    async def token(request: Request) -> Response:
        if request.method != "POST":
            return _Json(
                {"error": "invalid_request", "error_description": "must use HTTP POST"}, 400
            )
        form = await _form(request)
        request.state.logged_body = {"grant_type": form.get("grant_type")}
        status, body, org_id = state.issue_token(form, _base_url(request))
        if org_id is not None:
            request.state.org_id = org_id
        return _Json(body, status_code=status)

    async def revoke(request: Request) -> Response:
        form = await _form(request)
        if not state.revoke_token(form.get("token", "")):
            return _Json(
                {"error": "unsupported_token_type", "error_description": "Invalid token"}, 400
            )
        return Response(status_code=200)

    async def identity(request: Request, org_id: str, user_id: str, version: str) -> Response:
        org_param = request.path_params["org_id"]
        user_param = request.path_params["user_id"]
        if org_param != org_id or user_param != user_id:
            raise SfApiError(403, "FORBIDDEN", "Bad_Id")
        user = state.get_record(org_id, user_id) or {}
        base = _base_url(request)
        return _Json(
            {
                "id": f"{base}/id/{org_id}/{user_id}",
                "asserted_user": True,
                "user_id": user_id,
                "organization_id": org_id,
                "username": user.get("Username"),
                "nick_name": user.get("Alias"),
                "display_name": user.get("Name"),
                "email": user.get("Email"),
                "active": True,
                "user_type": "STANDARD",
                "language": "en_US",
                "locale": "en_US",
                "utcOffset": 0,
                "urls": {
                    "rest": f"{base}/services/data/v{{version}}/",
                    "sobjects": f"{base}/services/data/v{{version}}/sobjects/",
                    "query": f"{base}/services/data/v{{version}}/query/",
                    "limits": f"{base}/services/data/v{{version}}/limits/",
                },
            }
        )

    # -- data API ------------------------------------------------------------------------------

    async def versions(request: Request) -> Response:
        return _Json(
            [
                {"label": f"v{n}.0", "url": f"/services/data/v{n}.0", "version": f"{n}.0"}
                for n in range(MIN_API_VERSION, LATEST_API_VERSION + 1)
            ]
        )

    async def resources(request: Request, org_id: str, user_id: str, version: str) -> Response:
        prefix = f"/services/data/v{version}"
        return _Json(
            {
                "limits": f"{prefix}/limits",
                "query": f"{prefix}/query",
                "queryAll": f"{prefix}/queryAll",
                "sobjects": f"{prefix}/sobjects",
            }
        )

    async def limits(request: Request, org_id: str, user_id: str, version: str) -> Response:
        used, limit = state.api_usage(org_id)
        return _Json({"DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - used)}})

    def query_handler(include_deleted: bool) -> Handler:
        async def handler(request: Request, org_id: str, user_id: str, version: str) -> Response:
            soql = request.query_params.get("q")
            if not soql:
                raise SfApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
            request.state.soql = soql
            body = state.query(
                org_id,
                soql,
                version=version,
                include_deleted=include_deleted,
                batch_size=_batch_size_option(request.headers.get("sforce-query-options")),
            )
            return _Json(body)

        return handler

    def query_more_handler(endpoint_name: str) -> Handler:
        async def handler(request: Request, org_id: str, user_id: str, version: str) -> Response:
            body = state.query_more(
                org_id, request.path_params["locator"], version=version, endpoint=endpoint_name
            )
            return _Json(body)

        return handler

    async def sobjects(request: Request, org_id: str, user_id: str, version: str) -> Response:
        return _Json(state.describe(org_id, version=version))

    async def sobject(request: Request, org_id: str, user_id: str, version: str) -> Response:
        name = request.path_params["sobject"]
        if request.method == "POST":
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError as exc:
                raise SfApiError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from None
            request.state.logged_body = body
            created = state.create(org_id, name, body, user_id=user_id)
            request.state.created_id = created["id"]
            return _Json(created, status_code=201)
        return _Json(state.describe_basic(org_id, name, version=version))

    async def describe(request: Request, org_id: str, user_id: str, version: str) -> Response:
        return _Json(state.describe(org_id, request.path_params["sobject"], version=version))

    async def record(request: Request, org_id: str, user_id: str, version: str) -> Response:
        fields_param = request.query_params.get("fields")
        fields = [f for f in fields_param.split(",") if f.strip()] if fields_param else None
        body = state.read(
            org_id,
            request.path_params["sobject"],
            request.path_params["record_id"],
            fields=fields,
            version=version,
        )
        return _Json(body)

    async def unknown_data_resource(
        request: Request, org_id: str, user_id: str, version: str
    ) -> Response:
        raise _not_found()

    async def unknown(request: Request) -> Response:
        return _error(_not_found())

    # -- control API ---------------------------------------------------------------------------

    async def control(request: Request) -> Response:
        try:
            return await _control(state, request)
        except (KeyError, ValueError, TypeError) as exc:
            return _Json({"error": str(exc)}, status_code=400)

    def both(path: str, endpoint: Callable[[Request], Awaitable[Response]]) -> list[Route]:
        return [
            Route(path, endpoint, methods=_ALL_METHODS),
            Route(path + "/", endpoint, methods=_ALL_METHODS),
        ]

    data = "/services/data/{version}"
    routes = [
        Route("/services/oauth2/token", token, methods=_ALL_METHODS),
        Route("/services/oauth2/revoke", revoke, methods=["POST"]),
        Route("/id/{org_id}/{user_id}", api(identity, count=False), methods=_ALL_METHODS),
        *both("/services/data", versions),
        *both(data, api(resources)),
        *both(f"{data}/limits", api(limits)),
        *both(f"{data}/query", api(query_handler(False))),
        *both(f"{data}/queryAll", api(query_handler(True))),
        Route(f"{data}/query/{{locator}}", api(query_more_handler("query")), methods=_ALL_METHODS),
        Route(
            f"{data}/queryAll/{{locator}}",
            api(query_more_handler("queryAll")),
            methods=_ALL_METHODS,
        ),
        *both(f"{data}/sobjects", api(sobjects)),
        *both(f"{data}/sobjects/{{sobject}}", api(sobject, allowed="GET,POST")),
        *both(f"{data}/sobjects/{{sobject}}/describe", api(describe)),
        *both(f"{data}/sobjects/{{sobject}}/{{record_id}}", api(record)),
        Route("/services/data/{rest:path}", api(unknown_data_resource), methods=_ALL_METHODS),
        *control_routes(state, armed_status=201),
        Route("/__emulator/{rest:path}", control, methods=_ALL_METHODS),
        Route("/{rest:path}", unknown, methods=_ALL_METHODS),
    ]
    middleware = Middleware(
        EmulatorMiddleware,
        core=state,
        answer=lambda fault, scope: _fault_answer(fault, state, scope),
        expire=state.expire_sessions,
        entry_type=RequestRecord,
        on_response=_log_details,
    )
    app = Starlette(routes=routes, middleware=[middleware])
    app.state.emulator = state
    return app


def _batch_size_option(header: str | None) -> int | None:
    # "Sforce-Query-Options: batchSize=500": a hint, 200..2000.
    if not header:
        return None
    m = re.search(r"batchSize\s*=\s*(\d+)", header)
    if m is None:
        return None
    return max(200, min(2000, int(m.group(1))))


async def _form(request: Request) -> dict[str, str]:
    # Salesforce reads the token request as x-www-form-urlencoded whatever the content type
    # says; a JSON body therefore has no grant_type.
    raw = (await request.body()).decode("utf-8", "replace")
    parsed = parse_qs(raw, keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    return orjson.loads(raw) if raw else {}


async def _control(state: SalesforceEmulatorState, request: Request) -> Response:
    parts = [unquote(p) for p in request.path_params["rest"].strip("/").split("/")]
    method = request.method
    head = parts[0] if parts else ""
    if head == "health":
        return _Json({"ok": True})
    if head == "stats":
        return _Json(state.stats())
    if head == "sessions" and method == "POST":
        body = await _json_body(request)
        return _Json({"expired": state.expire_sessions(body.get("org_id"))})
    if head == "orgs" and len(parts) >= 3:
        org_id, what = parts[1], parts[2]
        if what == "api_usage" and method == "POST":
            body = await _json_body(request)
            state.set_api_usage(org_id, int(body["used"]))
            used, limit = state.api_usage(org_id)
            return _Json({"used": used, "limit": limit})
        if what == "permissions":
            if method == "POST":
                body = await _json_body(request)
                return _Json(
                    state.set_permissions(
                        org_id,
                        api_enabled=body.get("api_enabled"),
                        unreadable_objects=body.get("unreadable_objects"),
                    )
                )
            return _Json(state.permissions(org_id))
        if what == "refresh_tokens" and method == "DELETE":
            state.revoke_refresh_tokens(org_id)
            return _Json({"revoked": True})
        if what == "sobjects" and len(parts) == 5 and method == "DELETE":
            return _Json(state.delete(org_id, parts[3], parts[4]))
        if what == "sobjects" and len(parts) == 4:
            if method == "POST":
                return _Json(state.upsert(org_id, parts[3], await _json_body(request)))
            return _Json(state.get_records(org_id, parts[3]))
    return _Json({"error": "unknown control route"}, status_code=404)


# ----------------------------------------------------------------------------------------------
# Faults and request log
# ----------------------------------------------------------------------------------------------

_STATUS_BODIES = {
    500: (
        "UNKNOWN_EXCEPTION",
        "An unexpected error occurred. Please include this ErrorId if you contact support: "
        "1452785119-271903 (-1296113327)",
    ),
    502: ("BAD_GATEWAY", "Bad Gateway"),
    503: ("SERVER_UNAVAILABLE", "Server temporarily unavailable"),
    429: ("TOO_MANY_REQUESTS", "Too many requests"),
}


def _limit_headers(state: SalesforceEmulatorState, scope: Scope) -> dict[str, str]:
    auth = None
    for key, value in scope.get("headers", []):
        if key == b"authorization":
            auth = value.decode("latin-1")
    org_id = state.org_for_authorization(auth)
    if org_id is None:
        return {}
    scope.setdefault("state", {})["org_id"] = org_id
    return {"Sforce-Limit-Info": state.limit_info(org_id)}


def _fault_answer(fault: Fault, state: SalesforceEmulatorState, scope: Scope) -> Response:
    if fault.kind == "request_limit_exceeded":
        exc = SfApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        return _Json(exc.body(), status_code=403, headers=_limit_headers(state, scope))
    status = fault.status or 503
    code, message = _STATUS_BODIES.get(status, ("UNKNOWN_EXCEPTION", f"HTTP {status}"))
    headers = {"Retry-After": str(int(fault.retry_after))} if fault.retry_after is not None else {}
    return _Json([{"message": message, "errorCode": code}], status_code=status, headers=headers)


def _log_details(scope: Scope, entry: RequestRecord) -> None:
    """What the handlers noted on ``request.state``: org, grant type or created body, SOQL."""
    noted = scope.get("state") or {}
    entry.org_id = noted.get("org_id")
    entry.body = noted.get("logged_body")
    entry.soql = noted.get("soql")
    entry.created_id = noted.get("created_id")
