"""Salesforce REST connector (improveit360 is a Salesforce managed package): OAuth, SOQL, creates.

Reference: ``/work/shared/reference/crm-apis.md`` §3 and §5.4, and the Salesforce REST API guide
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/).

**Auth.** Two OAuth 2.0 grants against ``{auth_url}/services/oauth2/token`` (default
``https://login.salesforce.com``; sandboxes use ``https://test.salesforce.com`` or the org's My
Domain): the refresh-token flow (a connected app the customer authorised) and the
username-password flow (password followed by the security token; sandboxes and service users).
The token response names the org's ``instance_url``, which becomes the base of every API call.
It carries **no** ``expires_in``: a session lives until it has been idle for the org's timeout
(2 hours by default), so the token is kept until the API answers 401 ``INVALID_SESSION_ID``;
:class:`~connectors.http.HttpEngine` then fetches a new one and resends the call once. A rotated
refresh token (returned only when the connected app rotates them) replaces the old one in memory
and is handed to ``on_refresh_token`` so the caller can store it.

**Errors.** Salesforce answers errors with a JSON array ``[{"message", "errorCode", "fields"?}]``
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm); every
:class:`~connectors.errors.ConnectorError` raised here names the ``errorCode`` values in its
message. The status alone is ambiguous on one point, which is why :meth:`HttpEngine.classify` is
overridden: ``403 REQUEST_LIMIT_EXCEEDED`` (the org's daily API allocation, or too many
concurrent long-running requests) is a :class:`~connectors.errors.QuotaExceededError`, which no
layer retries, while any other 403 is a :class:`~connectors.errors.ForbiddenError`.

**Permissions** (issue 14 item 2). An integration user whose profile and permission sets lack
the "API Enabled" system permission signs in, then every REST call answers 403
``API_CURRENTLY_DISABLED`` ("API is disabled for this User"); ``API_DISABLED_FOR_ORG`` is the same
refusal when the org's edition has no API (Professional without the add-on, Essentials, Group)
(both are ``ExceptionCode`` values of the API guide's "Core Data Types Used in API Calls",
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_concepts_core_data_objects.htm;
the token endpoint documents neither, so they are recognised there too).
An object the user has no Read on does not exist for that user: a query of it is 400
``INVALID_TYPE`` ("sObject type '…' is not supported"), its describe 404 ``NOT_FOUND``; record
sharing refusals are ``INSUFFICIENT_ACCESS…``. :func:`explain_refusal` turns each into a
:class:`~connectors.errors.ForbiddenError` saying which call was refused, why, and what the
Salesforce admin does about it (as ``missing_scope`` does for ServiceTitan); a 403 whose body
names none of these codes (the status is what Salesforce documents: "the request has been
refused; verify that the logged-in user has appropriate permissions") gets the same treatment
with both possible fixes.

**Limits.** Every API response carries ``Sforce-Limit-Info: api-usage=used/limit``
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm);
:attr:`SalesforceClient.api_usage` exposes the latest reading. The client refuses to send (raising
QuotaExceededError without spending a request) while a recent reading says the allocation is used
up, or would leave fewer than ``min_remaining_api_calls`` requests for the org's other users.

**Queries** go to ``/services/data/vNN.0/query`` (``queryAll`` also returns deleted rows) and
follow ``nextRecordsUrl`` until ``done``; ``attributes`` entries are dropped from the records.

**Creates** (Note, Task, for the push feature) are not idempotent, so they are never blindly
retried (see :mod:`connectors.http`): an ambiguous failure raises a ``TransientError`` with
``ambiguous=True`` and the caller looks for the record with :meth:`find_record_with_key` before
creating it again. Long text areas (Note.Body, Task.Description) cannot be filtered in SOQL, so
the idempotency key must travel in a filterable field (Note.Title, Task.Subject).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import httpx
import orjson

from connectors.errors import (
    AuthError,
    BadRequestError,
    ConnectorError,
    ForbiddenError,
    NotFoundError,
    PermanentError,
    QuotaExceededError,
    RateLimitedError,
    ResponseFormatError,
    TransientError,
    body_excerpt,
)
from connectors.http import HttpEngine, TokenProvider, parse_retry_after

__all__ = [
    "API_DISABLED_CODES",
    "DEFAULT_API_VERSION",
    "DEFAULT_AUTH_URL",
    "NOTE_BODY_MAX",
    "NOTE_TITLE_MAX",
    "ApiUsage",
    "SalesforceClient",
    "SalesforceCredentials",
    "SalesforceSession",
    "explain_refusal",
    "parse_limit_info",
    "soql_datetime",
    "soql_identifier",
    "soql_like_contains",
    "soql_quote",
]

DEFAULT_AUTH_URL = "https://login.salesforce.com"
DEFAULT_API_VERSION = "60.0"
TOKEN_PATH = "/services/oauth2/token"
SESSION_NOMINAL_LIFETIME = timedelta(hours=2)
"""Salesforce's default idle timeout; only informational, since the session's end is not sent."""
USAGE_MAX_AGE = 300.0
"""Seconds a ``Sforce-Limit-Info`` reading is trusted to refuse requests locally. Afterwards one
request is sent again, so a reading never blocks an integration past the rolling 24 h window."""
DESCRIBE_TTL = 3600.0
"""Seconds an object's field list is reused: a field added in the org shows up within the hour."""
MAX_IDS_PER_QUERY = 300
"""Ids per ``Id IN (...)`` query: 300 quoted 18-character ids keep the GET URL near 7 kB."""
NOTE_TITLE_MAX = 80
NOTE_BODY_MAX = 32_000
TASK_SUBJECT_MAX = 255
TASK_DESCRIPTION_MAX = 32_000
# Compound and binary fields: the components of compound fields are selected on their own, and
# base64 bodies cannot be returned by a multi-record query.
UNSELECTABLE_TYPES = frozenset({"address", "location", "base64"})

