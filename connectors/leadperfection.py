"""LeadPerfection connector: password-grant auth, windowed GetLead reads, notes and call logs.

Reference: ``/work/shared/reference/crm-apis.md`` §2 (LP's own spec is on SwaggerHub,
https://app.swaggerhub.com/apis/LeadPerfection/Examples/1.0, not public; everything here follows
public client code, marked [C2] there) and §5.4 (what a connector owes the emulator's tests).

**Host and auth.** Every LP customer has its own host, ``https://{serverid}.leadperfection.com``
(``api``, ``apitest``, or a customer subdomain), overridable by the integration's ``base_url``.
A token comes from ``POST /token`` with the OWIN password grant plus LP's ``clientid`` and
``appkey``, form-encoded; it is cached per integration until :data:`TOKEN_REFRESH_MARGIN`
seconds before its ``expires_in`` (3600 s assumed when LP omits it, as one public client does).
A 401 invalidates it and the engine (:mod:`connectors.http`) re-authenticates and resends once.

**Reads are POSTs.** LP reads with form-encoded POSTs, so every read passes ``idempotent=True``
(retried on timeouts and 5xx like a GET) and every write ``idempotent=False`` (never blindly
repeated; see :mod:`connectors.http`).

**Paging.** ``GetLead`` pages with ``PageSize`` and a 1-based ``StartIndex``; the next page starts
``PageSize`` records later, and a short page ends the result. Offset paging drifts when the result
set changes while it is read: a record edited mid-read leaves a fixed past window (its new stamp
is after the window end), every later record moves up one place, and the record at the page
boundary is never returned, although its own change is inside the window and no later window
will cover it. :meth:`LeadPerfectionClient.window_page` therefore starts each page
``overlap`` records early and looks for the previous page's last ``cst_id`` values (the
*anchors*) in it: records after the last anchor found are new; when no anchor is found the read
steps back a page at a time (at worst to ``StartIndex=1``) and re-reads, which the idempotent merge
absorbs. With ``overlap=0`` it is LP's plain ``StartIndex += PageSize`` paging.

**Dates.** LP sends and expects naive wall-clock timestamps in the customer's time zone (US
Eastern for the public clients, crm-apis.md §2.5). :func:`lp_window` turns an aware UTC window
into LP's form; in the autumn DST fold the local start is moved back by the repeated hour so a
window never comes out shorter (or inverted) in wall-clock time than it is in real time.

**Permission.** Seed 001 (Requirements) has the API user granted LP's *APISecurity* functions
(Security → User Access → Function Level Security). Without them the user still signs in
(``/token`` checks the password) and each refused call is answered the way ASP.NET Web API's
``[Authorize]`` answers, 401 ``{"Message":"Authorization has been denied for this request."}``,
the same body as an expired token (crm-apis.md §2.1, §2.6, [I]). The engine re-authenticates
once; a 401 again with a token just issued, or a 403 from a host that says Forbidden, can only
be the missing permission, so :func:`missing_api_security` turns it into a
:class:`~connectors.errors.ForbiddenError` naming the refused call and the seed's steps to grant
it. A refused ``/token`` stays an :class:`~connectors.errors.AuthError` (wrong credentials).

**Writes.** ``AddNotes`` answers ``"UPDATED SUCCESSFULLY!"`` whether or not the note landed
(an unknown ``recid`` is silently ignored, §2.4), so a 200 proves nothing: the push layer checks
with :meth:`LeadPerfectionClient.find_note` (GetLead embeds notes; ``GetNotes`` is a 404).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson

from connectors.errors import AuthError, BadRequestError, ForbiddenError, ResponseFormatError
from connectors.http import CachedToken, CachedTokenProvider, HttpEngine, TokenCache

__all__ = [
    "APISECURITY_STEPS",
    "DEFAULT_EXPIRES_IN",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_TIMEZONE",
    "DEFAULT_TOKEN_CACHE",
    "PAGE_OVERLAP",
    "WRITE_OK",
    "LeadPerfectionClient",
    "LeadPerfectionCredentials",
    "WindowPage",
    "base_url_for",
    "format_lp_datetime",
    "lp_window",
    "missing_api_security",
]

PROVIDER = "leadperfection"
HOST_TEMPLATE = "https://{serverid}.leadperfection.com"
DEFAULT_TIMEZONE = "America/New_York"
DEFAULT_PAGE_SIZE = 500
PAGE_OVERLAP = 5
"""Records each page re-reads from the previous one, to detect a result set that shifted."""
DEFAULT_EXPIRES_IN = 3600
TOKEN_REFRESH_MARGIN = 300.0
"""Seconds before ``expires_in`` runs out at which a cached token is replaced."""
WRITE_OK = "UPDATED SUCCESSFULLY!"
NOTE_RECTYPES = frozenset({"cst", "ils", "job"})

TOKEN_PATH = "/token"
GET_LEAD = "/api/Customers/GetLead"
GET_JOB_STATUS_CHANGES = "/api/Customers/GetJobStatusChanges"
ADD_NOTES = "/api/SalesApi/AddNotes"
ADD_CALL_HISTORY = "/api/Customers/AddCallHistory"
ADD_INSTALLER_JOB_NOTES = "/api/Installer/AddInstallerJobNotes"

_LP_FORMAT = "%Y-%m-%dT%H:%M:%S"

APISECURITY_STEPS = (
    "in LeadPerfection go to Security → User Access, find the user and select Assign, open the "
    "Function Level Security tab, select APISecurity from the dropdown list, select Check All "
    "and click Save"
)
"""Seed 001, "Requirements": how the API user is given the rights the integration needs."""


def missing_api_security(
    exc: AuthError | ForbiddenError, username: str, token_path: str = TOKEN_PATH
) -> ForbiddenError | None:
    """A data call refused to a signed-in user, told as what the operator must do about it;
    None when ``exc`` is not that (a refused ``/token`` means wrong credentials instead).

    ``username`` is the LP user (not a secret: LP shows it in its user list); nothing of the
    request or the token enters the message.
    """
    if exc.path is None or exc.path.rstrip("/").lower() == token_path.rstrip("/").lower():
        return None
    if exc.status_code not in (401, 403):
        return None
    function = exc.path.rstrip("/").rsplit("/", 1)[-1]
    again = " again with a fresh token" if exc.status_code == 401 else ""
    return ForbiddenError(
        f"LeadPerfection refused {function} ({exc.method or 'POST'} {exc.path} -> HTTP "
        f"{exc.status_code}{again}) although user {username!r} signed in: "
        f"the user lacks the APISecurity permission. To grant it (seed 001, Requirements), "
        f"{APISECURITY_STEPS}; the next sync then reads again.",
        provider=PROVIDER,
        status_code=exc.status_code,
        method=exc.method,
        path=exc.path,
    )


Record = dict[str, Any]


@dataclass(frozen=True)
class LeadPerfectionCredentials:
    """One LP integration's credentials; password and app key stay out of ``repr``.

    ``serverid`` names the customer's host and may be left out when the integration sets a
    ``base_url`` (tests, a proxy, an unusual host).
    """

    clientid: str
    username: str
    password: str = field(repr=False)
    appkey: str = field(repr=False)
    serverid: str | None = None

    def __post_init__(self) -> None:
        if not self.clientid or not self.username or not self.password or not self.appkey:
            raise ValueError("clientid, username, password and appkey must be non-empty")
        if self.serverid is not None and not _valid_serverid(self.serverid):
            raise ValueError("serverid must be a host label (letters, digits, hyphens)")


def _valid_serverid(value: str) -> bool:
    return (
        0 < len(value) <= 63
        and value.isascii()
        and value.replace("-", "").isalnum()
        and not value.startswith("-")
        and not value.endswith("-")
    )


def base_url_for(serverid: str) -> str:
    """The customer's LP host, ``https://{serverid}.leadperfection.com``."""
    if not _valid_serverid(serverid):
        raise ValueError("serverid must be a host label (letters, digits, hyphens)")
    return HOST_TEMPLATE.format(serverid=serverid.lower())


