"""Everything the LP emulator knows: clients, records and tokens, plus the kit's clock, faults
and request log.

One :class:`LPEmulatorState` serves any number of LP clients (one per :class:`LPClientSpec`).
It is shared between the uvicorn thread serving HTTP and the test thread driving it, so every
public method takes one re-entrant lock; the HTTP handlers call the same methods.

Records are stored in LP's wire shape (see :mod:`sandbox.leadperfection.data`), so a GetLead page
is one ``orjson.dumps`` of stored dicts. Timestamps are naive local strings of one fixed shape
(``YYYY-MM-DDTHH:MM:SS``), so comparing strings compares instants; a sorted list of
``(timestamp, cst_id)`` pairs over every ``lastchanged``/``lastchangedon`` answers a date window
with two bisections instead of a scan. Which timestamp LP's date range filters on is undocumented
(crm-apis.md §2.3); the emulator's choice (§5.2) is "the prospect's ``lastchanged`` or any
lead/job/appointment ``lastchangedon`` in [startdate, enddate]".
"""

from __future__ import annotations

import bisect
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
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
from sandbox.leadperfection import data
from sandbox.leadperfection.data import (
    EMPLOYEE_NAMES,
    NOTE_CATEGORIES,
    LocalTime,
    LPClientSpec,
    Record,
)

TOKEN_PATH = "/token"
WRITE_OK = "UPDATED SUCCESSFULLY!"
NOTE_RECTYPES = frozenset({"cst", "ils", "job"})

_PROSPECT_TS = ("dateadded", "lastchanged")
_LEAD_TS = ("apptdate", "entrydate", "dateentered", "lastchangedon")
_JOB_TS = ("entrydate", "contractdate", "lastchangedon")
_APPT_TS = ("apptdate", "dateentered", "lastchangedon")
_FLAGS = ("apptset", "sat", "sold")
_MAX_ID = 1 << 62
_CACHE_SIZE = 16
_LOG_SIZE = 20_000

_US_DATE = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4})"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?\s*([AaPp][Mm])?)?$"
)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FRACTION = re.compile(r"^(.*T\d{2}:\d{2}:\d{2})\.(\d+)(.*)$")


class BadRequest(ValueError):
    """A parameter LP would reject; the app answers ASP.NET's 400 "The request is invalid."."""


def _canonical(value: datetime) -> str:
    if value.microsecond:
        return value.isoformat(timespec="microseconds")
    return value.isoformat(timespec="seconds")


def parse_lp_datetime(text: str, local: LocalTime) -> str:
    """Parse a date or date-time as LP's .NET model binding would, into the canonical local shape.

    Accepts ISO dates and date-times (``T`` or space, any fraction length, ``Z`` or an offset,
    which is converted to the client's wall clock) and the US forms ``4/16/2025`` and
    ``4/16/2025 5:00:07 PM``. A date alone means midnight.
    """
    raw = text.strip()
    if not raw:
        raise BadRequest("empty date")
    if _ISO_DATE.match(raw):
        try:
            return _canonical(datetime.fromisoformat(raw))
        except ValueError as exc:
            raise BadRequest(f"not a date: {text!r}") from exc
    us = _US_DATE.match(raw)
    if us:
        month, day, year, hour, minute, second, fraction, ampm = us.groups()
        h = int(hour or 0)
        if ampm:
            h = h % 12 + (12 if ampm.lower() == "pm" else 0)
        try:
            parsed = datetime(
                int(year),
                int(month),
                int(day),
                h,
                int(minute or 0),
                int(second or 0),
                int((fraction or "0")[:6].ljust(6, "0")),
            )
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        return _canonical(parsed)
    candidate = raw.replace(" ", "T", 1) if "T" not in raw else raw
    if candidate[-1] in "Zz":
        candidate = candidate[:-1] + "+00:00"
    frac = _FRACTION.match(candidate)
    if frac:
        head, digits, tail = frac.groups()
        candidate = f"{head}.{digits[:6].ljust(6, '0')}{tail}"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError as exc:
        raise BadRequest(f"not a date: {text!r}") from exc
    return _canonical(local.to_local_naive(parsed))


@dataclass
class RequestRecord(LoggedRequest):
    """One request as received; `body` holds its bound parameters, secrets redacted."""

    clientid: str | None = None


@dataclass(frozen=True)
class Window:
    """A GetLead-style date range in canonical local form; ``None`` is unbounded."""

    start: str | None = None
    end: str | None = None

    @property
    def bounded(self) -> bool:
        return self.start is not None or self.end is not None

    def contains(self, ts: object) -> bool:
        if not isinstance(ts, str):
            return False
        return (self.start is None or ts >= self.start) and (self.end is None or ts <= self.end)


