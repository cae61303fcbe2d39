"""LeadPerfection prospects (GetLead payloads) to the hub's standard opportunity fields.

Implements seed 001 ("LeadPerfection"): the sync triggers, the Lead + Prospect / Prospect
combinations and the "Hatch Opportunities to LeadPerfection Field Mapping" table. Inputs are the
raw prospects exactly as ``POST /api/Customers/GetLead`` returns them (crm-apis.md §2.5): a
prospect with nested ``notes[]``, ``calls[]`` and ``leads[]``, each lead with ``jobs[]`` and
``appointments[]``. Pure functions, no I/O.

**Triggers** (seed 001, "When do LeadPerfection objects sync"). LP's date-range read returns a
prospect when it or anything nested in it changed in the window; :func:`combinations` sorts out
what that change means:

* A Lead counts as *updated in the window* when its ``lastchangedon`` or ``dateentered``, or the
  ``lastchangedon`` of one of its jobs or appointments, falls in the window (jobs and appointments
  are part of the Lead object in LP's payload; a Lead created in the window is updated in it).
  Each such Lead syncs with its Prospect: one opportunity per Lead + Prospect combination, so a
  prospect with several updated leads gives several opportunities, and a lead that LP lists
  under several prospects gives one per prospect ("one opportunity for every combination").
* A Prospect that LP returned for the window but none of whose Leads was updated in it syncs
  alone. LP is taken at its word that the prospect changed: it does not bump ``lastchanged`` on
  every edit (crm-apis.md §2.5), so requiring that stamp in the window would drop real changes.
* A call result alone changes nothing (seed 001, "KNOWN LIMITATIONS"): LP moves no stamp for it.

**Standard fields** (the seed's table, "on every Hatch opportunity"). ``Prospect.leads[0]`` is
the combination's Lead for a Lead + Prospect opportunity, and LP's first lead for a lone Prospect
(so a prospect-only change updates the opportunity of its first lead; see :class:`Combination`).

* Email: ``Prospect.email``, trimmed and lower-cased;
* External ID: ``Prospect.leads[0].id``; External Contact ID: ``Prospect.cst_id``;
* External Created At: ``Prospect.dateadded``;
* External Updated At: the first present of ``Prospect.lastchanged``,
  ``Prospect.leads[0].lastchangedon``, ``Prospect.leads[0].dateentered``,
  ``Prospect.leads[0].jobs[0].contractdate``, ``Prospect.leads[0].appointments[0].lastchangedon``;
* First/Last Name: ``Prospect.firstname``/``lastname``; Phone: ``Prospect.phone1`` in E.164;
* Status: ``Prospect.leads[0].disposition``.

**Missing fields.** The seed syncs a combination only when "all LeadPerfection fields are
available that are mapped to Hatch standard fields"; otherwise :func:`map_combination` raises a
:class:`~models.standard.MappingError` naming every missing field, and the sync records the
combination as rejected. A field is missing when LP did not send it, sent null, sent a Delphi
zero date, or sent a value that cannot be what the field holds (a blank or malformed email, a
blank or impossible phone, blank names). Consequences worth knowing:

* a prospect without any lead has no External ID (``Prospect.leads[0].id``) and is rejected
  until it gets one; inventing an id (the ``cst_id``) could collide with a real lead id;
* a lead whose ``disposition`` is the empty string is *not* missing its Status: LP sends ``""``
  for "no result yet" on every new lead (about half of all leads), and the hub stores a null
  status. A disposition that is absent or null is missing.

**Values** (issue 3): naive timestamps are wall-clock time in the integration's time zone and are
stored in UTC (standard fields as datetimes, details as ``YYYY-MM-DDTHH:MM:SSZ`` strings); Delphi
zero dates (``1899-12-30…``, ``1900-01-01…``: a time with no date) read as missing (None); the
strings ``"true"``/``"false"`` read as booleans.

**Details** are every field of the combination's Prospect view (the Prospect's own fields and
the one Lead it holds, with that Lead's jobs and appointments), keyed in the seed's notation:
``Prospect.email``, ``Prospect.leads[0].jobs[0].contractdate``, ``Prospect.notes[1]`` (lists are
0-based, in LP's order; scalars in lists are indexed too; an empty list is kept as ``[]``), plus,
for a placeholder email, the same ``hub:placeholder_email`` flag as ServiceTitan. Which trigger
produced an opportunity is deliberately not recorded: the same unchanged record is a Lead +
Prospect combination in one window and a lone Prospect in a later, narrower one, and a flag
that flips would turn a re-read of unchanged data into an update.

**Activities** (issue 15, seed 004): :func:`map_activities` turns the notes and call history
nested in the same GetLead prospects into :class:`~models.standard.InboundActivity` rows; LP has
no list-notes endpoint (``GetNotes`` is a 404, crm-apis.md §2.3), so they cost no request of
their own. See that function for the parents, links and ids.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from models.mappings.servicetitan import PLACEHOLDER_EMAIL_DETAIL
from models.normalize import is_placeholder, normalize_email, normalize_phone, parse_timestamp
from models.standard import InboundActivity, MappedOpportunity, MappingError, RejectedRecord

__all__ = [
    "ACTIVITY_KINDS",
    "CALL_LOG_ID_PREFIX",
    "LEAD_AND_PROSPECT",
    "MODEL",
    "PROSPECT_ONLY",
    "Combination",
    "call_log_ids",
    "call_when",
    "combinations",
    "lead_updated_in",
    "lp_bool",
    "lp_details",
    "lp_timestamp",
    "map_activities",
    "map_combination",
    "map_prospects",
    "note_id",
]

MODEL = "lead"
"""One opportunity model: both combinations are keyed by ``Prospect.leads[0].id``."""
LEAD_AND_PROSPECT = "lead+prospect"
PROSPECT_ONLY = "prospect"
ROOT = "Prospect"

_ZERO_DATES = ("1899-12-30", "1900-01-01")
_UPDATED_AT_CHAIN = (
    "Prospect.lastchanged",
    "Prospect.leads[0].lastchangedon",
    "Prospect.leads[0].dateentered",
    "Prospect.leads[0].jobs[0].contractdate",
    "Prospect.leads[0].appointments[0].lastchangedon",
)

Record = Mapping[str, Any]


# --- values ----------------------------------------------------------------------------------


def is_zero_date(value: object) -> bool:
    """True for Delphi's zero date, which LP sends for a time with no date (crm-apis.md §2.5)."""
    return isinstance(value, str) and value.lstrip().startswith(_ZERO_DATES)


