"""ServiceTitan job and membership records to the hub's standard opportunity fields.

Implements seed 002 ("ServiceTitan Integration"), sections "Available Resource Fields" (the
details: the base record's fields, ``customer:…``, ``customer:contacts:#:…``,
``appointments:#:…``, ``estimates:#:…``, lists newest-created first) and "Standard Field Mapping"
(Job Opportunity and Membership Opportunity tables). Inputs are the raw records exactly as the
ServiceTitan v2 API returns them (``Jpm.V2.JobResponse``, ``Crm.V2.Customers.CustomerResponse``,
``CustomerContactWithModifiedOnResponse``, ``Jpm.V2.AppointmentResponse``,
``Estimates.V2.EstimateResponse``, ``Memberships.V2.CustomerMembershipResponse``; see
https://developer.servicetitan.io/apis/ and reference/crm-apis.md §1.7).

Pure functions, no I/O: the sync fetches the related records and calls these per record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
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
from models.standard import MappedOpportunity, MappingError

__all__ = ["PLACEHOLDER_EMAIL_DETAIL", "map_job", "map_membership"]

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


def map_job(
    job: Record,
    customer: Record | None,
    contacts: Sequence[Record],
    appointments: Sequence[Record],
    estimates: Sequence[Record],
    *,
    placeholder_emails: frozenset[str] = frozenset(),
) -> MappedOpportunity:
    """Map a ServiceTitan job with its customer, contacts, appointments and estimates.

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
    for key, records in (("appointments", appointments), ("estimates", estimates)):
        _add_stamps(opportunity.source_stamps, key, records)
        records = [record for record in records if record.get("active") is not False]
        if not records:
            continue
        records = sort_newest_first(records)
        newest = _timestamp(
            "job", opportunity.external_id, f"{key}:1:modifiedOn", records[0].get("modifiedOn")
        )
        if newest is not None and (updated is None or newest > updated):
            updated = newest
        flatten_records(key, records, details)
    opportunity.external_updated_at = updated
    return opportunity


def map_membership(
    membership: Record,
    customer: Record | None,
    contacts: Sequence[Record],
    *,
    placeholder_emails: frozenset[str] = frozenset(),
) -> MappedOpportunity:
    """Map a ServiceTitan customer membership with its customer and contacts.

    External Updated At is the membership's ``modifiedOn`` alone (seed 002, Membership
    Opportunity). See :func:`_map` for the shared rules.

    Raises MappingError naming the field when the membership has no ``id`` or an unparseable
    ``createdOn``/``modifiedOn``.
    """
    return _map("membership", "status", membership, customer, contacts, placeholder_emails)


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
    stamps: dict[str, datetime | None], resource: str, records: Iterable[Record]
) -> None:
    """Each record's ``modifiedOn`` as ``<resource>:<id>``; an unparseable one is None (the
    oldest), since only the guard reads it."""
    for record in records:
        ident = record.get("id")
        if ident is None:
            continue
        try:
            stamps[f"{resource}:{ident}"] = parse_timestamp(record.get("modifiedOn"))
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