API_DISABLED_CODES = ("API_CURRENTLY_DISABLED", "API_DISABLED_FOR_ORG")
"""Salesforce's refusals of a user (``API_CURRENTLY_DISABLED``) or an org edition
(``API_DISABLED_FOR_ORG``) without API access."""
NO_ACCESS_CODES = (
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
    "INSUFFICIENT_ACCESS_OR_READONLY",
    "INSUFFICIENT_ACCESS",
    "INVALID_TYPE",
)
"""Codes Salesforce answers for an object the user may not read (``INVALID_TYPE``: the object
does not exist for that user) or a record it may not see."""
API_FIX = (
    'a Salesforce admin enables "API Enabled" for the integration user (Setup → its Profile, or '
    "a Permission Set assigned to it → System Permissions → API Enabled)"
)
_FROM = re.compile(r"\bFROM\s+([A-Za-z][A-Za-z0-9_]*)", re.IGNORECASE)
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
_LIMIT_INFO = re.compile(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)")
_VERSION = re.compile(r"^v?(\d{2,3})\.0$")


@dataclass(frozen=True)
class SalesforceCredentials:
    """A connected app (``client_id``/``client_secret``) plus exactly one grant.

    Either ``refresh_token`` (the refresh-token flow; ``client_secret`` optional, as connected
    apps may not require it) or ``username`` + ``password`` (+ ``security_token``, appended to the
    password as Salesforce expects; the username-password flow always needs ``client_secret``).
    Secrets stay out of ``repr``.
    """

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ValueError("client_id must be non-empty")
        has_refresh = bool(self.refresh_token)
        has_password = bool(self.username) or bool(self.password)
        if has_refresh == has_password:
            raise ValueError(
                "configure exactly one grant: refresh_token (OAuth refresh-token flow) or "
                "username + password (+ security_token) for the username-password flow"
            )
        if has_password and not (self.username and self.password):
            raise ValueError("the username-password flow needs both username and password")
        if has_password and not self.client_secret:
            raise ValueError("the username-password flow needs client_secret")

    @property
    def grant(self) -> Literal["refresh_token", "password"]:
        return "refresh_token" if self.refresh_token else "password"


@dataclass(frozen=True)
class ApiUsage:
    """The org's daily API request counter as of one response (``Sforce-Limit-Info``)."""

    used: int
    limit: int
    observed_at: float = 0.0
    """``time.monotonic()`` when read; older than :data:`USAGE_MAX_AGE`, it is not acted on."""

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True)
class SalesforceSession:
    """What the token response told us; the access token itself is not exposed."""

    instance_url: str
    identity_url: str | None
    issued_at: datetime
    grant: str

    @property
    def nominal_expiry(self) -> datetime:
        return self.issued_at + SESSION_NOMINAL_LIFETIME


def parse_limit_info(value: str | None) -> tuple[int, int] | None:
    """``(used, limit)`` from ``Sforce-Limit-Info: api-usage=25/15000`` (the org's counter, not
    the ``per-app-api-usage`` that may follow it), or None."""
    if not value:
        return None
    m = _LIMIT_INFO.search(value)
    return (int(m.group(1)), int(m.group(2))) if m else None