def lp_timestamp(value: object, tz: tzinfo) -> datetime | None:
    """An LP timestamp as aware UTC; None when absent, blank or a Delphi zero date.

    Naive values are wall-clock time in ``tz``. Raises ValueError for anything else that is not
    a timestamp, so the caller can name the field.
    """
    if is_zero_date(value):
        return None
    return parse_timestamp(value, naive_tz=tz)


def lp_bool(value: object) -> object:
    """``"true"``/``"false"`` (any case) as booleans; any other value unchanged."""
    if isinstance(value, str) and len(value) in (4, 5):
        low = value.lower()
        if low == "true":
            return True
        if low == "false":
            return False
    return value


_offsets: dict[tuple[tzinfo, str], timedelta | None] = {}


def _hour_offset(tz: tzinfo, hour: str) -> timedelta | None:
    """The UTC offset of a whole local hour (``YYYY-MM-DDTHH``), or None when it changes inside
    the hour (a DST transition that is not on the hour) and each stamp must be converted alone."""
    key = (tz, hour)
    if key not in _offsets:
        start = datetime.fromisoformat(hour + ":00:00").replace(tzinfo=tz).utcoffset()
        end = datetime.fromisoformat(hour + ":59:59").replace(tzinfo=tz).utcoffset()
        _offsets[key] = start if start == end else None
    return _offsets[key]


def _utc_text(value: str, tz: tzinfo) -> str | None:
    if value.startswith(_ZERO_DATES):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is None:
        offset = _hour_offset(tz, value[:13]) if value[10] == "T" else None
        if offset is not None:
            return (parsed - offset).isoformat() + "Z"
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


