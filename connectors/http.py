"""The HTTP engine every connector is built on: one place for retries, re-authentication and errors.

Each layer retries one kind of failure (ARCHITECTURE.md §3). This module owns the innermost two:

* **Transport and server trouble** (connection errors, timeouts, 5xx, 429) is retried a few times
  with tenacity: exponential backoff with full jitter (AWS "Exponential Backoff and Jitter"), or
  exactly the server's ``Retry-After`` (seconds or HTTP-date, RFC 9110 §10.2.3) when it sends one
  on 429/503, capped so a hostile header cannot park a worker for an hour. What outlives these
  attempts becomes a :class:`~connectors.errors.TransientError` for the Prefect task layer.
* **An expired or revoked token** (401) is handled by invalidating the token, fetching a new one
  and resending once; a second 401 is an :class:`~connectors.errors.AuthError`.

Everything else fails fast. The engine branches on the HTTP status only, never on error bodies,
which vendors change without notice; a connector whose provider encodes meaning in the body
(Salesforce ``REQUEST_LIMIT_EXCEEDED`` on a 403) overrides :meth:`HttpEngine.classify`.

**Non-idempotent requests.** Repeating a POST that creates a record after it may have reached the
server can create it twice. For ``idempotent=False`` the engine therefore retries only failures
that provably happened before the request was processed (connect errors, pool timeouts, 429) and
otherwise raises a :class:`~connectors.errors.TransientError` with ``ambiguous=True`` so the push
layer can look for the record before creating it again (ARCHITECTURE.md §2.5).

Logging goes to ``crmsync.connectors`` with method, URL path, status and attempt only: never
headers, tokens, bodies or query strings (some APIs carry keys in them).
"""

from __future__ import annotations

import contextvars
import email.utils
import functools
import hashlib
import logging
import random
import re
import ssl
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import orjson
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from connectors.errors import (
    AuthError,
    BadRequestError,
    ConnectorError,
    ForbiddenError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    ResponseFormatError,
    TransientError,
    body_excerpt,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Exchange",
    "HttpEngine",
    "TokenBucket",
    "TokenProvider",
    "parse_retry_after",
    "record_exchanges",
]

logger = logging.getLogger("crmsync.connectors")

E = TypeVar("E", bound=ConnectorError)

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
"""Connect 10 s (a dead host fails fast), read/write/pool 60 s (export pages can be slow)."""

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

# Transport failures raised before any byte of the request can have been processed by the server.
_NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout)
_NOT_SENT_ERRORS += (httpx.PoolTimeout,)
# Client-side mistakes that no retry can fix.
_PERMANENT_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
    httpx.InvalidURL,
)


_SENSITIVE_NAME = re.compile(r"auth|token|secret|password|key|signature|session", re.IGNORECASE)


def _sent_secrets(request: httpx.Request) -> list[str]:
    """Credential values a request carried (sensitive headers, query and form fields)."""
    values: list[str] = []
    for name, value in request.headers.items():
        if _SENSITIVE_NAME.search(name):
            values.append(value)
            values.extend(part for part in value.split() if len(part) >= 8)
    fields = list(request.url.params.multi_items())
    if request.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        try:
            form = request.content.decode("utf-8", "replace")
        except httpx.RequestNotRead:
            form = ""
        fields += httpx.QueryParams(form).multi_items()
    values.extend(value for name, value in fields if _SENSITIVE_NAME.search(name))
    # Longest first, so a header value is masked whole before its token part is.
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


@dataclass(slots=True)
class Exchange:
    """One request an engine sent and what came back, as a push attempt keeps it for developers:
    method, URL path (never the query string, headers or bodies), HTTP status or the transport
    error, milliseconds, and for a status of 300 or more the body excerpt with every credential
    the request sent masked (:meth:`HttpEngine.excerpt`)."""

    method: str
    path: str
    status: int | None
    ms: int
    error: str | None = None
    excerpt: str | None = None


_exchanges: contextvars.ContextVar[list[Exchange] | None] = contextvars.ContextVar(
    "crmsync_http_exchanges", default=None
)


@contextmanager
def record_exchanges() -> Iterator[list[Exchange]]:
    """Collect every request the engines send in this context (thread or task) inside the block,
    token requests and retries included; outside such a block nothing is kept."""
    kept: list[Exchange] = []
    token = _exchanges.set(kept)
    try:
        yield kept
    finally:
        _exchanges.reset(token)


