"""The emulator clock: a start instant, real time since (unless frozen), plus jumps tests make.

Emulators stamp records, expire tokens and sessions and log requests by this clock rather than
the wall clock, so a test can let an hour pass in no time, and the same start with a frozen clock
gives the same bytes on every run. It counts integer microseconds so that ServiceTitan's
millisecond stamps and the others' whole seconds stay exact after any number of jumps.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(value: datetime) -> int:
    """Epoch microseconds of a datetime (naive ones are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class Clock:
    """`start` defaults to now; `frozen` makes the clock move only through `advance`."""

    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        self.frozen = frozen
        self._lock = threading.Lock()
        self._start_us = to_us(start or datetime.now(UTC))
        self.restart()

    def restart(self, start: datetime | None = None) -> None:
        """Back to `start` (default: the current start), jumps undone, real time counted anew."""
        with self._lock:
            if start is not None:
                self._start_us = to_us(start)
            self._offset_us = 0
            self._mono0 = time.monotonic_ns()

    @property
    def start(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self._start_us)

    def now_us(self) -> int:
        elapsed = 0 if self.frozen else (time.monotonic_ns() - self._mono0) // 1000
        return self._start_us + elapsed + self._offset_us

    def now_ms(self) -> int:
        return self.now_us() // 1000

    def now_epoch(self) -> float:
        return self.now_us() / 1_000_000

    def now(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.now_us())

    def advance(self, seconds: float) -> datetime:
        """Jump forward; backwards is refused, because nothing an emulator stamps may go back."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset_us += round(seconds * 1_000_000)
        return self.now()
