"""Fault injection: the failures a connector must survive (crm-apis.md §5), armed by tests.

A fault names a kind, a route glob and how often it fires: `times` matching requests (once by
default), or each matching request with probability `rate`, drawn from a seeded RNG so that a
flaky run can be replayed (unlimited then, unless `times` is given). The glob is matched against
the path with fnmatch; `"POST /x/*"` also requires the method. The middleware only needs to know
which of five effects a kind has, so an emulator adds its own kinds by naming their effect:

- LATENCY: wait `latency_ms` before handling (`phase="before"`) or before answering (`"after"`);
  several add up.
- EXPIRE: end every issued token or session first, so the call fails its auth check.
- ANSWER: answer with the emulator's responder for the kind (the vendor's error body, headers)
  instead of the app's answer; with `phase="after"` the request is handled first.
- DROP: break the connection, before handling or after it (the write happened, the client sees
  a broken read).
- HOLD: handle the request, then hold the answer `latency_ms` so that the client times out:
  "stored but the client never heard", which a connector must resolve before retrying. Only on
  requests that store something.

Of the faults that end a request (ANSWER, DROP, HOLD) only the first that fires applies, and later
ones are not consumed. Paths in `spared` (token endpoints) are only hit by a route that names
them (one not starting with a wildcard), so that `route="*"` means API calls.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Final

LATENCY, EXPIRE, ANSWER, DROP, HOLD = "latency", "expire", "answer", "drop", "hold"
ENDINGS = (ANSWER, DROP, HOLD)
STANDARD_KINDS: Mapping[str, str] = {
    "status": ANSWER,
    "latency": LATENCY,
    "drop_connection": DROP,
    "expire_token": EXPIRE,
    "timeout_after_store": HOLD,
}


class _Unset:
    """Marker for "argument not given" where None already means something (unlimited)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


@dataclass
class Fault:
    id: int
    kind: str
    route: str = "*"
    times: int | None = 1
    rate: float | None = None
    status: int | None = None
    retry_after: float | None = None
    latency_ms: int | None = None
    phase: str = "before"
    fired: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FaultPlan:
    """What the armed faults do to one request."""

    latency_before_ms: int = 0
    latency_after_ms: int = 0
    expire_tokens: bool = False
    terminal: Fault | None = None
    fired: list[Fault] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return [fault.kind for fault in self.fired]


def _is_post(method: str, path: str) -> bool:
    return method == "POST"


class FaultBook:
    """Armed faults in arming order, and the per-emulator rules for arming and matching them.

    - `kinds`: kind name -> effect (default: the five standard kinds).
    - `spared`: paths only a route naming them reaches (see the module docstring).
    - `ignore_case`: match globs case-insensitively (IIS routes ignore case).
    - `stores`: which (method, path) store something, for HOLD kinds (default: POSTs).
    - `default_status`, `default_latency_ms`, `default_hold_ms`: what a fault without `status`
      or `latency_ms` gets; None makes the value required. A 429 without `retry_after` gets
      `retry_after_429`.
    """

    def __init__(
        self,
        kinds: Mapping[str, str] = STANDARD_KINDS,
        *,
        seed: int = 0,
        spared: Iterable[str] = (),
        ignore_case: bool = False,
        stores: Callable[[str, str], bool] = _is_post,
        default_status: int | None = None,
        default_latency_ms: int | None = None,
        default_hold_ms: int | None = None,
        retry_after_429: float | None = 1,
    ) -> None:
        self.kinds = dict(kinds)
        self.spared = frozenset(spared)
        self.ignore_case = ignore_case
        self.stores = stores
        self.default_status = default_status
        self.default_latency_ms = default_latency_ms
        self.default_hold_ms = default_hold_ms
        self.retry_after_429 = retry_after_429
        self.release = threading.Event()
        """Set when held requests must end now (the server is stopping)."""
        self._seed = seed
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """No faults, ids from 1, the RNG at its seed: the same arming replays the same run."""
        with self._lock:
            self._faults: list[Fault] = []
            self._next_id = 1
            self._rng = random.Random(f"faults:{self._seed}")
            self.fired: Counter[str] = Counter()
            self.release.clear()

    def arm(
        self,
        kind: str,
        *,
        route: str = "*",
        times: int | _Unset | None = UNSET,
        rate: float | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        latency_ms: int | None = None,
        phase: str = "before",
    ) -> Fault:
        """Arm a fault (module docstring); `times` defaults to 1, or unlimited with `rate`."""
        effect = self.kinds.get(kind)
        if effect is None:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {tuple(self.kinds)}")
        if isinstance(times, _Unset):
            times = None if rate is not None else 1
        if kind == "status":
            status = self.default_status if status is None else status
            if status is None or not 400 <= status <= 599:
                raise ValueError("a status fault needs a status between 400 and 599")
        if status == 429 and retry_after is None:
            retry_after = self.retry_after_429
        if effect == LATENCY and latency_ms is None:
            latency_ms = self.default_latency_ms
        if effect == HOLD:
            latency_ms = self.default_hold_ms if latency_ms is None else latency_ms
            phase = "after"
        if effect in (LATENCY, HOLD) and not latency_ms:
            raise ValueError(f"a {kind} fault needs latency_ms > 0")
        if phase not in ("before", "after"):
            raise ValueError("phase must be 'before' or 'after'")
        if effect == EXPIRE and phase != "before":
            raise ValueError(f"{kind} only applies before the request is handled")
        if rate is not None and not 0.0 < rate <= 1.0:
            raise ValueError("rate must be in (0, 1]")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None (unlimited)")
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        with self._lock:
            fault = Fault(
                self._next_id, kind, route, times, rate, status, retry_after, latency_ms, phase
            )
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def armed(self) -> list[Fault]:
        """Faults still armed, in arming order."""
        with self._lock:
            return list(self._faults)

    def effect(self, fault: Fault) -> str:
        return self.kinds[fault.kind]

    def _applies(self, fault: Fault, method: str, path: str) -> bool:
        want, sep, glob = fault.route.partition(" ")
        if not sep:
            want, glob = "", fault.route
        if want and want.upper() != method.upper():
            return False
        effect = self.kinds[fault.kind]
        if path in self.spared and (effect == EXPIRE or glob[:1] in ("*", "?", "[")):
            return False
        if effect == HOLD and not self.stores(method, path):
            return False
        if self.ignore_case:
            return fnmatchcase(path.lower(), glob.lower())
        return fnmatchcase(path, glob)

    def plan(self, method: str, path: str) -> FaultPlan:
        """Roll every matching fault once and consume the ones that fire."""
        plan = FaultPlan()
        with self._lock:
            for fault in list(self._faults):
                if not self._applies(fault, method, path):
                    continue
                effect = self.kinds[fault.kind]
                if effect in ENDINGS and plan.terminal is not None:
                    continue
                if fault.rate is not None and self._rng.random() >= fault.rate:
                    continue
                fault.fired += 1
                self.fired[fault.kind] += 1
                plan.fired.append(fault)
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                if effect == LATENCY and fault.phase == "before":
                    plan.latency_before_ms += fault.latency_ms or 0
                elif effect == LATENCY:
                    plan.latency_after_ms += fault.latency_ms or 0
                elif effect == EXPIRE:
                    plan.expire_tokens = True
                else:
                    plan.terminal = fault
        return plan