def format_lp_datetime(value: datetime, tz: tzinfo) -> str:
    """An aware instant as LP's naive wall-clock string in ``tz`` (``2025-04-16T17:00:07``)."""
    if value.tzinfo is None:
        raise ValueError("value must be timezone-aware")
    return value.astimezone(tz).strftime(_LP_FORMAT)


def lp_window(start: datetime, end: datetime, tz: tzinfo) -> tuple[str, str]:
    """``(startdate, enddate)`` for the UTC window [start, end], in LP's local wall-clock form.

    Both bounds are truncated to the second (LP stamps carry seconds; its range is inclusive).
    When the window spans the autumn fold the wall clock repeats an hour, so the local span is
    shorter than the real one (or even inverted); the start is moved back by the difference.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("window bounds must be timezone-aware")
    start, end = start.replace(microsecond=0), end.replace(microsecond=0)
    local_start = start.astimezone(tz).replace(tzinfo=None)
    local_end = end.astimezone(tz).replace(tzinfo=None)
    shortfall = (end - start) - (local_end - local_start)
    if shortfall > timedelta(0):
        local_start -= shortfall
    return local_start.strftime(_LP_FORMAT), local_end.strftime(_LP_FORMAT)


class _PasswordGrantTokens(CachedTokenProvider):
    """OWIN password grant with LP's ``clientid``/``appkey``, shared through a TokenCache."""

    def __init__(
        self,
        engine: HttpEngine,
        credentials: LeadPerfectionCredentials,
        token_url: str,
        cache: TokenCache,
    ) -> None:
        self._engine = engine
        self._credentials = credentials
        self._token_url = token_url
        identity = f"{credentials.clientid.lower()}\x00{credentials.username.lower()}"
        secret = f"{credentials.password}\x00{credentials.appkey}"
        super().__init__(cache, TokenCache.key(token_url, identity, secret))

    def _fetch(self) -> CachedToken:
        creds = self._credentials
        form = {
            "grant_type": "password",
            "username": creds.username,
            "password": creds.password,
            "clientid": creds.clientid,
            "appkey": creds.appkey,
        }
        requested_at = self._cache.clock()
        try:
            response = self._engine.request(
                "POST", self._token_url, auth=False, idempotent=True, data=form
            )
        except (BadRequestError, AuthError) as exc:
            if exc.status_code not in (400, 401):
                raise
            code = "invalid_grant" if "invalid_grant" in exc.message else f"HTTP {exc.status_code}"
            raise AuthError(
                f"{PROVIDER}: {exc.method} {exc.path} -> HTTP {exc.status_code}: LeadPerfection "
                f"rejected the credentials ({code}) for client {creds.clientid!r}, "
                f"user {creds.username!r}",
                provider=PROVIDER,
                status_code=exc.status_code,
                method=exc.method,
                path=exc.path,
            ) from None
        body = self._engine.json(response)
        token = body.get("access_token") if isinstance(body, dict) else None
        expires_in = body.get("expires_in", DEFAULT_EXPIRES_IN) if isinstance(body, dict) else None
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)
        if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
            raise self._engine.error(
                ResponseFormatError,
                response.request,
                "token response lacks access_token/expires_in",
                response.status_code,
            )
        return CachedToken(access_token=token, expires_at=requested_at + float(expires_in))


