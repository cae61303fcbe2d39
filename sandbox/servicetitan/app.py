"""The ServiceTitan API emulator as a Starlette app: wire behaviour of shared/reference/crm-apis.md
§5.1, routes and shapes from the vendor OpenAPI documents in tests/fixtures/servicetitan-openapi/.

Request path, outermost first (the kit's `EmulatorMiddleware` with this module's hooks):

1. log the request; armed "before" faults fire (latency, token revocation, a status, a dropped
   connection), as a gateway in front of the API would;
2. API calls need a known app key (`ST-App-Key` header or `servicetitanapplicationkey` query),
   then pass the per-app-key token bucket (429 + `Retry-After`), then need a live token for that
   app (`Authorization`, with or without `Bearer `), then the token's tenant must be the path's;
   gateway-level failures answer `{"statusCode", "message"}` like Azure API Management [I]
   (`_admit`);
3. the route handler answers, with `ApiErrorResponse` for 400/404 as the vendor documents;
4. armed "after" faults replace or delay the finished response (the write already happened).

Query parameter names are matched case-insensitively, as ASP.NET model binding does.
"""

from __future__ import annotations

import base64
import math
import re
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from sandbox.kit import EmulatorMiddleware, Fault, bearer_token, control_routes, drop_mid_body

from .data import API_USER_ID, ESTIMATE_STATUSES, TIMESTAMP_FIELDS, TenantSpec, to_wire
from .extras import WIRE_DROP
from .state import TOKEN_PATH, EmulatorState, RequestRecord
from .store import BEFORE_EVERYTHING, Record, order_key, split_key
from .timefmt import parse_timestamp

Handler = Callable[[Request], Awaitable[Response]]
View = Callable[[Record], Record]

_API_PATH = re.compile(
    r"^/(jpm|crm|memberships|sales|dispatch|settings|accounting|marketing)/v2/tenant/([^/]+)(?:/|$)"
)
_PROBLEM_TYPES = {
    400: "https://tools.ietf.org/html/rfc7231#section-6.5.1",
    404: "https://tools.ietf.org/html/rfc7231#section-6.5.4",
}
_SCOPE = "tn.jpm.jobs:r tn.jpm.appointments:r tn.jpm.jobs:w tn.crm.customers:r tn.crm.customers:w"
_SCOPE += " tn.crm.locations:r tn.crm.locations:w tn.mem.memberships:r tn.sls.estimates:r"
_EXPORT_TOKEN_PREFIX = "st-export:"
_MAX_INT32 = 2_147_483_647


# -- responses -------------------------------------------------------------------------------


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def _trace_id() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"


def api_error(status: int, title: str, errors: dict[str, list[str]] | None = None) -> Response:
    """The vendor's `ApiErrorResponse` (RFC 7807 style), used for its documented 400 and 404."""
    return json_response(
        {
            "type": _PROBLEM_TYPES.get(status, "about:blank"),
            "title": title,
            "status": status,
            "traceId": _trace_id(),
            "errors": errors or {},
            "data": {},
        },
        status,
    )


def validation_error(errors: dict[str, list[str]]) -> Response:
    return api_error(400, "One or more validation errors occurred.", errors)


def not_found(entity: str, record_id: int) -> Response:
    return api_error(
        404, f"{entity} not found", {"id": [f"{entity} with id {record_id} was not found"]}
    )


def gateway_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """401/403/404/429 from the gateway in front of the API: `{"statusCode", "message"}` [I]."""
    return json_response({"statusCode": status, "message": message}, status, headers)


def rate_limited(retry_after: int) -> Response:
    return gateway_error(
        429,
        f"Rate limit is exceeded. Try again in {retry_after} seconds.",
        {"Retry-After": str(retry_after)},
    )


# -- query parameters ------------------------------------------------------------------------


