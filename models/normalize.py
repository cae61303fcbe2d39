"""Value normalizers shared by every CRM mapping.

The merge layer matches contacts on exact email and phone strings and sorts opportunities on
timestamps, so every CRM must hand over the same canonical forms: trimmed lower-case emails,
E.164 phones, timezone-aware UTC datetimes. The details flattening implements the seeds'
``resource:#:field`` notation ("Available Resource Fields" in the ServiceTitan seed, 002): nested
objects joined with ``:``, lists of records indexed from 1, newest-created first.

Everything here is pure and cheap: mappings call these functions for every record of a
100,000-record backfill.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

__all__ = [
    "flatten_details",
    "flatten_records",
    "is_placeholder",
    "normalize_email",
    "normalize_phone",
    "parse_timestamp",
    "placeholder_matcher",
    "sort_newest_first",
    "split_name",
]

_OLDEST = datetime.min.replace(tzinfo=UTC)


def normalize_email(value: object) -> str | None:
    """Trim and lower-case an email; None when it cannot be an address.

    Only the shape the merge layer relies on is checked (exactly one ``@`` with text on both
    sides); deliverability is not our business, and a stricter check would drop addresses the
    CRM users typed and expect to see.
    """
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or not domain or "@" in domain:
        return None
    return email


def _squeeze(text: str) -> str:
    return "".join(text.split()).lower()


@lru_cache(maxsize=256)
def placeholder_matcher(patterns: frozenset[str]) -> Callable[[str | None], bool]:
    """Compile a tenant's placeholder-email patterns into one predicate (cached per set, so a
    batch or a page's mapping compiles them once).

    Seed 002, "Configure a filter for placeholder emails": an email the filter catches never
    matches or merges contacts. A pattern is an address or a glob: ``*`` stands for any run of
    characters (``noemail@*``, ``*@example.com``), ``?`` for exactly one; everything else is
    literal (``.``, ``[``). Patterns and emails are compared without case and without whitespace,
    and a pattern must match the whole address.
    """
    exact: set[str] = set()
    globs: list[str] = []
    for pattern in patterns:
        text = _squeeze(pattern)
        if not text:
            continue
        if "*" in text or "?" in text:
            globs.append(
                "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in text)
            )
        else:
            exact.add(text)
    regex = re.compile("|".join(f"(?:{g})" for g in globs), re.DOTALL) if globs else None

    def matches(email: str | None) -> bool:
        if not email:
            return False
        text = _squeeze(email)
        return bool(text) and (
            text in exact or (regex is not None and regex.fullmatch(text) is not None)
        )

    return matches


def is_placeholder(email: str | None, patterns: Iterable[str]) -> bool:
    """Whether ``email`` is a placeholder per ``patterns`` (see :func:`placeholder_matcher`)."""
    return placeholder_matcher(frozenset(patterns))(email)


@lru_cache(maxsize=65_536)
def _e164(text: str, region: str) -> str | None:
    # phonenumbers.parse costs tens of microseconds and the same customer phones recur on
    # every job of that customer, hence the cache. Extensions are parsed off and dropped.
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return None
    # IS_POSSIBLE only: a 7-digit "local only" US number has no area code, so its E.164 form
    # would be a different (wrong) number. Validity is not required: 555 numbers are not
    # "valid" yet are what test data and some CRMs hold.
    if phonenumbers.is_possible_number_with_reason(number) != ValidationResult.IS_POSSIBLE:
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def normalize_phone(value: object, region: str = "US") -> str | None:
    """Return the E.164 form of a phone number, or None when it is not a possible number.

    ``region`` is the default region for numbers written without a country code
    (``"(555) 123-4567"``, ``"1-555-123-4567"``). Extensions (``x12``, ``ext. 12``) are dropped:
    the hub matches and dials on the line number. Integers are accepted because some CRMs export
    phones as numbers.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    elif not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    return _e164(text, region)


def parse_timestamp(value: object, naive_tz: tzinfo = UTC) -> datetime | None:
    """Parse an RFC 3339 / ISO 8601 timestamp into a timezone-aware UTC datetime.

    Accepts ``Z`` or numeric offsets and any number of fractional-second digits (ServiceTitan
    sends seven, ``2024-05-01T12:00:00.1234567Z``; digits past microseconds are truncated).
    Naive values are read in ``naive_tz``, UTC by default because ServiceTitan documents its
    timestamps as UTC; LeadPerfection callers pass US Eastern. Returns None for None and blank
    strings; raises ValueError for anything else that is not a timestamp, so the caller can name
    the field in its MappingError.
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            text = value.strip()
            if not text:
                return None
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"not a timestamp: {value!r}") from None
    elif isinstance(value, datetime):
        parsed = value
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    tz = parsed.tzinfo
    if tz is UTC:
        return parsed
    if tz is None:
        if naive_tz is UTC:
            return parsed.replace(tzinfo=UTC)
        return parsed.replace(tzinfo=naive_tz).astimezone(UTC)
    return parsed.astimezone(UTC)


def split_name(full: str | None) -> tuple[str | None, str | None]:
    """Split a CRM full name into (first name, last name) per the seeds' rule.

    Seed 002, "Standard Field Mapping": with no comma, the first name is the first word and the
    last name everything after it; with a comma, the first name is all text after the first
    comma and the last name all text before it (``"Smith, John"``). Empty parts become None.
    """
    if not isinstance(full, str):
        return None, None
    if "," in full:
        last, _, first = full.partition(",")
        return first.strip() or None, last.strip() or None
    words = full.split(None, 1)
    if not words:
        return None, None
    if len(words) == 1:
        return words[0], None
    return words[0], words[1].strip() or None


def _created_or_oldest(value: object) -> datetime:
    try:
        return parse_timestamp(value) or _OLDEST
    except ValueError:
        return _OLDEST


def sort_newest_first(items: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Order records by ``createdOn`` descending, ties broken by ``id`` descending.

    This is the seeds' list order ("sorted by created date in descending order"), so index 1 is
    the most recently created record. Lists with no ``createdOn`` at all keep their order
    (custom fields, external data). A missing or unparseable ``createdOn`` sorts as oldest rather
    than failing the record: it only decides a position in a details list.
    """
    count = len(items)
    if count < 2:
        return list(items)
    created = [item.get("createdOn") for item in items]
    if created.count(None) == count:
        return list(items)
    stamps = [_created_or_oldest(value) for value in created]
    ids: list[Any] = [item.get("id") for item in items]
    if list(map(type, ids)).count(int) != count:
        ids = [_id_key(ident) for ident in ids]
    # Decorate-sort-undecorate: tuples compare in C, much cheaper than a Python key function.
    # The trailing position only breaks exact (createdOn, id) ties and never compares records.
    ranked = sorted(zip(stamps, ids, range(count), strict=True), reverse=True)
    return [items[rank[2]] for rank in ranked]


def _id_key(ident: object) -> tuple[int, float, str]:
    # Numeric ids above strings, each compared in its own kind, so mixed ids never TypeError.
    if isinstance(ident, int | float) and not isinstance(ident, bool):
        return 1, ident, ""
    return 0, 0, "" if ident is None else str(ident)


def flatten_records(key: str, items: Sequence[Mapping[str, Any]], out: dict[str, Any]) -> None:
    """Write already-ordered records as ``key:1:field``, ``key:2:field``, ...

    For callers that sorted a list once (with :func:`sort_newest_first`) to pick standard fields
    from it and must not pay for sorting it again.
    """
    for index, item in enumerate(items, 1):
        _flatten_dict(f"{key}:{index}:", item, out)


def flatten_details(prefix: str, value: object, out: dict[str, Any]) -> None:
    """Flatten ``value`` into ``out`` under ``prefix`` in the seeds' ``a:b:#:c`` notation.

    Nested objects join their keys with ``:`` (``customer:address:city``). A non-empty list whose
    items are all objects becomes 1-based indexed keys in :func:`sort_newest_first` order
    (``appointments:1:modifiedOn`` is the newest appointment's). Other lists (scalars, mixed,
    empty) stay JSON lists under their key. An empty ``prefix`` flattens a dict's fields to the top
    level. Values are stored as given, not copied (scalar lists are shared with the input), so
    JSON input stays JSON-serialisable. Containers are recognised as plain ``dict``/``list``,
    which is what JSON decoders produce.
    """
    if type(value) is dict:
        if prefix:
            _flatten_dict(f"{prefix}:", value, out)
        else:
            _flatten_top(value, out)
    elif type(value) is list:
        _flatten_list(prefix, value, out)
    else:
        out[prefix] = value


# The loops below run for every field of every record (about 160 detail keys per job with its
# customer, contacts, appointments and estimates), so they use exact ``type() is`` checks and no
# helper calls for scalars.


def _flatten_dict(head: str, record: Mapping[str, Any], out: dict[str, Any]) -> None:
    for name, value in record.items():
        kind = type(value)
        if kind is dict:
            _flatten_dict(f"{head}{name}:", value, out)
        elif kind is list:
            _flatten_list(f"{head}{name}", value, out)
        else:
            out[f"{head}{name}"] = value


def _flatten_top(record: Mapping[str, Any], out: dict[str, Any]) -> None:
    # Top-level keys are the field names themselves: copy them in C, then replace the containers.
    out.update(record)
    for name, value in record.items():
        kind = type(value)
        if kind is dict:
            del out[name]
            _flatten_dict(f"{name}:", value, out)
        elif kind is list:
            del out[name]
            _flatten_list(name, value, out)


def _flatten_list(key: str, items: list[Any], out: dict[str, Any]) -> None:
    if items and type(items[0]) is dict and list(map(type, items)).count(dict) == len(items):
        if len(items) > 1:
            items = sort_newest_first(items)
        for index, item in enumerate(items, 1):
            _flatten_dict(f"{key}:{index}:", item, out)
    else:
        out[key] = items