DEFAULT_TOKEN_CACHE = TokenCache(refresh_margin=TOKEN_REFRESH_MARGIN)
"""LP tokens of this process, shared by every client of one integration (not ServiceTitan's)."""


@dataclass(frozen=True)
class WindowPage:
    """One page of a GetLead window read.

    ``records`` are the prospects this page adds (the overlap with the previous page removed);
    ``next_start_index`` is where the next page starts, None once the window is fully read;
    ``anchors`` are the ``cst_id`` values to look for at the start of the next page.
    """

    records: list[Any]
    next_start_index: int | None
    anchors: tuple[int, ...]
    start_index: int
    stepped_back: int = 0


class LeadPerfectionClient:
    """A LeadPerfection API client for one customer, usable from a Python shell.

    ``timezone`` is the customer's wall clock (aware datetimes passed to reads and writes are
    converted to it). ``http`` lets tests inject a client (``httpx.MockTransport``);
    ``token_cache`` defaults to the process-wide LP cache.
    """

    def __init__(
        self,
        credentials: LeadPerfectionCredentials,
        *,
        base_url: str | None = None,
        token_url: str | None = None,
        timezone: str | tzinfo = DEFAULT_TIMEZONE,
        http: httpx.Client | None = None,
        timeout: httpx.Timeout | float | None = None,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        token_cache: TokenCache | None = None,
        rate_limit: float | None = None,
        before_request: Callable[[httpx.Request], None] | None = None,
    ) -> None:
        if base_url is None:
            if credentials.serverid is None:
                raise ValueError("LeadPerfection needs a serverid or a base_url")
            base_url = base_url_for(credentials.serverid)
        self.credentials = credentials
        self.tz: tzinfo = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        self.engine = HttpEngine(
            provider=PROVIDER,
            base_url=base_url,
            client=http,
            timeout=timeout,
            max_attempts=max_attempts,
            sleep=sleep,
            rate_limit=rate_limit,
            before_request=before_request,
        )
        self._tokens = _PasswordGrantTokens(
            self.engine,
            credentials,
            token_url or base_url.rstrip("/") + TOKEN_PATH,
            token_cache if token_cache is not None else DEFAULT_TOKEN_CACHE,
        )
        self.engine.token_provider = self._tokens
        self._token_path = httpx.URL(token_url or base_url.rstrip("/") + TOKEN_PATH).path

    def __repr__(self) -> str:
        return (
            f"LeadPerfectionClient(clientid={self.credentials.clientid!r}, "
            f"base_url={self.engine.base_url!r})"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> LeadPerfectionClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- auth --------------------------------------------------------------------------------

    def authenticate(self) -> datetime:
        """Make sure a token is held (fetching one if needed) and return its expiry (UTC)."""
        return self._tokens.current().expires

    # -- reads -------------------------------------------------------------------------------

    def get_lead(
        self,
        *,
        startdate: datetime | str | None = None,
        enddate: datetime | str | None = None,
        cst_id: int | None = None,
        lds_id: int | None = None,
        ils_id: int | None = None,
        page_size: int | None = None,
        start_index: int | None = None,
    ) -> list[Any]:
        """One ``GetLead`` call: prospects with nested ``leads[]``/``notes[]``/``calls[]``.

        Items are returned as LP sent them (the caller quarantines any that are not objects).
        """
        form: dict[str, str] = {}
        for name, value in (("startdate", startdate), ("enddate", enddate)):
            if value is not None:
                form[name] = value if isinstance(value, str) else self._lp_time(value)
        for name, number in (
            ("cst_id", cst_id),
            ("lds_id", lds_id),
            ("ils_id", ils_id),
            ("PageSize", page_size),
            ("StartIndex", start_index),
        ):
            if number is not None:
                form[name] = str(int(number))
        return self._read_array(GET_LEAD, form)

    def window_page(
        self,
        startdate: datetime | str,
        enddate: datetime | str,
        *,
        start_index: int = 1,
        anchors: Sequence[int] = (),
        page_size: int = DEFAULT_PAGE_SIZE,
        overlap: int = PAGE_OVERLAP,
    ) -> WindowPage:
        """The page of the window [startdate, enddate] at ``start_index``, drift-checked.

        Pass the previous page's ``next_start_index`` and ``anchors``; the first page of a
        window has neither. ``overlap`` is capped below a quarter of ``page_size`` so every
        page still makes progress.
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if isinstance(startdate, datetime) and isinstance(enddate, datetime):
            startdate, enddate = lp_window(startdate, enddate, self.tz)
        overlap = max(0, min(overlap, (page_size - 1) // 4))
        wanted = set(anchors)
        index = max(1, start_index)
        stepped = 0
        while True:
            page = self.get_lead(
                startdate=startdate, enddate=enddate, page_size=page_size, start_index=index
            )
            if not wanted:
                fresh = page
                break
            found = _last_anchor(page, wanted)
            if found is not None:
                fresh = page[found + 1 :]
                break
            if index == 1:
                fresh = page  # back at the start: everything is re-read
                break
            # The anchors moved up (records before them left the window) or vanished.
            index = max(1, index - page_size + overlap)
            stepped += 1
        if len(page) < page_size:
            return WindowPage(fresh, None, (), index, stepped)
        tail = tuple(
            rec["cst_id"]
            for rec in page[len(page) - overlap :]
            if isinstance(rec, dict) and isinstance(rec.get("cst_id"), int)
        )
        return WindowPage(fresh, index + len(page) - overlap, tail, index, stepped)

    def iter_window(
        self,
        startdate: datetime | str,
        enddate: datetime | str,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        overlap: int = PAGE_OVERLAP,
    ) -> Iterator[list[Any]]:
        """Every prospect LP reports as changed in the window, page by page."""
        index: int | None = 1
        anchors: tuple[int, ...] = ()
        while index is not None:
            page = self.window_page(
                startdate,
                enddate,
                start_index=index,
                anchors=anchors,
                page_size=page_size,
                overlap=overlap,
            )
            yield page.records
            index, anchors = page.next_start_index, page.anchors

    def get_prospect(self, cst_id: int) -> Record | None:
        """One prospect with everything nested in it (notes, calls, leads, jobs), or None."""
        for item in self.get_lead(cst_id=int(cst_id), page_size=1):
            if isinstance(item, dict) and item.get("cst_id") == int(cst_id):
                return item
        return None

    # -- writes (push) -----------------------------------------------------------------------

    def add_note(self, rectype: str, recid: int, notes: str, *, nct_id: str | None = None) -> str:
        """``AddNotes`` on a prospect (``cst``), issued lead (``ils``) or job (``job``).

        Returns LP's answer, which is the same whether or not the note was stored: confirm with
        :meth:`find_note` before treating the note as written.
        """
        if rectype not in NOTE_RECTYPES:
            raise ValueError(f"rectype must be one of {sorted(NOTE_RECTYPES)}")
        if not notes.strip():
            raise ValueError("notes must not be blank")
        form = {"rectype": rectype, "recid": str(int(recid)), "notes": notes}
        if nct_id:
            form["nct_id"] = str(nct_id)
        return self._write(ADD_NOTES, form)

    def add_call_history(
        self,
        cust_id: int,
        *,
        call_date: datetime,
        result_code: str,
        phone: str = "",
        call_type: str = "O",
        emp_id: str = "",
        call_queue_id: str = "",
        duration: int | None = None,
        recording_url: str = "",
    ) -> str:
        """``AddCallHistory``: one entry in the prospect's ``calls[]`` (a call log)."""
        form = {
            "CustID": str(int(cust_id)),
            "EmpID": emp_id,
            "CallDate": self._lp_time(call_date),
            "ResultCode": result_code,
            "Phone": phone,
            "CallType": call_type,
            "CallQueueID": call_queue_id,
            "Duration": "" if duration is None else str(int(duration)),
            "RecordingURL": recording_url,
        }
        return self._write(ADD_CALL_HISTORY, form)

    def add_installer_job_notes(self, job_id: int, notes: str) -> str:
        """``AddInstallerJobNotes``: a production note on a job."""
        if not notes.strip():
            raise ValueError("notes must not be blank")
        return self._write(ADD_INSTALLER_JOB_NOTES, {"job_id": str(int(job_id)), "notes": notes})

    # -- read-back ---------------------------------------------------------------------------

    def read_notes(self, rectype: str, recid: int, *, cst_id: int | None = None) -> list[Record]:
        """The notes LP holds on a prospect, issued lead or job (bare strings as ``{"notes"}``).

        ``cst_id`` (the owning prospect) saves a look-up for ``job``; an ``ils`` id may be an
        appointment's or a lead's. Unknown records have no notes.
        """
        if rectype not in NOTE_RECTYPES:
            raise ValueError(f"rectype must be one of {sorted(NOTE_RECTYPES)}")
        recid = int(recid)
        if rectype == "cst":
            prospect = self.get_prospect(recid)
            return _notes(prospect.get("notes")) if prospect else []
        if rectype == "ils":
            found = self.get_lead(ils_id=recid, page_size=1)
            for prospect in found:
                for lead in _dicts(prospect.get("leads") if isinstance(prospect, dict) else None):
                    appts = _dicts(lead.get("appointments"))
                    if lead.get("id") == recid or any(a.get("id") == recid for a in appts):
                        return _notes(lead.get("notes"))
            return []
        owner = cst_id if cst_id is not None else self._job_owner(recid)
        prospect = self.get_prospect(owner) if owner is not None else None
        for lead in _dicts(prospect.get("leads") if prospect else None):
            for job in _dicts(lead.get("jobs")):
                if job.get("id") == recid:
                    return _notes(job.get("notes"))
        return []

    def find_note(
        self, rectype: str, recid: int, contains: str, *, cst_id: int | None = None
    ) -> Record | None:
        """The first note on the record whose text contains ``contains`` (e.g. a push key)."""
        for note in self.read_notes(rectype, recid, cst_id=cst_id):
            text = note.get("notes")
            if isinstance(text, str) and contains in text:
                return note
        return None

    def read_calls(self, cust_id: int) -> list[Record]:
        """The prospect's call history (``calls[]``), as LP returns it."""
        prospect = self.get_prospect(cust_id)
        return _dicts(prospect.get("calls")) if prospect else []

    # -- internals ---------------------------------------------------------------------------

    def _lp_time(self, value: datetime) -> str:
        return format_lp_datetime(value, self.tz)

    def _job_owner(self, job_id: int) -> int | None:
        rows = self._read_array(GET_JOB_STATUS_CHANGES, {"job_id": str(job_id), "PageSize": "1"})
        for row in rows:
            if isinstance(row, dict) and row.get("cst_id") is not None:
                return int(row["cst_id"])
        return None

    def _post(self, path: str, form: dict[str, str], *, idempotent: bool) -> httpx.Response:
        """One data call; a refusal to the signed-in user becomes :func:`missing_api_security`."""
        try:
            return self.engine.request("POST", path, idempotent=idempotent, data=form)
        except (AuthError, ForbiddenError) as exc:
            refused = missing_api_security(exc, self.credentials.username, self._token_path)
            if refused is None:
                raise
            raise refused from None

    def _read_array(self, path: str, form: dict[str, str]) -> list[Any]:
        response = self._post(path, form, idempotent=True)
        body = self.engine.json(response)
        if not isinstance(body, list):
            raise self.engine.error(
                ResponseFormatError, response.request, "expected a JSON array", response.status_code
            )
        return body

    def _write(self, path: str, form: dict[str, str]) -> str:
        response = self._post(path, form, idempotent=False)
        body = self.engine.json(response)
        return body if isinstance(body, str) else str(body)


def _last_anchor(page: list[Any], anchors: set[int]) -> int | None:
    for i in range(len(page) - 1, -1, -1):
        rec = page[i]
        if isinstance(rec, dict) and rec.get("cst_id") in anchors:
            return i
    return None


def _dicts(value: object) -> list[Record]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _notes(value: object) -> list[Record]:
    """LP notes are objects with the text in ``notes``, or sometimes bare strings."""
    if not isinstance(value, list):
        return []
    out: list[Record] = []
    for item in value:
        if isinstance(item, dict):
            out.append(item)
        elif isinstance(item, str):
            out.append({"notes": item})
    return out


# -- the prospects stream's cursor: a window of GetLead pages --------------------------------------
#
# A compact JSON object ``{"v": 1, "start": S0, "end": S1, "next": N, "anchors": [cst_id, ...],
# "done": L}``: ``start``/``end`` the UTC window a page belongs to; ``next`` the StartIndex of the
# window's next page (null once the window is read); ``anchors`` the last cst_ids of the page
# (the drift check of :meth:`LeadPerfectionClient.window_page`); ``done`` the end of the last
# window read completely, which moves only when a page that completes a window commits.

LOOKBACK = timedelta(minutes=20)
"""Seed 001: records "updated within the last 20 minutes before the sync began"."""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _parse(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("not a timestamp")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("naive timestamp")
    return parsed.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class WindowCursor:
    """The LP stream's cursor (the JSON form is described above)."""

    start: datetime
    end: datetime
    next_index: int | None
    anchors: tuple[int, ...]
    done: datetime | None

    @property
    def complete(self) -> bool:
        return self.next_index is None

    def dump(self) -> str:
        return orjson.dumps(
            {
                "v": 1,
                "start": _iso(self.start),
                "end": _iso(self.end),
                "next": self.next_index,
                "anchors": list(self.anchors),
                "done": _iso(self.done),
            }
        ).decode()

    @classmethod
    def load(cls, text: str | None) -> WindowCursor | None:
        """The cursor, or None for none at all; raises ValueError for one that is not ours."""
        if text is None:
            return None
        try:
            raw = orjson.loads(text)
            if not isinstance(raw, dict) or raw.get("v") != 1:
                raise ValueError("unknown cursor version")
            start, end = _parse(raw["start"]), _parse(raw["end"])
            next_index = raw.get("next")
            anchors = raw.get("anchors") or []
            if start is None or end is None:
                raise ValueError("window bounds missing")
            if next_index is not None and (not isinstance(next_index, int) or next_index < 1):
                raise ValueError("bad StartIndex")
            if not all(isinstance(a, int) for a in anchors):
                raise ValueError("bad anchors")
            return cls(start, end, next_index, tuple(anchors), _parse(raw.get("done")))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a LeadPerfection cursor: {exc}") from None


def next_window(
    done: datetime | None, started_at: datetime, first_sync_days: int = 90
) -> tuple[datetime, datetime]:
    """The window a run starting at ``started_at`` reads after the last complete one."""
    end = started_at.astimezone(UTC).replace(microsecond=0)
    if done is None:
        return end - timedelta(days=first_sync_days), end
    return min(end - LOOKBACK, done), end