def soql_identifier(name: str) -> str:
    """``name`` if it is a plain Salesforce API name, else ValueError (nothing else enters SOQL)."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"not a Salesforce API name: {name!r}")
    return name


def soql_quote(value: str) -> str:
    """A SOQL string literal: quotes and backslashes escaped, control characters spelled out."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f"'{escaped}'"


def soql_like_contains(value: str) -> str:
    """A ``LIKE`` pattern literal matching text that contains ``value`` verbatim."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    escaped = escaped.replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'%{escaped}%'"


def soql_datetime(moment: datetime) -> str:
    """A SOQL datetime literal (unquoted, UTC, whole seconds: Salesforce stores no more)."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_api_version(version: str) -> str:
    """``"60.0"`` from ``"60.0"`` or ``"v60.0"``; ValueError for anything else."""
    m = _VERSION.match(version.strip()) if isinstance(version, str) else None
    if m is None:
        raise ValueError(f"not a Salesforce API version (like 60.0): {version!r}")
    return f"{int(m.group(1))}.0"


def _error_items(body: object) -> list[tuple[str, str]]:
    """``(errorCode, message)`` pairs of a Salesforce error array or an OAuth error object."""
    if isinstance(body, dict) and "error" in body:
        return [(str(body.get("error")), str(body.get("error_description") or ""))]
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        body = body["errors"]
    if not isinstance(body, list):
        return []
    out: list[tuple[str, str]] = []
    for item in body:
        if isinstance(item, dict) and ("errorCode" in item or "statusCode" in item):
            code = item.get("errorCode") or item.get("statusCode")
            out.append((str(code), str(item.get("message") or "")))
    return out


def _code_in(message: str, codes: Iterable[str]) -> str | None:
    return next((code for code in codes if code in message), None)


def explain_refusal(
    exc: ConnectorError,
    call: str,
    sobject: str | None = None,
    *,
    access: str = "Read",
    missing_is_refusal: bool = False,
) -> ConnectorError:
    """``exc`` told as what the operator must do, when it is a permission refusal; else ``exc``.

    ``call`` names the refused call in words ("the query of Task"), ``sobject`` the object it
    needs ``access`` (Read, Create) on. ``missing_is_refusal``: a 404 means the object is not
    visible to the user (a describe), not that a record is gone. The message carries the error
    code, never a body beyond it, a token or a credential.
    """
    if not isinstance(exc, ForbiddenError | BadRequestError | NotFoundError | AuthError):
        return exc
    message = exc.message
    status = exc.status_code
    code = _code_in(message, API_DISABLED_CODES)
    if code is not None:
        why = (
            "the org's Salesforce edition includes no API access, or the integration user's "
            'profile and permission sets lack "API Enabled"'
            if code == "API_DISABLED_FOR_ORG"
            else 'the integration user has no API access: its profile and permission sets lack "API'
            ' Enabled"'
        )
        text = f"{why}; {API_FIX}. Nothing of this org syncs until then."
    elif sobject is not None and (
        (code := _code_in(message, NO_ACCESS_CODES)) is not None
        or (missing_is_refusal and status == 404)
        or (status == 403 and isinstance(exc, ForbiddenError))
    ):
        code = code or ("NOT_FOUND" if status == 404 else "")
        text = (
            f"the integration user cannot {access.lower()} {sobject} (no {access} permission on "
            f"the object, or no object of that API name in the org); a Salesforce admin grants "
            f"{access} on {sobject} to the integration user (its Profile, or a Permission Set "
            f"assigned to it → Object Settings → {sobject}), or the object's API name is "
            "corrected in the integration's settings"
            + (f"; if the user lacks API access altogether, {API_FIX}" if status == 403 else "")
            + "."
        )
    else:
        return exc
    provider = exc.provider
    refused = f"HTTP {status} {code}" if code else f"HTTP {status}"
    return ForbiddenError(
        f"{provider}: Salesforce refused {call} ({refused}): {text}",
        provider=provider,
        status_code=status,
        method=exc.method,
        path=exc.path,
    )


@contextmanager
def _explained(
    call: str, sobject: str | None = None, *, access: str = "Read", missing_is_refusal: bool = False
) -> Iterator[None]:
    try:
        yield
    except ConnectorError as exc:
        told = explain_refusal(
            exc, call, sobject, access=access, missing_is_refusal=missing_is_refusal
        )
        if told is exc:
            raise
        raise told from None