class TokenProvider(ABC):
    """Supplies bearer credentials to the engine and forgets them when the server rejects them.

    Implementations fetch tokens however their provider wants (client credentials, password grant,
    refresh token) and may share them across engines; :meth:`invalidate` is called after a 401 so
    the next :meth:`get_token` fetches a fresh one.
    """

    @abstractmethod
    def get_token(self) -> str:
        """A currently valid access token; raises AuthError if the credentials are rejected."""

    @abstractmethod
    def invalidate(self) -> None:
        """Forget the token last returned by :meth:`get_token` (the server answered 401)."""

    def auth_headers(self, token: str) -> dict[str, str]:
        """Headers that carry ``token`` (override to add e.g. an application key)."""
        return {"Authorization": f"Bearer {token}"}


class TokenBucket:
    """A client-side requests-per-second limit, so one process stays under a provider's budget.

    Cross-process budgets (many workers) belong in a shared limiter passed as ``before_request``.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Take one token, sleeping for as long as the bucket is in debt.

        Reserving before sleeping (the balance may go negative) keeps concurrent callers in a
        fair queue and never spins, whatever the clock does while we sleep.
        """
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._updated)
            self._updated = now
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate) - 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


class _Retry(Exception):
    """Internal signal to tenacity: this attempt failed in a way worth repeating."""

    def __init__(self, error: TransientError, reason: str, retry_after: float | None = None):
        super().__init__(str(error))
        self.error = error
        self.reason = reason
        self.retry_after = retry_after