_MISS = object()
_TABLE_LIMIT = 262_144
_tables: dict[tzinfo, dict[str, object]] = {}


def _table(tz: tzinfo) -> dict[str, object]:
    """Converted details strings of one time zone.

    A 50,000-prospect load converts millions of strings, most of them repeats (entry dates at
    midnight, a job's stamps again on its milestones, ``"true"``/``"false"``): a dict look-up
    per string is several times cheaper than a conversion, or even a Python call. The table is
    emptied when it grows past a bound; a race between threads only costs a recomputation.
    """
    table = _tables.get(tz)
    if table is None:
        table = _tables[tz] = {}
    return table


def _convert(text: str, tz: tzinfo, table: dict[str, object]) -> object:
    """A details string: naive timestamps to UTC text, zero dates to None, flags to booleans."""
    if len(text) >= 19 and text[4] == "-" and text[10] == "T" and text[13] == ":":
        result: object = _utc_text(text, tz)
    else:
        result = lp_bool(text)
    if len(table) >= _TABLE_LIMIT:
        table.clear()
    table[text] = result
    return result


def lp_details(view: Record, tz: tzinfo) -> dict[str, Any]:
    """Every field of a prospect view keyed ``Prospect.a.b[0].c`` (values converted as above)."""
    out: dict[str, Any] = {}
    _flatten_dict(ROOT + ".", view, out, tz, _table(tz))
    return out


# The loops below run for every field of every prospect, so the conversion test is inlined:
# only strings that could be a timestamp (19+ characters with a "T") or a flag (4-5 characters)
# go through the table.


def _flatten_dict(
    head: str, record: Record, out: dict[str, Any], tz: tzinfo, table: dict[str, object]
) -> None:
    for name, value in record.items():
        kind = type(value)
        if kind is str:
            n = len(value)
            if n == 4 or n == 5 or (n >= 19 and value[10] == "T"):
                converted = table.get(value, _MISS)
                out[head + name] = _convert(value, tz, table) if converted is _MISS else converted
            else:
                out[head + name] = value
        elif kind is dict:
            _flatten_dict(f"{head}{name}.", value, out, tz, table)
        elif kind is list:
            _flatten_list(head + name, value, out, tz, table)
        else:
            out[head + name] = value


def _flatten_list(
    key: str, items: list[Any], out: dict[str, Any], tz: tzinfo, table: dict[str, object]
) -> None:
    if not items:
        out[key] = []
        return
    for index, item in enumerate(items):
        kind = type(item)
        if kind is dict:
            _flatten_dict(f"{key}[{index}].", item, out, tz, table)
        elif kind is str:
            converted = table.get(item, _MISS)
            out[f"{key}[{index}]"] = _convert(item, tz, table) if converted is _MISS else converted
        elif kind is list:
            _flatten_list(f"{key}[{index}]", item, out, tz, table)
        else:
            out[f"{key}[{index}]"] = item


# --- triggers --------------------------------------------------------------------------------


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _in_window(value: object, start: datetime, end: datetime, tz: tzinfo) -> bool:
    try:
        stamp = lp_timestamp(value, tz)
    except ValueError:
        return False
    return stamp is not None and start <= stamp <= end


def lead_updated_in(lead: Record, start: datetime, end: datetime, tz: tzinfo) -> bool:
    """Whether the Lead (with its jobs and appointments) changed in [start, end] (inclusive)."""
    if _in_window(lead.get("lastchangedon"), start, end, tz) or _in_window(
        lead.get("dateentered"), start, end, tz
    ):
        return True
    children = (*_dicts(lead.get("jobs")), *_dicts(lead.get("appointments")))
    return any(_in_window(child.get("lastchangedon"), start, end, tz) for child in children)


@dataclass(frozen=True, slots=True)
class Combination:
    """What one opportunity is made of: the Prospect as the seed's table reads it.

    ``prospect`` is the Prospect's own fields with ``leads`` cut down to one lead: the
    combination's Lead, or for a lone Prospect its first lead (the one the table's
    ``Prospect.leads[0]`` fields come from; none if it has no lead). Either way an opportunity's
    details describe one Prospect and one Lead, whichever trigger last updated it; the Prospect's
    other leads have opportunities of their own.
    """

    prospect: Record
    kind: str


