"""improveit360 (i360 Lightning) Sales Opportunities to the hub's standard opportunity fields.

Seed 000 ("improveit360 (i360) Lightning") names the objects that sync (Sales Opportunity with its
Contact and Account, Sales Appointment, Project and optionally Project Activities) and the merge
rules, but, unlike the ServiceTitan seed, no standard-field table. This module is that table,
written in the spirit of seed 002's, and every rule below has a test named after it in
``tests/unit/test_improveit360_mapping.py``:

=====================  ==========================================================================
Hub standard field     i360 Lightning source (field API names come from :class:`FieldPaths`)
=====================  ==========================================================================
External ID            the Sales Opportunity's ``Id``
External Contact ID    the Sales Opportunity's Contact lookup (``i360core__Contact__c``)
External Created At    the Sales Opportunity's ``CreatedDate``
External Updated At    the most recent ``LastModifiedDate`` of the Sales Opportunity, its Sales
                       Appointments and Projects (and their Project Activities when they sync):
                       a new appointment or a project moving on is a change of the opportunity
Email                  ``contact:Email``
First / Last Name      ``contact:FirstName`` / ``contact:LastName``; when both are empty, the
                       contact's then the account's ``Name`` split per seed 002's rule
Phone                  the first of ``contact:MobilePhone``, ``contact:Phone``,
                       ``account:Phone`` that is a possible phone number, in E.164
Status                 the Sales Opportunity's status picklist (``i360core__Status__c``)
=====================  ==========================================================================

Details, in the seeds' ``resource:#:field`` notation (field API names kept as Salesforce spells
them): the Sales Opportunity's own fields at the top level, ``contact:…``, ``account:…``,
``appointments:#:…``, ``projects:#:…`` and ``projects:#:activities:#:…``. Lists are sorted by
``CreatedDate`` descending (ties: ``Id`` descending), so ``appointments:1:…`` is the most recently
created appointment, as seed 002 orders its lists. Records Salesforce reports as deleted
(``IsDeleted``, returned by ``queryAll``) are left out, so deleting an appointment removes it.

``source_stamps`` (the merge's stale-write guard, see :class:`models.standard.MappedOpportunity`)
names every record given, deleted ones included, as ``<stream>:<Id>`` (``opportunities``,
``contacts``, ``accounts``, ``appointments``, ``projects``, ``project_activities`` when they sync)
with the later of its ``SystemModstamp`` and ``LastModifiedDate``: a deletion moves
``SystemModstamp``, so deleting the newest appointment lowers External Updated At yet is a newer
version of the opportunity's records.

**Inbound activities** (issue 15, seed 004 "Activity Sync"): classic Notes and Tasks (i360
Lightning uses Salesforce's own, crm-apis.md §3.1) become :class:`InboundActivity` rows through
:func:`map_note` and :func:`map_task`, tested in ``tests/unit/test_improveit360_activities.py``:

=====================  ==========================================================================
InboundActivity        Note / Task
=====================  ==========================================================================
kind                   ``note``; a Task by ``TaskSubtype``: ``Call`` → ``call``, ``Email`` and
                       ``ListEmail`` → ``email``, anything else → ``task`` (``Type`` when an org
                       older than API 37 has no ``TaskSubtype``)
external_id            ``Id`` (what the push adapter's ``create_push`` returns: no echo)
subject / body         ``Title`` / ``Body``; ``Subject`` / ``Description`` (the push puts its key
                       in both, so either recognises crmsync's own record)
parent                 ``<stream>:<Id>`` of ``ParentId``; of ``WhatId``, else ``WhoId``
opportunity_ref        (``sales_opportunity``, Sales Opportunity Id) when the parent is one, or
                       a Sales Appointment, Project or Project Activity of one
                       (:class:`ActivityParent`)
contact_ref            the Contact Id: ``WhoId``, or the parent when it is a Contact
created_at             ``CreatedDate``
modified_at            the later of ``SystemModstamp`` and ``LastModifiedDate`` (a deletion moves
                       only ``SystemModstamp``)
author                 ``CreatedBy.Name``, else ``CreatedById``
deleted                ``IsDeleted`` (rows ``queryAll`` returns from the recycle bin)
=====================  ==========================================================================

The object and field API names of i360 Lightning are not public (crm-apis.md §3.1); the defaults
here match the emulator's schema (:mod:`sandbox.salesforce.schema`) and the integration settings
override them per org. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from models.normalize import (
    flatten_details,
    is_placeholder,
    normalize_email,
    normalize_phone,
    parse_timestamp,
    split_name,
)
from models.standard import InboundActivity, MappedOpportunity, MappingError

__all__ = [
    "MODEL",
    "NOTE_FIELDS",
    "PLACEHOLDER_EMAIL_DETAIL",
    "TASK_FIELDS",
    "ActivityParent",
    "FieldPaths",
    "map_note",
    "map_sales_opportunity",
    "map_task",
    "newest_first",
    "task_kind",
]

MODEL = "sales_opportunity"
#: Details key set to True when the email is one of the tenant's placeholder emails; the merge
#: never matches contacts on it (same key as the ServiceTitan mapping).
PLACEHOLDER_EMAIL_DETAIL = "hub:placeholder_email"

Record = Mapping[str, Any]
_OLDEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FieldPaths:
    """Field API names the standard fields are read from (the integration settings' values)."""

    opportunity_contact: str = "i360core__Contact__c"
    opportunity_status: str = "i360core__Status__c"
    contact_first_name: str = "FirstName"
    contact_last_name: str = "LastName"
    contact_name: str = "Name"
    contact_email: str = "Email"
    contact_phones: tuple[str, ...] = ("MobilePhone", "Phone")
    account_name: str = "Name"
    account_phones: tuple[str, ...] = ("Phone",)


DEFAULT_PATHS = FieldPaths()


def map_sales_opportunity(
    opportunity: Record,
    contact: Record | None,
    account: Record | None,
    appointments: Sequence[Record] = (),
    projects: Sequence[Record] = (),
    project_activities: Mapping[str, Sequence[Record]] | None = None,
    *,
    paths: FieldPaths = DEFAULT_PATHS,
    placeholder_emails: frozenset[str] = frozenset(),
) -> MappedOpportunity:
    """Map one Sales Opportunity with its Contact, Account, Sales Appointments and Projects.

    ``project_activities`` maps a Project ``Id`` to its activities; None when activities do not
    sync (no ``projects:#:activities`` details and they do not move External Updated At).
    ``placeholder_emails`` holds the tenant's placeholder addresses or glob patterns
    (:func:`models.normalize.placeholder_matcher`).

    Raises MappingError naming the field when the opportunity has no ``Id`` or a timestamp that
    feeds a standard field is not a timestamp.
    """
    ident = opportunity.get("Id")
    if not isinstance(ident, str) or not ident:
        raise MappingError(f"{MODEL}: Id is missing")
    created = _timestamp(ident, "CreatedDate", opportunity.get("CreatedDate"))
    updated = _timestamp(ident, "LastModifiedDate", opportunity.get("LastModifiedDate"))

    details: dict[str, Any] = {}
    flatten_details("", dict(opportunity), details)
    if contact is not None:
        flatten_details("contact", dict(contact), details)
    if account is not None:
        flatten_details("account", dict(account), details)

    for key, records in (("appointments", appointments), ("projects", projects)):
        for index, rec in enumerate(newest_first(live(records)), 1):
            prefix = f"{key}:{index}"
            flatten_details(prefix, dict(rec), details)
            updated = _latest(updated, ident, f"{prefix}:LastModifiedDate", rec)
            if key != "projects" or project_activities is None:
                continue
            project_id = rec.get("Id")
            steps = project_activities.get(project_id, ()) if isinstance(project_id, str) else ()
            for step, activity in enumerate(newest_first(live(steps)), 1):
                activity_prefix = f"{prefix}:activities:{step}"
                flatten_details(activity_prefix, dict(activity), details)
                updated = _latest(updated, ident, f"{activity_prefix}:LastModifiedDate", activity)

    stamps: dict[str, datetime | None] = {}
    _add_stamp(stamps, "opportunities", opportunity)
    for resource, record in (("contacts", contact), ("accounts", account)):
        if record is not None:
            _add_stamp(stamps, resource, record)
    for resource, records in (("appointments", appointments), ("projects", projects)):
        for rec in records:
            _add_stamp(stamps, resource, rec)
    if project_activities is not None:
        for project in projects:
            project_id = project.get("Id")
            if isinstance(project_id, str):
                for activity in project_activities.get(project_id, ()):
                    _add_stamp(stamps, "project_activities", activity)

    contact_id = opportunity.get(paths.opportunity_contact)
    first_name, last_name = _names(contact, account, paths)
    email = normalize_email(contact.get(paths.contact_email)) if contact is not None else None
    if is_placeholder(email, placeholder_emails):
        details[PLACEHOLDER_EMAIL_DETAIL] = True
    status = opportunity.get(paths.opportunity_status)
    return MappedOpportunity(
        model=MODEL,
        external_id=ident,
        external_contact_id=str(contact_id) if contact_id else None,
        external_created_at=created,
        external_updated_at=updated,
        email=email,
        first_name=first_name,
        last_name=last_name,
        phone=_phone(contact, account, paths),
        status=None if status is None else str(status),
        details=details,
        source_stamps=stamps,
    )


def live(records: Sequence[Record]) -> list[Record]:
    """Records Salesforce does not report as deleted."""
    return [r for r in records if r.get("IsDeleted") is not True]


def newest_first(records: Sequence[Record]) -> list[Record]:
    """``CreatedDate`` descending, ties by ``Id`` descending; unparseable dates sort as oldest."""
    if len(records) < 2:
        return list(records)
    ranked = sorted(
        ((_created(r), str(r.get("Id") or ""), i) for i, r in enumerate(records)), reverse=True
    )
    return [records[i] for _, _, i in ranked]


def _created(record: Record) -> datetime:
    try:
        return parse_timestamp(record.get("CreatedDate")) or _OLDEST
    except ValueError:
        return _OLDEST


def _timestamp(ident: str, field: str, value: object) -> datetime | None:
    try:
        return parse_timestamp(value)
    except ValueError:
        raise MappingError(f"{MODEL} {ident}: {field} is not a timestamp: {value!r}") from None


def _add_stamp(stamps: dict[str, datetime | None], resource: str, record: Record) -> None:
    """The record's change stamp: the later of ``SystemModstamp`` and ``LastModifiedDate``
    (unparseable ones ignored; None when neither is usable)."""
    ident = record.get("Id")
    if not isinstance(ident, str) or not ident:
        return
    latest: datetime | None = None
    for name in ("SystemModstamp", "LastModifiedDate"):
        try:
            moment = parse_timestamp(record.get(name))
        except ValueError:
            continue
        if moment is not None and (latest is None or moment > latest):
            latest = moment
    stamps[f"{resource}:{ident}"] = latest


def _latest(current: datetime | None, ident: str, field: str, record: Record) -> datetime | None:
    moment = _timestamp(ident, field, record.get("LastModifiedDate"))
    if moment is not None and (current is None or moment > current):
        return moment
    return current


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _names(
    contact: Record | None, account: Record | None, paths: FieldPaths
) -> tuple[str | None, str | None]:
    if contact is not None:
        first = _text(contact.get(paths.contact_first_name))
        last = _text(contact.get(paths.contact_last_name))
        if first or last:
            return first, last
        first, last = split_name(_text(contact.get(paths.contact_name)))
        if first or last:
            return first, last
    if account is not None:
        return split_name(_text(account.get(paths.account_name)))
    return None, None


def _phone(contact: Record | None, account: Record | None, paths: FieldPaths) -> str | None:
    candidates: list[object] = []
    if contact is not None:
        candidates += [contact.get(name) for name in paths.contact_phones]
    if account is not None:
        candidates += [account.get(name) for name in paths.account_phones]
    for value in candidates:
        phone = normalize_phone(value)
        if phone is not None:
            return phone
    return None


# -- inbound activities (issue 15) ----------------------------------------------------------------

_ACTIVITY_SYSTEM = ("Id", "IsDeleted", "CreatedById", "CreatedDate", "LastModifiedDate")
NOTE_FIELDS = (*_ACTIVITY_SYSTEM, "SystemModstamp", "ParentId", "Title", "Body", "IsPrivate")
"""Note fields read (Salesforce object reference, Note)."""
TASK_FIELDS = (
    *_ACTIVITY_SYSTEM,
    "SystemModstamp",
    "WhoId",
    "WhatId",
    "Subject",
    "Description",
    "Status",
    "Priority",
    "ActivityDate",
    "Type",
    "TaskSubtype",
    "IsClosed",
)
"""Task fields read (Salesforce object reference, Task; ``TaskSubtype`` since API 37.0)."""
AUTHOR = "CreatedBy.Name"
CALL_SUBTYPES = frozenset({"Call"})
EMAIL_SUBTYPES = frozenset({"Email", "ListEmail"})
UNKNOWN_PARENT = "records"
"""The ``parent`` resource of an id whose object the integration does not sync."""


@dataclass(frozen=True, slots=True)
class ActivityParent:
    """What the record an id in ``Note.ParentId``, ``Task.WhatId`` or ``Task.WhoId`` names is to
    the hub: its stream (``opportunities``, ``contacts``, ``appointments``, ``projects``,
    ``project_activities``, ``accounts``, or :data:`UNKNOWN_PARENT`), the Sales Opportunity it
    belongs to and the Contact it is, when known. The provider resolves them (key prefixes and
    the mirror); this module only reads them."""

    resource: str = UNKNOWN_PARENT
    opportunity: str | None = None
    contact: str | None = None


_NO_PARENT = ActivityParent()


def task_kind(task: Record) -> str:
    """``call``, ``email`` or ``task`` from ``TaskSubtype`` (``Type`` when it has none)."""
    subtype = task.get("TaskSubtype") or task.get("Type")
    if subtype in CALL_SUBTYPES:
        return "call"
    if subtype in EMAIL_SUBTYPES:
        return "email"
    return "task"


def map_note(note: Record, parents: Mapping[str, ActivityParent]) -> InboundActivity:
    """A classic Note under any record; MappingError without an Id or ParentId."""
    ident = _activity_id("Note", note)
    parent_id = _text(note.get("ParentId"))
    if parent_id is None:
        raise MappingError(f"Note {ident}: ParentId is missing")
    parent = parents.get(parent_id, _NO_PARENT)
    return _activity(
        "note",
        note,
        f"{parent.resource}:{parent_id}",
        parent.contact,
        parent.opportunity,
        note.get("Title"),
        note.get("Body"),
    )


def map_task(task: Record, parents: Mapping[str, ActivityParent]) -> InboundActivity:
    """A Task (to do, call or email) related to ``WhatId`` and/or ``WhoId``; MappingError
    without an Id or either of them."""
    ident = _activity_id("Task", task)
    what_id, who_id = _text(task.get("WhatId")), _text(task.get("WhoId"))
    if what_id is None and who_id is None:
        raise MappingError(f"Task {ident}: neither WhatId nor WhoId is set")
    what = parents.get(what_id, _NO_PARENT) if what_id else None
    who = parents.get(who_id, _NO_PARENT) if who_id else None
    shown, shown_id = (what, what_id) if what is not None else (who, who_id)
    assert shown is not None
    return _activity(
        task_kind(task),
        task,
        f"{shown.resource}:{shown_id}",
        (who.contact if who is not None else None) or (what.contact if what else None),
        what.opportunity if what is not None else None,
        task.get("Subject"),
        task.get("Description"),
    )


def _activity_id(sobject: str, record: Record) -> str:
    ident = _text(record.get("Id"))
    if ident is None:
        raise MappingError(f"{sobject}: Id is missing")
    return ident


def _activity(
    kind: str,
    record: Record,
    parent: str,
    contact: str | None,
    opportunity: str | None,
    subject: object,
    body: object,
) -> InboundActivity:
    ident = str(record["Id"])
    created = _timestamp(ident, "CreatedDate", record.get("CreatedDate"))
    modified = _timestamp(ident, "LastModifiedDate", record.get("LastModifiedDate"))
    stamp = _timestamp(ident, "SystemModstamp", record.get("SystemModstamp"))
    if stamp is not None and (modified is None or stamp > modified):
        modified = stamp
    creator = record.get("CreatedBy")
    author = creator.get("Name") if isinstance(creator, Mapping) else None
    return InboundActivity(
        kind=kind,
        external_id=ident,
        parent=parent,
        contact_ref=contact,
        opportunity_ref=(MODEL, opportunity) if opportunity else None,
        created_at=created,
        modified_at=modified,
        author=_text(author) or _text(record.get("CreatedById")),
        subject=subject if isinstance(subject, str) else None,
        body=body if isinstance(body, str) else None,
        deleted=record.get("IsDeleted") is True,
        payload=dict(record),
    )
