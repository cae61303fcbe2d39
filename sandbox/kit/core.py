"""The controls every emulator state offers its tests, over the kit's clock, faults and log.

A state sets `clock`, `fault_book` and `request_log` in its constructor and inherits the same
methods in all three emulators; `/__emulator/{clock,faults,requests}` (control.py) serve the same
operations over HTTP.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic

from .clock import Clock
from .faults import UNSET, Fault, FaultBook, _Unset
from .requestlog import E, RequestLog


class EmulatorCore(Generic[E]):
    clock: Clock
    fault_book: FaultBook
    request_log: RequestLog[E]

    def timestamp(self) -> str:
        """The clock as this emulator writes it in its request log and control API."""
        return self.now().isoformat()

    def now(self) -> datetime:
        return self.clock.now()

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def now_epoch(self) -> float:
        return self.clock.now_epoch()

    def advance_clock(self, seconds: float) -> datetime:
        """Move the emulator clock forward (tokens expire, later changes get later stamps)."""
        self.clock.advance(seconds)
        return self.now()

    def arm_fault(
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
        """Arm a fault (kinds and options: `sandbox.kit.faults`, and the emulator's own docs)."""
        return self.fault_book.arm(
            kind,
            route=route,
            times=times,
            rate=rate,
            status=status,
            retry_after=retry_after,
            latency_ms=latency_ms,
            phase=phase,
        )

    def clear_faults(self) -> None:
        self.fault_book.clear()

    def faults(self) -> list[Fault]:
        """Faults still armed, in arming order."""
        return self.fault_book.armed()

    def release_held_requests(self) -> None:
        """End every latency or held-answer wait now (the server is stopping)."""
        self.fault_book.release.set()

    @property
    def requests(self) -> list[E]:
        """Requests received (API and token calls, not `/__emulator` ones), oldest first."""
        return self.request_log.entries()

    def clear_requests(self) -> None:
        self.request_log.clear()