def combinations(
    prospect: Record, *, window_start: datetime, window_end: datetime, tz: tzinfo
) -> list[Combination]:
    """The opportunities one prospect of a window read triggers (see the module docstring)."""
    start = window_start.replace(microsecond=0)
    end = window_end
    leads = prospect.get("leads")
    updated = [lead for lead in _dicts(leads) if lead_updated_in(lead, start, end, tz)]
    base = {name: value for name, value in prospect.items() if name != "leads"}
    if not updated:
        first = leads[:1] if isinstance(leads, list) else []
        return [Combination({**base, "leads": first}, PROSPECT_ONLY)]
    return [Combination({**base, "leads": [lead]}, LEAD_AND_PROSPECT) for lead in updated]


# --- standard fields -------------------------------------------------------------------------


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _short(value: object) -> str:
    return repr(value if not isinstance(value, str) else value[:40])


class _Problems:
    """Collects every missing or malformed field, so one rejection names them all."""

    def __init__(self) -> None:
        self.missing: list[str] = []
        self.malformed: list[str] = []

    def timestamp(self, path: str, value: object, tz: tzinfo) -> datetime | None:
        try:
            return lp_timestamp(value, tz)
        except ValueError:
            self.malformed.append(f"{path} is not a timestamp: {_short(value)}")
            return None

    def raise_if_any(self, who: str) -> None:
        if not self.missing and not self.malformed:
            return
        parts = []
        if self.missing:
            parts.append("missing " + ", ".join(self.missing))
        parts.extend(self.malformed)
        raise MappingError(f"{who}: {'; '.join(parts)}")


def _first(items: object) -> Record | None:
    if isinstance(items, list) and items and isinstance(items[0], dict):
        first: Record = items[0]
        return first
    return None


def map_combination(
    combination: Combination,
    *,
    tz: tzinfo,
    placeholder_emails: frozenset[str] = frozenset(),
) -> MappedOpportunity:
    """One combination in the hub's standard fields, per the seed's mapping table.

    ``placeholder_emails`` holds the integration's placeholder addresses or glob patterns
    (``noemail@*``; :func:`models.normalize.placeholder_matcher`). Raises MappingError naming
    every mapped field that is missing or malformed (see the module docstring for what
    "missing" means).
    """
    p = combination.prospect
    lead = _first(p.get("leads"))
    problems = _Problems()

    cst_id = p.get("cst_id")
    if _blank(cst_id):
        problems.missing.append("Prospect.cst_id")
    lead_id = lead.get("id") if lead is not None else None
    if _blank(lead_id):
        problems.missing.append("Prospect.leads[0].id")

    raw_email = p.get("email")
    email = normalize_email(raw_email)
    if email is None:
        if _blank(raw_email):
            problems.missing.append("Prospect.email")
        else:
            problems.malformed.append(f"Prospect.email is not an address: {_short(raw_email)}")

    names: list[str | None] = []
    for field in ("firstname", "lastname"):
        value = p.get(field)
        if _blank(value):
            problems.missing.append(f"Prospect.{field}")
            names.append(None)
        else:
            names.append(str(value).strip())

    raw_phone = p.get("phone1")
    phone = normalize_phone(raw_phone)
    if phone is None:
        if _blank(raw_phone):
            problems.missing.append("Prospect.phone1")
        else:
            problems.malformed.append(f"Prospect.phone1 is not a phone number: {_short(raw_phone)}")

    status: str | None = None
    disposition = lead.get("disposition") if lead is not None else None
    if disposition is None:
        problems.missing.append("Prospect.leads[0].disposition")
    else:
        status = str(disposition).strip() or None

    created = problems.timestamp("Prospect.dateadded", p.get("dateadded"), tz)
    if created is None and not _malformed_named(problems, "Prospect.dateadded"):
        problems.missing.append("Prospect.dateadded")

    updated = None
    job = _first(lead.get("jobs")) if lead is not None else None
    appointment = _first(lead.get("appointments")) if lead is not None else None
    chain = (
        p.get("lastchanged"),
        lead.get("lastchangedon") if lead is not None else None,
        lead.get("dateentered") if lead is not None else None,
        job.get("contractdate") if job is not None else None,
        appointment.get("lastchangedon") if appointment is not None else None,
    )
    chain_broken = False
    for path, value in zip(_UPDATED_AT_CHAIN, chain, strict=True):
        updated = problems.timestamp(path, value, tz)
        if updated is not None:
            break
        if _malformed_named(problems, path):
            chain_broken = True  # a garbled stamp is reported as such, not skipped over
            break
    if updated is None and not chain_broken:
        problems.missing.append("External Updated At (" + " / ".join(_UPDATED_AT_CHAIN) + ")")

    who = f"prospect {cst_id}" + (f", lead {lead_id}" if not _blank(lead_id) else "")
    problems.raise_if_any(who)

    details = lp_details(p, tz)
    if is_placeholder(email, placeholder_emails):
        details[PLACEHOLDER_EMAIL_DETAIL] = True
    return MappedOpportunity(
        model=MODEL,
        external_id=str(lead_id),
        external_contact_id=str(cst_id),
        external_created_at=created,
        external_updated_at=updated,
        email=email,
        first_name=names[0],
        last_name=names[1],
        phone=phone,
        status=status,
        details=details,
    )