class Params:
    """Typed access to query parameters, collecting ASP.NET-style validation errors."""

    def __init__(self, request: Request) -> None:
        self.values: dict[str, str] = {}
        for key, value in request.query_params.multi_items():
            self.values[key.lower()] = value
        self.errors: dict[str, list[str]] = {}

    def raw(self, name: str) -> str | None:
        value = self.values.get(name.lower())
        return None if value is None or value.strip() == "" else value.strip()

    def _invalid(self, name: str, value: str) -> None:
        self.errors.setdefault(name, []).append(f"The value '{value}' is not valid.")

    def integer(self, name: str) -> int | None:
        value = self.raw(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            self._invalid(name, value)
            return None

    def boolean(self, name: str) -> bool | None:
        value = self.raw(name)
        if value is None:
            return None
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        self._invalid(name, value)
        return None

    def timestamp(self, name: str) -> int | None:
        value = self.raw(name)
        if value is None:
            return None
        try:
            return parse_timestamp(value)
        except ValueError:
            self._invalid(name, value)
            return None

    def int_list(self, name: str, limit: int | None = None) -> list[int] | None:
        value = self.raw(name)
        if value is None:
            return None
        try:
            numbers = [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            self._invalid(name, value)
            return None
        if limit is not None and len(numbers) > limit:
            self.errors.setdefault(name, []).append(f"The maximum number of IDs is {limit}.")
            return None
        return numbers

    def paging(self) -> tuple[int, int, bool]:
        page = self.integer("page")
        page_size = self.integer("pageSize")
        include_total = self.boolean("includeTotal")
        if page is not None and not 1 <= page <= _MAX_INT32:
            self.errors.setdefault("page", []).append(
                f"The field page must be between 1 and {_MAX_INT32}."
            )
        if page_size is not None and not 1 <= page_size <= 5000:
            self.errors.setdefault("pageSize", []).append(
                "The field pageSize must be between 1 and 5000."
            )
        return page or 1, page_size or 50, bool(include_total)


# -- list endpoints --------------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    """A resource-specific list filter.

    kinds: `int` (equality), `ints` (CSV of ints, any-of), `str` (case-insensitive equality),
    `bool`, `after` / `before` (timestamp field on-or-after / before), `estimate_status` (the
    status object's name or numeric value).
    """

    param: str
    field: str
    kind: str = "int"
    indexed: bool = False


@dataclass(frozen=True)
class ListSpec:
    resource: str
    view: View
    filters: tuple[Filter, ...] = ()
    sort_fields: tuple[str, ...] = ("Id", "ModifiedOn", "CreatedOn")
    active_param: bool = False
    """Has the vendor's `active=True|Any|False` parameter (default True)."""
    hide_inactive: bool = False
    """Inactive means deleted: never listed (jobs, appointments, contacts)."""
    require_modified_bound: bool = False
    parent_filter: str | None = None
    """Path `{id}` is this field's value (customers/{id}/contacts)."""
    parent_resource: str | None = None
    parent_entity: str = ""


def _make_view(resource: str, drop: tuple[str, ...] = ()) -> View:
    fields = TIMESTAMP_FIELDS[resource]
    drop = drop + WIRE_DROP.get(resource, ())

    def view(record: Record) -> Record:
        return to_wire(resource, record, drop, fields)

    return view


def _matcher(
    checks: list[Callable[[Record], bool]],
) -> Callable[[Record], bool]:
    if not checks:
        return lambda record: True
    if len(checks) == 1:
        return checks[0]

    def match(record: Record) -> bool:
        return all(check(record) for check in checks)

    return match


def _filter_check(flt: Filter, params: Params) -> tuple[Callable[[Record], bool] | None, Any]:
    """(check, index values) for one filter, or (None, None) when the parameter is absent."""
    name = flt.field
    if flt.kind == "int":
        number = params.integer(flt.param)
        if number is None:
            return None, None
        return (lambda record: record.get(name) == number), {number}
    if flt.kind == "ints":
        numbers = params.int_list(flt.param)
        if numbers is None:
            return None, None
        wanted = set(numbers)
        return (lambda record: record.get(name) in wanted), wanted
    if flt.kind == "bool":
        flag = params.boolean(flt.param)
        if flag is None:
            return None, None
        return (lambda record: bool(record.get(name)) == flag), None
    if flt.kind in ("after", "before"):
        instant = params.timestamp(flt.param)
        if instant is None:
            return None, None
        if flt.kind == "after":
            return (lambda record: (record.get(name) or -1) >= instant), None
        return (lambda record: record.get(name) is not None and record[name] < instant), None
    text = params.raw(flt.param)
    if text is None:
        return None, None
    lowered = text.lower()
    if flt.kind == "estimate_status":
        codes = {str(code) for code in ESTIMATE_STATUSES.values()}
        if lowered not in {n.lower() for n in ESTIMATE_STATUSES} and lowered not in codes:
            params._invalid(flt.param, text)
            return None, None

        def status_matches(record: Record) -> bool:
            status = record.get(name) or {}
            return lowered in (str(status.get("name", "")).lower(), str(status.get("value")))

        return status_matches, None
    return (lambda record: str(record.get(name, "")).lower() == lowered), None


def _sort_param(params: Params, allowed: tuple[str, ...]) -> tuple[str, bool]:
    value = params.raw("sort")
    if value is None:
        return "Id", False
    # "+Field" arrives as " Field" when the client did not percent-encode the plus sign.
    descending = value.startswith("-")
    name = value.lstrip("+- ").strip()
    for candidate in allowed:
        if candidate.lower() == name.lower():
            return candidate, descending
    params.errors.setdefault("sort", []).append(
        f"Sorting by '{name}' is not supported. Available fields are: {', '.join(allowed)}."
    )
    return "Id", False


def list_endpoint(spec: ListSpec) -> Handler:
    async def endpoint(request: Request) -> Response:
        state: EmulatorState = request.app.state.emulator
        tenant_id = int(request.path_params["tenant"])
        params = Params(request)
        page, page_size, include_total = params.paging()
        ids = params.int_list("ids", limit=50)
        created_low = params.timestamp("createdOnOrAfter")
        created_high = params.timestamp("createdBefore")
        mod_low = params.timestamp("modifiedOnOrAfter")
        mod_high = params.timestamp("modifiedBefore")
        sort_field, descending = _sort_param(params, spec.sort_fields)
        active_mode = "true"
        if spec.active_param:
            raw_active = params.raw("active")
            if raw_active is not None:
                active_mode = raw_active.lower()
                if active_mode not in ("true", "false", "any"):
                    params._invalid("active", raw_active)
        checks: list[Callable[[Record], bool]] = []
        index_terms: dict[str, set[Any]] = {}
        for flt in spec.filters:
            check, index_values = _filter_check(flt, params)
            if check is not None:
                checks.append(check)
                if flt.indexed and index_values is not None:
                    index_terms[flt.field] = index_values
        if spec.require_modified_bound and mod_low is None and mod_high is None:
            params.errors.setdefault("modifiedOnOrAfter", []).append(
                "Either modifiedBefore or modifiedOnOrAfter parameter must be specified."
            )
        if params.errors:
            return validation_error(params.errors)

        if spec.hide_inactive or active_mode == "true":
            checks.append(lambda record: bool(record["active"]))
        elif active_mode == "false":
            checks.append(lambda record: not record["active"])
        if created_low is not None:
            checks.append(lambda record: record["createdOn"] >= created_low)
        if created_high is not None:
            checks.append(lambda record: record["createdOn"] < created_high)
        if mod_low is not None:
            checks.append(lambda record: record["modifiedOn"] >= mod_low)
        if mod_high is not None:
            checks.append(lambda record: record["modifiedOn"] < mod_high)

        with state.lock:
            if spec.parent_filter is not None and spec.parent_resource is not None:
                parent_id = int(request.path_params["id"])
                if state.store(tenant_id, spec.parent_resource).get(parent_id) is None:
                    return not_found(spec.parent_entity, parent_id)
                index_terms[spec.parent_filter] = {parent_id}
            store = state.store(tenant_id, spec.resource)
            records, has_more, total = store.select(
                ids=ids,
                index_terms=index_terms,
                mod_range=(mod_low, mod_high),
                predicate=_matcher(checks),
                sort_field=sort_field,
                descending=descending,
                page=page,
                page_size=page_size,
                include_total=include_total,
            )
            data = [spec.view(record) for record in records]
        return json_response(
            {
                "page": page,
                "pageSize": page_size,
                "hasMore": has_more,
                "totalCount": total,
                "data": data,
            }
        )

    return endpoint


def get_endpoint(resource: str, view: View, entity: str, hide_inactive: bool = False) -> Handler:
    async def endpoint(request: Request) -> Response:
        state: EmulatorState = request.app.state.emulator
        record_id = int(request.path_params["id"])
        with state.lock:
            record = state.store(int(request.path_params["tenant"]), resource).get(record_id)
            if record is None or (hide_inactive and not record["active"]):
                return not_found(entity, record_id)
            body = view(record)
        return json_response(body)

    return endpoint


# -- export endpoints ------------------------------------------------------------------------


def encode_continuation(key: int) -> str:
    """An opaque `continueFrom` token meaning "after this (modifiedOn, id)"."""
    modified, record_id = split_key(key) if key >= 0 else (-1, 0)
    raw = f"{_EXPORT_TOKEN_PREFIX}{modified}:{record_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_from(value: str) -> int:
    """The export position named by `from`: a token we issued, or a date (modifiedOn >= it).

    Raises ValueError for anything else.
    """
    padded = value + "=" * (-len(value) % 4)
    try:
        decoded = base64.urlsafe_b64decode(padded.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        decoded = ""
    if decoded.startswith(_EXPORT_TOKEN_PREFIX):
        modified_text, _, id_text = decoded[len(_EXPORT_TOKEN_PREFIX) :].partition(":")
        modified, record_id = int(modified_text), int(id_text)
        if modified < 0:
            return BEFORE_EVERYTHING
        return order_key(modified, record_id)
    return order_key(parse_timestamp(value), 0) - 1


def _export_params(params: Params) -> tuple[bool, int]:
    """An export call's ``includeRecentChanges`` and the position its ``from`` names (an invalid
    ``from`` is recorded in ``params.errors``)."""
    include_recent = params.boolean("includeRecentChanges") or False
    raw_from = params.raw("from")
    if raw_from is None:
        return include_recent, BEFORE_EVERYTHING
    try:
        return include_recent, decode_from(raw_from)
    except ValueError:
        params._invalid("from", raw_from)
        return include_recent, BEFORE_EVERYTHING


def export_endpoint(resource: str) -> Handler:
    """`{hasMore, continueFrom, data}` in `(modifiedOn, id)` order (crm-apis.md §1.5, §5.1).

    Inactive records are included with `active: false`. `continueFrom` is always a token, also
    when `hasMore` is false: it then yields only later changes. With `includeRecentChanges=true`
    the token points before the page's last record, so that record comes again on the next
    call: the vendor warns this mode repeats records and connectors must de-duplicate.
    """
    fields = TIMESTAMP_FIELDS[resource]
    drop = WIRE_DROP.get(resource, ())

    async def endpoint(request: Request) -> Response:
        state: EmulatorState = request.app.state.emulator
        params = Params(request)
        include_recent, position = _export_params(params)
        if params.errors:
            return validation_error(params.errors)
        with state.lock:
            tenant_id = int(request.path_params["tenant"])
            store = state.store(tenant_id, resource)
            records, has_more = store.export_page(position, state.export_page_size)
            data = [to_wire(resource, record, drop, fields) for record in records]
            if resource == "invoices":
                _inline_invoice_items(state, tenant_id, data)
        if records:
            last = records[-2] if include_recent and len(records) >= 2 else records[-1]
            position = order_key(last["modifiedOn"], last["id"])
        return json_response(
            {"hasMore": has_more, "continueFrom": encode_continuation(position), "data": data}
        )

    return endpoint


async def export_job_notes(request: Request) -> Response:
    """``GET /jpm/v2/tenant/{tenant}/export/job-notes`` (tenant-jpm-v2): every job note, deleted
    ones with ``active: false``, in ``(modifiedOn, id)`` order with the same ``from`` and
    ``continueFrom`` as the record exports."""
    state: EmulatorState = request.app.state.emulator
    params = Params(request)
    include_recent, position = _export_params(params)
    if params.errors:
        return validation_error(params.errors)
    notes, has_more = state.job_notes_after(
        int(request.path_params["tenant"]), position, state.export_page_size
    )
    if notes:
        last = notes[-2] if include_recent and len(notes) >= 2 else notes[-1]
        position = order_key(last.modified_ms, last.id)
    return json_response(
        {
            "hasMore": has_more,
            "continueFrom": encode_continuation(position),
            "data": [note.export_wire() for note in notes],
        }
    )


_INLINE_ITEM_DROP = ("active", "invoiceId")


def _inline_invoice_items(state: EmulatorState, tenant_id: int, invoices: list[Record]) -> None:
    """The invoice export carries each invoice's live items inline (``InvoiceItemResponse``,
    the item export's shape without ``active``/``invoiceId``), as tenant-accounting-v2 shows."""
    store = state.store(tenant_id, "invoice_items")
    fields = TIMESTAMP_FIELDS["invoice_items"]
    for invoice in invoices:
        ids = sorted(store.ids_where("invoiceId", (invoice["id"],)))
        invoice["items"] = [
            to_wire("invoice_items", store.by_id[i], _INLINE_ITEM_DROP, fields)
            for i in ids
            if store.by_id[i]["active"]
        ]


# -- notes -----------------------------------------------------------------------------------


_NOTE_PARENTS = {
    "job": ("jobs", "Job"),
    "customer": ("customers", "Customer"),
    "location": ("locations", "Location"),
}


def _note_parent(state: EmulatorState, tenant_id: int, kind: str, parent_id: int) -> Record | None:
    resource = _NOTE_PARENTS[kind][0]
    record = state.store(tenant_id, resource).get(parent_id)
    if record is None or (kind == "job" and not record["active"]):
        return None
    return record


def notes_list_endpoint(kind: str) -> Handler:
    async def endpoint(request: Request) -> Response:
        state: EmulatorState = request.app.state.emulator
        tenant_id = int(request.path_params["tenant"])
        parent_id = int(request.path_params["id"])
        params = Params(request)
        page, page_size, include_total = params.paging()
        bounds = (
            params.timestamp("createdOnOrAfter"),
            params.timestamp("createdBefore"),
            params.timestamp("modifiedOnOrAfter"),
            params.timestamp("modifiedBefore"),
        )
        if params.errors:
            return validation_error(params.errors)
        with state.lock:
            if _note_parent(state, tenant_id, kind, parent_id) is None:
                return not_found(_NOTE_PARENTS[kind][1], parent_id)
            notes = [
                note
                for note in state.notes_of(tenant_id, kind, parent_id)
                if (bounds[0] is None or note.created_ms >= bounds[0])
                and (bounds[1] is None or note.created_ms < bounds[1])
                and (bounds[2] is None or note.modified_ms >= bounds[2])
                and (bounds[3] is None or note.modified_ms < bounds[3])
            ]
        offset = (page - 1) * page_size
        chunk = notes[offset : offset + page_size]
        return json_response(
            {
                "page": page,
                "pageSize": page_size,
                "hasMore": offset + page_size < len(notes),
                "totalCount": len(notes) if include_total else None,
                "data": [note.wire() for note in chunk],
            }
        )

    return endpoint


def notes_create_endpoint(kind: str) -> Handler:
    """POST a note: body `{text*, pinToTop?}` (+ `addToLocations` / `addToCustomer` in CRM).

    [I] A note does not change its parent's `modifiedOn` (the vendor does not say it does), so
    pushing notes does not make the product re-sync the record; note lists are oldest first.
    """

    async def endpoint(request: Request) -> Response:
        state: EmulatorState = request.app.state.emulator
        tenant_id = int(request.path_params["tenant"])
        parent_id = int(request.path_params["id"])
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return validation_error({"": ["A non-empty request body is required."]})
        if not isinstance(body, dict):
            return validation_error({"": ["The request body must be a JSON object."]})
        errors: dict[str, list[str]] = {}
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            errors["text"] = ["The Text field is required."]
        for flag in ("pinToTop", "addToLocations", "addToCustomer"):
            if body.get(flag) is not None and not isinstance(body[flag], bool):
                errors[flag] = [f"The value '{body[flag]}' is not valid."]
        if errors:
            return validation_error(errors)
        assert isinstance(text, str)
        pin = bool(body.get("pinToTop"))
        with state.lock:
            parent = _note_parent(state, tenant_id, kind, parent_id)
            if parent is None:
                return not_found(_NOTE_PARENTS[kind][1], parent_id)
            note = state.add_note(tenant_id, kind, parent_id, text, pin)
            if kind == "customer" and body.get("addToLocations"):
                locations = state.store(tenant_id, "locations")
                for location_id in sorted(locations.ids_where("customerId", [parent_id])):
                    if locations.by_id[location_id]["active"]:
                        state.add_note(tenant_id, "location", location_id, text, pin)
            if kind == "location" and body.get("addToCustomer"):
                state.add_note(tenant_id, "customer", parent["customerId"], text, pin)
        return json_response(note.wire())

    return endpoint


# -- token endpoint --------------------------------------------------------------------------


async def token_endpoint(request: Request) -> Response:
    """OAuth2 client credentials (crm-apis.md §1.2): a new opaque token on every call."""
    state: EmulatorState = request.app.state.emulator
    content_type = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" not in content_type:
        return json_response({"error": "invalid_request"}, 400)
    form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
    values = {key: items[-1] for key, items in form.items()}
    client_id = values.get("client_id", "")
    client_secret = values.get("client_secret", "")
    authorization = request.headers.get("authorization", "")
    if not client_id and authorization.lower().startswith("basic "):
        try:
            pair = base64.b64decode(authorization[6:].strip()).decode()
            client_id, _, client_secret = pair.partition(":")
            client_id = urllib.parse.unquote_plus(client_id)
            client_secret = urllib.parse.unquote_plus(client_secret)
        except ValueError:
            pass
    issued = state.issue_token(client_id, client_secret)
    if issued is None:
        return json_response({"error": "invalid_client"}, 400)
    if values.get("grant_type") != "client_credentials":
        return json_response({"error": "unsupported_grant_type"}, 400)
    token, _ = issued
    return json_response(
        {
            "access_token": token,
            "expires_in": state.token_ttl_seconds,
            "token_type": "Bearer",
            "scope": _SCOPE,
        }
    )


# -- control API -----------------------------------------------------------------------------


def _control_error(message: str, status: int = 400) -> Response:
    return json_response({"error": message}, status)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    return orjson.loads(raw) if raw.strip() else {}


async def control_stats(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    return json_response(state.stats())


async def control_tenants(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    if request.method == "POST":
        try:
            state.add_tenant(TenantSpec(**(await _json_body(request))))
        except (TypeError, ValueError, orjson.JSONDecodeError) as exc:
            return _control_error(f"bad tenant: {exc}")
    with state.lock:
        return json_response(
            [
                {
                    "tenant_id": tenant.spec.tenant_id,
                    "client_id": tenant.spec.client_id,
                    "app_key": tenant.spec.app_key,
                    "counts": {name: len(store) for name, store in tenant.stores.items()},
                }
                for tenant in state.tenants.values()
            ]
        )


async def control_records(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    tenant_id = int(request.path_params["tenant"])
    resource = request.path_params["resource"]
    try:
        if request.method == "POST":
            body = await _json_body(request)
            if not isinstance(body, dict):
                return _control_error("the body must be one record object")
            return json_response(state.upsert_record(tenant_id, resource, body))
        return json_response(state.get_records(tenant_id, resource))
    except KeyError as exc:
        return _control_error(str(exc), 404)
    except (TypeError, ValueError, orjson.JSONDecodeError) as exc:
        return _control_error(str(exc))


async def control_notes(request: Request) -> Response:
    """GET: a parent's live notes (API shape). POST ``{text, createdById?, pinToTop?,
    createdOn?}``: a CSR adds a note in ServiceTitan (``createdOn`` back-dates it); the answer
    carries the note's ``id`` for every kind, so tests can edit or delete a job note too."""
    state: EmulatorState = request.app.state.emulator
    tenant_id = int(request.path_params["tenant"])
    kind, parent_id = request.path_params["kind"], int(request.path_params["parent_id"])
    try:
        if request.method == "POST":
            body = await _json_body(request)
            if not isinstance(body, dict) or not isinstance(body.get("text"), str):
                return _control_error("the body must be an object with a text")
            note = state.add_note(
                tenant_id,
                kind,
                parent_id,
                body["text"],
                bool(body.get("pinToTop")),
                created_by_id=int(body.get("createdById") or API_USER_ID),
                created_on=body.get("createdOn"),
            )
            return json_response({"id": note.id, **note.wire()})
        notes = state.get_notes(tenant_id, kind, parent_id)
    except KeyError as exc:
        return _control_error(str(exc), 404)
    except (TypeError, ValueError, orjson.JSONDecodeError) as exc:
        return _control_error(str(exc))
    return json_response(notes)


async def control_note(request: Request) -> Response:
    """PATCH ``{text}``: a CSR edits the note; DELETE: a CSR deletes it."""
    state: EmulatorState = request.app.state.emulator
    where = (
        int(request.path_params["tenant"]),
        request.path_params["kind"],
        int(request.path_params["parent_id"]),
        int(request.path_params["note_id"]),
    )
    try:
        if request.method == "DELETE":
            note = state.delete_note(*where)
        else:
            body = await _json_body(request)
            if not isinstance(body, dict) or not isinstance(body.get("text"), str):
                return _control_error("the body must be an object with a text")
            note = state.edit_note(*where, body["text"])
    except KeyError as exc:
        return _control_error(str(exc), 404)
    except (TypeError, ValueError, orjson.JSONDecodeError) as exc:
        return _control_error(str(exc))
    return json_response({"id": note.id, "active": note.active, **note.wire()})


async def control_reset(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    state.reset()
    return json_response({"reset": True})


async def control_expire_tokens(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    state.expire_all_tokens()
    return json_response({"expired": True})


# -- gateway hooks (sandbox.kit.EmulatorMiddleware) --------------------------------------------


def _on_request(state: EmulatorState, scope: Scope, body: bytes, entry: RequestRecord) -> None:
    headers = Headers(scope=scope)
    is_token_call = entry.path == TOKEN_PATH
    entry.app_key = None if is_token_call else _app_key(headers, entry.query)
    entry.body = _loggable_body(body, is_token_call)
    match = _API_PATH.match(entry.path)
    if match is not None and match.group(2).isdigit():
        entry.tenant_id = int(match.group(2))
    state.count_request(entry)


def _admit(state: EmulatorState, scope: Scope, entry: RequestRecord) -> Response | None:
    """The gateway's checks on an API call, in the vendor's order; None lets the call through."""
    match = _API_PATH.match(entry.path)
    if match is None:
        return None
    app_key, tenant = entry.app_key, match.group(2)
    if not app_key:
        return gateway_error(
            401,
            "Access denied due to missing subscription key. Make sure to include "
            "subscription key when making requests to an API.",
        )
    if not state.is_app_key(app_key):
        return gateway_error(
            401,
            "Access denied due to invalid subscription key. Make sure to provide a valid "
            "key for an active subscription.",
        )
    wait = state.take_rate_token(app_key)
    if wait is not None:
        return rate_limited(max(1, math.ceil(wait)))
    token = bearer_token(Headers(scope=scope).get("authorization"), bare=True)
    info = state.token_info(token) if token else None
    challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    if info is None:
        return gateway_error(401, "Unauthorized. Access token is missing or invalid.", challenge)
    if info.app_key != app_key:
        return gateway_error(
            401,
            "Unauthorized. The access token was not issued for this application.",
            challenge,
        )
    if not tenant.isdigit() or int(tenant) != info.tenant_id:
        return gateway_error(403, f"The access token does not grant access to tenant {tenant}.")
    return None


def _app_key(headers: Headers, raw_query: str) -> str | None:
    value = headers.get("st-app-key")
    if value:
        return value.strip()
    for key, item in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
        if key.lower() == "servicetitanapplicationkey" and item.strip():
            return item.strip()
    return None


def _loggable_body(body: bytes, is_token_call: bool) -> Any:
    if not body:
        return None
    if is_token_call:
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        # Never keep the client secret, not even in an emulator's log.
        return {key: values[-1] for key, values in form.items() if key != "client_secret"}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")


def _fault_answer(fault: Fault, scope: Scope) -> Response:
    status = fault.status or 500
    if status == 429:
        return rate_limited(int(fault.retry_after if fault.retry_after is not None else 1))
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    if status in (400, 404):
        return api_error(status, "Injected fault")
    return gateway_error(status, "Injected fault: the service is unavailable.", headers)


_DROPPED_PAGE = b'{"page":1,"pageSize":50,"hasMore":true,"data":[{"id":1}]}'


# -- routes ----------------------------------------------------------------------------------


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    message = "Resource not found" if status == 404 else "Method not allowed"
    return gateway_error(status, message)


def _api_routes() -> list[BaseRoute]:
    jpm = "/jpm/v2/tenant/{tenant:int}"
    crm = "/crm/v2/tenant/{tenant:int}"
    mem = "/memberships/v2/tenant/{tenant:int}"
    sales = "/sales/v2/tenant/{tenant:int}"

    job_view = _make_view("jobs", ("active",))
    appointment_view = _make_view("appointments", ("active",))
    customer_view = _make_view("customers")
    location_view = _make_view("locations")
    membership_view = _make_view("memberships")
    estimate_view = _make_view("estimates")
    contact_view = _make_view("customer_contacts", ("active", "customerId"))
    modified_contact_view = _make_view("customer_contacts", ("active",))

    jobs = ListSpec(
        "jobs",
        job_view,
        filters=(
            Filter("customerId", "customerId", indexed=True),
            Filter("locationId", "locationId", indexed=True),
            Filter("number", "jobNumber", "str"),
            Filter("projectId", "projectId"),
            Filter("jobStatus", "jobStatus", "str"),
            Filter("priority", "priority", "str"),
            Filter("jobTypeId", "jobTypeId"),
            Filter("campaignId", "campaignId"),
            Filter("businessUnitId", "businessUnitId"),
            Filter("invoiceId", "invoiceId"),
            Filter("soldById", "soldById"),
            Filter("completedOnOrAfter", "completedOn", "after"),
            Filter("completedBefore", "completedOn", "before"),
        ),
        sort_fields=("Id", "ModifiedOn", "CreatedOn", "Priority"),
        hide_inactive=True,
    )
    appointments = ListSpec(
        "appointments",
        appointment_view,
        filters=(
            Filter("jobId", "jobId", indexed=True),
            Filter("customerId", "customerId", indexed=True),
            Filter("number", "appointmentNumber", "str"),
            Filter("status", "status", "str"),
            Filter("unused", "unused", "bool"),
            Filter("startsOnOrAfter", "start", "after"),
            Filter("startsBefore", "start", "before"),
        ),
        hide_inactive=True,
    )
    customers = ListSpec("customers", customer_view, active_param=True)
    locations = ListSpec(
        "locations",
        location_view,
        filters=(Filter("customerId", "customerId", indexed=True),),
        active_param=True,
    )
    customer_contacts = ListSpec(
        "customer_contacts",
        contact_view,
        sort_fields=("Id",),
        hide_inactive=True,
        parent_filter="customerId",
        parent_resource="customers",
        parent_entity="Customer",
    )
    modified_contacts = ListSpec(
        "customer_contacts",
        modified_contact_view,
        filters=(Filter("customerIds", "customerId", "ints", indexed=True),),
        sort_fields=("Id",),
        hide_inactive=True,
        require_modified_bound=True,
    )
    memberships = ListSpec(
        "memberships",
        membership_view,
        filters=(
            Filter("customerIds", "customerId", "ints", indexed=True),
            Filter("status", "status", "str"),
            Filter("billingFrequency", "billingFrequency", "str"),
            Filter("duration", "duration"),
        ),
        active_param=True,
    )
    estimates = ListSpec(
        "estimates",
        estimate_view,
        filters=(
            Filter("jobId", "jobId", indexed=True),
            Filter("locationId", "locationId", indexed=True),
            Filter("projectId", "projectId"),
            Filter("jobNumber", "jobNumber", "str"),
            Filter("status", "status", "estimate_status"),
            Filter("soldById", "soldBy"),
            Filter("soldAfter", "soldOn", "after"),
            Filter("soldBefore", "soldOn", "before"),
        ),
        active_param=True,
    )

    dispatch = "/dispatch/v2/tenant/{tenant:int}"
    settings = "/settings/v2/tenant/{tenant:int}"
    accounting = "/accounting/v2/tenant/{tenant:int}"
    marketing = "/marketing/v2/tenant/{tenant:int}"
    # Reference data served as list endpoints only (the vendor has no export for these):
    # page/pageSize, modifiedOnOrAfter/modifiedBefore, active=True|Any|False.
    reference_lists = {
        f"{dispatch}/zones": "zones",
        f"{marketing}/campaigns": "campaigns",
        f"{jpm}/job-types": "job_types",
        f"{jpm}/job-cancel-reasons": "cancel_reasons",
    }
    exports = {
        f"{dispatch}/export/appointment-assignments": "appointment_assignments",
        f"{jpm}/export/job-canceled-logs": "job_canceled_logs",
        f"{settings}/export/employees": "employees",
        f"{settings}/export/technicians": "technicians",
        f"{settings}/export/business-units": "business_units",
        f"{settings}/export/tag-types": "tag_types",
        f"{accounting}/export/invoices": "invoices",
        f"{accounting}/export/invoice-items": "invoice_items",
        f"{mem}/export/membership-types": "membership_types",
        f"{mem}/export/recurring-services": "recurring_services",
        f"{mem}/export/recurring-service-events": "recurring_service_events",
    }
    selector_routes: list[BaseRoute] = [
        Route(path, list_endpoint(ListSpec(name, _make_view(name), active_param=True)))
        for path, name in reference_lists.items()
    ]
    selector_routes += [Route(path, export_endpoint(name)) for path, name in exports.items()]

    return [
        *selector_routes,
        # Job Planning and Management
        Route(f"{jpm}/jobs", list_endpoint(jobs)),
        Route(f"{jpm}/jobs/{{id:int}}", get_endpoint("jobs", job_view, "Job", True)),
        Route(f"{jpm}/jobs/{{id:int}}/notes", notes_list_endpoint("job"), methods=["GET"]),
        Route(f"{jpm}/jobs/{{id:int}}/notes", notes_create_endpoint("job"), methods=["POST"]),
        Route(f"{jpm}/appointments", list_endpoint(appointments)),
        Route(
            f"{jpm}/appointments/{{id:int}}",
            get_endpoint("appointments", appointment_view, "Appointment", True),
        ),
        Route(f"{jpm}/export/jobs", export_endpoint("jobs")),
        Route(f"{jpm}/export/appointments", export_endpoint("appointments")),
        Route(f"{jpm}/export/job-notes", export_job_notes),
        # CRM
        Route(f"{crm}/customers", list_endpoint(customers)),
        Route(f"{crm}/customers/contacts", list_endpoint(modified_contacts)),
        Route(f"{crm}/customers/{{id:int}}", get_endpoint("customers", customer_view, "Customer")),
        Route(f"{crm}/customers/{{id:int}}/contacts", list_endpoint(customer_contacts)),
        Route(
            f"{crm}/customers/{{id:int}}/notes", notes_list_endpoint("customer"), methods=["GET"]
        ),
        Route(
            f"{crm}/customers/{{id:int}}/notes",
            notes_create_endpoint("customer"),
            methods=["POST"],
        ),
        Route(f"{crm}/locations", list_endpoint(locations)),
        Route(f"{crm}/locations/{{id:int}}", get_endpoint("locations", location_view, "Location")),
        Route(
            f"{crm}/locations/{{id:int}}/notes", notes_list_endpoint("location"), methods=["GET"]
        ),
        Route(
            f"{crm}/locations/{{id:int}}/notes",
            notes_create_endpoint("location"),
            methods=["POST"],
        ),
        Route(f"{crm}/export/customers", export_endpoint("customers")),
        Route(f"{crm}/export/customers/contacts", export_endpoint("customer_contacts")),
        Route(f"{crm}/export/locations", export_endpoint("locations")),
        # Memberships
        Route(f"{mem}/memberships", list_endpoint(memberships)),
        Route(
            f"{mem}/memberships/{{id:int}}",
            get_endpoint("memberships", membership_view, "Membership"),
        ),
        Route(f"{mem}/export/memberships", export_endpoint("memberships")),
        # Sales & Estimates (note the vendor's irregular export path)
        Route(f"{sales}/estimates", list_endpoint(estimates)),
        Route(f"{sales}/estimates/export", export_endpoint("estimates")),
        Route(
            f"{sales}/estimates/{{id:int}}", get_endpoint("estimates", estimate_view, "Estimate")
        ),
    ]


def _control_routes(state: EmulatorState) -> list[BaseRoute]:
    return [
        *control_routes(state),
        Route("/__emulator/stats", control_stats, methods=["GET"]),
        Route("/__emulator/tenants", control_tenants, methods=["GET", "POST"]),
        Route(
            "/__emulator/tenants/{tenant:int}/records/{resource}",
            control_records,
            methods=["GET", "POST"],
        ),
        Route(
            "/__emulator/tenants/{tenant:int}/notes/{kind}/{parent_id:int}",
            control_notes,
            methods=["GET", "POST"],
        ),
        Route(
            "/__emulator/tenants/{tenant:int}/notes/{kind}/{parent_id:int}/{note_id:int}",
            control_note,
            methods=["PATCH", "DELETE"],
        ),
        Route("/__emulator/tokens/expire", control_expire_tokens, methods=["POST"]),
        Route("/__emulator/reset", control_reset, methods=["POST"]),
    ]


def create_app(state: EmulatorState) -> Starlette:
    """The emulator app for `state`; serve it with uvicorn or call it in-process (ASGI)."""
    app = Starlette(
        routes=[
            Route(TOKEN_PATH, token_endpoint, methods=["POST"]),
            *_api_routes(),
            *_control_routes(state),
        ],
        middleware=[
            Middleware(
                EmulatorMiddleware,
                core=state,
                answer=_fault_answer,
                expire=state.expire_all_tokens,
                drop=drop_mid_body(_DROPPED_PAGE),
                entry_type=RequestRecord,
                on_request=lambda scope, body, entry: _on_request(state, scope, body, entry),
                on_response=lambda scope, entry: state.count_answer(entry),
                admit=lambda scope, entry: _admit(state, scope, entry),
            )
        ],
        exception_handlers={404: _not_found, 405: _not_found},
    )
    app.state.emulator = state
    return app
