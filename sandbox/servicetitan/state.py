"""Everything the ServiceTitan emulator knows: tenants and their records, tokens, the rate
limiter and the notes written through the API; clock, faults and request log come from the kit.

One `EmulatorState` backs one app (`create_app`) and can be driven directly by tests in the same
process (all methods take a lock, because uvicorn serves from another thread). The same controls
are reachable over HTTP under `/__emulator/...` (see `app.py`).

Behaviour follows shared/reference/crm-apis.md §5.1; choices the vendor does not document are
marked [I] where they are made.
"""

from __future__ import annotations

import gc
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from sandbox.kit import (
    Clock,
    EmulatorCore,
    FaultBook,
    FaultPlan,
    LoggedRequest,
    RequestLog,
    TokenStore,
)

from .data import (
    API_USER_ID,
    ID_BASE,
    RESOURCES,
    TIMESTAMP_FIELDS,
    TenantSpec,
    generate_raw,
    new_record_defaults,
    to_wire,
)
from .extras import EXTRA_INDEXES
from .store import ID_LIMIT, RecordStore, order_key
from .timefmt import datetime_to_ms, format_ms, parse_timestamp

TOKEN_TTL_SECONDS = 900
"""ServiceTitan access tokens live 15 minutes (crm-apis.md §1.2)."""
TOKEN_PATH = "/connect/token"

NOTE_KINDS = ("job", "customer", "location")

_INDEXES: dict[str, tuple[str, ...]] = {
    "customers": (),
    "locations": ("customerId",),
    "customer_contacts": ("customerId",),
    "jobs": ("customerId", "locationId"),
    "appointments": ("jobId", "customerId"),
    "estimates": ("jobId", "locationId", "customerId"),
    "memberships": ("customerId",),
    **EXTRA_INDEXES,
}


@dataclass(frozen=True)
class TokenInfo:
    tenant_id: int
    app_key: str


@dataclass
class Note:
    id: int
    kind: str
    parent_id: int
    text: str
    is_pinned: bool
    created_ms: int
    modified_ms: int
    created_by_id: int = API_USER_ID
    active: bool = True
    """False once deleted: gone from the lists, kept by the job-notes export (``active: false``)."""

    def wire(self) -> dict[str, Any]:
        """The vendor's NoteResponse: the JPM one has no `id`, the CRM one has (§1.8)."""
        body: dict[str, Any] = {
            "text": self.text,
            "isPinned": self.is_pinned,
            "createdById": self.created_by_id,
            "createdOn": format_ms(self.created_ms),
            "modifiedOn": format_ms(self.modified_ms),
        }
        if self.kind != "job":
            body = {"id": self.id, **body}
        return body

    def export_wire(self) -> dict[str, Any]:
        """``Jpm.V2.ExportJobNotesResponse`` (tenant-jpm-v2 ``export/job-notes``): the export,
        unlike the job's note list, carries the note's ``id``, ``active`` and ``jobId``."""
        return {"id": self.id, "active": self.active, **self.wire(), "jobId": self.parent_id}


@dataclass
class RequestRecord(LoggedRequest):
    """One request as received (`timestamp` in the API's format), for assertions."""

    app_key: str | None = None
    tenant_id: int | None = None
    monotonic: float = 0.0
    """Real seconds since the state was created (rates are about real time)."""


@dataclass
class _AppKeyStats:
    total_requests: int = 0
    responses_429: int = 0
    peak_requests_per_second: int = 0
    window: deque[float] = field(default_factory=deque)


class _TokenBucket:
    """Classic token bucket: `rate` tokens per second, burst of one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self, now: float) -> float | None:
        """None if the request may pass, else the seconds until it could."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rate