def _malformed_named(problems: _Problems, path: str) -> bool:
    return any(item.startswith(path + " ") for item in problems.malformed)


def rejection_key(prospect: Record) -> str | None:
    """The key a rejected combination is kept under: the External ID it would have had, so the
    rejection is cleared when that opportunity later merges; ``cst:<id>`` for a leadless one."""
    lead = _first(prospect.get("leads"))
    if lead is not None and not _blank(lead.get("id")):
        return str(lead["id"])
    cst_id = prospect.get("cst_id")
    return None if _blank(cst_id) else f"cst:{cst_id}"


def map_prospects(
    prospects: Iterable[object],
    *,
    window_start: datetime,
    window_end: datetime,
    tz: tzinfo,
    placeholder_emails: frozenset[str] = frozenset(),
    stream: str = "prospects",
) -> tuple[list[MappedOpportunity], list[RejectedRecord]]:
    """A page of GetLead prospects read for [window_start, window_end] → opportunities and
    rejected combinations (each with its reason and the Prospect view as payload)."""
    opportunities: list[MappedOpportunity] = []
    rejects: list[RejectedRecord] = []
    for prospect in prospects:
        if not isinstance(prospect, dict):
            rejects.append(
                RejectedRecord(stream, None, "prospect is not an object", {"value": prospect})
            )
            continue
        for combination in combinations(
            prospect, window_start=window_start, window_end=window_end, tz=tz
        ):
            try:
                opportunities.append(
                    map_combination(combination, tz=tz, placeholder_emails=placeholder_emails)
                )
            except MappingError as exc:
                view = dict(combination.prospect)
                rejects.append(RejectedRecord(stream, rejection_key(view), str(exc), view))
    return opportunities, rejects


# --- activities (issue 15) ------------------------------------------------------------------------

ACTIVITY_KINDS = ("note", "call")
"""What LP holds of seed 004's "notes, tasks, calls and emails": notes and call history."""
CALL_LOG_ID_PREFIX = "call_log"
"""The stand-in id of a call log without an id: the name of the provider's ``call_log`` push
target, as the push adapter has always recorded it in the push ledger."""


