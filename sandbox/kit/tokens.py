"""Bearer tokens as the vendors' auth servers hand them out, timed by the emulator clock.

A token stands for a grant: whatever the emulator needs to authorise a call (tenant and app key,
client id, org and user). Expiry is absolute (`ttl_s`: ServiceTitan, LeadPerfection) or after
inactivity (`idle_s`: Salesforce sessions); both read the emulator clock, so a test expires
tokens by moving the clock rather than by sleeping.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .clock import Clock

G = TypeVar("G")


@dataclass
class _Issued(Generic[G]):
    grant: G
    expires_us: int | None
    idle_us: int | None
    used_us: int


class TokenStore(Generic[G]):
    """Issued tokens and their grants; thread-safe (tests and the server thread both use it)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._issued: dict[str, _Issued[G]] = {}

    def issue(
        self,
        grant: G,
        *,
        ttl_s: float | None = None,
        idle_s: float | None = None,
        token: str | None = None,
        nbytes: int = 32,
    ) -> str:
        """A new token for `grant` (random unless the vendor's shape is given as `token`)."""
        token = token or secrets.token_urlsafe(nbytes)
        now = self._clock.now_us()
        expires = None if ttl_s is None else now + round(ttl_s * 1_000_000)
        idle = None if idle_s is None else round(idle_s * 1_000_000)
        with self._lock:
            self._issued[token] = _Issued(grant, expires, idle, now)
        return token

    def grant(self, token: str | None, *, touch: bool = True) -> G | None:
        """The grant of a live token, else None (expired tokens are forgotten).

        `touch` counts this as use, restarting an idle timer; pass False to only look.
        """
        if not token:
            return None
        now = self._clock.now_us()
        with self._lock:
            issued = self._issued.get(token)
            if issued is None:
                return None
            if (issued.expires_us is not None and now >= issued.expires_us) or (
                issued.idle_us is not None and now - issued.used_us > issued.idle_us
            ):
                del self._issued[token]
                return None
            if touch:
                issued.used_us = now
            return issued.grant

    def revoke(self, token: str) -> bool:
        with self._lock:
            return self._issued.pop(token, None) is not None

    def expire_all(self, where: Callable[[G], bool] | None = None) -> int:
        """End every token (or those whose grant `where` accepts); returns how many ended."""
        with self._lock:
            doomed = [t for t, i in self._issued.items() if where is None or where(i.grant)]
            for token in doomed:
                del self._issued[token]
            return len(doomed)

    def __len__(self) -> int:
        with self._lock:
            return len(self._issued)


def bearer_token(
    header: str | None, schemes: Iterable[str] = ("bearer",), *, bare: bool = False
) -> str | None:
    """The token of an `Authorization` header using one of `schemes` (case-insensitive).

    `bare` also accepts a header that is the token alone, as ServiceTitan's gateway does.
    """
    scheme, sep, token = (header or "").strip().partition(" ")
    if sep:
        return token.strip() or None if scheme.lower() in schemes else None
    return scheme or None if bare else None
