"""State of the emulated Salesforce orgs: records, sessions, limits and query cursors, plus the
kit's clock, faults and request log.

Everything the HTTP layer (:mod:`sandbox.salesforce.app`) does goes through
:class:`SalesforceEmulatorState`, and so can the tests: its public methods are also served as
JSON under ``/__emulator/...``. One re-entrant lock guards it, because tests call it from their
own thread while uvicorn serves from another.

Salesforce behaviour modelled here (crm-apis.md §3.2-3.3, §5.3):

* OAuth 2.0 refresh-token and username-password grants; the token response has no
  ``expires_in`` and its ``signature`` is Salesforce's (base64 HMAC-SHA256 of ``id + issued_at``
  keyed by the consumer secret). Sessions end after ``OrgSpec.session_timeout_s`` of *inactivity*
  (default 2 h, org setting) on the emulator clock, or when forced.
* The daily ``TotalRequests`` allocation: each authenticated API call counts; at the limit the
  answer is ``403 REQUEST_LIMIT_EXCEEDED`` (never 429). The counter window is 24 h of emulator
  clock, a simplification of Salesforce's rolling 24 h.
* Query cursors: a query whose result exceeds the batch size keeps its result (record list,
  evaluated once) under a query locator; ``nextRecordsUrl`` pages through it. At most
  ``max_open_cursors`` (10, Salesforce's per-user limit) live per org, oldest released first,
  and a cursor idle for 15 minutes expires: both then answer ``INVALID_QUERY_LOCATOR``.
* Datetimes are stored to the second, as Salesforce stores them, so same-second
  ``SystemModstamp`` ties are normal and a cursor must break them with ``Id``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sandbox.kit import (
    ANSWER,
    DROP,
    EXPIRE,
    HOLD,
    LATENCY,
    Clock,
    EmulatorCore,
    FaultBook,
    LoggedRequest,
    RequestLog,
    TokenStore,
    bearer_token,
)
from sandbox.salesforce.data import Record, format_datetime, generate_org_records
from sandbox.salesforce.schema import (
    DEFAULT_NAMESPACE,
    NUMBER_TYPES,
    TEXT_TYPES,
    FieldDef,
    IdFactory,
    ObjectDef,
    Schema,
    build_schema,
    normalize_id,
)
from sandbox.salesforce.soql import CompiledQuery, SoqlError, compile_query, parse

__all__ = [
    "FAULT_KINDS",
    "OrgSpec",
    "RequestRecord",
    "SalesforceEmulatorState",
    "SfApiError",
]

_KINDS = {
    "status": ANSWER,
    "latency": LATENCY,
    "drop_connection": DROP,
    "expire_session": EXPIRE,
    "request_limit_exceeded": ANSWER,
    "timeout_after_store": HOLD,
}
FAULT_KINDS = tuple(_KINDS)
_CREATE_RE = re.compile(r"^/services/data/v\d+\.0/sobjects/[^/]+/?$")
_LOCATOR_TTL_S = 15 * 60
_DAY_S = 86_400
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DT_INPUT_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"
)


@dataclass(frozen=True)
class OrgSpec:
    """One emulated org and the credentials of its connected app and API user.

    ``client_id``/``client_secret`` are the connected app's consumer key and secret (one
    connected app may serve several orgs). ``password`` and ``security_token`` are sent
    concatenated in the password grant. ``refresh_token`` is what the org's OAuth consent issued.
    """

    org_id: str
    client_id: str
    client_secret: str
    username: str
    password: str
    security_token: str = ""
    refresh_token: str = ""
    opportunities: int = 50
    seed: int = 1
    daily_limit: int = 15_000
    namespace: str = DEFAULT_NAMESPACE
    session_timeout_s: float = 7_200.0
    rotate_refresh_token: bool = False
    schema: Schema | None = field(default=None, compare=False, repr=False)


class SfApiError(Exception):
    """A Salesforce REST error: ``status`` and the body's ``[{message, errorCode, fields?}]``."""

    def __init__(
        self, status: int, error_code: str, message: str, fields: Sequence[str] | None = None
    ) -> None:
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = list(fields) if fields is not None else None

    def body(self) -> list[dict[str, Any]]:
        item: dict[str, Any] = {"message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            item["fields"] = self.fields
        return [item]


@dataclass
class RequestRecord(LoggedRequest):
    """One request as received; `body` only for token grants (the grant type) and creates."""

    org_id: str | None = None
    soql: str | None = None
    created_id: str | None = None

    OPTIONAL: ClassVar[tuple[str, ...]] = ("body", "soql", "created_id")


@dataclass
class _Locator:
    id: str
    compiled: CompiledQuery
    rows: list[Record]
    batch_size: int
    last_used: float


class _Org:
    """Records and runtime counters of one org."""

    def __init__(self, spec: OrgSpec, schema: Schema, anchor_epoch: int) -> None:
        self.spec = spec
        self.schema = schema
        self.visible = schema
        self.api_enabled = True
        self.unreadable: frozenset[str] = frozenset()
        self.ids = IdFactory(spec.org_id)
        self.tables: dict[str, dict[str, Record]] = {o.name: {} for o in schema.objects.values()}
        self.by_id: dict[str, tuple[ObjectDef, Record]] = {}
        self.auto_numbers: dict[str, int] = {}
        generated, self.api_user_id = generate_org_records(
            namespace=spec.namespace,
            opportunities=spec.opportunities,
            seed=spec.seed,
            anchor_epoch=anchor_epoch,
            ids=self.ids,
            api_username=spec.username,
        )
        for name, records in generated.items():
            obj = schema.objects[name]
            table = self.tables[name]
            for rec in records:
                table[rec["Id"]] = rec
                self.by_id[rec["Id"]] = (obj, rec)
            if obj.name_kind == "auto":
                self.auto_numbers[name] = len(records)
        self.refresh_tokens: set[str] = {spec.refresh_token} if spec.refresh_token else set()
        self.api_used = 0
        self.api_window_start = float(anchor_epoch)
        self.locators: OrderedDict[str, _Locator] = OrderedDict()

    def lookup(self, record_id: str) -> tuple[ObjectDef, Record] | None:
        return self.by_id.get(record_id)


class SalesforceEmulatorState(EmulatorCore[RequestRecord]):
    """All orgs of one emulator instance, plus its clock, faults and request log.

    ``start_time`` anchors both the emulator clock and the generated data (default: now, to
    the second); the same specs and ``start_time`` give identical records. The clock then
    runs with wall time, plus whatever :meth:`advance_clock` added.

    Fault kinds (:meth:`arm_fault`): ``status`` (default 503; 429 only as a generic robustness
    test, Salesforce itself answers limits with 403), ``latency`` (default 1 s),
    ``drop_connection`` (close the connection without an answer), ``expire_session`` (end every
    session, then handle the request), ``request_limit_exceeded`` (403 REQUEST_LIMIT_EXCEEDED),
    ``timeout_after_store`` (only on creates: the record is stored, then the answer is held
    ``latency_ms``, default 60 s, until the client gives up or :meth:`release_held_requests`).
    Unlike the other emulators, ``route="*"`` includes the token endpoint.
    """

    def __init__(
        self,
        specs: Sequence[OrgSpec],
        *,
        batch_size: int = 2000,
        start_time: datetime | None = None,
        max_open_cursors: int = 10,
        fault_seed: int = 0,
        freeze_clock: bool = False,
    ) -> None:
        if not 1 <= batch_size <= 2000:
            raise ValueError("batch_size must be within 1..2000 (Salesforce's maximum)")
        self._lock = threading.RLock()
        start = start_time or datetime.now(UTC)
        if start.tzinfo is None:
            raise ValueError("start_time must be timezone-aware")
        self._start_epoch = int(start.timestamp())
        self.clock = Clock(datetime.fromtimestamp(self._start_epoch, UTC), frozen=freeze_clock)
        self.tokens: TokenStore[tuple[str, str]] = TokenStore(self.clock)
        self.fault_book = FaultBook(
            _KINDS,
            seed=fault_seed,
            stores=lambda method, path: method == "POST" and bool(_CREATE_RE.match(path)),
            default_status=503,
            default_latency_ms=1000,
            default_hold_ms=60_000,
            retry_after_429=None,
        )
        self.request_log: RequestLog[RequestRecord] = RequestLog(None)
        self.batch_size = batch_size
        self.max_open_cursors = max_open_cursors
        self._orgs: dict[str, _Org] = {}
        for spec in specs:
            if spec.org_id in self._orgs:
                raise ValueError(f"duplicate org_id {spec.org_id}")
            schema = spec.schema or build_schema(spec.namespace)
            self._orgs[spec.org_id] = _Org(spec, schema, self._start_epoch)
        self._created: dict[str, int] = {}

    # -- clock ---------------------------------------------------------------------------------

    def now(self) -> datetime:
        """To the second, as Salesforce stores datetimes."""
        return super().now().replace(microsecond=0)

    def timestamp(self) -> str:
        return self.now().isoformat().replace("+00:00", "Z")

    # -- orgs and records ----------------------------------------------------------------------

    @property
    def org_ids(self) -> list[str]:
        return list(self._orgs)

    def _org(self, org_id: str) -> _Org:
        try:
            return self._orgs[org_id]
        except KeyError:
            raise KeyError(f"unknown org {org_id!r}") from None

    def schema(self, org_id: str) -> Schema:
        return self._org(org_id).schema

    def api_user_id(self, org_id: str) -> str:
        return self._org(org_id).api_user_id

    def get_records(self, org_id: str, sobject: str) -> list[dict[str, Any]]:
        """Every record of ``sobject`` (deleted ones included), all fields, in creation order."""
        with self._lock:
            org = self._org(org_id)
            obj = self._object(org, sobject)
            return [self._full(obj, r) for r in org.tables[obj.name].values()]

    def get_record(self, org_id: str, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            rid = normalize_id(record_id)
            hit = self._org(org_id).by_id.get(rid) if rid else None
            return None if hit is None else self._full(hit[0], hit[1])

    def upsert(self, org_id: str, sobject: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Create or update a record behind the API's back, as a CRM user would.

        With an existing ``Id`` the given fields are changed; otherwise a record is created
        (with that ``Id`` if one is given). Either way ``LastModifiedDate`` and
        ``SystemModstamp`` move to the emulator clock's now unless the caller sets them, and
        no validation beyond field names happens: tests may build any state they need.
        """
        with self._lock:
            org = self._org(org_id)
            obj = self._object(org, sobject)
            values: dict[str, Any] = {}
            for key, value in record.items():
                f = obj.field(key)
                if f is None:
                    raise ValueError(f"no field {key!r} on {obj.name}")
                values[f.name] = _plain_value(f, value)
            now = format_datetime(self.now_epoch())
            rid = normalize_id(values.get("Id")) if values.get("Id") else None
            if values.get("Id") and rid is None:
                raise ValueError(f"malformed id {values['Id']!r}")
            existing = org.tables[obj.name].get(rid) if rid else None
            if existing is None and rid is not None and rid in org.by_id:
                raise ValueError(f"{rid} is not a {obj.name} id")
            if existing is not None:
                existing.update(values)
                if "LastModifiedDate" not in values:
                    existing["LastModifiedDate"] = now
                if "SystemModstamp" not in values:
                    existing["SystemModstamp"] = values.get("LastModifiedDate", now)
                self._computed(org, obj, existing)
                return self._full(obj, existing)
            if rid is None:
                rid = org.ids.new(obj.key_prefix)
            elif rid[:3] != obj.key_prefix:
                raise ValueError(f"{rid} does not have {obj.name}'s key prefix {obj.key_prefix}")
            rec: Record = {
                "Id": rid,
                "IsDeleted": False,
                "CreatedDate": now,
                "CreatedById": org.api_user_id,
                "LastModifiedDate": now,
                "LastModifiedById": org.api_user_id,
                "SystemModstamp": now,
            }
            for f in obj.fields.values():
                if f.default is not None and f.createable:
                    rec[f.name] = org.api_user_id if f.default == "$user" else f.default
            rec.update({k: v for k, v in values.items() if k != "Id"})
            if "SystemModstamp" not in values and "LastModifiedDate" in values:
                rec["SystemModstamp"] = values["LastModifiedDate"]
            self._insert(org, obj, rec)
            return self._full(obj, rec)

    def delete(self, org_id: str, sobject: str, record_id: str) -> dict[str, Any]:
        """Delete a record as a CRM user would: Salesforce keeps it in the recycle bin with
        ``IsDeleted = true`` (``queryAll`` returns it, ``query`` does not) and moves its
        ``SystemModstamp``, not its ``LastModifiedDate``."""
        with self._lock:
            org = self._org(org_id)
            obj = self._object(org, sobject)
            rec = org.tables[obj.name].get(normalize_id(record_id) or "")
            if rec is None:
                raise KeyError(f"no {obj.name} {record_id}")
            rec["IsDeleted"] = True
            rec["SystemModstamp"] = format_datetime(self.now_epoch())
            return self._full(obj, rec)

    def set_api_usage(self, org_id: str, used: int) -> None:
        """Set the org's daily API request counter (e.g. to just below the limit)."""
        with self._lock:
            org = self._org(org_id)
            org.api_used = used
            org.api_window_start = self.now_epoch()

    def api_usage(self, org_id: str) -> tuple[int, int]:
        with self._lock:
            org = self._org(org_id)
            self._roll_window(org)
            return org.api_used, org.spec.daily_limit

    def expire_sessions(self, org_id: str | None = None) -> int:
        """Invalidate every session (of one org, or all); returns how many ended."""
        return self.tokens.expire_all(None if org_id is None else lambda grant: grant[0] == org_id)

    def revoke_refresh_tokens(self, org_id: str) -> None:
        """Revoke the org's refresh tokens (the customer disconnected the app)."""
        with self._lock:
            self._org(org_id).refresh_tokens.clear()

    # -- the integration user's permissions ----------------------------------------------------

    def set_permissions(
        self,
        org_id: str,
        *,
        api_enabled: bool | None = None,
        unreadable_objects: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Take permissions away from the org's API user, as an admin editing its profile would.

        ``api_enabled=False`` is a profile without the "API Enabled" system permission: the
        OAuth grant still issues a session, and every REST call is then refused with 403
        ``API_CURRENTLY_DISABLED`` "API is disabled for this User" (the code Salesforce returns
        for a user-level block; ``API_DISABLED_FOR_ORG`` is the org-edition one).
        ``unreadable_objects`` lists objects without Read for the user: Salesforce then behaves as
        if they did not exist for that user, so a query of one is 400 ``INVALID_TYPE``
        ("sObject type '…' is not supported"), its describe and record URLs 404 ``NOT_FOUND``,
        and describeGlobal leaves it out. Returns the permissions now in force.
        """
        with self._lock:
            org = self._org(org_id)
            if api_enabled is not None:
                org.api_enabled = bool(api_enabled)
            if unreadable_objects is not None:
                names = set()
                for name in unreadable_objects:
                    names.add(self._object(org, name).name)
                org.unreadable = frozenset(names)
                org.visible = (
                    Schema(o for o in org.schema.objects.values() if o.name not in names)
                    if names
                    else org.schema
                )
            return self.permissions(org_id)

    def permissions(self, org_id: str) -> dict[str, Any]:
        with self._lock:
            org = self._org(org_id)
            return {"api_enabled": org.api_enabled, "unreadable_objects": sorted(org.unreadable)}

    def check_api_access(self, org_id: str) -> None:
        """403 ``API_CURRENTLY_DISABLED`` when the API user's profile lacks "API Enabled"."""
        with self._lock:
            if not self._org(org_id).api_enabled:
                raise SfApiError(403, "API_CURRENTLY_DISABLED", "API is disabled for this User")

    # -- stats -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": len(self.request_log),
                "by_status": self.request_log.tally("status"),
                "faults_fired": sum(self.fault_book.fired.values()),
                "faults_armed": len(self.faults()),
                "created": dict(self._created),
                "sessions": len(self.tokens),
                "api_usage": {
                    oid: {"used": o.api_used, "limit": o.spec.daily_limit}
                    for oid, o in self._orgs.items()
                },
                "open_query_locators": sum(len(o.locators) for o in self._orgs.values()),
                "now": format_datetime(self.now_epoch()),
            }

    # -- OAuth ---------------------------------------------------------------------------------

    def issue_token(
        self, form: Mapping[str, str], base_url: str
    ) -> tuple[int, dict[str, Any], str | None]:
        """Answer ``POST /services/oauth2/token``: (status, JSON body, org id if known)."""
        with self._lock:
            grant = form.get("grant_type")
            client_id = form.get("client_id", "")
            secret = form.get("client_secret")
            if grant not in ("refresh_token", "password"):
                return 400, _oauth_error("unsupported_grant_type", "grant type not supported"), None
            candidates = [o for o in self._orgs.values() if o.spec.client_id == client_id]
            if not candidates:
                return 400, _oauth_error("invalid_client_id", "client identifier invalid"), None
            org: _Org | None
            if grant == "refresh_token":
                token = form.get("refresh_token", "")
                org = next((o for o in candidates if token and token in o.refresh_tokens), None)
                if org is None:
                    return 400, _oauth_error("invalid_grant", "expired access/refresh token"), None
                if secret is not None and secret != org.spec.client_secret:
                    return 400, _oauth_error("invalid_client", "invalid client credentials"), None
            else:
                if secret != candidates[0].spec.client_secret:
                    return 400, _oauth_error("invalid_client", "invalid client credentials"), None
                username = form.get("username", "")
                org = next((o for o in candidates if o.spec.username == username), None)
                if (
                    org is None
                    or form.get("password") != org.spec.password + org.spec.security_token
                ):
                    oid = org.spec.org_id if org else None
                    return 400, _oauth_error("invalid_grant", "authentication failure"), oid
            access = f"{org.spec.org_id[:15]}!AQ{secrets.token_urlsafe(72).replace('-', '.')}"
            now = self.now_epoch()
            session = (org.spec.org_id, org.api_user_id)
            self.tokens.issue(session, idle_s=org.spec.session_timeout_s, token=access)
            issued_at = str(int(now * 1000))
            identity = f"{base_url}/id/{org.spec.org_id}/{org.api_user_id}"
            signature = base64.b64encode(
                hmac.new(
                    org.spec.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
                ).digest()
            ).decode()
            body: dict[str, Any] = {"access_token": access}
            if grant == "refresh_token" and org.spec.rotate_refresh_token:
                new_refresh = f"5Aep861{secrets.token_urlsafe(60)}"
                org.refresh_tokens = {new_refresh}
                body["refresh_token"] = new_refresh
            body.update(
                {
                    "signature": signature,
                    "scope": "api refresh_token",
                    "instance_url": base_url,
                    "id": identity,
                    "token_type": "Bearer",
                    "issued_at": issued_at,
                }
            )
            return 200, body, org.spec.org_id

    def revoke_token(self, token: str) -> bool:
        """``POST /services/oauth2/revoke``: end a session or revoke a refresh token."""
        with self._lock:
            if self.tokens.revoke(token):
                return True
            for org in self._orgs.values():
                if token in org.refresh_tokens:
                    org.refresh_tokens.discard(token)
                    self.expire_sessions(org.spec.org_id)
                    return True
            return False

    def org_for_authorization(self, authorization: str | None) -> str | None:
        """The org a bearer token belongs to, without touching the session (for headers)."""
        grant = self.tokens.grant(_bearer(authorization), touch=False)
        return grant[0] if grant else None

    def authenticate(self, authorization: str | None) -> tuple[str, str]:
        """(org id, user id) of a live session, refreshing its idle timer; else 401."""
        grant = self.tokens.grant(_bearer(authorization))
        if grant is None:
            raise SfApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
        return grant

    def count_api_call(self, org_id: str) -> None:
        """Count one API request against the daily allocation; 403 once it is used up."""
        with self._lock:
            org = self._org(org_id)
            self._roll_window(org)
            if org.api_used >= org.spec.daily_limit:
                raise SfApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            org.api_used += 1

    def limit_info(self, org_id: str) -> str:
        with self._lock:
            org = self._org(org_id)
            return f"api-usage={org.api_used}/{org.spec.daily_limit}"

    def _roll_window(self, org: _Org) -> None:
        now = self.now_epoch()
        if now - org.api_window_start >= _DAY_S:
            org.api_used = 0
            org.api_window_start = now

    # -- query ---------------------------------------------------------------------------------

    def query(
        self,
        org_id: str,
        soql: str,
        *,
        version: str,
        include_deleted: bool = False,
        batch_size: int | None = None,
    ) -> dict[str, Any]:
        """``GET …/query?q=`` (``queryAll`` with ``include_deleted``): the first batch."""
        with self._lock:
            org = self._org(org_id)
            try:
                compiled = compile_query(parse(soql), org.visible, org.lookup)
            except SoqlError as exc:
                raise SfApiError(400, exc.error_code, exc.message) from None
            rows = compiled.execute(
                org.tables[compiled.obj.name].values(), include_deleted=include_deleted
            )
            if compiled.count_only:
                return {"totalSize": len(rows), "done": True, "records": []}
            size = min(batch_size or self.batch_size, self.batch_size)
            endpoint = "queryAll" if include_deleted else "query"
            if len(rows) <= size:
                return self._batch(compiled, rows, 0, size, version, None, endpoint)
            locator = _Locator(org.ids.new("01g"), compiled, rows, size, self.now_epoch())
            org.locators[locator.id] = locator
            while len(org.locators) > self.max_open_cursors:
                org.locators.popitem(last=False)
            return self._batch(compiled, rows, 0, size, version, locator.id, endpoint)

    def query_more(
        self, org_id: str, locator_ref: str, *, version: str, endpoint: str = "query"
    ) -> dict[str, Any]:
        """``GET {nextRecordsUrl}``: the batch at ``<locator>-<offset>``."""
        with self._lock:
            org = self._org(org_id)
            locator_id, _, offset_text = locator_ref.partition("-")
            locator = org.locators.get(locator_id)
            now = self.now_epoch()
            if locator is not None and now - locator.last_used > _LOCATOR_TTL_S:
                del org.locators[locator_id]
                locator = None
            if locator is None or not offset_text.isdigit() or int(offset_text) > len(locator.rows):
                raise SfApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            locator.last_used = now
            org.locators.move_to_end(locator_id)
            return self._batch(
                locator.compiled,
                locator.rows,
                int(offset_text),
                locator.batch_size,
                version,
                locator.id,
                endpoint,
            )

    @staticmethod
    def _batch(
        compiled: CompiledQuery,
        rows: list[Record],
        offset: int,
        size: int,
        version: str,
        locator: str | None,
        endpoint: str,
    ) -> dict[str, Any]:
        end = offset + size
        done = end >= len(rows)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done}
        if not done:
            body["nextRecordsUrl"] = f"/services/data/v{version}/{endpoint}/{locator}-{end}"
        body["records"] = [compiled.render(r, version) for r in rows[offset:end]]
        return body

    # -- sObject resources ---------------------------------------------------------------------

    def describe(
        self, org_id: str, sobject: str | None = None, *, version: str = "60.0"
    ) -> dict[str, Any]:
        """``describeGlobal`` without ``sobject``, else ``/sobjects/{Type}/describe``."""
        with self._lock:
            org = self._org(org_id)
            if sobject is None:
                return {
                    "encoding": "UTF-8",
                    "maxBatchSize": 200,
                    "sobjects": [_describe_basic(o, version) for o in org.visible.objects.values()],
                }
            obj = self._api_object(org, sobject)
            out = _describe_basic(obj, version)
            out["fields"] = [_describe_field(f) for f in obj.fields.values()]
            return out

    def describe_basic(self, org_id: str, sobject: str, *, version: str) -> dict[str, Any]:
        with self._lock:
            obj = self._api_object(self._org(org_id), sobject)
            return {"objectDescribe": _describe_basic(obj, version), "recentItems": []}

    def read(
        self,
        org_id: str,
        sobject: str,
        record_id: str,
        *,
        fields: Sequence[str] | None,
        version: str,
    ) -> dict[str, Any]:
        """``GET /sobjects/{Type}/{id}``."""
        with self._lock:
            org = self._org(org_id)
            obj = self._api_object(org, sobject)
            rid = normalize_id(record_id)
            hit = org.by_id.get(rid) if rid else None
            if hit is None or hit[0] is not obj:
                raise SfApiError(404, "NOT_FOUND", "The requested resource does not exist")
            rec = hit[1]
            if rec.get("IsDeleted"):
                raise SfApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
            if fields:
                defs = []
                for name in fields:
                    f = obj.field(name.strip())
                    if f is None:
                        raise SfApiError(
                            400,
                            "INVALID_FIELD",
                            f"No such column '{name.strip()}' on entity '{obj.name}'. If you are "
                            "attempting to use a custom field, be sure to append the '__c' after "
                            "the custom field name. Please reference your WSDL or the describe "
                            "call for the appropriate names.",
                        )
                    defs.append(f)
            else:
                defs = list(obj.fields.values())
            out: dict[str, Any] = {
                "attributes": {
                    "type": obj.name,
                    "url": f"/services/data/v{version}/sobjects/{obj.name}/{rec['Id']}",
                }
            }
            for f in defs:
                out[f.name] = rec.get(f.name)
            return out

    def create(
        self, org_id: str, sobject: str, body: object, *, user_id: str | None = None
    ) -> dict[str, Any]:
        """``POST /sobjects/{Type}/``: validate like Salesforce, store, return the 201 body."""
        with self._lock:
            org = self._org(org_id)
            obj = self._api_object(org, sobject)
            if not isinstance(body, dict):
                raise SfApiError(
                    400,
                    "JSON_PARSER_ERROR",
                    "Cannot deserialize instance of "
                    f"{obj.name} from {type(body).__name__.upper()} value",
                )
            user = user_id or org.api_user_id
            values: dict[str, Any] = {}
            for key, raw in body.items():
                if key == "attributes":
                    continue
                if key.lower() == "id":
                    raise SfApiError(
                        400,
                        "INVALID_FIELD",
                        "The Id field should not be specified in the sobject data.",
                    )
                f = obj.field(key)
                if f is None:
                    raise SfApiError(
                        400,
                        "INVALID_FIELD",
                        f"No such column '{key}' on sobject of type {obj.name}",
                    )
                if not f.createable:
                    raise SfApiError(
                        400,
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        f"Unable to create/update fields: {f.name}. Please check the security "
                        "settings of this field and verify that it is read/write for your profile "
                        "or permission set.",
                        [f.name],
                    )
                values[f.name] = _input_value(f, raw)
            for f in obj.fields.values():
                if f.createable and f.default is not None and values.get(f.name) is None:
                    values[f.name] = user if f.default == "$user" else f.default
            missing = [
                f.name
                for f in obj.fields.values()
                if f.required_on_create and values.get(f.name) is None
            ]
            if missing:
                raise SfApiError(
                    400,
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(missing)}]",
                    missing,
                )
            for name, value in values.items():
                f = obj.fields[name]
                if f.type == "reference" and value is not None:
                    self._check_reference(org, f, value)
            now = format_datetime(self.now_epoch())
            rec: Record = {
                "Id": org.ids.new(obj.key_prefix),
                "IsDeleted": False,
                "CreatedDate": now,
                "CreatedById": user,
                "LastModifiedDate": now,
                "LastModifiedById": user,
                "SystemModstamp": now,
            }
            rec.update(values)
            self._insert(org, obj, rec)
            self._created[obj.name] = self._created.get(obj.name, 0) + 1
            return {"id": rec["Id"], "success": True, "errors": []}

    # -- helpers -------------------------------------------------------------------------------

    def _object(self, org: _Org, sobject: str) -> ObjectDef:
        obj = org.schema.get(sobject)
        if obj is None:
            raise ValueError(f"no sObject {sobject!r} in org {org.spec.org_id}")
        return obj

    def _api_object(self, org: _Org, sobject: str) -> ObjectDef:
        obj = org.visible.get(sobject)
        if obj is None:
            raise SfApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return obj

    def _insert(self, org: _Org, obj: ObjectDef, rec: Record) -> None:
        if obj.name_kind == "auto" and not rec.get("Name"):
            n = org.auto_numbers.get(obj.name, 0) + 1
            org.auto_numbers[obj.name] = n
            rec["Name"] = obj.auto_number_format.format(n)
        self._computed(org, obj, rec)
        org.tables[obj.name][rec["Id"]] = rec
        org.by_id[rec["Id"]] = (obj, rec)

    @staticmethod
    def _computed(org: _Org, obj: ObjectDef, rec: Record) -> None:
        if obj.name_kind == "person":
            rec["Name"] = " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p)
        if obj.name == "Task":
            rec["IsClosed"] = rec.get("Status") == "Completed"
        if obj.name == "ContentNote" and rec.get("Content") is not None:
            try:
                text = base64.b64decode(rec["Content"]).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                text = ""
            rec["TextPreview"] = re.sub(r"<[^>]+>", " ", text).strip()[:255] or None

    def _check_reference(self, org: _Org, f: FieldDef, value: str) -> None:
        target = org.schema.for_id(value)
        wrong_type = target is None or (
            (f.reference_to and target.name not in f.reference_to)
            or target.name in f.exclude_reference_to
        )
        if wrong_type:
            raise SfApiError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                f"{f.display_label}: id value of incorrect type: {value}",
                [f.name],
            )
        hit = org.by_id.get(value)
        if hit is None:
            raise SfApiError(
                400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name]
            )
        if hit[1].get("IsDeleted"):
            raise SfApiError(400, "ENTITY_IS_DELETED", "entity is deleted", [f.name])

    @staticmethod
    def _full(obj: ObjectDef, rec: Record) -> dict[str, Any]:
        return {name: rec.get(name) for name in obj.fields}