def note_id(parent: str, note: object, occurrence: int = 1) -> str:
    """A note's id: LP's own ``id`` when it sends one, else a stand-in made of what the note is.

    LP's notes mostly carry no id and may be bare strings (crm-apis.md §2.5), and LP does not
    version them, so the stand-in is a hash of the parent, the date, the author and the text:
    the same note gets the same id on every read, wherever it sits in the list. An *edit* of an
    id-less note's text, date or author therefore reads as what it is to an outside reader: the
    old note gone (marked deleted, as the parent's list came whole) and a new note. Its category
    is not hashed, so a re-categorised note is updated in place. ``occurrence`` tells apart
    identical notes in one list (the second is ``…#2``).
    """
    if isinstance(note, dict) and not _blank(note.get("id")):
        return str(note["id"])
    if isinstance(note, dict):
        parts = (_text(note.get("enteredon") or note.get("date")), _text(note.get("enteredby")))
        text = _text(note.get("notes"))
    else:
        parts, text = ("", ""), _text(note)
    digest = hashlib.sha256("\x1f".join((parent, *parts, text)).encode()).hexdigest()[:24]
    return f"{parent}/{digest}" + (f"#{occurrence}" if occurrence > 1 else "")


def call_when(call: Record) -> str:
    """A call's ``calldatetime`` (or ``calldate``) as LP's naive text, to the second."""
    return _text(call.get("calldatetime") or call.get("calldate")).replace(" ", "T")[:19]


def call_log_ids(cst_id: object, calls: Sequence[object]) -> list[str | None]:
    """Per item of a prospect's ``calls[]``: its id, None for an item that is not an object.

    LP's call entries carry no id (crm-apis.md §2.5) and cannot carry the push key, so the push
    adapter records ``call_log:<cst_id>:<CallDate>`` in the push ledger for a call log it wrote,
    and the inbound read must give that entry the same id to recognise it (no echo). That text
    names the second only; the first entry of a second keeps it, a later entry of the same second
    gets ``…/<calltype>/<resultcode>`` and a repeat of that ``…#n``. LP appends call history, so
    an entry keeps its id when others are added; the push adapter picks its entry's id from
    this same function.
    """
    out: list[str | None] = []
    per_second: Counter[str] = Counter()
    per_entry: Counter[tuple[str, str, str]] = Counter()
    for call in calls:
        if not isinstance(call, dict):
            out.append(None)
            continue
        if not _blank(call.get("id")):
            out.append(str(call["id"]))
            continue
        when = call_when(call)
        ctype = _text(call.get("calltype")).upper()
        result = _text(call.get("resultcode")).upper()
        per_second[when] += 1
        per_entry[(when, ctype, result)] += 1
        base = f"{CALL_LOG_ID_PREFIX}:{cst_id}:{when}"
        repeat = per_entry[(when, ctype, result)]
        if per_second[when] == 1:
            out.append(base)
        else:
            out.append(f"{base}/{ctype}/{result}" + (f"#{repeat}" if repeat > 1 else ""))
    return out


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _stamp(value: object, tz: tzinfo) -> datetime | None:
    try:
        return lp_timestamp(value, tz)
    except ValueError:
        return None


