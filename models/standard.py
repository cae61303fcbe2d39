"""The hub's standard opportunity fields, as every CRM mapping produces them.

Mappings are pure functions from raw CRM records to :class:`MappedOpportunity`; the merge layer
only ever sees this shape, which is what lets a new CRM plug in with one mapping module.
The field names are the hub's standard fields named in the seeds (Email, External ID,
External Contact ID, External Created At, External Updated At, First/Last Name, Phone, Status)
plus ``details``: the CRM's detail fields keyed in the seeds' ``resource:#:field`` notation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class MappingError(ValueError):
    """A record cannot be mapped; the message names the offending field.

    The sync quarantines the record with this message as its reason and carries on with the rest
    of the page.
    """


@dataclass(slots=True)
class MappedOpportunity:
    """One opportunity in the hub's standard fields, ready to merge.

    ``email`` is trimmed and lower-cased, ``phone`` is E.164, timestamps are timezone-aware UTC.
    ``details`` holds JSON-serialisable values only.

    ``source_stamps`` names every CRM record the opportunity was composed of, as
    ``"<resource>:<id>"`` (``jobs:17``, ``estimates:40``), with that record's change stamp
    (ServiceTitan ``modifiedOn``; Salesforce ``SystemModstamp``/``LastModifiedDate``), or None
    when it has none. Deleted records the mapping was given are included even though they are
    left out of the details and of External Updated At: a deletion is a change, with its own
    newer stamp. The merge's stale-write guard compares these (see :mod:`crmsync.merge`); a
    mapping that leaves them empty is guarded on External Updated At alone.
    """

    model: str
    external_id: str
    external_contact_id: str | None
    external_created_at: datetime | None
    external_updated_at: datetime | None
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    status: str | None
    details: dict[str, Any] = field(default_factory=dict)
    source_stamps: dict[str, datetime | None] = field(default_factory=dict)


@dataclass(slots=True)
class RejectedRecord:
    """A raw record that failed mapping or validation, kept with its reason (never dropped)."""

    stream: str
    external_id: str | None
    reason: str
    payload: dict[str, Any]


ACTIVITY_KINDS = ("note", "task", "call", "email")
"""What a CRM activity can be (seed 004: "notes, tasks, calls and emails")."""


@dataclass(slots=True)
class InboundActivity:
    """A note, task, call or email made in a CRM, as the hub keeps it (issue 15, seed 004).

    ``external_id`` is the CRM's id for it, or, where the CRM gives none (ServiceTitan job notes,
    LeadPerfection notes and call logs), the same stand-in the provider's push adapter records
    in the push ledger for a record it wrote, so crmsync's own writes are recognised when they
    come back (no echo). ``parent`` is the CRM record it hangs under as ``<resource>:<id>``
    (``jobs:17``, ``customers:4``, ``prospects:88``); ``contact_ref`` is the CRM's id of the
    person (what :attr:`MappedOpportunity.external_contact_id` holds for that CRM) and
    ``opportunity_ref`` the ``(model, external_id)`` of the opportunity, when the CRM ties the
    activity to one. The merge links the activity to the hub contact through those two only:
    while neither is in the hub yet the activity waits, unlinked, and is linked when its parent
    arrives (seed 004: a Note whose Contact has not synced yet must not be attached to a wrong
    contact, nor lost). ``deleted`` marks a deletion the CRM reported.
    """

    kind: str
    external_id: str
    parent: str
    contact_ref: str | None
    opportunity_ref: tuple[str, str] | None
    created_at: datetime | None
    modified_at: datetime | None
    author: str | None = None
    subject: str | None = None
    body: str | None = None
    deleted: bool = False
    payload: dict[str, Any] = field(default_factory=dict)
