"""The request log: what a connector sent and what it got, for tests to assert on.

Each emulator subclasses `LoggedRequest` with the fields its vendor identifies callers by (app
key, client id, org). Entries are appended when a request arrives and completed as it is
answered, so a request still in flight (held by a fault) is already visible.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Generic, TypeVar

_MISSING = object()


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: str
    timestamp: str
    """Emulator clock when the request arrived, in the emulator's own format."""
    seq: int = 0
    status: int | str | None = None
    """Status answered, or what happened instead: `dropped`, `client_disconnected`."""
    body: Any = None
    """What the request carried, secrets left out."""
    fault: str | None = None
    """Kind of the fault that decided the answer, if any."""
    faults: list[str] = field(default_factory=list)
    """Kinds of every fault that fired on the request."""
    duration_ms: float = 0.0

    OPTIONAL: ClassVar[tuple[str, ...]] = ()
    """Keys left out of `as_dict` (and mapping reads) while None."""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in self.OPTIONAL:
            if data[key] is None:
                del data[key]
        return data

    def get(self, key: str, default: Any = None) -> Any:
        """Mapping-style read, for callers that treat entries as the JSON objects they serve as."""
        if key not in {f.name for f in fields(self)}:
            return default
        value = getattr(self, key)
        return default if value is None and key in self.OPTIONAL else value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value


E = TypeVar("E", bound=LoggedRequest)


class RequestLog(Generic[E]):
    """Entries oldest first, numbered from 1; bounded, so long benchmarks cannot grow it forever."""

    def __init__(self, maxlen: int | None = 100_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[E] = deque(maxlen=maxlen)
        self._seq = 0

    def append(self, entry: E) -> E:
        with self._lock:
            self._seq += 1
            entry.seq = self._seq
            self._entries.append(entry)
        return entry

    def entries(self) -> list[E]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        """Forget the entries; numbering goes on, so `since=<seq>` readers are not confused."""
        with self._lock:
            self._entries.clear()

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
            self._seq = 0

    def tally(self, key: str) -> dict[str, int]:
        """How many entries have each value of `key` (as text), e.g. `tally("status")`."""
        with self._lock:
            return dict(Counter(str(getattr(entry, key)) for entry in self._entries))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
