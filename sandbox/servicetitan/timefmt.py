"""Timestamps as the ServiceTitan API writes and reads them.

The vendor documents every date-time as "RFC3339 in UTC" (see the `modifiedOnOrAfter` parameter
descriptions in tests/fixtures/servicetitan-openapi/). The emulator keeps every instant as integer
milliseconds since the epoch, because exports order records by `(modifiedOn, id)` and bisect over
them, and writes them in one fixed shape, `2026-11-20T14:03:11.123Z`, so that string comparison of
two emulator timestamps agrees with their chronological order.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_day_prefix_cache: dict[int, str] = {}

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


_HMS = tuple(f"{h:02d}:{m:02d}:{s:02d}." for h in range(24) for m in range(60) for s in range(60))
_MILLIS = tuple(f"{m:03d}Z" for m in range(1000))


def format_ms(ms: int) -> str:
    """Format epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.

    A large tenant formats over a million timestamps at generation, so this is table-driven
    (day prefix cache, 86,400 time-of-day strings, 1,000 millisecond suffixes).
    """
    day, rest = divmod(ms, DAY_MS)
    prefix = _day_prefix_cache.get(day)
    if prefix is None:
        prefix = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
        _day_prefix_cache[day] = prefix
    seconds, millis = divmod(rest, 1000)
    return prefix + _HMS[seconds] + _MILLIS[millis]


def datetime_to_ms(value: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive ones are taken as UTC, as the API does)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def parse_timestamp(text: str) -> int:
    """Parse a date or RFC3339 date-time query value into epoch milliseconds.

    Accepts what clients realistically send: `2026-01-01`, `2026-01-01T00:00:00Z`, fractional
    seconds of any length, numeric offsets, and no zone at all (taken as UTC, which is how the
    vendor describes every date parameter). Raises ValueError otherwise.
    """
    raw = text.strip()
    if not raw:
        raise ValueError("empty date-time")
    if _DATE_ONLY.match(raw):
        return datetime_to_ms(datetime.combine(date.fromisoformat(raw), datetime.min.time()))
    candidate = raw.replace(" ", "T", 1) if "T" not in raw and " " in raw else raw
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    # datetime.fromisoformat (3.11) accepts 1-6 fraction digits; trim longer .NET-style fractions.
    match = re.match(r"^(.*T\d{2}:\d{2}:\d{2})\.(\d+)(.*)$", candidate)
    if match:
        head, fraction, tail = match.groups()
        candidate = f"{head}.{fraction[:6].ljust(6, '0')}{tail}"
    return datetime_to_ms(datetime.fromisoformat(candidate))


def normalize_timestamp(value: object) -> str | None:
    """Re-format a caller-supplied timestamp (string or datetime) into the emulator's shape."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_ms(datetime_to_ms(value))
    if isinstance(value, str):
        return format_ms(parse_timestamp(value))
    raise ValueError(f"not a timestamp: {value!r}")