class _Client:
    """One LP client's records and the indexes over them."""

    def __init__(self, spec: LPClientSpec, anchor: datetime) -> None:
        self.spec = spec
        self.time = LocalTime(spec.timezone)
        seed = data.generate(spec, anchor)
        self.next_cst, self.next_lead = seed.next_cst, seed.next_lead
        self.next_job, self.next_appt = seed.next_job, seed.next_appt
        self.prospects: dict[int, Record] = {}
        self.extras: dict[int, Record] = {}
        self.leads: dict[int, tuple[int, Record]] = {}
        self.jobs: dict[int, tuple[int, Record]] = {}
        self.appts: dict[int, tuple[int, Record]] = {}
        self.events: list[tuple[str, int]] = []
        for p in seed.prospects:
            self.prospects[p["cst_id"]] = p
            self.extras[p["cst_id"]] = data.extra_fields(p)
            self._index_children(p)
            self.events.extend(_events_of(p))
        self.events.sort()
        self.cst_sorted = sorted(self.prospects)
        self.version = 0
        self.cache: OrderedDict[tuple[Any, ...], tuple[int, list[int]]] = OrderedDict()
        self.notes_written: list[Record] = []
        self.calls_written: list[Record] = []
        self.production_notes_written: list[Record] = []
        self.api_denied: frozenset[str] | None = None
        self.api_denied_status = 401

    def _index_children(self, p: Record) -> None:
        cst = p["cst_id"]
        for lead in p["leads"]:
            if isinstance(lead, dict):
                self.leads[lead["id"]] = (cst, lead)
                for job in lead.get("jobs", ()):
                    self.jobs[job["id"]] = (lead["id"], job)
                for appt in lead.get("appointments", ()):
                    self.appts[appt["id"]] = (lead["id"], appt)

    def unindex(self, p: Record) -> None:
        events = self.events
        for event in _events_of(p):
            i = bisect.bisect_left(events, event)
            if i < len(events) and events[i] == event:
                del events[i]

    def reindex(self, p: Record) -> None:
        for event in _events_of(p):
            bisect.insort(self.events, event)
        self._index_children(p)
        self.version += 1

    def cached(self, key: tuple[Any, ...], compute: Callable[[], list[int]]) -> list[int]:
        hit = self.cache.get(key)
        if hit is not None and hit[0] == self.version:
            self.cache.move_to_end(key)
            return hit[1]
        ids = compute()
        self.cache[key] = (self.version, ids)
        if len(self.cache) > _CACHE_SIZE:
            self.cache.popitem(last=False)
        return ids

    def in_window(self, window: Window) -> list[int]:
        """cst_ids (ascending) with any indexed timestamp in the window."""
        if not window.bounded:
            return list(self.cst_sorted)
        lo = 0 if window.start is None else bisect.bisect_left(self.events, (window.start, -1))
        hi = (
            len(self.events)
            if window.end is None
            else bisect.bisect_right(self.events, (window.end, _MAX_ID))
        )
        return sorted({cst for _, cst in self.events[lo:hi]})

    def lead_owner(self, lds_id: int) -> Record | None:
        hit = self.leads.get(lds_id)
        return self.prospects.get(hit[0]) if hit else None


def _events_of(p: Record) -> list[tuple[str, int]]:
    cst = p["cst_id"]
    out = []
    ts = p.get("lastchanged")
    if isinstance(ts, str):
        out.append((ts, cst))
    for lead in p.get("leads", ()):
        if not isinstance(lead, dict):
            continue
        ts = lead.get("lastchangedon")
        if isinstance(ts, str):
            out.append((ts, cst))
        for child in (*lead.get("jobs", ()), *lead.get("appointments", ())):
            ts = child.get("lastchangedon")
            if isinstance(ts, str):
                out.append((ts, cst))
    return out


def _function(name_or_path: str) -> str:
    """An LP API function by its lower-cased method name: ``GetLead`` for its path too."""
    return name_or_path.rstrip("/").rsplit("/", 1)[-1].strip().lower()