def _bearer(authorization: str | None) -> str | None:
    return bearer_token(authorization, ("bearer", "oauth"))


def _oauth_error(error: str, description: str) -> dict[str, str]:
    return {"error": error, "error_description": description}


def _plain_value(f: FieldDef, value: Any) -> Any:
    """A Python value given to :meth:`upsert`, in its stored (wire) form."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{f.name}: datetimes must be timezone-aware")
        return (
            format_datetime(value.timestamp()) if f.type == "datetime" else value.date().isoformat()
        )
    if isinstance(value, date):
        return value.isoformat()
    if f.type in ("id", "reference") and isinstance(value, str):
        return normalize_id(value) or value
    return value


def _parser_error(f: FieldDef, raw: object) -> SfApiError:
    kind = {"boolean": "boolean", "date": "date", "datetime": "datetime"}.get(f.type, "double")
    if f.type in TEXT_TYPES or f.type in ("reference", "id", "base64"):
        kind = "String"
    token = "VALUE_STRING" if isinstance(raw, str) else f"VALUE_{type(raw).__name__.upper()}"
    return SfApiError(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {kind} from {token} value {raw} or request may be "
        f"missing a required field",
    )


def _input_value(f: FieldDef, raw: object) -> Any:
    """A JSON value from a create body, checked and converted as Salesforce does."""
    if raw is None:
        return None
    t = f.type
    if t in TEXT_TYPES or t == "base64":
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise _parser_error(f, raw)
        text = str(raw)
        if text == "":
            return None
        if t == "base64":
            try:
                base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise _parser_error(f, raw) from None
            return text
        if f.length is not None and len(text) > f.length:
            raise SfApiError(
                400,
                "STRING_TOO_LONG",
                f"{f.display_label}: data value too large: {text[:40]}... (max length={f.length})",
                [f.name],
            )
        if t == "email" and not _EMAIL_RE.match(text):
            raise SfApiError(
                400,
                "INVALID_EMAIL_ADDRESS",
                f"{f.display_label}: invalid email address: {text}",
                [f.name],
            )
        if f.restricted and text not in f.picklist:
            raise SfApiError(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{f.display_label}: bad value for restricted picklist field: {text}",
                [f.name],
            )
        return text
    if t == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise _parser_error(f, raw)
    if t in NUMBER_TYPES:
        if isinstance(raw, bool):
            raise _parser_error(f, raw)
        try:
            number = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise _parser_error(f, raw) from None
        return int(number) if t == "int" else number
    if t == "date":
        if not isinstance(raw, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            raise _parser_error(f, raw)
        try:
            return date.fromisoformat(raw).isoformat()
        except ValueError:
            raise _parser_error(f, raw) from None
    if t == "datetime":
        epoch = _parse_input_datetime(raw)
        if epoch is None:
            raise _parser_error(f, raw)
        return format_datetime(epoch)
    if t in ("reference", "id"):
        norm = normalize_id(raw)
        if norm is None:
            raise SfApiError(
                400,
                "MALFORMED_ID",
                f"{f.display_label}: id value of incorrect type: {raw}",
                [f.name],
            )
        return norm
    return raw


def _parse_input_datetime(raw: object) -> float | None:
    if not isinstance(raw, str):
        return None
    m = _DT_INPUT_RE.match(raw.strip())
    if m is None:
        return None
    y, mo, d, h, mi = (int(m.group(i)) for i in range(1, 6))
    s = int(m.group(6) or 0)
    try:
        moment = datetime(y, mo, d, h, mi, s, tzinfo=UTC)
    except ValueError:
        return None
    tz = m.group(7)
    epoch = moment.timestamp()
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        epoch -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return epoch


def _describe_basic(obj: ObjectDef, version: str) -> dict[str, Any]:
    return {
        "name": obj.name,
        "label": obj.label,
        "keyPrefix": obj.key_prefix,
        "custom": obj.custom,
        "createable": True,
        "queryable": True,
        "retrieveable": True,
        "updateable": False,
        "deletable": False,
        "urls": {
            "sobject": f"/services/data/v{version}/sobjects/{obj.name}",
            "describe": f"/services/data/v{version}/sobjects/{obj.name}/describe",
            "rowTemplate": f"/services/data/v{version}/sobjects/{obj.name}/{{ID}}",
        },
    }


def _describe_field(f: FieldDef) -> dict[str, Any]:
    return {
        "name": f.name,
        "label": f.display_label,
        "type": f.type,
        "length": f.length or 0,
        "nillable": f.nillable,
        "createable": f.createable,
        "updateable": f.createable,
        "defaultedOnCreate": f.default is not None or not f.createable,
        "filterable": f.filterable,
        "sortable": f.sortable,
        "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship_name,
        "polymorphicForeignKey": f.polymorphic,
        "restrictedPicklist": f.restricted,
        "picklistValues": [
            {"active": True, "defaultValue": v == f.default, "label": v, "value": v}
            for v in f.picklist
        ],
    }