class Tenant:
    def __init__(self, spec: TenantSpec, start_ms: int) -> None:
        self.spec = spec
        self.stores: dict[str, RecordStore] = {}
        was_enabled = gc.isenabled()
        gc.disable()  # see generate_raw: building many long-lived objects
        try:
            generated = generate_raw(spec, start_ms)
            for resource in RESOURCES:
                store = RecordStore(resource, _INDEXES[resource])
                store.load(generated[resource])
                self.stores[resource] = store
        finally:
            if was_enabled:
                gc.enable()
        if was_enabled and sum(len(store) for store in self.stores.values()) >= 50_000:
            # Pay the first full collection over the new objects now rather than in the middle
            # of serving a page; afterwards full collections are rare (they scale with growth).
            gc.collect()
        self.notes: dict[tuple[str, int], list[Note]] = {}
        self.next_note_id = ID_BASE["notes"] + 1
        self.notes_max_mod = 0
        jobs = generated["jobs"]
        for i in range(spec.job_notes if jobs else 0):
            job = jobs[i % len(jobs)]
            stamp = min(int(job["modifiedOn"]) + 60_000 * (1 + i // len(jobs)), start_ms - 1)
            note = Note(
                self.next_note_id, "job", int(job["id"]), f"CSR note {i}", False, stamp, stamp
            )
            self.notes.setdefault(("job", note.parent_id), []).append(note)
            self.next_note_id += 1


def _note_kind(kind: str) -> str:
    normalized = kind.lower().rstrip("s")
    if normalized not in NOTE_KINDS:
        raise ValueError(f"unknown note kind {kind!r}; expected one of {NOTE_KINDS}")
    return normalized


class EmulatorState(EmulatorCore[RequestRecord]):
    """State of one emulated ServiceTitan deployment (any number of tenants).

    - `export_page_size`: records per export call (the vendor returns up to 5000).
    - `rate_limit_per_second`: token bucket per app key; ServiceTitan allows 60 requests per
      second per application, and seed 002 says tenants sharing an app share that budget.
    - `start_time`: the emulator clock's start (default: now). Generated data lies before it;
      same specs and same start give identical data.
    - `frozen_clock`: if true the clock moves only through `advance_clock`; otherwise it also
      follows real time, so tokens expire and changes get distinct `modifiedOn` in a live demo.
    - `fault_seed`: seeds the RNG that decides rate-based faults.

    Faults are the kit's standard kinds; `status` needs a `status` and a 429 carries
    `Retry-After`; only a route naming it (`/connect/*`) reaches the token endpoint.
    """

    def __init__(
        self,
        specs: Iterable[TenantSpec] = (),
        *,
        export_page_size: int = 5000,
        rate_limit_per_second: float = 60.0,
        token_ttl_seconds: int = TOKEN_TTL_SECONDS,
        start_time: datetime | None = None,
        frozen_clock: bool = False,
        fault_seed: int = 0,
        max_logged_requests: int = 100_000,
    ) -> None:
        if export_page_size < 1:
            raise ValueError("export_page_size must be >= 1")
        if rate_limit_per_second <= 0:
            raise ValueError("rate_limit_per_second must be > 0")
        self.lock = threading.RLock()
        self.export_page_size = export_page_size
        self.rate_limit_per_second = float(rate_limit_per_second)
        self.token_ttl_seconds = token_ttl_seconds
        self.clock = Clock(start_time, frozen=frozen_clock)
        self._start_ms = datetime_to_ms(self.clock.start)
        self._mono0 = time.monotonic()
        self.tokens: TokenStore[TokenInfo] = TokenStore(self.clock)
        self.fault_book = FaultBook(seed=fault_seed, spared=[TOKEN_PATH])
        self.request_log: RequestLog[RequestRecord] = RequestLog(max_logged_requests)
        self.tenants: dict[int, Tenant] = {}
        self._clients: dict[str, TenantSpec] = {}
        self._app_keys: dict[str, set[int]] = {}
        self._buckets: dict[str, _TokenBucket] = {}
        self._stats: dict[str, _AppKeyStats] = {}
        for spec in specs:
            self.add_tenant(spec)

    def reset(self) -> None:
        """Return to the state right after construction, keeping every tenant added so far.

        Data is regenerated from the tenant specs (same start, so identical), and notes, tokens,
        faults, the request log, rate-limit buckets, stats and clock changes are dropped. Lets a
        test suite share one running server and still start each test from a known state.
        """
        with self.lock:
            specs = [tenant.spec for tenant in self.tenants.values()]
            self.tenants.clear()
            self._clients.clear()
            self._app_keys.clear()
            self.tokens.expire_all()
            self.fault_book.reset()
            self.request_log.reset()
            self._buckets.clear()
            self._stats.clear()
            self._mono0 = time.monotonic()
            self.clock.restart()
            for spec in specs:
                self.add_tenant(spec)

    # -- clock -------------------------------------------------------------------------------

    @property
    def start_ms(self) -> int:
        return self._start_ms

    def timestamp(self) -> str:
        return format_ms(self.now_ms())

    # -- tenants and records -----------------------------------------------------------------

    def add_tenant(self, spec: TenantSpec) -> None:
        with self.lock:
            if spec.tenant_id in self.tenants:
                raise ValueError(f"tenant {spec.tenant_id} already exists")
            known = self._clients.get(spec.client_id)
            if known is not None:
                raise ValueError(f"client id {spec.client_id!r} already belongs to a tenant")
            self.tenants[spec.tenant_id] = Tenant(spec, self._start_ms)
            self._clients[spec.client_id] = spec
            self._app_keys.setdefault(spec.app_key, set()).add(spec.tenant_id)

    def tenant(self, tenant_id: int) -> Tenant:
        found = self.tenants.get(tenant_id)
        if found is None:
            raise KeyError(f"no tenant {tenant_id}")
        return found

    def store(self, tenant_id: int, resource: str) -> RecordStore:
        if resource not in RESOURCES:
            raise ValueError(f"unknown resource {resource!r}; expected one of {RESOURCES}")
        return self.tenant(tenant_id).stores[resource]

    def upsert_record(
        self, tenant_id: int, resource: str, record: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge `record` into the record with its `id`, or create a new record.

        A new record starts from neutral defaults for every schema field and gets the next free
        id unless `record` names one. Timestamps given as strings or datetimes are normalised;
        `modifiedOn` is always set to the emulator's now, and kept strictly after every other
        `modifiedOn` of the resource so that an export continuation token issued earlier always
        sees the change. Set `"active": False` to delete (exports then carry it as inactive).
        Returns the stored record in export shape.
        """
        incoming: dict[str, Any] = orjson.loads(orjson.dumps(record, default=_json_default))
        with self.lock:
            store = self.store(tenant_id, resource)
            now = self.now_ms()
            latest = store.max_mod
            mod = now if latest is None or now > latest else latest + 1
            record_id = incoming.get("id")
            existing = store.get(record_id) if isinstance(record_id, int) else None
            if existing is not None:
                data = dict(existing)
            else:
                if record_id is None:
                    record_id = max(store.max_id or 0, ID_BASE[resource]) + 1
                if not isinstance(record_id, int) or not 0 < record_id < ID_LIMIT:
                    raise ValueError(f"record id must be an integer in 1..{ID_LIMIT - 1}")
                data = new_record_defaults(resource, record_id, now)
            timestamp_fields = TIMESTAMP_FIELDS[resource]
            for key, value in incoming.items():
                if key in timestamp_fields and isinstance(value, str):
                    value = parse_timestamp(value)
                data[key] = value
            if existing is None:
                self._link_new_record(tenant_id, resource, data, incoming)
            data["id"] = record_id
            data["modifiedOn"] = mod
            if resource == "jobs" and not data.get("jobNumber"):
                data["jobNumber"] = str(record_id)
            if (
                resource == "jobs"
                and incoming.get("jobStatus") == "Completed"
                and data.get("completedOn") is None
            ):
                data["completedOn"] = mod  # completing a job stamps it, as the CRM would
            store.put(data)
            return orjson.loads(orjson.dumps(to_wire(resource, data)))  # type: ignore[no-any-return]

    def _link_new_record(
        self, tenant_id: int, resource: str, data: dict[str, Any], given: dict[str, Any]
    ) -> None:
        """Fill a new record's links from its parent, so tests only name the parent.

        Appointments take the job's customer; estimates the job's customer, location and
        number; jobs without a location take the customer's first one. A record whose required
        parent is missing is refused rather than stored dangling.
        """
        stores = self.tenant(tenant_id).stores
        required = {
            "locations": "customerId",
            "customer_contacts": "customerId",
            "memberships": "customerId",
            "jobs": "customerId",
            "appointments": "jobId",
        }.get(resource)
        if required is not None and not given.get(required):
            raise ValueError(f"a new {resource} record needs {required}")
        job = stores["jobs"].get(given["jobId"]) if given.get("jobId") else None
        if resource == "appointments" and job is not None and "customerId" not in given:
            data["customerId"] = job["customerId"]
        if resource == "estimates" and job is not None:
            for field_name in ("customerId", "locationId", "jobNumber", "projectId"):
                if field_name not in given:
                    data[field_name] = job[field_name]
        if resource == "jobs" and not given.get("locationId"):
            locations = stores["locations"]
            owned = sorted(locations.ids_where("customerId", [given["customerId"]]))
            if not owned:
                raise ValueError("a new job needs a locationId (the customer has no location)")
            data["locationId"] = owned[0]

    def get_records(self, tenant_id: int, resource: str) -> list[dict[str, Any]]:
        """Every record of a resource (inactive ones too), in export shape, ordered by id."""
        with self.lock:
            store = self.store(tenant_id, resource)
            records = [to_wire(resource, store.by_id[record_id]) for record_id in store.ids]
            payload = orjson.dumps(records)
        return orjson.loads(payload)  # type: ignore[no-any-return]

    # -- notes -------------------------------------------------------------------------------

    def add_note(
        self,
        tenant_id: int,
        kind: str,
        parent_id: int,
        text: str,
        pin_to_top: bool = False,
        *,
        created_by_id: int = API_USER_ID,
        created_on: str | datetime | None = None,
    ) -> Note:
        """A note written on a job, customer or location. ``created_on`` back-dates it (both
        stamps), as history that existed before crmsync connected; without it the note is
        stamped now, after every earlier note change, so an export token issued earlier sees it.
        """
        with self.lock:
            tenant = self.tenant(tenant_id)
            if created_on is None:
                stamp = self._note_stamp(tenant)
            elif isinstance(created_on, datetime):
                stamp = datetime_to_ms(created_on)
            else:
                stamp = parse_timestamp(created_on)
            note = Note(
                id=tenant.next_note_id,
                kind=_note_kind(kind),
                parent_id=parent_id,
                text=text,
                is_pinned=pin_to_top,
                created_ms=stamp,
                modified_ms=stamp,
                created_by_id=created_by_id,
            )
            tenant.next_note_id += 1
            tenant.notes.setdefault((note.kind, parent_id), []).append(note)
            return note

    def _note_stamp(self, tenant: Tenant) -> int:
        now = self.now_ms()
        tenant.notes_max_mod = max(now, tenant.notes_max_mod + 1)
        return tenant.notes_max_mod

    def _find_note(self, tenant_id: int, kind: str, parent_id: int, note_id: int) -> Note:
        for note in self.tenant(tenant_id).notes.get((_note_kind(kind), parent_id), []):
            if note.id == note_id and note.active:
                return note
        raise KeyError(f"no {kind} note {note_id} on {parent_id}")

    def edit_note(self, tenant_id: int, kind: str, parent_id: int, note_id: int, text: str) -> Note:
        """A CSR edits a note's text in ServiceTitan: ``modifiedOn`` moves."""
        with self.lock:
            note = self._find_note(tenant_id, kind, parent_id, note_id)
            note.text = text
            note.modified_ms = self._note_stamp(self.tenant(tenant_id))
            return note

    def delete_note(self, tenant_id: int, kind: str, parent_id: int, note_id: int) -> Note:
        """A CSR deletes a note: it leaves the parent's list; the job-notes export carries it
        with ``active: false`` (tenant-jpm-v2: "Whether this note is active, or not anymore")."""
        with self.lock:
            note = self._find_note(tenant_id, kind, parent_id, note_id)
            note.active = False
            note.modified_ms = self._note_stamp(self.tenant(tenant_id))
            return note

    def notes_of(self, tenant_id: int, kind: str, parent_id: int) -> list[Note]:
        """The live notes of one parent, oldest first."""
        with self.lock:
            notes = self.tenant(tenant_id).notes.get((_note_kind(kind), parent_id), [])
            return [note for note in notes if note.active]

    def job_notes_after(self, tenant_id: int, position: int, limit: int) -> tuple[list[Note], bool]:
        """Job notes, deleted ones too, after the export position ``(modifiedOn, id)`` key, in
        that order: one page of ``export/job-notes`` and whether more follow."""
        with self.lock:
            notes = sorted(
                (
                    note
                    for (kind, _), listed in self.tenant(tenant_id).notes.items()
                    if kind == "job"
                    for note in listed
                    if order_key(note.modified_ms, note.id) > position
                ),
                key=lambda note: (note.modified_ms, note.id),
            )
        return notes[:limit], len(notes) > limit

    def get_notes(self, tenant_id: int, kind: str, parent_id: int) -> list[dict[str, Any]]:
        """Notes written on a job, customer or location, oldest first, in the vendor's shape."""
        return [note.wire() for note in self.notes_of(tenant_id, kind, parent_id)]

    # -- auth --------------------------------------------------------------------------------

    def issue_token(self, client_id: str, client_secret: str) -> tuple[str, TenantSpec] | None:
        """A fresh opaque token for valid client credentials, else None."""
        with self.lock:
            spec = self._clients.get(client_id)
            if spec is None or not secrets.compare_digest(spec.client_secret, client_secret):
                return None
            grant = TokenInfo(spec.tenant_id, spec.app_key)
            return self.tokens.issue(grant, ttl_s=self.token_ttl_seconds), spec

    def token_info(self, token: str) -> TokenInfo | None:
        """The live token's grant, or None if unknown, revoked or expired (emulator clock)."""
        return self.tokens.grant(token)

    def expire_all_tokens(self) -> None:
        self.tokens.expire_all()

    def is_app_key(self, app_key: str) -> bool:
        with self.lock:
            return app_key in self._app_keys

    def plan_faults(self, method: str, path: str) -> FaultPlan:
        return self.fault_book.plan(method, path)

    # -- rate limit and stats ----------------------------------------------------------------

    def count_request(self, entry: RequestRecord) -> None:
        """Count a logged request against its app key's stats (peak requests per second)."""
        with self.lock:
            now = time.monotonic()
            entry.monotonic = now - self._mono0
            if entry.app_key is not None:
                stats = self._stats.setdefault(entry.app_key, _AppKeyStats())
                stats.total_requests += 1
                window = stats.window
                window.append(now)
                while window and window[0] <= now - 1.0:
                    window.popleft()
                stats.peak_requests_per_second = max(stats.peak_requests_per_second, len(window))

    def count_answer(self, entry: RequestRecord) -> None:
        if entry.status == 429 and entry.app_key is not None:
            with self.lock:
                self._stats.setdefault(entry.app_key, _AppKeyStats()).responses_429 += 1

    def take_rate_token(self, app_key: str) -> float | None:
        """None if the app key may make a request now, else seconds until it may."""
        with self.lock:
            bucket = self._buckets.get(app_key)
            if bucket is None:
                bucket = self._buckets[app_key] = _TokenBucket(self.rate_limit_per_second)
            return bucket.take(time.monotonic())

    def stats(self) -> dict[str, dict[str, int]]:
        """Per app key: requests received, 429s answered, peak requests in any 1-second window."""
        with self.lock:
            return {
                app_key: {
                    "total_requests": stats.total_requests,
                    "responses_429": stats.responses_429,
                    "peak_requests_per_second": stats.peak_requests_per_second,
                }
                for app_key, stats in self._stats.items()
            }


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_ms(datetime_to_ms(value))
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot store {type(value).__name__} in a record")