def _query_object(soql: str) -> str | None:
    m = _FROM.search(soql)
    return m.group(1) if m else None


class _SalesforceEngine(HttpEngine):
    """The shared engine, reading Salesforce's error arrays and ``Sforce-Limit-Info``."""

    def __init__(self, *, on_usage: Callable[[int, int], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_usage = on_usage

    def classify(self, response: httpx.Response) -> ConnectorError | None:
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        status = response.status_code
        if usage is not None:
            self._on_usage(*usage)
        if status < 300:
            return None
        items = self._items(response)
        codes = [code for code, _ in items]
        detail = self._detail(items) if items else self.excerpt(response)
        request = response.request
        if status == 403 and "REQUEST_LIMIT_EXCEEDED" in codes:
            # Whatever the header says (the limit may be on concurrent long requests), the org
            # refuses requests now: record it as exhausted so the client stops sending.
            self._on_usage(-1, -1)
            return self.error(
                QuotaExceededError, request, "API request limit exceeded", status, detail=detail
            )
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return self.error(
                RateLimitedError,
                request,
                "rate limited",
                status_code=status,
                detail=detail,
                retry_after=retry_after,
            )
        if status >= 500 or status == 408:
            return self.error(TransientError, request, "server error", status, detail=detail)
        cls: type[ConnectorError] = {
            401: AuthError,
            403: ForbiddenError,
            404: NotFoundError,
        }.get(status, BadRequestError if status >= 400 else PermanentError)
        return self.error(cls, request, "rejected", status, detail=detail)

    def _items(self, response: httpx.Response) -> list[tuple[str, str]]:
        # Parse the *masked* text, so a body that echoes a credential cannot leak it.
        masked = self.excerpt(response, limit=8000)
        try:
            return _error_items(orjson.loads(masked))
        except orjson.JSONDecodeError:
            return []

    @staticmethod
    def _detail(items: list[tuple[str, str]]) -> str:
        text = "; ".join(f"{code}: {message}" if message else code for code, message in items[:3])
        return body_excerpt(text, 300)


class _SessionTokens(TokenProvider):
    """Salesforce sessions for one client: fetched on first use, replaced only after a 401.

    ``invalidate`` drops the token only if it is still the one this thread last used, so threads
    that hit the same expired session re-authenticate once between them, not once each.
    """

    def __init__(
        self,
        client: SalesforceClient,
        credentials: SalesforceCredentials,
        token_url: str,
        pinned_instance_url: str | None,
        on_refresh_token: Callable[[str], None] | None,
    ) -> None:
        self._client = client
        self._credentials = credentials
        self._refresh_token = credentials.refresh_token
        self._token_url = token_url
        self._pinned = pinned_instance_url
        self._on_refresh_token = on_refresh_token
        self._lock = threading.Lock()
        self._token: str | None = None
        self._local = threading.local()
        self.session: SalesforceSession | None = None
        self.fetches = 0

    def get_token(self) -> str:
        with self._lock:
            if self._token is None:
                self._fetch()
            token = self._token
        assert token is not None
        self._local.last = token
        return token

    def invalidate(self) -> None:
        last = getattr(self._local, "last", None)
        with self._lock:
            if self._token is not None and (last is None or self._token == last):
                self._token = None

    def _form(self) -> dict[str, str]:
        creds = self._credentials
        form = {"client_id": creds.client_id, "format": "json"}
        if creds.client_secret:
            form["client_secret"] = creds.client_secret
        if self._refresh_token:
            form["grant_type"] = "refresh_token"
            form["refresh_token"] = self._refresh_token
        else:
            form["grant_type"] = "password"
            form["username"] = creds.username or ""
            form["password"] = (creds.password or "") + (creds.security_token or "")
        return form

    def _fetch(self) -> None:
        engine = self._client.engine
        grant = self._credentials.grant
        try:
            response = engine.request(
                "POST", self._token_url, auth=False, idempotent=True, data=self._form()
            )
        except (BadRequestError, AuthError, ForbiddenError) as exc:
            if _code_in(exc.message, API_DISABLED_CODES) is not None:
                raise explain_refusal(exc, "the sign-in (OAuth token request)") from None
            what = (
                "the refresh token"
                if grant == "refresh_token"
                else "the username, password and security token"
            )
            raise AuthError(
                f"{engine.provider}: {exc.method} {exc.path} -> HTTP {exc.status_code}: "
                f"Salesforce rejected {what} for client id {self._credentials.client_id!r} "
                f"({_detail_of(exc)}); re-authorise the integration",
                provider=engine.provider,
                status_code=exc.status_code,
                method=exc.method,
                path=exc.path,
            ) from None
        body = engine.json(response)
        token = body.get("access_token") if isinstance(body, dict) else None
        instance = body.get("instance_url") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise self._format_error(response, "token response lacks access_token")
        if not self._pinned and (
            not isinstance(instance, str) or not instance.startswith(("https://", "http://"))
        ):
            raise self._format_error(response, "token response lacks a usable instance_url")
        instance_url = (self._pinned or str(instance)).rstrip("/")
        engine.base_url = instance_url
        rotated = body.get("refresh_token")
        if (
            isinstance(rotated, str)
            and rotated
            and rotated != self._refresh_token
            and grant == ("refresh_token")
        ):
            self._refresh_token = rotated
            if self._on_refresh_token is not None:
                self._on_refresh_token(rotated)
        self._token = token
        self.fetches += 1
        self.session = SalesforceSession(
            instance_url=instance_url,
            identity_url=body.get("id") if isinstance(body.get("id"), str) else None,
            issued_at=_issued_at(body.get("issued_at")),
            grant=grant,
        )

    def _format_error(self, response: httpx.Response, what: str) -> ResponseFormatError:
        return self._client.engine.error(
            ResponseFormatError, response.request, what, response.status_code
        )


def _detail_of(exc: ConnectorError) -> str:
    """The parenthesised detail of an engine error message (the error code and description)."""
    message = exc.message
    start = message.find(" (")
    return message[start + 2 : -1] if start >= 0 and message.endswith(")") else message


def _issued_at(value: object) -> datetime:
    try:
        return datetime.fromtimestamp(int(str(value)) / 1000, UTC)
    except (TypeError, ValueError, OverflowError):
        return datetime.now(UTC)


def _strip_attributes(record: dict[str, Any]) -> dict[str, Any]:
    """A query record without the ``attributes`` metadata (also inside relationship fields)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        out[key] = _strip_attributes(value) if type(value) is dict else value
    return out


@dataclass
class _Describe:
    fields: list[dict[str, Any]]
    fetched_at: float
    key_prefix: str | None = None


class SalesforceClient:
    """A Salesforce REST client for one org, usable from a Python shell.

    ``auth_url`` is the login host (``https://login.salesforce.com``, ``https://test.salesforce.com``
    or a My Domain) or the full token endpoint. ``instance_url`` pins API calls to a host instead
    of the token response's ``instance_url`` (a proxy); normally leave it unset. ``http`` lets
    tests inject a client (e.g. with ``httpx.MockTransport``). ``batch_size`` (200-2000) asks
    Salesforce for smaller query batches (``Sforce-Query-Options``).
    """

    def __init__(
        self,
        credentials: SalesforceCredentials,
        *,
        auth_url: str = DEFAULT_AUTH_URL,
        api_version: str = DEFAULT_API_VERSION,
        instance_url: str | None = None,
        http: httpx.Client | None = None,
        timeout: httpx.Timeout | float | None = None,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        min_remaining_api_calls: int | None = None,
        batch_size: int | None = None,
        provider: str = "salesforce",
        on_refresh_token: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.credentials = credentials
        self.api_version = normalize_api_version(api_version)
        self.min_remaining_api_calls = min_remaining_api_calls
        self._clock = clock
        self._usage: ApiUsage | None = None
        self._usage_lock = threading.Lock()
        self._describes: dict[str, _Describe] = {}
        self._describe_lock = threading.Lock()
        self._query_headers = (
            {"Sforce-Query-Options": f"batchSize={int(batch_size)}"} if batch_size else {}
        )
        self.engine = _SalesforceEngine(
            provider=provider,
            client=http,
            timeout=timeout,
            max_attempts=max_attempts,
            sleep=sleep,
            on_usage=self._record_usage,
        )
        auth = auth_url.rstrip("/")
        token_url = auth if auth.endswith(TOKEN_PATH) else auth + TOKEN_PATH
        pinned = instance_url.rstrip("/") if instance_url else None
        if pinned:
            self.engine.base_url = pinned
        self._tokens = _SessionTokens(self, credentials, token_url, pinned, on_refresh_token)
        self.engine.token_provider = self._tokens

    def __repr__(self) -> str:
        return (
            f"SalesforceClient(client_id={self.credentials.client_id!r}, "
            f"grant={self.credentials.grant!r}, instance_url={self.engine.base_url or None!r})"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> SalesforceClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- auth and limits ---------------------------------------------------------------------

    def authenticate(self) -> SalesforceSession:
        """Make sure a session is held (logging in if needed); AuthError on rejected credentials.

        An already held session is not re-checked: if it has expired, the next call's 401 renews
        it transparently.
        """
        self._tokens.get_token()
        session = self._tokens.session
        assert session is not None
        return session

    @property
    def session(self) -> SalesforceSession | None:
        return self._tokens.session

    @property
    def token_fetches(self) -> int:
        """How many times a session was obtained (1 + re-authentications after a 401)."""
        return self._tokens.fetches

    @property
    def api_usage(self) -> ApiUsage | None:
        """The latest ``Sforce-Limit-Info`` reading (after a 403 REQUEST_LIMIT_EXCEEDED without
        the header: ``used == limit == -1``, i.e. exhausted, limit unknown)."""
        with self._usage_lock:
            return self._usage

    def _record_usage(self, used: int, limit: int) -> None:
        """Keep a reading; ``(-1, -1)`` marks the allocation exhausted (limit kept if known)."""
        with self._usage_lock:
            if used < 0:
                known = self._usage.limit if self._usage is not None else -1
                used = limit = known
            self._usage = ApiUsage(used, limit, self._clock())

    def check_quota(self) -> None:
        """Raise QuotaExceededError, without sending anything, when a recent reading says the
        daily allocation is used up, or one more request would leave fewer than
        ``min_remaining_api_calls``."""
        usage = self.api_usage
        if usage is None or self._clock() - usage.observed_at > USAGE_MAX_AGE:
            return
        # Sending spends one request: it must leave at least min_remaining_api_calls behind.
        if usage.remaining >= (self.min_remaining_api_calls or 0) + 1:
            return
        provider = self.engine.provider
        if usage.limit <= 0 or usage.remaining == 0:
            what = "the org's daily API request limit is used up"
        else:
            what = (
                f"{usage.remaining} of {usage.limit} daily API requests left and "
                f"min_remaining_api_calls={self.min_remaining_api_calls} are kept for the org"
            )
        raise QuotaExceededError(
            f"{provider}: request not sent: {what} (api-usage={usage.used}/{usage.limit}, "
            "REQUEST_LIMIT_EXCEEDED)",
            provider=provider,
        )

    # -- reads -------------------------------------------------------------------------------

    @property
    def data_path(self) -> str:
        return f"/services/data/v{self.api_version}"

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One authenticated API call (quota-checked); ``path`` is relative to the instance."""
        self.check_quota()
        return self.engine.request(method, path, **kwargs)

    def query_batches(
        self, soql: str, *, include_deleted: bool = False
    ) -> Iterator[list[dict[str, Any]]]:
        """The batches of a SOQL query, following ``nextRecordsUrl`` until ``done``."""
        endpoint = "queryAll" if include_deleted else "query"
        sobject = _query_object(soql)
        call = f"the {endpoint} of {sobject or 'a SOQL query'}"
        with _explained(call, sobject):
            response = self.api(
                "GET",
                f"{self.data_path}/{endpoint}",
                params={"q": soql},
                headers=self._query_headers,
            )
        while True:
            body = self.engine.json(response)
            records, done, next_url = self._batch(response, body)
            yield records
            if done:
                return
            assert next_url is not None
            with _explained(call, sobject):
                response = self.api("GET", next_url, headers=self._query_headers)

    def query(self, soql: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every record of a SOQL query (all batches).

        A query locator that expired or was released between batches (``INVALID_QUERY_LOCATOR``:
        idle 15 minutes, or more than 10 open cursors per user) restarts the query once.
        """
        for attempt in (1, 2):
            records: list[dict[str, Any]] = []
            try:
                for batch in self.query_batches(soql, include_deleted=include_deleted):
                    records.extend(batch)
            except BadRequestError as exc:
                if attempt == 1 and records and "INVALID_QUERY_LOCATOR" in exc.message:
                    continue
                raise
            return records
        raise AssertionError("unreachable")  # pragma: no cover

    def query_by_ids(
        self, sobject: str, fields: Sequence[str], ids: Iterable[str]
    ) -> list[dict[str, Any]]:
        """Records of ``sobject`` by Id, in chunks of :data:`MAX_IDS_PER_QUERY` (deleted ones are
        not returned)."""
        select = ", ".join(soql_identifier(f) for f in fields)
        unique = sorted({i for i in ids if i})
        out: list[dict[str, Any]] = []
        for start in range(0, len(unique), MAX_IDS_PER_QUERY):
            chunk = unique[start : start + MAX_IDS_PER_QUERY]
            in_list = ", ".join(soql_quote(i) for i in chunk)
            out.extend(
                self.query(
                    f"SELECT {select} FROM {soql_identifier(sobject)} WHERE Id IN ({in_list})"
                )
            )
        return out

    def describe(self, sobject: str) -> list[dict[str, Any]]:
        """The fields of ``sobject`` as ``/sobjects/{Type}/describe`` lists them (cached an hour).

        Only fields the integration user can see are listed, so selecting them never fails on
        field-level security.
        """
        name = soql_identifier(sobject)
        with self._describe_lock:
            cached = self._describes.get(name)
        if cached is not None and self._clock() - cached.fetched_at < DESCRIBE_TTL:
            return cached.fields
        with _explained(f"the describe of {name}", name, missing_is_refusal=True):
            response = self.api("GET", f"{self.data_path}/sobjects/{name}/describe")
        body = self.engine.json(response)
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, list) or not all(
            isinstance(f, dict) and isinstance(f.get("name"), str) for f in fields
        ):
            raise self._format_error(response, "describe response lacks fields")
        prefix = body.get("keyPrefix")
        with self._describe_lock:
            self._describes[name] = _Describe(
                fields, self._clock(), prefix if isinstance(prefix, str) and prefix else None
            )
        return fields

    def key_prefix(self, sobject: str) -> str | None:
        """The 3-character id prefix of ``sobject``'s records, from its describe (cached with
        it): what tells an id in a polymorphic lookup (Note.ParentId, Task.WhatId) of one
        object from another without a query
        (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_describesobjects_describesobjectresult.htm,
        ``keyPrefix``). None for an object without one."""
        self.describe(sobject)
        with self._describe_lock:
            cached = self._describes.get(soql_identifier(sobject))
        return cached.key_prefix if cached is not None else None

    def selectable_fields(self, sobject: str) -> list[str]:
        """Every field of ``sobject`` a multi-record query can return (compound and base64
        fields left out), in describe order."""
        return [
            f["name"] for f in self.describe(sobject) if f.get("type") not in UNSELECTABLE_TYPES
        ]

    # -- writes (push) -----------------------------------------------------------------------

    def create(self, sobject: str, values: Mapping[str, Any]) -> str:
        """Create one record; returns its Id. Not retried after it may have reached Salesforce."""
        name = soql_identifier(sobject)
        with _explained(f"creating a {name}", name, access="Create", missing_is_refusal=True):
            response = self.api(
                "POST", f"{self.data_path}/sobjects/{name}/", idempotent=False, json=dict(values)
            )
        body = self.engine.json(response)
        if not isinstance(body, dict):
            raise self._format_error(response, "create response is not an object")
        record_id = body.get("id")
        if body.get("success") is False or not isinstance(record_id, str) or not record_id:
            items = _error_items(body)
            detail = _SalesforceEngine._detail(items) if items else "no id returned"
            raise self.engine.error(
                BadRequestError,
                response.request,
                "create failed",
                response.status_code,
                detail=detail,
            )
        return record_id

    def create_note(
        self, parent_id: str, title: str, body: str, *, is_private: bool = False
    ) -> str:
        """A classic Note under ``parent_id`` (a Contact for i360 Lightning); returns its Id.

        Title is cut to 80 characters and Body to 32,000, Salesforce's field lengths.
        """
        return self.create(
            "Note",
            {
                "ParentId": parent_id,
                "Title": _cut(title, NOTE_TITLE_MAX),
                "Body": _cut(body, NOTE_BODY_MAX),
                "IsPrivate": is_private,
            },
        )

    def create_task(
        self,
        who_id: str | None,
        what_id: str | None,
        subject: str,
        description: str,
        status: str = "Completed",
        *,
        activity_date: date | None = None,
        priority: str | None = None,
    ) -> str:
        """A Task (``WhoId`` a Contact or Lead, ``WhatId`` e.g. an i360 Sales Opportunity);
        returns its Id. Subject is cut to 255 characters, Description to 32,000."""
        values: dict[str, Any] = {
            "Subject": _cut(subject, TASK_SUBJECT_MAX),
            "Description": _cut(description, TASK_DESCRIPTION_MAX),
            "Status": status,
            "TaskSubtype": "Task",
        }
        if who_id:
            values["WhoId"] = who_id
        if what_id:
            values["WhatId"] = what_id
        if activity_date is not None:
            values["ActivityDate"] = activity_date.isoformat()
        if priority:
            values["Priority"] = priority
        return self.create("Task", values)

    def find_record_with_key(
        self,
        sobject: str,
        key: str,
        *,
        field: str,
        parent_field: str | None = None,
        parent_id: str | None = None,
    ) -> str | None:
        """The Id of the oldest ``sobject`` whose ``field`` contains ``key`` (optionally under
        ``parent_field = parent_id``), or None: how a push checks for an earlier attempt.

        ``field`` must be filterable (Note.Title, Task.Subject), not a long text area.
        """
        if not key:
            raise ValueError("key must be non-empty")
        where = [f"{soql_identifier(field)} LIKE {soql_like_contains(key)}"]
        if parent_field and parent_id:
            where.append(f"{soql_identifier(parent_field)} = {soql_quote(parent_id)}")
        rows = self.query(
            f"SELECT Id FROM {soql_identifier(sobject)} WHERE {' AND '.join(where)} "
            "ORDER BY CreatedDate ASC LIMIT 1"
        )
        ident = rows[0].get("Id") if rows else None
        return ident if isinstance(ident, str) else None

    # -- internals ---------------------------------------------------------------------------

    def _batch(
        self, response: httpx.Response, body: object
    ) -> tuple[list[dict[str, Any]], bool, str | None]:
        if not isinstance(body, dict):
            raise self._format_error(response, "query response is not an object")
        records, done = body.get("records"), body.get("done")
        if not isinstance(records, list) or not isinstance(done, bool):
            raise self._format_error(response, "query response lacks records/done")
        if not all(isinstance(r, dict) for r in records):
            raise self._format_error(response, "query records hold a non-object item")
        next_url = body.get("nextRecordsUrl")
        if not done and (not isinstance(next_url, str) or not next_url.startswith("/services/")):
            raise self._format_error(response, "done is false without a nextRecordsUrl")
        return [_strip_attributes(r) for r in records], done, next_url if not done else None

    def _format_error(self, response: httpx.Response, what: str) -> ResponseFormatError:
        return self.engine.error(ResponseFormatError, response.request, what, response.status_code)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- incremental reads: keyset paging on (SystemModstamp, Id) ------------------------------------
#
# A stream reads ``ORDER BY SystemModstamp, Id`` in pages; the cursor stored after a page is the
# last (SystemModstamp, Id) it held plus the start of the run that read it. Within one run the
# next page starts exactly after that pair; a later run re-reads ``overlap`` seconds before it,
# because Salesforce commits are not visible in stamp order (a record stamped earlier can become
# visible later) and the merge rules make the repeat harmless.


def encode_cursor(stamp: datetime, record_id: str, run: datetime) -> str:
    return f"{soql_datetime(stamp)}|{record_id}|{run.isoformat()}"


def decode_cursor(cursor: str) -> tuple[datetime, str, str]:
    """(SystemModstamp, Id, run start) of a stored cursor; ValueError when it is not ours."""
    stamp_text, record_id, run = cursor.split("|", 2)
    try:
        stamp = datetime.fromisoformat(stamp_text.replace("Z", "+00:00"))
    except ValueError:
        stamp = None
    if stamp is None or stamp.tzinfo is None or not record_id:
        raise ValueError(f"not a Salesforce keyset cursor: {cursor!r}")
    return stamp.astimezone(UTC), record_id, run


def modstamp_where(
    cursor: str | None, started_at: datetime, since: datetime | None, overlap_seconds: int
) -> tuple[str | None, tuple[datetime, str] | None]:
    """The WHERE clause of the next page, and the exact (stamp, Id) it must start after.

    Without a cursor the stream reads from ``since`` (None: from the beginning)."""
    if cursor is None:
        return (None if since is None else f"SystemModstamp >= {soql_datetime(since)}"), None
    stamp, record_id, run = decode_cursor(cursor)
    if run == started_at.isoformat():
        literal = soql_datetime(stamp)
        return (
            f"(SystemModstamp > {literal} OR "
            f"(SystemModstamp = {literal} AND Id > {soql_quote(record_id)}))",
            (stamp, record_id),
        )
    return f"SystemModstamp >= {soql_datetime(stamp - timedelta(seconds=overlap_seconds))}", None