@dataclass
class _CallState:
    reauthenticated: bool = False


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: building one loads the CA bundle (~5 ms), and a
    fleet cycle creates a client per integration."""
    return httpx.create_ssl_context()


class HttpEngine:
    """One pooled ``httpx.Client`` plus the retry, auth and error rules shared by all connectors.

    Connectors call :meth:`request` with a path (joined to ``base_url``) or an absolute URL and
    get back a successful ``httpx.Response`` or a :class:`~connectors.errors.ConnectorError`.
    The engine is thread-safe as long as the token provider is.
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str = "",
        token_provider: TokenProvider | None = None,
        client: httpx.Client | None = None,
        timeout: httpx.Timeout | float | None = None,
        headers: Mapping[str, str] | None = None,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_retry_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        rate_limit: float | None = None,
        before_request: Callable[[httpx.Request], None] | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.provider = provider
        self.base_url = base_url
        self.token_provider = token_provider
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self.before_request = before_request
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._headers = dict(headers or {})
        self._bucket = (
            TokenBucket(rate_limit, clock=clock, sleep=sleep) if rate_limit is not None else None
        )
        self._owns_client = client is None
        # An injected client keeps its own timeout unless one is given explicitly.
        self._timeout: httpx.Timeout | None = None if timeout is None else httpx.Timeout(timeout)
        self._client = client or httpx.Client(
            verify=_tls_context(),
            timeout=self._timeout or DEFAULT_TIMEOUT,
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        )

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool (only if this engine created the client)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> HttpEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- public API ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        auth: bool = True,
        idempotent: bool | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request with retries and re-authentication; return a successful response.

        ``idempotent`` defaults from the method (GET/PUT/DELETE/HEAD/OPTIONS are); pass it
        explicitly for APIs that read with POST (LeadPerfection) or for a create that carries
        its own idempotency key. Remaining ``kwargs`` go to ``httpx.Client.build_request``
        (``params``, ``json``, ``data``, ``headers``, ``content``, ``timeout``).
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        if auth and self.token_provider is None:
            raise ValueError(f"{self.provider}: auth=True needs a token_provider")
        state = _CallState()
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Retry),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._attempt, method, url, auth, idempotent, state, kwargs)
        except _Retry as exhausted:
            raise exhausted.error from None

    def json(self, response: httpx.Response) -> Any:
        """Decode a response body as JSON, or raise ResponseFormatError."""
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise self.error(
                ResponseFormatError,
                response.request,
                f"response is not JSON: {self.excerpt(response, 80)!r}",
                status_code=response.status_code,
            ) from None

    def classify(self, response: httpx.Response) -> ConnectorError | None:
        """The error a final (non-401-handled) response represents, or None if it succeeded.

        The default reads the status only. Override to read a provider's error body where the
        status alone is ambiguous; return a :class:`TransientError` to have it retried.
        """
        status = response.status_code
        if status < 300:
            return None
        request = response.request
        detail = self.excerpt(response)
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
        if status == 401:
            return self.error(AuthError, request, "unauthorized", status, detail=detail)
        if status == 403:
            return self.error(ForbiddenError, request, "forbidden", status, detail=detail)
        if status == 404:
            return self.error(NotFoundError, request, "not found", status, detail=detail)
        if status >= 400:
            return self.error(BadRequestError, request, "rejected", status, detail=detail)
        return self.error(PermanentError, request, "unexpected status", status, detail=detail)

    def excerpt(self, response: httpx.Response, limit: int = 200) -> str:
        """A short, single-line excerpt of the body with any credential the request sent masked.

        Some servers echo the request (headers, form fields) in error bodies; the excerpt must
        stay safe to log even then.
        """
        text = body_excerpt(response.content, limit=10 * limit)
        for secret in _sent_secrets(response.request):
            text = text.replace(secret, "***")
        return body_excerpt(text, limit)

    def error(
        self,
        cls: type[E],
        request: httpx.Request,
        what: str,
        status_code: int | None = None,
        *,
        detail: str = "",
        **extra: Any,
    ) -> E:
        """Build a log-safe error naming provider, method, path and status (never the query)."""
        path = request.url.path
        status = f" -> HTTP {status_code}" if status_code is not None else ""
        message = f"{self.provider}: {request.method} {path}{status}: {what}"
        if detail:
            message += f" ({detail})"
        return cls(
            message,
            provider=self.provider,
            status_code=status_code,
            method=request.method,
            path=path,
            **extra,
        )

    # -- internals -------------------------------------------------------------------------

    def _url(self, url: str) -> str:
        if url.startswith(("http://", "https://")) or not self.base_url:
            return url
        return self.base_url.rstrip("/") + "/" + url.lstrip("/")

    def _build(self, method: str, url: str, auth: bool, kwargs: dict[str, Any]) -> httpx.Request:
        headers = dict(self._headers)
        headers.update(kwargs.get("headers") or {})
        if auth:
            assert self.token_provider is not None
            headers.update(self.token_provider.auth_headers(self.token_provider.get_token()))
        build_kwargs = {k: v for k, v in kwargs.items() if k != "headers"}
        if self._timeout is not None:
            build_kwargs.setdefault("timeout", self._timeout)
        return self._client.build_request(method, self._url(url), headers=headers, **build_kwargs)

    def _send(self, request: httpx.Request, idempotent: bool) -> httpx.Response:
        if self._bucket is not None:
            self._bucket.acquire()
        if self.before_request is not None:
            self.before_request(request)
        started = time.monotonic()
        try:
            response = self._send_kept(request)
        except _PERMANENT_TRANSPORT_ERRORS as exc:
            raise self.error(PermanentError, request, type(exc).__name__) from None
        except _NOT_SENT_ERRORS as exc:
            name = type(exc).__name__
            url = request.url
            port = url.port or (443 if url.scheme == "https" else 80)
            what = f"{name} before sending: {url.host}:{port} does not answer"
            error = self.error(TransientError, request, what)
            raise _Retry(error, name) from None
        except httpx.TransportError as exc:  # timeouts and drops after the request went out
            name = type(exc).__name__
            what = f"{name} after sending"
            if not idempotent:
                raise self.error(TransientError, request, what, ambiguous=True) from None
            raise _Retry(self.error(TransientError, request, what), name) from None
        logger.debug(
            "%s %s %s -> %s in %.3fs",
            self.provider,
            request.method,
            request.url.path,
            response.status_code,
            time.monotonic() - started,
        )
        return response

    def _send_kept(self, request: httpx.Request) -> httpx.Response:
        """``client.send``, noted in the exchanges being recorded (:func:`record_exchanges`)."""
        kept = _exchanges.get()
        if kept is None:
            return self._client.send(request)
        started = time.monotonic()
        method, path = request.method, request.url.path
        try:
            response = self._client.send(request)
        except httpx.HTTPError as exc:
            ms = round((time.monotonic() - started) * 1000)
            kept.append(Exchange(method, path, None, ms, error=type(exc).__name__))
            raise
        ms = round((time.monotonic() - started) * 1000)
        status = response.status_code
        excerpt = self.excerpt(response) if status >= 300 else None
        kept.append(Exchange(method, path, status, ms, excerpt=excerpt))
        return response

    def _attempt(
        self,
        method: str,
        url: str,
        auth: bool,
        idempotent: bool,
        state: _CallState,
        kwargs: dict[str, Any],
    ) -> httpx.Response:
        request = self._build(method, url, auth, kwargs)
        response = self._send(request, idempotent)
        if response.status_code == 401 and auth:
            assert self.token_provider is not None
            if state.reauthenticated:
                raise self._auth_error(response, "still unauthorized after re-authenticating")
            state.reauthenticated = True
            logger.warning(
                "%s %s %s -> 401; re-authenticating once",
                self.provider,
                method,
                request.url.path,
            )
            self.token_provider.invalidate()
            request = self._build(method, url, auth, kwargs)
            response = self._send(request, idempotent)
            if response.status_code == 401:
                raise self._auth_error(response, "still unauthorized after re-authenticating")
        error = self.classify(response)
        if error is None:
            return response
        if not isinstance(error, TransientError):
            raise error
        if isinstance(error, RateLimitedError):
            # A 429 is refused before processing: safe to repeat even for a create.
            raise _Retry(error, f"HTTP {response.status_code}", self._retry_after(response))
        if not idempotent:
            error.ambiguous = True
            raise error
        raise _Retry(error, f"HTTP {response.status_code}", self._retry_after(response))

    def _auth_error(self, response: httpx.Response, what: str) -> AuthError:
        return self.error(AuthError, response.request, what, response.status_code)

    def _retry_after(self, response: httpx.Response) -> float | None:
        if response.status_code not in (429, 503):
            return None
        return parse_retry_after(response.headers.get("Retry-After"))

    def _wait(self, retry_state: RetryCallState) -> float:
        """Seconds before the next attempt: the server's Retry-After, else full-jitter backoff."""
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        if isinstance(failure, _Retry) and failure.retry_after is not None:
            return min(failure.retry_after, self.max_retry_after)
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (retry_state.attempt_number - 1))
        return self._rng.uniform(0.0, ceiling)

    def _log_retry(self, retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        if not isinstance(failure, _Retry):
            return
        error = failure.error
        logger.warning(
            "%s %s %s -> %s; retry %d/%d in %.2fs",
            self.provider,
            error.method,
            error.path,
            failure.reason,
            retry_state.attempt_number,
            self.max_attempts - 1,
            retry_state.next_action.sleep if retry_state.next_action else 0.0,
        )


@dataclass(frozen=True)
class CachedToken:
    """An access token and its absolute expiry (epoch seconds); the token never appears in repr."""

    access_token: str = field(repr=False)
    expires_at: float

    @property
    def expires(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, UTC)


CacheKey = tuple[str, str, str]


class TokenCache:
    """Tokens shared by every client of one integration in this process.

    Separate Prefect tasks build separate clients; keying by (token URL, client id, secret hash)
    lets them reuse one token instead of each fetching its own, while a rotated secret gets a
    fresh entry. ServiceTitan has no refresh token: a token is simply replaced
    ``refresh_margin`` seconds before it expires.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = 60.0,
    ) -> None:
        self.clock = clock
        self.refresh_margin = refresh_margin
        self._tokens: dict[CacheKey, CachedToken] = {}
        self._locks: dict[CacheKey, threading.Lock] = {}
        self._guard = threading.Lock()

    @staticmethod
    def key(auth_url: str, client_id: str, client_secret: str) -> CacheKey:
        digest = hashlib.sha256(client_secret.encode()).hexdigest()
        return (auth_url, client_id, digest)

    def get(self, key: CacheKey) -> CachedToken | None:
        """The cached token if it is still comfortably valid."""
        with self._guard:
            token = self._tokens.get(key)
        if token is None or self.clock() >= token.expires_at - self.refresh_margin:
            return None
        return token

    def put(self, key: CacheKey, token: CachedToken) -> None:
        with self._guard:
            self._tokens[key] = token

    def discard(self, key: CacheKey, access_token: str | None = None) -> None:
        """Drop the entry, but only if it still holds ``access_token`` (when given).

        A peer may already have replaced a rejected token; discarding its fresh one would make
        every client re-authenticate again.
        """
        with self._guard:
            current = self._tokens.get(key)
            if current is not None and (
                access_token is None or current.access_token == access_token
            ):
                del self._tokens[key]

    def lock(self, key: CacheKey) -> threading.Lock:
        """A per-integration lock so concurrent clients fetch one token, not one each."""
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def clear(self) -> None:
        with self._guard:
            self._tokens.clear()


class CachedTokenProvider(TokenProvider):
    """A token provider whose tokens live in a shared :class:`TokenCache`: one fetch per
    integration and process, refreshed ``refresh_margin`` before expiry; subclasses only say
    how to fetch (``_fetch``)."""

    def __init__(self, cache: TokenCache, key: CacheKey) -> None:
        self._cache = cache
        self._key = key
        self._last: CachedToken | None = None

    def current(self) -> CachedToken:
        cached = self._cache.get(self._key)
        if cached is None:
            with self._cache.lock(self._key):
                cached = self._cache.get(self._key)
                if cached is None:
                    cached = self._fetch()
                    self._cache.put(self._key, cached)
        self._last = cached
        return cached

    def get_token(self) -> str:
        return self.current().access_token

    def invalidate(self) -> None:
        self._cache.discard(self._key, self._last.access_token if self._last else None)
        self._last = None

    @abstractmethod
    def _fetch(self) -> CachedToken: ...