def _copy(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def _flag(value: object) -> str:
    if isinstance(value, str):
        return value.strip().lower()
    return "true" if value else "false"


class LPEmulatorState(EmulatorCore[RequestRecord]):
    """The emulator's data and controls, usable in-process (tests) and over ``/__emulator``.

    ``start_time`` is where the emulator clock starts (default: now); seed timestamps are laid
    out relative to it, so one seed and one start time always produce the same bytes. The clock
    then runs with real time (unless ``freeze_clock``) plus whatever :meth:`advance_clock` adds;
    token expiry and every ``lastchanged`` bump read it.

    Faults (:meth:`arm_fault`, the kit's standard kinds, route globs case-insensitive):
    ``status`` answers 500 ``{"Message":"An error has occurred."}`` by default, a 429 carries
    ``Retry-After`` (1 s unless given); ``latency`` waits 1 s unless given;
    ``timeout_after_store`` holds the reply 35 s unless given, past a client's 30 s timeout.
    ``route="*"`` spares ``/token``; target it with ``route="/token"``.
    """

    def __init__(
        self,
        specs: Sequence[LPClientSpec] | LPClientSpec,
        *,
        start_time: datetime | None = None,
        freeze_clock: bool = False,
        fault_seed: int = 0,
    ) -> None:
        if isinstance(specs, LPClientSpec):
            specs = [specs]
        self._specs = list(specs)
        self._start_time = start_time
        self._lock = threading.RLock()
        self.clock = Clock(start_time, frozen=freeze_clock)
        self.tokens: TokenStore[str] = TokenStore(self.clock)
        self.fault_book = FaultBook(
            seed=fault_seed,
            spared=[TOKEN_PATH],
            ignore_case=True,
            default_status=500,
            default_latency_ms=1000,
            default_hold_ms=35_000,
        )
        self.request_log: RequestLog[RequestRecord] = RequestLog(_LOG_SIZE)
        self.reset()

    def reset(self) -> None:
        """Back to the seeded records, the start time, and no tokens, faults or log entries."""
        with self._lock:
            anchor = (self._start_time or data.anchor_default()).astimezone(UTC)
            self.clock.restart(anchor)
            self._clients: dict[str, _Client] = {}
            for spec in self._specs:
                key = spec.clientid.lower()
                if key in self._clients:
                    raise ValueError(f"duplicate clientid {spec.clientid!r}")
                with data.paused_gc():
                    self._clients[key] = _Client(spec, anchor)
            self.tokens.expire_all()
            self.fault_book.reset()
            self.request_log.reset()
            self._counters: Counter[str] = Counter()

    # --- clock ---------------------------------------------------------------------------

    def now_local(self, clientid: str | None = None) -> str:
        """The emulator clock as LP writes it for this client: naive local wall-clock time."""
        with self._lock:
            return self._client(clientid).time.format(self.clock.now_us() // 1_000_000)

    # --- clients and tokens --------------------------------------------------------------

    @property
    def clientids(self) -> list[str]:
        return [c.spec.clientid for c in self._clients.values()]

    def _client(self, clientid: str | None) -> _Client:
        if clientid is None:
            if len(self._clients) != 1:
                raise KeyError("clientid is required when the emulator hosts several clients")
            return next(iter(self._clients.values()))
        try:
            return self._clients[clientid.lower()]
        except KeyError:
            raise KeyError(f"unknown clientid {clientid!r}") from None

    def issue_token(self, form: Mapping[str, str]) -> tuple[int, Record]:
        """``POST /token``: OWIN's password grant, keyed by LP's extra ``clientid``/``appkey``."""
        with self._lock:
            if form.get("grant_type") != "password":
                return 400, {"error": "unsupported_grant_type"}
            client = self._clients.get(form.get("clientid", "").strip().lower())
            spec = client.spec if client else None
            if (
                spec is None
                or form.get("username", "").lower() != spec.username.lower()
                or form.get("password", "") != spec.password
                or form.get("appkey", "").strip().lower() != spec.appkey.lower()
            ):
                self._counters["token_rejected"] += 1
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "The user name or password is incorrect.",
                }
            ttl = spec.token_ttl_seconds
            token = self.tokens.issue(spec.clientid.lower(), ttl_s=ttl, nbytes=48)
            self._counters["tokens_issued"] += 1
            return 200, {"access_token": token, "token_type": "bearer", "expires_in": ttl}

    def authenticate(self, token: str | None) -> str | None:
        """The clientid a bearer token belongs to, or ``None`` if unknown or expired."""
        return self.tokens.grant(token)

    def expire_tokens(self) -> None:
        """Expire every token issued so far (LP-side revocation or a server restart)."""
        self.tokens.expire_all()

    # --- Function Level Security (seed 001, Requirements) ----------------------------------

    def revoke_api_security(
        self,
        clientid: str | None = None,
        *,
        functions: Sequence[str] | None = None,
        status: int = 401,
    ) -> None:
        """Take the API user's APISecurity rights away: the functions named (LP method names
        such as ``GetLead``, or paths), or every data route when ``functions`` is None.

        Seed 001 has the user granted "APISecurity" under Security → User Access → Function
        Level Security ("Check All"); without it the user still signs in (``/token`` checks the
        password, not the rights) and each refused call gets the answer of ASP.NET Web API's
        ``[Authorize]``: 401 ``{"Message":"Authorization has been denied for this request."}``
        (crm-apis.md §2.6, [I]). ``status=403`` models a host that answers Forbidden instead.
        """
        if status not in (401, 403):
            raise ValueError("status must be 401 or 403")
        with self._lock:
            client = self._client(clientid)
            names = None if functions is None else frozenset(_function(f) for f in functions)
            client.api_denied = frozenset({"*"}) if names is None else names
            client.api_denied_status = status

    def grant_api_security(self, clientid: str | None = None) -> None:
        """Give the API user APISecurity again ("Check All", Save)."""
        with self._lock:
            client = self._client(clientid)
            client.api_denied, client.api_denied_status = None, 401

    def api_security(self, clientid: str | None = None) -> Record:
        """What the user is refused: ``{"granted": bool, "denied": [...] | ["*"], "status"}``."""
        with self._lock:
            client = self._client(clientid)
            denied = sorted(client.api_denied or ())
            return {"granted": not denied, "denied": denied, "status": client.api_denied_status}

    def api_refusal(self, clientid: str, path: str) -> int | None:
        """The status a data call on ``path`` is refused with, or None when the user may call it."""
        with self._lock:
            client = self._client(clientid)
            denied = client.api_denied
            if not denied or not ("*" in denied or _function(path) in denied):
                return None
            self._counters["api_security_refused"] += 1
            return client.api_denied_status

    # --- seeding and mutation --------------------------------------------------------------

    def _ts(self, client: _Client, value: object) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, datetime):
            return _canonical(client.time.to_local_naive(value))
        if isinstance(value, date):
            return f"{value.isoformat()}T00:00:00"
        if isinstance(value, str):
            return parse_lp_datetime(value, client.time)
        raise ValueError(f"not a timestamp: {value!r}")

    def _merge(
        self, client: _Client, target: Record, fields: Mapping[str, Any], ts_keys: Sequence[str]
    ) -> None:
        for key, value in fields.items():
            if key in ts_keys:
                target[key] = self._ts(client, value)
            elif key in _FLAGS:
                target[key] = _flag(value)
            else:
                target[key] = _copy(value) if isinstance(value, list | dict) else value

    def upsert_prospect(
        self, clientid: str | None, prospect: Mapping[str, Any], *, touch: bool = True
    ) -> Record:
        """Create or update a prospect (matched on ``cst_id``); returns the stored record.

        Scalar fields are merged; ``leads`` items go through :meth:`upsert_lead`; ``notes`` and
        ``calls`` replace the lists. ``lastchanged`` becomes the clock's now unless the caller
        sets it or passes ``touch=False``, which mimics LP edits that do not bump it (§2.5).
        """
        with self._lock:
            client = self._client(clientid)
            cst_id = prospect.get("cst_id")
            existing = client.prospects.get(int(cst_id)) if cst_id not in (None, "") else None
            created = existing is None
            if existing is None:
                new_id = int(cst_id) if cst_id not in (None, "") else client.next_cst
                client.next_cst = max(client.next_cst, new_id + 1)
                existing = data.empty_prospect(new_id)
                existing["dateadded"] = self.now_local(client.spec.clientid)
                existing["lastchanged"] = existing["dateadded"]
                client.prospects[new_id] = existing
                bisect.insort(client.cst_sorted, new_id)
            client.unindex(existing)
            try:
                scalars = {k: v for k, v in prospect.items() if k not in ("cst_id", "leads")}
                self._merge(client, existing, scalars, _PROSPECT_TS)
                for lead in prospect.get("leads") or ():
                    self._upsert_lead(client, existing, lead, touch)
                if touch and "lastchanged" not in prospect:
                    existing["lastchanged"] = self.now_local(client.spec.clientid)
            finally:
                client.reindex(existing)
                if created:
                    client.extras[existing["cst_id"]] = data.extra_fields(existing)
            return _copy(existing)

    def upsert_lead(
        self, clientid: str | None, cst_id: int, lead: Mapping[str, Any], *, touch: bool = True
    ) -> Record:
        """Create or update a lead (matched on ``id``) under a prospect; bumps ``lastchangedon``."""
        with self._lock:
            client = self._client(clientid)
            p = client.prospects.get(int(cst_id))
            if p is None:
                raise KeyError(f"unknown cst_id {cst_id}")
            client.unindex(p)
            try:
                stored = self._upsert_lead(client, p, lead, touch)
            finally:
                client.reindex(p)
            return _copy(stored)

    def _upsert_lead(
        self, client: _Client, p: Record, lead: Mapping[str, Any], touch: bool
    ) -> Record:
        lead_id = lead.get("id", lead.get("lds_id"))
        hit = client.leads.get(int(lead_id)) if lead_id not in (None, "") else None
        if hit is not None and hit[0] != p["cst_id"]:
            raise ValueError(f"lead {lead_id} belongs to prospect {hit[0]}")
        if hit is None:
            new_id = int(lead_id) if lead_id not in (None, "") else client.next_lead
            client.next_lead = max(client.next_lead, new_id + 1)
            stored = data.empty_lead(new_id)
            now = self.now_local(client.spec.clientid)
            stored.update(entrydate=now[:11] + "00:00:00", dateentered=now, lastchangedon=now)
            p["leads"].append(stored)
            client.leads[new_id] = (p["cst_id"], stored)
        else:
            stored = hit[1]
        scalars = {
            k: v for k, v in lead.items() if k not in ("id", "lds_id", "jobs", "appointments")
        }
        self._merge(client, stored, scalars, _LEAD_TS)
        for job in lead.get("jobs") or ():
            self._upsert_child(client, stored, "jobs", job, touch)
        for appt in lead.get("appointments") or ():
            self._upsert_child(client, stored, "appointments", appt, touch)
        if touch and "lastchangedon" not in lead:
            stored["lastchangedon"] = self.now_local(client.spec.clientid)
        return stored

    def _upsert_child(
        self, client: _Client, lead: Record, kind: str, fields: Mapping[str, Any], touch: bool
    ) -> Record:
        index = client.jobs if kind == "jobs" else client.appts
        child_id = fields.get("id", fields.get("job_id" if kind == "jobs" else "ils_id"))
        hit = index.get(int(child_id)) if child_id not in (None, "") else None
        if hit is not None and hit[0] != lead["id"]:
            raise ValueError(f"{kind[:-1]} {child_id} belongs to lead {hit[0]}")
        if hit is None:
            if kind == "jobs":
                new_id = int(child_id) if child_id not in (None, "") else client.next_job
                client.next_job = max(client.next_job, new_id + 1)
                stored = data.empty_job(new_id)
            else:
                new_id = int(child_id) if child_id not in (None, "") else client.next_appt
                client.next_appt = max(client.next_appt, new_id + 1)
                stored = data.empty_appointment(new_id)
            now = self.now_local(client.spec.clientid)
            for key in ("entrydate", "dateentered"):
                if key in stored:
                    stored[key] = now[:11] + "00:00:00" if key == "entrydate" else now
            lead[kind].append(stored)
            index[new_id] = (lead["id"], stored)
        else:
            stored = hit[1]
        skip = {"id", "job_id", "ils_id"}
        scalars = {k: v for k, v in fields.items() if k not in skip}
        self._merge(client, stored, scalars, _JOB_TS if kind == "jobs" else _APPT_TS)
        if touch and "lastchangedon" not in fields:
            stored["lastchangedon"] = self.now_local(client.spec.clientid)
        return stored

    def _upsert_under_lead(
        self, clientid: str | None, lds_id: int, kind: str, fields: Mapping[str, Any], touch: bool
    ) -> Record:
        with self._lock:
            client = self._client(clientid)
            hit = client.leads.get(int(lds_id))
            if hit is None:
                raise KeyError(f"unknown lds_id {lds_id}")
            p = client.prospects[hit[0]]
            client.unindex(p)
            try:
                stored = self._upsert_child(client, hit[1], kind, fields, touch)
            finally:
                client.reindex(p)
            return _copy(stored)

    def upsert_job(
        self, clientid: str | None, lds_id: int, job: Mapping[str, Any], *, touch: bool = True
    ) -> Record:
        """Create or update a job (matched on ``id``) under a lead; bumps its ``lastchangedon``."""
        return self._upsert_under_lead(clientid, lds_id, "jobs", job, touch)

    def upsert_appointment(
        self, clientid: str | None, lds_id: int, appt: Mapping[str, Any], *, touch: bool = True
    ) -> Record:
        """Create or update an appointment (issued lead) under a lead; bumps ``lastchangedon``."""
        return self._upsert_under_lead(clientid, lds_id, "appointments", appt, touch)

    # --- reads -----------------------------------------------------------------------------

    def get_prospect(self, clientid: str | None, cst_id: int) -> Record | None:
        with self._lock:
            p = self._client(clientid).prospects.get(int(cst_id))
            return _copy(p) if p is not None else None

    def get_prospects(self, clientid: str | None = None) -> list[Record]:
        """Every prospect of a client in cst_id order (deep copies, safe to mutate)."""
        with self._lock:
            client = self._client(clientid)
            return _copy([client.prospects[c] for c in client.cst_sorted])

    def find_lead(self, clientid: str | None, lds_id: int) -> Record | None:
        with self._lock:
            hit = self._client(clientid).leads.get(int(lds_id))
            return _copy(hit[1]) if hit else None

    def find_job(self, clientid: str | None, job_id: int) -> Record | None:
        with self._lock:
            hit = self._client(clientid).jobs.get(int(job_id))
            return _copy(hit[1]) if hit else None

    def window(self, clientid: str | None, startdate: str | None, enddate: str | None) -> Window:
        """GetLead's [startdate, enddate] in the client's naive local time; a bare date is midnight.

        Midnight for a date-only ``enddate`` reproduces what a public client observed ("LP treats
        enddate as exclusive — use tomorrow so today's leads are captured").
        """
        local = self._client(clientid).time
        start, end = ((raw or "").strip() for raw in (startdate, enddate))
        return Window(
            parse_lp_datetime(start, local) if start else None,
            parse_lp_datetime(end, local) if end else None,
        )

    def _owner_of_ils(self, client: _Client, ils_id: int) -> int | None:
        """cst_id behind an issued-lead id: an appointment id, or (leniently) a lead id."""
        appt = client.appts.get(ils_id)
        lead = client.leads.get(appt[0] if appt else ils_id)
        return lead[0] if lead else None

    def query_prospects(
        self,
        clientid: str | None,
        window: Window,
        *,
        cst_id: int | None = None,
        lds_id: int | None = None,
        ils_id: int | None = None,
        descending: bool = False,
    ) -> list[int]:
        """cst_ids matching a GetLead request, in the stable order StartIndex pages over."""
        with self._lock:
            client = self._client(clientid)
            key = ("prospects", window, cst_id, lds_id, ils_id)

            def compute() -> list[int]:
                if cst_id is None and lds_id is None and ils_id is None:
                    return client.in_window(window)
                sets: list[set[int]] = []
                if cst_id is not None:
                    sets.append({cst_id})
                if lds_id is not None:
                    lead = client.leads.get(lds_id)
                    sets.append({lead[0]} if lead else set())
                if ils_id is not None:
                    owner = self._owner_of_ils(client, ils_id)
                    sets.append({owner} if owner is not None else set())
                wanted = set.intersection(*sets)
                ids = sorted(c for c in wanted if c in client.prospects)
                if window.bounded:
                    ids = [
                        c
                        for c in ids
                        if any(window.contains(ts) for ts, _ in _events_of(client.prospects[c]))
                    ]
                return ids

            ids = client.cached(key, compute)
            return ids[::-1] if descending else ids

    def render_prospects(
        self, clientid: str | None, ids: Sequence[int], *, extended: bool = False
    ) -> bytes:
        """One page of prospects as LP's JSON array (``extended``: GetProspectData's extras)."""
        with self._lock:
            client = self._client(clientid)
            if extended:
                return orjson.dumps([{**client.prospects[c], **client.extras[c]} for c in ids])
            return orjson.dumps([client.prospects[c] for c in ids])

    @staticmethod
    def _person(p: Record) -> Record:
        return {
            "cst_id": p["cst_id"],
            "firstname": p["firstname"],
            "lastname": p["lastname"],
            "phone1": p["phone1"],
            "email": p["email"],
            "address1": p["address1"],
            "city": p["city"],
            "state": p["state"],
            "zip": p["zip"],
        }

    def query_leads(
        self,
        clientid: str | None,
        window: Window,
        *,
        cst_id: int | None = None,
        lds_id: int | None = None,
        ils_id: int | None = None,
    ) -> list[int]:
        """Lead ids for GetLeadData: the lead or one of its jobs/appointments changed in window."""
        with self._lock:
            client = self._client(clientid)

            def compute() -> list[int]:
                out = []
                for c in client.in_window(window):
                    for lead in client.prospects[c]["leads"]:
                        if window.bounded and not (
                            window.contains(lead.get("lastchangedon"))
                            or any(window.contains(j.get("lastchangedon")) for j in lead["jobs"])
                            or any(
                                window.contains(a.get("lastchangedon"))
                                for a in lead["appointments"]
                            )
                        ):
                            continue
                        out.append(lead["id"])
                return sorted(out)

            ids = client.cached(("leads", window), compute)
            if cst_id is not None:
                ids = [i for i in ids if client.leads[i][0] == cst_id]
            if lds_id is not None:
                ids = [i for i in ids if i == lds_id]
            if ils_id is not None:
                appt = client.appts.get(ils_id)
                owner = appt[0] if appt else ils_id
                ids = [i for i in ids if i == owner]
            return ids

    def render_leads(self, clientid: str | None, ids: Sequence[int], *, milestones: bool) -> bytes:
        with self._lock:
            client = self._client(clientid)
            out = []
            for lead_id in ids:
                cst, lead = client.leads[lead_id]
                item = self._person(client.prospects[cst])
                item["lds_id"] = lead_id
                item.update(
                    (k, v) for k, v in lead.items() if k not in ("notes", "jobs", "appointments")
                )
                if milestones:
                    item["milestones"] = [m for job in lead["jobs"] for m in job["milestones"]]
                out.append(item)
            return orjson.dumps(out)

    def query_children(
        self,
        clientid: str | None,
        kind: str,
        window: Window,
        *,
        cst_id: int | None = None,
        lds_id: int | None = None,
        child_id: int | None = None,
    ) -> list[int]:
        """Appointment ids (GetSalesAppointments) or job ids (GetJobStatusChanges) by window."""
        with self._lock:
            client = self._client(clientid)
            index = client.appts if kind == "appointments" else client.jobs

            def compute() -> list[int]:
                out: list[int] = []
                for c in client.in_window(window):
                    for lead in client.prospects[c]["leads"]:
                        out.extend(
                            child["id"]
                            for child in lead[kind]
                            if not window.bounded or window.contains(child.get("lastchangedon"))
                        )
                return sorted(out)

            ids = client.cached((kind, window), compute)
            if cst_id is not None:
                ids = [i for i in ids if client.leads[index[i][0]][0] == cst_id]
            if lds_id is not None:
                ids = [i for i in ids if index[i][0] == lds_id]
            if child_id is not None:
                ids = [i for i in ids if i == child_id]
            return ids

    def render_children(self, clientid: str | None, kind: str, ids: Sequence[int]) -> bytes:
        with self._lock:
            client = self._client(clientid)
            out = []
            for child_id in ids:
                if kind == "appointments":
                    lds_id, appt = client.appts[child_id]
                    cst, lead = client.leads[lds_id]
                    item = {"id": child_id, "ils_id": child_id, "lds_id": lds_id}
                    item.update(self._person(client.prospects[cst]))
                    for key in ("productid", "productdescr", "source", "sourcesubdescr"):
                        item[key] = lead[key]
                    item.update((k, v) for k, v in appt.items() if k != "id")
                else:
                    lds_id, job = client.jobs[child_id]
                    cst, lead = client.leads[lds_id]
                    p = client.prospects[cst]
                    item = {"job_id": child_id, "id": child_id, "lds_id": lds_id, "cst_id": cst}
                    item.update(firstname=p["firstname"], lastname=p["lastname"])
                    item.update((k, v) for k, v in job.items() if k not in ("id", "notes"))
                out.append(item)
            return orjson.dumps(out)

    # --- writes (the API's write routes) ---------------------------------------------------

    def add_note(
        self,
        clientid: str | None,
        rectype: str,
        recid: int,
        text: str,
        *,
        nct_id: str | None = None,
        enteredby: str | None = None,
    ) -> bool:
        """``AddNotes``: store on the prospect, lead or job and bump its change stamp.

        Returns whether anything was stored; the HTTP answer is the same either way, as LP's is.
        """
        with self._lock:
            client = self._client(clientid)
            now = self.now_local(client.spec.clientid)
            category = NOTE_CATEGORIES.get(str(nct_id), str(nct_id)) if nct_id else "General"
            note = {
                "notes": text,
                "rectype": rectype,
                "category": category,
                "enteredby": enteredby or client.spec.username,
                "enteredon": now,
            }
            if rectype == "cst":
                owner = client.prospects.get(recid)
                target, stamp = owner, "lastchanged"
            elif rectype == "ils":
                appt = client.appts.get(recid)
                hit = client.leads.get(appt[0] if appt else recid)
                owner = client.prospects[hit[0]] if hit else None
                target, stamp = (hit[1] if hit else None), "lastchangedon"
            else:
                job_hit = client.jobs.get(recid)
                owner = client.lead_owner(job_hit[0]) if job_hit else None
                target, stamp = (job_hit[1] if job_hit else None), "lastchangedon"
            if target is None or owner is None:
                self._counters["writes_ignored"] += 1
                return False
            client.unindex(owner)
            target["notes"].append(note)
            target[stamp] = now
            client.reindex(owner)
            client.notes_written.append(
                {"clientid": client.spec.clientid, "recid": recid, "nct_id": nct_id, **note}
            )
            self._counters["notes_written"] += 1
            return True

    def add_call(self, clientid: str | None, cust_id: int, fields: Mapping[str, str]) -> bool:
        """``AddCallHistory``: append to the prospect's ``calls[]``.

        No change stamp moves: per the seed, "A Lead's latest Call Result from LeadPerfection is
        not considered an update that will trigger a Lead to sync. This is a limitation within
        their APIs."
        """
        with self._lock:
            client = self._client(clientid)
            p = client.prospects.get(cust_id)
            if p is None:
                self._counters["writes_ignored"] += 1
                return False
            raw_date = fields.get("calldate", "")
            calldatetime = (
                parse_lp_datetime(raw_date, client.time)
                if raw_date.strip()
                else self.now_local(client.spec.clientid)
            )
            result = fields.get("resultcode", "")
            ctype = fields.get("calltype", "")
            emp = fields.get("empid", "")
            duration = fields.get("duration", "")
            call = {
                "calldatetime": calldatetime,
                "phone": fields.get("phone", ""),
                "resultcode": result,
                "resultdescr": data.CALL_RESULTS.get(result.upper(), ""),
                "calltype": ctype,
                "calltypedescr": data.CALL_TYPES.get(ctype.upper(), ""),
                "agent": emp,
                "agentname": EMPLOYEE_NAMES.get(emp, ""),
                "duration": int(duration) if duration.strip().isdigit() else 0,
                "callqueueid": fields.get("callqueueid", ""),
                "recordingurl": fields.get("recordingurl", ""),
            }
            p["calls"].append(call)
            client.calls_written.append(
                {"clientid": client.spec.clientid, "cst_id": cust_id, **call}
            )
            self._counters["calls_written"] += 1
            return True

    def add_production_note(
        self, clientid: str | None, job_id: int, text: str, *, enteredby: str | None = None
    ) -> bool:
        """``AddInstallerJobNotes``: a production note in the job's ``notes[]``; bumps the job."""
        with self._lock:
            client = self._client(clientid)
            hit = client.jobs.get(job_id)
            owner = client.lead_owner(hit[0]) if hit else None
            if hit is None or owner is None:
                self._counters["writes_ignored"] += 1
                return False
            now = self.now_local(client.spec.clientid)
            note = {
                "notes": text,
                "rectype": "job",
                "category": "Production",
                "enteredby": enteredby or client.spec.username,
                "enteredon": now,
            }
            client.unindex(owner)
            hit[1]["notes"].append(note)
            hit[1]["lastchangedon"] = now
            client.reindex(owner)
            client.production_notes_written.append(
                {"clientid": client.spec.clientid, "job_id": job_id, **note}
            )
            self._counters["production_notes_written"] += 1
            return True

    def get_notes(
        self,
        clientid: str | None = None,
        *,
        rectype: str | None = None,
        recid: int | None = None,
    ) -> list[Record]:
        """Notes stored through ``AddNotes`` (not seeded ones), oldest first."""
        with self._lock:
            notes = self._client(clientid).notes_written
            return _copy(
                [
                    n
                    for n in notes
                    if (rectype is None or n["rectype"] == rectype)
                    and (recid is None or n["recid"] == recid)
                ]
            )

    def get_call_logs(
        self, clientid: str | None = None, *, cst_id: int | None = None
    ) -> list[Record]:
        """Call logs stored through ``AddCallHistory``, oldest first."""
        with self._lock:
            calls = self._client(clientid).calls_written
            return _copy([c for c in calls if cst_id is None or c["cst_id"] == cst_id])

    def get_production_notes(
        self, clientid: str | None = None, *, job_id: int | None = None
    ) -> list[Record]:
        """Production notes stored through ``AddInstallerJobNotes``, oldest first."""
        with self._lock:
            notes = self._client(clientid).production_notes_written
            return _copy([n for n in notes if job_id is None or n["job_id"] == job_id])

    def plan_faults(self, path: str, method: str = "POST") -> FaultPlan:
        """What the armed faults do to the next request on ``path`` (every LP route is a POST)."""
        return self.fault_book.plan(method, path)

    # --- stats -----------------------------------------------------------------------------

    def stats(self) -> Record:
        with self._lock:
            fired = {f"fault_{kind}": n for kind, n in self.fault_book.fired.items()}
            return {
                "now": self.now().isoformat(),
                "counters": {**self._counters, **fired, "requests": len(self.request_log)},
                "by_route": self.request_log.tally("path"),
                "by_status": self.request_log.tally("status"),
                "faults_armed": len(self.faults()),
                "clients": {
                    c.spec.clientid: {
                        "prospects": len(c.prospects),
                        "leads": len(c.leads),
                        "jobs": len(c.jobs),
                        "appointments": len(c.appts),
                    }
                    for c in self._clients.values()
                },
            }