class _Activities:
    """What one page yields: activities, the complete lists they came in, malformed items."""

    def __init__(self, tz: tzinfo, stream: str) -> None:
        self.tz = tz
        self.stream = stream
        self.activities: list[InboundActivity] = []
        self.sets: list[tuple[str, str]] = []
        self.rejects: list[RejectedRecord] = []

    def notes(
        self,
        items: object,
        parent: str,
        cst_id: str,
        opportunity: tuple[str, str] | None,
    ) -> None:
        if not isinstance(items, list):
            return  # not sent: nothing is known, nothing is marked deleted
        if all(isinstance(item, dict | str) for item in items):
            # Whole and readable: a stored note missing from it was deleted. A list with a
            # malformed item marks nothing: that item's stored version must not read as deleted.
            self.sets.append((parent, "note"))
        seen: Counter[str] = Counter()
        for index, item in enumerate(items):
            if not isinstance(item, dict | str):
                self._reject(f"{parent}:notes[{index}]", "note is not an object or text", item)
                continue
            base = note_id(parent, item)
            seen[base] += 1
            ident = note_id(parent, item, seen[base])
            note: Record = item if isinstance(item, dict) else {"notes": item}
            created = _stamp(note.get("enteredon") or note.get("date"), self.tz)
            self.activities.append(
                InboundActivity(
                    kind="note",
                    external_id=ident,
                    parent=parent,
                    contact_ref=cst_id,
                    opportunity_ref=opportunity,
                    created_at=created,
                    modified_at=created,
                    author=_text(note.get("enteredby")).strip() or None,
                    subject=_text(note.get("category")).strip() or None,
                    body=_text(note.get("notes")),
                    payload=dict(note),
                )
            )

    def calls(self, items: object, cst_id: str) -> None:
        if not isinstance(items, list):
            return
        parent = f"prospects:{cst_id}"
        ids = call_log_ids(cst_id, items)
        pairs = list(zip(items, ids, strict=True))
        if all(isinstance(item, dict) and ident is not None for item, ident in pairs):
            self.sets.append((parent, "call"))
        for index, (item, ident) in enumerate(pairs):
            if not isinstance(item, dict) or ident is None:
                self._reject(f"{parent}:calls[{index}]", "call is not an object", item)
                continue
            created = _stamp(item.get("calldatetime") or item.get("calldate"), self.tz)
            direction = _text(item.get("calltypedescr") or item.get("calltype")).strip()
            result = _text(item.get("resultdescr") or item.get("resultcode")).strip()
            subject = f"{direction} call" if direction else "Call"
            body = item.get("notes")
            self.activities.append(
                InboundActivity(
                    kind="call",
                    external_id=ident,
                    parent=parent,
                    contact_ref=cst_id,
                    opportunity_ref=None,
                    created_at=created,
                    modified_at=created,
                    author=_text(item.get("agentname") or item.get("agent")).strip() or None,
                    subject=f"{subject}: {result}" if result else subject,
                    body=body if isinstance(body, str) and body.strip() else None,
                    payload=dict(item),
                )
            )

    def _reject(self, key: str, reason: str, item: object) -> None:
        self.rejects.append(RejectedRecord(self.stream, key, reason, {"value": item}))


def map_activities(
    prospects: Iterable[object],
    *,
    tz: tzinfo,
    kinds: Collection[str] = ACTIVITY_KINDS,
    stream: str = "prospects",
) -> tuple[list[InboundActivity], list[tuple[str, str]], list[RejectedRecord]]:
    """The notes and calls nested in a page of GetLead prospects (crm-apis.md §2.3, §2.5).

    Returns the activities of the ``kinds`` asked for (``note``, ``call``), the ``(parent,
    kind)`` lists that came whole (every list LP sent: GetLead embeds a record's notes and calls
    entire, so an activity stored earlier and missing from one was deleted in LP), and the items
    that are not notes or calls at all.

    * Prospect notes and call history hang under ``prospects:<cst_id>`` and reach the hub contact
      through the prospect (``contact_ref`` = ``Prospect.cst_id``, the External Contact ID);
    * a Lead's notes hang under ``leads:<id>`` and its Jobs' (production) notes under
      ``jobs:<id>``; both name the Lead's opportunity (``("lead", Prospect.leads[0].id)``), and
      still reach the contact through the prospect while that opportunity is not in the hub;
    * ids: :func:`note_id` and :func:`call_log_ids`; timestamps are the integration's wall clock
      (``enteredon``/``date``, ``calldatetime``), LP's only stamp being both created and modified.

    A call log adds no change stamp in LP (seed 001, "KNOWN LIMITATIONS"), so a new call comes in
    with the next change of its prospect.
    """
    out = _Activities(tz, stream)
    want_notes, want_calls = "note" in kinds, "call" in kinds
    for prospect in prospects:
        if not isinstance(prospect, dict) or _blank(prospect.get("cst_id")):
            continue
        cst_id = str(prospect["cst_id"])
        if want_notes:
            out.notes(prospect.get("notes"), f"prospects:{cst_id}", cst_id, None)
            for lead in _dicts(prospect.get("leads")):
                if _blank(lead.get("id")):
                    continue
                opportunity = (MODEL, str(lead["id"]))
                out.notes(lead.get("notes"), f"leads:{lead['id']}", cst_id, opportunity)
                for job in _dicts(lead.get("jobs")):
                    if not _blank(job.get("id")):
                        out.notes(job.get("notes"), f"jobs:{job['id']}", cst_id, opportunity)
        if want_calls:
            out.calls(prospect.get("calls"), cst_id)
    return out.activities, out.sets, out.rejects
