"""ServiceTitan job and membership records to the hub's standard opportunity fields.

Implements seed 002 ("ServiceTitan Integration"), sections "Available Resource Fields" (the
details: the base record's fields, ``customer:…``, ``customer:contacts:#:…``,
``appointments:#:…``, ``estimates:#:…``, lists newest-created first) and "Standard Field Mapping"
(Job Opportunity and Membership Opportunity tables). Inputs are the raw records exactly as the
ServiceTitan v2 API returns them (``Jpm.V2.JobResponse``, ``Crm.V2.Customers.CustomerResponse``,
``CustomerContactWithModifiedOnResponse``, ``Jpm.V2.AppointmentResponse``,
``Estimates.V2.EstimateResponse``, ``Memberships.V2.CustomerMembershipResponse``; see
https://developer.servicetitan.io/apis/ and reference/crm-apis.md §1.7).

The optional resources of seed 002's object selector arrive as :class:`Extras` and add, each
under its own prefix (the README's ServiceTitan table lists them with their scopes):
``appointments:#:assignments:#:…``, ``cancelReasons:#:…``, ``tagTypes:#:…``,
``customer:tagTypes:#:…``, ``campaign:…``, ``location:…``, ``zone:…``, ``businessUnit:…``,
``jobType:…``, ``membershipType:…``, ``soldByEmployee:…``/``soldByTechnician:…`` (and the same
under ``estimates:#:``), ``invoices:#:…`` with ``invoices:#:items:#:…``, ``recurringServices:#:…``
and ``recurringServiceEvents:#:…``. Shapes are the vendor's (tenant-dispatch-v2,
tenant-settings-v2, tenant-accounting-v2, tenant-marketing-v2, tenant-jpm-v2,
tenant-memberships-v2 at https://developer.servicetitan.io/apis/). None of them changes External
Updated At; every record used is named in ``source_stamps``.

Pure functions, no I/O: the sync fetches the related records and calls these per record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from models.normalize import (
    flatten_details,
    flatten_records,
    is_placeholder,
    normalize_email,
    normalize_phone,
    parse_timestamp,
    sort_newest_first,
    split_name,
)
from models.standard import InboundActivity, MappedOpportunity, MappingError, RejectedRecord

__all__ = [
    "ACTIVITY_KINDS",
    "PLACEHOLDER_EMAIL_DETAIL",
    "Extras",
    "map_crm_notes",
    "map_job",
    "map_job_note",
    "map_job_notes",
    "map_membership",
    "map_note",
]

#: Details key set to True when the opportunity's email is caught by the tenant's placeholder
#: emails (seed 002, "Configure a filter for placeholder emails"). The email itself is kept; the
#: merge layer decides matching, and the flag records what the tenant's filter said at sync time.
PLACEHOLDER_EMAIL_DETAIL = "hub:placeholder_email"

# Contact ``type`` values, lower-cased: the seed writes "email"/"mobilePhone"/"phone", the wire
# "Email"/"MobilePhone"/"Phone". The ContactType enum also names a landline "LandlinePhone"
# (x-enumNames), which is sent as "Phone" but accepted here in case a client echoes the name.
_EMAIL = "email"
_MOBILE = "mobilephone"
_LANDLINE = frozenset({"phone", "landlinephone"})

Record = Mapping[str, Any]
ById = Mapping[str, Sequence[Record]]
"""Records hanging under another record, by that record's id (an appointment's assignments)."""
_OLDEST = datetime.min.replace(tzinfo=UTC)
_NOT_FLATTENED = frozenset({"permissions"})
"""Employee/technician permission lists: dozens of flags per person, useless to a campaign."""


@dataclass(frozen=True, slots=True)
class Extras:
    """The optional resources composed for one opportunity (empty when not selected).

    Field names are the record graph's link names (``crmsync.providers.servicetitan``); the
    ``ById`` ones are keyed by the id of the record they hang under or are looked up from.
    """

    assignments: ById = field(default_factory=dict)
    """Appointment assignments by appointment id (Dispatch, ``appointmentId``)."""
    cancel_logs: Sequence[Record] = ()
    """Job canceled logs (JPM ``export/job-canceled-logs``: ``jobId``, ``reasonId``, ``memo``)."""
    cancel_reasons: ById = field(default_factory=dict)
    """The cancel reason of each canceled log, by log id (JPM ``job-cancel-reasons``)."""
    tag_types: Sequence[Record] = ()
    customer_tag_types: ById = field(default_factory=dict)
    campaign: Record | None = None
    locations: Sequence[Record] = ()
    """The customer's locations; the opportunity's is picked by its ``locationId``."""
    zone: ById = field(default_factory=dict)
    """Zones by location id (a location's ``zoneId``)."""
    business_unit: Record | None = None
    job_type: Record | None = None
    membership_type: Record | None = None
    sold_by_employee: Record | None = None
    sold_by_technician: Record | None = None
    estimate_sold_by_employee: ById = field(default_factory=dict)
    estimate_sold_by_technician: ById = field(default_factory=dict)
    invoices: Sequence[Record] = ()
    invoice_items: ById = field(default_factory=dict)
    """Invoice items by invoice id (Accounting ``export/invoice-items``)."""
    recurring_services: Sequence[Record] = ()
    recurring_service_events: Sequence[Record] = ()


_NO_EXTRAS = Extras()


def map_job(
    job: Record,
    customer: Record | None,
    contacts: Sequence[Record],
    appointments: Sequence[Record],
    estimates: Sequence[Record],
    *,
    placeholder_emails: frozenset[str] = frozenset(),
    extras: Extras = _NO_EXTRAS,
) -> MappedOpportunity:
    """Map a ServiceTitan job with its customer, contacts, appointments and estimates, and the
    optional resources in ``extras`` (see :func:`_add_extras`).

    External Updated At is the most recent of the job's ``modifiedOn``,
    ``appointments:1:modifiedOn`` and ``estimates:1:modifiedOn`` (the newest-created appointment
    and estimate), ignoring missing ones: the seed uses it to sort opportunities, so a new
    estimate on an old job brings the job forward. See :func:`_map` for the shared rules.

    Appointments and estimates marked ``active: false`` (deletions, as the export feeds carry
    them) are left out of the details and of External Updated At, which is therefore computed
    over live records only and goes down when the newest one is deleted; they still count in
    ``source_stamps`` (their ``modifiedOn`` is the deletion's), which is what lets the merge tell
    this recomputation from older data.

    ``placeholder_emails`` holds the tenant's placeholder addresses or glob patterns
    (``noemail@*``; :func:`models.normalize.placeholder_matcher`).

    Raises MappingError naming the field when the job has no ``id`` or a timestamp that feeds a
    standard field is not a timestamp.
    """
    opportunity = _map("job", "jobStatus", job, customer, contacts, placeholder_emails)
    details = opportunity.details
    updated = opportunity.external_updated_at
    ordered: dict[str, list[Record]] = {}
    for key, records in (("appointments", appointments), ("estimates", estimates)):
        _add_stamps(opportunity.source_stamps, key, records)
        records = [record for record in records if record.get("active") is not False]
        if not records:
            continue
        records = sort_newest_first(records)
        ordered[key] = records
        newest = _timestamp(
            "job", opportunity.external_id, f"{key}:1:modifiedOn", records[0].get("modifiedOn")
        )
        if newest is not None and (updated is None or newest > updated):
            updated = newest
        flatten_records(key, records, details)
    opportunity.external_updated_at = updated
    if extras is not _NO_EXTRAS:
        _add_extras(job, customer, extras, ordered, details, opportunity.source_stamps)
    return opportunity


def map_membership(
    membership: Record,
    customer: Record | None,
    contacts: Sequence[Record],
    *,
    placeholder_emails: frozenset[str] = frozenset(),
    extras: Extras = _NO_EXTRAS,
) -> MappedOpportunity:
    """Map a ServiceTitan customer membership with its customer and contacts, and the optional
    resources in ``extras`` (membership type, recurring services and events, sold-by, …).

    External Updated At is the membership's ``modifiedOn`` alone (seed 002, Membership
    Opportunity). See :func:`_map` for the shared rules.

    Raises MappingError naming the field when the membership has no ``id`` or an unparseable
    ``createdOn``/``modifiedOn``.
    """
    opportunity = _map("membership", "status", membership, customer, contacts, placeholder_emails)
    if extras is not _NO_EXTRAS:
        _add_extras(
            membership, customer, extras, {}, opportunity.details, opportunity.source_stamps
        )
    return opportunity


def _add_extras(
    record: Record,
    customer: Record | None,
    extras: Extras,
    ordered: Mapping[str, Sequence[Record]],
    details: dict[str, Any],
    stamps: dict[str, datetime | None],
) -> None:
    """Seed 002's optional resources into the details, each under its prefix.

    Lists (``cancelReasons``, ``tagTypes``, ``invoices``, ``invoices:#:items``,
    ``appointments:#:assignments``, ``recurringServices``, ``recurringServiceEvents``) are sorted
    by created date, newest first (assignments by ``assignedOn``, which is their creation; they
    have no ``createdOn``), and leave out records marked ``active: false`` as appointments and
    estimates do. Looked-up reference records (tag types, campaign, zone, business unit, job
    type, membership type, employees, technicians) are shown whatever their ``active`` flag: a
    retired tag is still the tag the job carries. Every record used, inactive or not, is in
    ``stamps`` under its stream's name (canceled logs, which have no ``modifiedOn``, with their
    ``createdOn``): the stale-write guard of ``crmsync.merge`` compares them.
    """
    for index, appointment in enumerate(ordered.get("appointments", ()), 1):
        assigned = extras.assignments.get(_key(appointment), ())
        _add_stamps(stamps, "appointment_assignments", assigned)
        _flatten_list(f"appointments:{index}:assignments", assigned, details, "assignedOn")
    for index, estimate in enumerate(ordered.get("estimates", ()), 1):
        ident = _key(estimate)
        for prefix, sellers, resource in (
            ("soldByEmployee", extras.estimate_sold_by_employee, "employees"),
            ("soldByTechnician", extras.estimate_sold_by_technician, "technicians"),
        ):
            seller = next(iter(sellers.get(ident, ())), None)
            _one(f"estimates:{index}:{prefix}", seller, resource, details, stamps)

    _add_stamps(stamps, "job_canceled_logs", extras.cancel_logs, "createdOn")
    logs = _live_newest_first(extras.cancel_logs, "createdOn")
    for index, log in enumerate(logs, 1):
        flatten_details(f"cancelReasons:{index}", log, details)
        reason = next(iter(extras.cancel_reasons.get(_key(log), ())), None)
        if reason is not None:
            _add_stamps(stamps, "cancel_reasons", (reason,))
            details[f"cancelReasons:{index}:name"] = reason.get("name")

    _refs("tagTypes", extras.tag_types, "tag_types", details, stamps)
    if customer is not None:
        tags = extras.customer_tag_types.get(_key(customer), ())
        _refs("customer:tagTypes", tags, "tag_types", details, stamps)
    _one("campaign", extras.campaign, "campaigns", details, stamps)
    location_id = record.get("locationId")
    location = next((loc for loc in extras.locations if loc.get("id") == location_id), None)
    _one("location", location, "locations", details, stamps)
    if location is not None:
        zone = next(iter(extras.zone.get(_key(location), ())), None)
        _one("zone", zone, "zones", details, stamps)
    _one("businessUnit", extras.business_unit, "business_units", details, stamps)
    _one("jobType", extras.job_type, "job_types", details, stamps)
    _one("membershipType", extras.membership_type, "membership_types", details, stamps)
    _one("soldByEmployee", extras.sold_by_employee, "employees", details, stamps)
    _one("soldByTechnician", extras.sold_by_technician, "technicians", details, stamps)

    _add_stamps(stamps, "invoices", extras.invoices)
    for index, invoice in enumerate(_live_newest_first(extras.invoices, "createdOn"), 1):
        head = {name: value for name, value in invoice.items() if name != "items"}
        flatten_details(f"invoices:{index}", head, details)
        items = extras.invoice_items.get(_key(invoice), ())
        _add_stamps(stamps, "invoice_items", items)
        _flatten_list(f"invoices:{index}:items", items, details, "createdOn")

    for prefix, records, resource in (
        ("recurringServices", extras.recurring_services, "recurring_services"),
        ("recurringServiceEvents", extras.recurring_service_events, "recurring_service_events"),
    ):
        _add_stamps(stamps, resource, records)
        _flatten_list(prefix, records, details, "createdOn")


def _key(record: Record) -> str:
    ident = record.get("id")
    return "" if ident is None else str(ident)


def _instant(value: object) -> datetime:
    try:
        return parse_timestamp(value) or _OLDEST
    except ValueError:
        return _OLDEST


def _live_newest_first(records: Sequence[Record], created: str) -> list[Record]:
    """Live records by ``created`` descending, ties by id descending (the seed's list order)."""
    live = [record for record in records if record.get("active") is not False]
    if created == "createdOn":
        return sort_newest_first(live)
    return sorted(live, key=lambda r: (_instant(r.get(created)), _key(r)), reverse=True)


def _flatten_list(
    prefix: str, records: Sequence[Record], details: dict[str, Any], created: str
) -> None:
    flatten_records(prefix, _live_newest_first(records, created), details)


def _reference(record: Record) -> Record:
    if _NOT_FLATTENED.isdisjoint(record):
        return record
    return {name: value for name, value in record.items() if name not in _NOT_FLATTENED}


def _one(
    prefix: str,
    record: Record | None,
    resource: str,
    details: dict[str, Any],
    stamps: dict[str, datetime | None],
) -> None:
    if record is None:
        return
    _add_stamps(stamps, resource, (record,))
    flatten_details(prefix, _reference(record), details)


def _refs(
    prefix: str,
    records: Sequence[Record],
    resource: str,
    details: dict[str, Any],
    stamps: dict[str, datetime | None],
) -> None:
    _add_stamps(stamps, resource, records)
    flatten_records(prefix, [_reference(r) for r in sort_newest_first(records)], details)


def _map(
    model: str,
    status_field: str,
    record: Record,
    customer: Record | None,
    contacts: Sequence[Record],
    placeholder_emails: frozenset[str],
) -> MappedOpportunity:
    """The rules both opportunity models share (seed 002, "Standard Field Mapping").

    - External ID is ``id``; External Contact ID is ``customer:id``, falling back to the record's
      ``customerId`` when the customer record is missing (a missing customer is not an error:
      the names are then None).
    - Email is the first ``Email`` contact in ``customer:contacts`` order (newest first); Phone
      the first ``MobilePhone`` contact, else the first ``Phone`` contact, in E.164. A value that
      does not normalize (``"n/a"``, ``"555-1234"``) falls through to the next candidate of the
      same kind and then the next kind, rather than leaving the field None: the seed's
      "IF ABOVE IS MISSING" intent is a usable value, and an unusable one is as good as missing.
    - Contacts marked ``active: false`` (deleted ones, which the export feeds include) are left
      out of ``customer:contacts`` entirely: a deleted email must not become the address the hub
      matches contacts on. Contacts passed without a customer record are still used: they are
      the customer's.
    - Names come from ``customer:name`` per :func:`models.normalize.split_name`.
    - ``source_stamps`` (see :class:`models.standard.MappedOpportunity`) holds the record's own
      ``modifiedOn`` (``jobs:<id>``/``memberships:<id>``), the customer's and every given
      contact's, inactive ones included.
    """
    ident = record.get("id")
    if ident is None or ident == "":
        raise MappingError(f"{model}: id is missing")
    external_id = str(ident)
    created = _timestamp(model, external_id, "createdOn", record.get("createdOn"))
    updated = _timestamp(model, external_id, "modifiedOn", record.get("modifiedOn"))

    details: dict[str, Any] = {}
    flatten_details("", record, details)
    stamps: dict[str, datetime | None] = {f"{model}s:{external_id}": updated}
    if customer is not None:
        _add_stamps(stamps, "customers", (customer,))
    _add_stamps(stamps, "customer_contacts", contacts)

    contact_id: object = None
    first_name = last_name = None
    if customer is not None:
        flatten_details("customer", customer, details)
        contact_id = customer.get("id")
        first_name, last_name = split_name(customer.get("name"))
    if contact_id is None:
        contact_id = record.get("customerId")

    email = phone = None
    if contacts:
        live = [contact for contact in contacts if contact.get("active") is not False]
        live = sort_newest_first(live)
        flatten_records("customer:contacts", live, details)
        email, phone = _email_and_phone(live)
        if is_placeholder(email, placeholder_emails):
            details[PLACEHOLDER_EMAIL_DETAIL] = True

    status = record.get(status_field)
    return MappedOpportunity(
        model=model,
        external_id=external_id,
        external_contact_id=None if contact_id is None else str(contact_id),
        external_created_at=created,
        external_updated_at=updated,
        email=email,
        first_name=first_name,
        last_name=last_name,
        phone=phone,
        status=None if status is None else str(status),
        details=details,
        source_stamps=stamps,
    )


def _timestamp(model: str, external_id: str, field: str, value: object) -> datetime | None:
    try:
        return parse_timestamp(value)
    except ValueError:
        raise MappingError(
            f"{model} {external_id}: {field} is not a timestamp: {value!r}"
        ) from None


def _add_stamps(
    stamps: dict[str, datetime | None],
    resource: str,
    records: Iterable[Record],
    stamp_field: str = "modifiedOn",
) -> None:
    """Each record's ``modifiedOn`` (or ``stamp_field``) as ``<resource>:<id>``; an unparseable
    one is None (the oldest), since only the guard reads it."""
    for record in records:
        ident = record.get("id")
        if ident is None:
            continue
        try:
            stamps[f"{resource}:{ident}"] = parse_timestamp(record.get(stamp_field))
        except ValueError:
            stamps[f"{resource}:{ident}"] = None


def _email_and_phone(contacts: Iterable[Record]) -> tuple[str | None, str | None]:
    email: str | None = None
    mobiles: list[object] = []
    landlines: list[object] = []
    for contact in contacts:
        kind = contact.get("type")
        if not isinstance(kind, str):
            continue
        kind = kind.lower()
        if kind == _EMAIL:
            if email is None:
                email = normalize_email(contact.get("value"))
        elif kind == _MOBILE:
            mobiles.append(contact.get("value"))
        elif kind in _LANDLINE:
            landlines.append(contact.get("value"))
    for value in (*mobiles, *landlines):
        phone = normalize_phone(value)
        if phone is not None:
            return email, phone
    return email, None


# -- inbound notes (issue 15, seed 004 "Activity Sync") ------------------------------------------

ACTIVITY_KINDS: tuple[str, ...] = ("note",)
"""ServiceTitan's activities: job, customer and location notes (tenant-jpm-v2, tenant-crm-v2).
It has no tasks, calls or emails an API exposes."""

NOTE_PARENTS = {"jobs": "job", "customers": "customer", "locations": "location"}
"""The record a note hangs under, as the ``<resource>`` of ``parent``, and its model's word."""


def _note_id(value: object, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        raise MappingError(f"{where}: id is missing or not an integer: {value!r}")
    text = str(value).strip()
    if not text.isdigit():
        raise MappingError(f"{where}: id is missing or not an integer: {value!r}")
    return text


def map_note(note: Record, parent: str, parent_id: str, customer_id: str | None) -> InboundActivity:
    """One ServiceTitan note as an inbound activity.

    ``parent`` is ``jobs``, ``customers`` or ``locations``. A job note names the job's
    opportunity (``opportunity_ref=("job", jobId)``, what :func:`map_job` gives a job), which is
    how it reaches the contact: the job-notes export carries no customer. A customer or location
    note names the customer (``contact_ref``, what :func:`map_job` puts in
    ``external_contact_id``). ``external_id`` is ServiceTitan's note id (the export's ``id`` for a
    job note, the CRM ``NoteResponse`` ``id`` otherwise): for customer and location notes it is
    also what the push ledger records for a note crmsync wrote, and every note crmsync writes
    carries its idempotency key on its last line, so neither kind comes back in (no echo).
    ``author`` is ``createdById`` (an employee or technician id; the API gives no name).
    ``active: false`` (the job-notes export's deletion) marks it deleted.
    """
    kind = NOTE_PARENTS.get(parent)
    if kind is None:
        raise ValueError(f"unknown note parent {parent!r}; expected one of {sorted(NOTE_PARENTS)}")
    where = f"{kind} note on {parent}:{parent_id}"
    ident = _note_id(note.get("id"), where)
    where = f"{kind} note {ident}"
    text = note.get("text")
    if text is not None and not isinstance(text, str):
        raise MappingError(f"{where}: text is not a string: {text!r}")
    created = _timestamp("note", ident, "createdOn", note.get("createdOn"))
    modified = _timestamp("note", ident, "modifiedOn", note.get("modifiedOn"))
    if modified is None:
        raise MappingError(f"{where}: modifiedOn is missing")
    author = note.get("createdById")
    return InboundActivity(
        kind="note",
        external_id=ident,
        parent=f"{parent}:{parent_id}",
        contact_ref=customer_id,
        opportunity_ref=("job", parent_id) if parent == "jobs" else None,
        created_at=created,
        modified_at=modified,
        author=None if author is None else str(author),
        subject=None,
        body=text,
        deleted=note.get("active") is False,
        payload=dict(note),
    )


def map_job_note(note: Record) -> InboundActivity:
    """A record of tenant-jpm-v2 ``export/job-notes`` (``Jpm.V2.ExportJobNotesResponse``)."""
    job = note.get("jobId")
    if isinstance(job, bool) or not isinstance(job, int | str) or not str(job).strip().isdigit():
        raise MappingError(f"job note {note.get('id')!r}: jobId is missing: {job!r}")
    return map_note(note, "jobs", str(job).strip(), None)


def map_job_notes(
    notes: Iterable[Record], stream: str
) -> tuple[list[InboundActivity], list[RejectedRecord]]:
    """A page of the job-notes export; a malformed note is rejected with the reason."""
    out: list[InboundActivity] = []
    rejects: list[RejectedRecord] = []
    for note in notes:
        try:
            out.append(map_job_note(note))
        except MappingError as exc:
            rejects.append(RejectedRecord(stream, _raw_id(note), str(exc), dict(note)))
    return out, rejects


def map_crm_notes(
    notes: Iterable[Record], parent: str, parent_id: str, customer_id: str | None, stream: str
) -> tuple[list[InboundActivity], list[RejectedRecord]]:
    """One customer's or location's whole note list (tenant-crm-v2 ``customers/{id}/notes``,
    ``locations/{id}/notes``: ``Crm.V2.*NoteResponse``); a malformed note is rejected."""
    out: list[InboundActivity] = []
    rejects: list[RejectedRecord] = []
    for note in notes:
        try:
            out.append(map_note(note, parent, parent_id, customer_id))
        except MappingError as exc:
            rejects.append(RejectedRecord(stream, _raw_id(note), str(exc), dict(note)))
    return out, rejects


def _raw_id(note: Record) -> str | None:
    ident = note.get("id")
    return None if ident is None else str(ident)
