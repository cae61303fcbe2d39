"""Fault injection: the failures a ServiceTitan connector must survive (crm-apis.md §5, §5.4).

Each armed fault names a kind, a route glob (fnmatch on the request path), and how often it fires:
`times` requests (one-shot by default), or with probability `rate` per matching request drawn from
a seeded RNG so a flaky run can be replayed. Kinds:

- `status`: answer `status` instead of the real response (429 carries `Retry-After`).
- `latency`: wait `latency_ms` before answering (several latency faults add up).
- `drop_connection`: start the response, then abort it, so the client sees a broken read.
- `expire_token`: revoke every issued token; the request then fails auth with 401.
- `timeout_after_store`: for POST writes, perform the write, then wait `latency_ms` before
  answering so the client times out: "stored but the client never heard", the ambiguous case the
  product must resolve by checking before it retries.

`phase="after"` applies `status`, `latency` and `drop_connection` after the request was handled (a
write is stored, then the client gets a 5xx or a broken connection). The token endpoint is only
subject to faults whose route glob explicitly starts with `/connect`, so a default `route="*"`
targets API calls, which is what connector tests mean by it.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from typing import Any

FAULT_KINDS = ("status", "latency", "drop_connection", "expire_token", "timeout_after_store")
TERMINAL_KINDS = ("status", "drop_connection", "timeout_after_store")
TOKEN_PATH = "/connect/token"


@dataclass
class Fault:
    id: int
    kind: str
    route: str = "*"
    times: int | None = 1
    rate: float | None = None
    status: int | None = None
    retry_after: int | None = None
    latency_ms: int | None = None
    phase: str = "before"
    fired: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def applies_to(self, method: str, path: str) -> bool:
        if path == TOKEN_PATH and (
            not self.route.startswith("/connect") or self.kind == "expire_token"
        ):
            return False
        if self.kind == "timeout_after_store" and method != "POST":
            return False
        return fnmatchcase(path, self.route)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        return data


def validate_fault(fault: Fault) -> None:
    if fault.kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {fault.kind!r}; expected one of {FAULT_KINDS}")
    if fault.phase not in ("before", "after"):
        raise ValueError("phase must be 'before' or 'after'")
    if fault.kind == "status" and (fault.status is None or not 400 <= fault.status <= 599):
        raise ValueError("a status fault needs status between 400 and 599")
    if fault.kind in ("latency", "timeout_after_store") and not fault.latency_ms:
        raise ValueError(f"a {fault.kind} fault needs latency_ms > 0")
    if fault.kind == "expire_token" and fault.phase != "before":
        raise ValueError("expire_token only applies before the request is handled")
    if fault.rate is not None and not 0.0 < fault.rate <= 1.0:
        raise ValueError("rate must be in (0, 1]")
    if fault.times is not None and fault.times < 1:
        raise ValueError("times must be >= 1 or None (unlimited)")
    if fault.retry_after is not None and fault.retry_after < 0:
        raise ValueError("retry_after must be >= 0")


@dataclass
class FaultPlan:
    """What the armed faults do to one request."""

    latency_before_ms: int = 0
    latency_after_ms: int = 0
    expire_tokens: bool = False
    terminal: Fault | None = None


class FaultBook:
    """Armed faults, in arming order; not thread-safe on its own (the state's lock guards it)."""

    def __init__(self, seed: int = 0) -> None:
        self._faults: list[Fault] = []
        self._next_id = 1
        self._rng = random.Random(f"faults:{seed}")

    def arm(self, fault: Fault) -> Fault:
        fault.id = self._next_id
        self._next_id += 1
        validate_fault(fault)
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        self._faults.clear()

    def list(self) -> list[Fault]:
        return list(self._faults)

    def plan(self, method: str, path: str) -> FaultPlan:
        """Roll every matching fault once; consume the ones that fire.

        Latency faults accumulate; of the faults that end the request differently, only the first
        one that fires applies, and later ones are not consumed.
        """
        plan = FaultPlan()
        for fault in list(self._faults):
            if not fault.applies_to(method, path):
                continue
            if fault.kind in TERMINAL_KINDS and plan.terminal is not None:
                continue
            if fault.rate is not None and self._rng.random() >= fault.rate:
                continue
            fault.fired += 1
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
            if fault.kind == "latency":
                if fault.phase == "before":
                    plan.latency_before_ms += fault.latency_ms or 0
                else:
                    plan.latency_after_ms += fault.latency_ms or 0
            elif fault.kind == "expire_token":
                plan.expire_tokens = True
            else:
                plan.terminal = fault
        return plan
