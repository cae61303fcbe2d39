"""Errors raised by every CRM connector, sorted once into "try again later" and "will never work".

The tree is what the layers above branch on (ARCHITECTURE.md §3): the HTTP engine retries nothing
that is a :class:`PermanentError`, Prefect tasks retry only errors whose ``retryable`` is true, and
the push layer checks ``ambiguous`` before deciding whether a create may be repeated::

    ConnectorError                 .provider, .status_code, .retryable, .method, .path
    ├── TransientError             retryable: timeouts, connection errors, 5xx, 429 left over
    │   │                          after the HTTP retries; .ambiguous is true when a
    │   │                          non-idempotent request may have reached the server
    │   └── RateLimitedError       .retry_after (seconds, or None when the server gave none)
    └── PermanentError             not retryable: fix the input or the credentials first
        ├── AuthError              bad credentials at the token endpoint, or a 401 again after
        │                          one re-authentication (integration needs re-authenticating)
        ├── ForbiddenError         403: the credentials lack a scope or the tenant is not theirs
        ├── NotFoundError          404
        ├── BadRequestError        any other 4xx (400, 409, 422 …)
        ├── QuotaExceededError     a provider's hard quota (e.g. Salesforce REQUEST_LIMIT_EXCEEDED)
        └── ResponseFormatError    a 2xx whose body is not the documented shape

Messages are safe to log by construction: they name the provider, method, URL *path* (never the
query string, which some APIs use for keys) and status, plus at most a short, single-line excerpt
of the response body. Credentials, tokens and request bodies never enter an error.

The classes pickle with their attributes (Prefect stores a failed task's exception in its state).
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BadRequestError",
    "ConnectorError",
    "ForbiddenError",
    "NotFoundError",
    "PermanentError",
    "QuotaExceededError",
    "RateLimitedError",
    "ResponseFormatError",
    "TransientError",
    "body_excerpt",
]

EXCERPT_CHARS = 200


def body_excerpt(text: str | bytes | None, limit: int = EXCERPT_CHARS) -> str:
    """A single-line, truncated rendering of a response body for error messages.

    Error bodies (RFC 7807 ``ApiErrorResponse``, APIM ``{"statusCode", "message"}``) help an
    operator see *why* a call failed; the cap keeps a large or unexpected body out of the logs.
    """
    if not text:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class ConnectorError(Exception):
    """A CRM call failed; ``retryable`` says whether the same call could succeed later."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "unknown",
        status_code: int | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.method = method
        self.path = path

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"status_code={self.status_code!r})"
        )


class TransientError(ConnectorError):
    """The call may succeed if repeated later (after the HTTP layer's own retries ran out).

    ``ambiguous`` is true when a non-idempotent request (a POST creating a record) failed after it
    may have reached the server: the caller must look for the record before creating it again.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str = "unknown",
        status_code: int | None = None,
        method: str | None = None,
        path: str | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(
            message, provider=provider, status_code=status_code, method=method, path=path
        )
        self.ambiguous = ambiguous


class RateLimitedError(TransientError):
    """429 that outlived the HTTP retries; ``retry_after`` is the server's last hint in seconds."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "unknown",
        status_code: int | None = 429,
        method: str | None = None,
        path: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, provider=provider, status_code=status_code, method=method, path=path
        )
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """Repeating the call unchanged will fail the same way."""

    retryable = False


class AuthError(PermanentError):
    """The credentials are wrong or revoked; the integration needs re-authenticating."""


class ForbiddenError(PermanentError):
    """403: authenticated, but not allowed (missing API scope, or another tenant's data)."""


class NotFoundError(PermanentError):
    """404: the record or route does not exist."""


class BadRequestError(PermanentError):
    """Any other 4xx: the request itself is invalid (400, 409, 422 …)."""


class QuotaExceededError(PermanentError):
    """A hard provider quota (e.g. Salesforce daily API requests); waiting minutes will not help."""


class ResponseFormatError(PermanentError):
    """A successful status whose body is not the documented shape (not JSON, missing keys)."""
