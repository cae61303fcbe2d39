"""Deterministic generation of a ServiceTitan tenant's records.

Records use the field names and enum values of the vendor response schemas verbatim
(tests/fixtures/servicetitan-openapi/, summarised in shared/reference/crm-apis.md §1.7). Each
record is produced in its *export* shape, the GET schema plus `active` (customer contacts also
carry `customerId`), because that is the most complete view; the routes project it down to the GET
shapes. Internally the timestamp fields hold epoch milliseconds (`TIMESTAMP_FIELDS`); `to_wire`
formats them. That keeps a 100,000-job tenant quick to generate and compact in memory, and the
cost moves to serving, where it is a few milliseconds per 5000-record page.

The data is meant to exercise a sync product, not to look pretty:

- customer names come as "Last, First", "First Last", single words, companies and a few untidy
  spellings, because the product splits names on the first comma or the first word (seed 002);
- contacts mix `Phone`, `MobilePhone`, `Email` and `Fax`, some customers share a phone or an
  email, and a few use a placeholder email (`noemail@<tenant id>.example`), because the product
  must not merge people on those;
- every job belongs to a customer and one of its locations and has 0-3 appointments and 0-2
  estimates with distinct `createdOn` (the product picks "the most recent" of each);
- `createdOn`/`modifiedOn` fall within the 60 days before the clock start (a 90-day first sync
  sees them all) except for about 3% that are older than 120 days (a 90-day sync must skip them),
  and whose children (locations, contacts, appointments, estimates) are equally old;
- about 1-5% of every resource is inactive (deleted, merged, cancelled), which only the export
  feeds return.

Same `TenantSpec` and same clock start give identical records: every random choice comes from one
`random.Random` seeded with the spec's seed and tenant id.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .extras import (
    EXTRA_ID_BASE,
    EXTRA_RESOURCES,
    EXTRA_TIMESTAMPS,
    extra_defaults,
    generate_extras,
)
from .timefmt import DAY_MS, format_ms

Record = dict[str, Any]

RESOURCES: tuple[str, ...] = (
    "customers",
    "locations",
    "customer_contacts",
    "jobs",
    "appointments",
    "estimates",
    "memberships",
    *EXTRA_RESOURCES,
)

TIMESTAMP_FIELDS: dict[str, tuple[str, ...]] = {
    "customers": ("createdOn", "modifiedOn"),
    "locations": ("createdOn", "modifiedOn"),
    "customer_contacts": ("createdOn", "modifiedOn"),
    "jobs": ("createdOn", "modifiedOn", "completedOn"),
    "appointments": (
        "createdOn",
        "modifiedOn",
        "start",
        "end",
        "arrivalWindowStart",
        "arrivalWindowEnd",
    ),
    "estimates": ("createdOn", "modifiedOn", "soldOn"),
    "memberships": (
        "createdOn",
        "modifiedOn",
        "followUpOn",
        "cancellationDate",
        "from",
        "to",
        "nextScheduledBillDate",
    ),
    **EXTRA_TIMESTAMPS,
}
"""Fields that are RFC3339 date-times on the wire and epoch milliseconds in the store."""

# First id of each resource. Distinct ranges make a connector that mixes up ids (a location id
# used as a customer id) fail loudly instead of hitting another record by accident.
ID_BASE: dict[str, int] = {
    "customers": 10_000_000,
    "locations": 20_000_000,
    "customer_contacts": 30_000_000,
    "jobs": 40_000_000,
    "appointments": 50_000_000,
    "estimates": 60_000_000,
    "memberships": 70_000_000,
    "notes": 80_000_000,
    **EXTRA_ID_BASE,
}

API_USER_ID = 7_000_001
"""`createdById` of everything written through the API (the integration's user)."""

_EMPLOYEES = (7_000_101, 7_000_102, 7_000_103, 7_000_104, 7_000_105, 7_000_106)
_BUSINESS_UNITS = ((1_101, "HVAC - Service"), (1_102, "HVAC - Install"), (1_103, "Plumbing"))
_JOB_TYPES = (2_201, 2_202, 2_203, 2_204, 2_205)
_CAMPAIGNS = (3_301, 3_302, 3_303, 3_304)
_MEMBERSHIP_TYPES = (4_401, 4_402, 4_403)
_TAG_TYPES = (5_501, 5_502, 5_503)

_FIRST = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Carlos", "Maria", "Wei", "Priya", "Ahmed", "Fatima", "José", "Zoë", "Mary Ann", "Li",
    "Dmitri", "Aisha", "Kevin", "Laura", "Brian", "Nicole", "Jorge", "Olga",
)  # fmt: skip
_LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "O'Brien", "Nguyen", "Patel", "Kim", "de la Cruz",
    "Van Buren", "Müller", "Okafor", "Kowalski", "Rossi", "Chen", "Singh", "Ivanova",
)  # fmt: skip
_COMPANY_SUFFIX = ("LLC", "Inc.", "Property Management", "Holdings", "Dental Group", "& Sons")
_ONE_WORD = ("Cher", "Madonna", "Prince", "Zendaya", "Okonkwo", "Bjork", "Anonymous")
_STREETS = (
    "Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Pine St", "Elm St", "Washington Blvd",
    "Lakeview Rd", "Sunset Blvd", "Park Ave", "Hillcrest Dr", "Ridge Rd",
)  # fmt: skip
_CITIES = (
    ("San Diego", "CA", "92101", 32.7157, -117.1611, "619"),
    ("Phoenix", "AZ", "85004", 33.4484, -112.0740, "602"),
    ("Austin", "TX", "78701", 30.2672, -97.7431, "512"),
    ("Denver", "CO", "80202", 39.7392, -104.9903, "303"),
    ("Tampa", "FL", "33602", 27.9506, -82.4572, "813"),
    ("Charlotte", "NC", "28202", 35.2271, -80.8431, "704"),
    ("Columbus", "OH", "43215", 39.9612, -82.9988, "614"),
    ("Portland", "OR", "97204", 45.5152, -122.6784, "503"),
)
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
_CONTACT_MEMOS = (None, None, None, "Home", "Work", "Spouse", "Tenant", "Office manager")
_SUMMARIES = (
    "<p>No cooling upstairs. Customer reports warm air from vents.</p>",
    "<p>Annual furnace tune-up.</p>",
    "<p>Water heater leaking at the base.</p>",
    "<p>Replace thermostat; customer supplied unit.</p>",
    "<p>Estimate for full system replacement.</p>",
    "<p>Clogged kitchen drain.</p>",
    None,
)
_ESTIMATE_NAMES = (
    "Option A - Repair",
    "Option B - Replace",
    "Good / Better / Best",
    "Tankless water heater",
    "Ductwork sealing",
    "Maintenance plan upgrade",
)
_JOB_STATUSES = (
    ("Completed", 0.45),
    ("Scheduled", 0.25),
    ("Dispatched", 0.06),
    ("InProgress", 0.06),
    ("Hold", 0.06),
    ("Canceled", 0.12),
)
_APPOINTMENT_STATUS_FOR_JOB = {
    "Completed": "Done",
    "Scheduled": "Scheduled",
    "Dispatched": "Dispatched",
    "InProgress": "Working",
    "Hold": "Hold",
    "Canceled": "Canceled",
}
_PRIORITIES = ("Normal", "Normal", "Normal", "High", "Low", "Urgent")
ESTIMATE_STATUSES: dict[str, int] = {"Open": 0, "Sold": 1, "Dismissed": 2}
"""Estimate `status` is an object `{value, name}`; the integer codes are inferred [I]."""
_ESTIMATE_STATUS_OBJECTS = {
    name: {"value": value, "name": name} for name, value in ESTIMATE_STATUSES.items()
}
_INSTRUCTIONS = "Gate code 4321. Dog in backyard."
_ESTIMATE_STATUS_WEIGHTS = (("Open", 0.55), ("Sold", 0.30), ("Dismissed", 0.15))
_MEMBERSHIP_STATUSES = (
    ("Active", 0.70),
    ("Expired", 0.12),
    ("Canceled", 0.12),
    ("Suspended", 0.04),
    ("Deleted", 0.02),
)
_BILLING = ("Monthly", "Annual", "Quarterly", "OneTime", "BiAnnual", "EveryOtherMonth")
_EMPTY: tuple[()] = ()


@dataclass(frozen=True)
class TenantSpec:
    """One emulated ServiceTitan tenant: its credentials and how much data to generate.

    `client_id`/`client_secret` are the tenant's OAuth client credentials, `app_key` the
    application key sent as `ST-App-Key` (several tenants may share one app key; they then share
    its rate limit, as ServiceTitan limits requests per application).
    """

    tenant_id: int
    client_id: str
    client_secret: str
    app_key: str
    customers: int = 40
    jobs: int = 60
    memberships: int = 20
    seed: int = 1
    job_notes: int = 0
    """Notes written on the jobs before crmsync connected (round-robin over the jobs, each
    stamped after its job's last change): the history an inbound-notes first sync reads."""


def to_wire(
    resource: str, record: Record, drop: tuple[str, ...] = (), fields: Iterable[str] | None = None
) -> Record:
    """A stored record as JSON-ready data: timestamps formatted, `drop` fields left out."""
    out = {key: value for key, value in record.items() if key not in drop} if drop else dict(record)
    for name in TIMESTAMP_FIELDS[resource] if fields is None else fields:
        value = out.get(name)
        if value is not None:
            out[name] = format_ms(value)
    return out


def _weighted(roll: float, table: tuple[tuple[str, float], ...]) -> str:
    acc = 0.0
    for value, weight in table:
        acc += weight
        if roll < acc:
            return value
    return table[-1][0]


# Every field of each large resource, in schema order, with the value most records have. The
# generator copies a template and sets what varies: for the hundreds of thousands of jobs,
# appointments and estimates of a big tenant that is much cheaper than a full dict literal.
_JOB_TEMPLATE: Record = {
    "id": 0,
    "jobNumber": "",
    "projectId": None,
    "customerId": 0,
    "locationId": 0,
    "jobStatus": "Scheduled",
    "completedOn": None,
    "businessUnitId": 0,
    "jobTypeId": 0,
    "priority": "Normal",
    "campaignId": 0,
    "summary": None,
    "customFields": _EMPTY,
    "appointmentCount": 0,
    "firstAppointmentId": 0,
    "lastAppointmentId": 0,
    "recallForId": None,
    "warrantyId": None,
    "jobGeneratedLeadSource": None,
    "noCharge": False,
    "notificationsEnabled": True,
    "createdOn": 0,
    "createdById": 0,
    "modifiedOn": 0,
    "tagTypeIds": _EMPTY,
    "leadCallId": None,
    "bookingId": None,
    "soldById": None,
    "externalData": _EMPTY,
    "customerPo": "",
    "invoiceId": 0,
    "membershipId": None,
    "total": None,
    "active": True,
}
_APPOINTMENT_TEMPLATE: Record = {
    "id": 0,
    "jobId": 0,
    "appointmentNumber": None,
    "start": 0,
    "end": 0,
    "arrivalWindowStart": None,
    "arrivalWindowEnd": None,
    "status": "Done",
    "specialInstructions": None,
    "createdOn": 0,
    "modifiedOn": 0,
    "customerId": 0,
    "unused": False,
    "createdById": 0,
    "isConfirmed": False,
    "active": True,
}
_ESTIMATE_TEMPLATE: Record = {
    "id": 0,
    "jobId": 0,
    "projectId": None,
    "locationId": None,
    "customerId": None,
    "name": None,
    "jobNumber": "",
    "status": None,
    "reviewStatus": "None",
    "summary": None,
    "createdOn": 0,
    "modifiedOn": 0,
    "soldOn": None,
    "soldBy": None,
    "active": True,
    "items": _EMPTY,
    "externalLinks": _EMPTY,
    "subtotal": 0.0,
    "tax": 0.0,
    "businessUnitId": None,
    "businessUnitName": None,
}


class _Row:
    """A record being generated, with the instants and links it is built from."""

    __slots__ = ("created", "meta", "record")

    def __init__(self, created: int, record: Record, meta: Any = None) -> None:
        self.created = created
        self.record = record
        self.meta = meta


class _Generator:
    def __init__(self, spec: TenantSpec, start_ms: int) -> None:
        if spec.customers < 1 and (spec.jobs > 0 or spec.memberships > 0):
            raise ValueError("jobs and memberships need at least one customer")
        self.spec = spec
        self.start = start_ms
        self.old_cutoff = start_ms - 120 * DAY_MS
        self.rng = random.Random(f"servicetitan:{spec.seed}:{spec.tenant_id}")
        self.rnd = self.rng.random
        self.rows: dict[str, list[_Row]] = {name: [] for name in RESOURCES}
        self.locations_of: dict[int, list[Record]] = {}

    # -- time helpers ------------------------------------------------------------------------

    def created(self) -> int:
        """A creation instant: within the last 60 days, or (3%) older than 120 days."""
        rnd = self.rnd
        if rnd() < 0.03:
            return self.start - int((121 + rnd() * 400) * DAY_MS)
        return self.start - 1000 - int(rnd() * 60 * DAY_MS)

    def ceiling(self, instant: int) -> int:
        """Latest instant for things derived from `instant`: old records stay in the old band."""
        return self.old_cutoff - 1 if instant < self.old_cutoff else self.start - 1

    def modified(self, created: int) -> int:
        """A modification instant after `created`, in the same age band."""
        ceiling = self.old_cutoff - 1 if created < self.old_cutoff else self.start - 1
        if ceiling <= created:
            return created
        return created + int(self.rnd() * (ceiling - created))

    def after(self, instant: int, max_ms: int) -> int:
        """An instant shortly after `instant`, in the same age band."""
        ceiling = self.old_cutoff - 1 if instant < self.old_cutoff else self.start - 1
        return max(instant, min(instant + 1 + int(self.rnd() * max_ms), ceiling))

    def assign_ids(self, resource: str) -> None:
        """Ids ascend with `createdOn` (as real ids do), with occasional gaps."""
        rows = self.rows[resource]
        rows.sort(key=lambda row: row.created)
        rnd = self.rnd
        next_id = ID_BASE[resource] + 1 + int(rnd() * 500)
        for row in rows:
            row.record["id"] = next_id
            next_id += 1 if rnd() < 0.8 else 2 + int(rnd() * 5)

    # -- resources ---------------------------------------------------------------------------

    def person_name(self) -> tuple[str, str, str]:
        """(customer name, first name, last name) in one of the shapes real tenants hold."""
        rnd = self.rnd
        first = _FIRST[int(rnd() * len(_FIRST))]
        last = _LAST[int(rnd() * len(_LAST))]
        roll = rnd()
        if roll < 0.42:
            return f"{last}, {first}", first, last
        if roll < 0.84:
            return f"{first} {last}", first, last
        if roll < 0.88:
            word = _ONE_WORD[int(rnd() * len(_ONE_WORD))]
            return word, word, ""
        if roll < 0.91:
            return f"{last},{first}", first, last
        if roll < 0.94:
            return f"{first} {'ABCDEJKMRS'[int(rnd() * 10)]}. {last}", first, last
        if roll < 0.97:
            return f"{last}, {first} & {_FIRST[int(rnd() * len(_FIRST))]}", first, last
        return f" {first}  {last} ", first, last

    def address(self, city_index: int) -> dict[str, Any]:
        rnd = self.rnd
        city, state, zip_code, lat, lon, _ = _CITIES[city_index]
        return {
            "street": f"{100 + int(rnd() * 9800)} {_STREETS[int(rnd() * len(_STREETS))]}",
            "unit": f"Apt {1 + int(rnd() * 30)}" if rnd() < 0.1 else None,
            "city": city,
            "state": state,
            "zip": zip_code,
            "country": "USA",
            "latitude": round(lat + (rnd() - 0.5) * 0.2, 6),
            "longitude": round(lon + (rnd() - 0.5) * 0.2, 6),
        }

    def customers(self) -> None:
        rnd = self.rnd
        rows = self.rows["customers"]
        for _ in range(self.spec.customers):
            created = self.created()
            commercial = rnd() < 0.1
            if commercial:
                name = (
                    f"{_LAST[int(rnd() * len(_LAST))]} "
                    f"{_COMPANY_SUFFIX[int(rnd() * len(_COMPANY_SUFFIX))]}"
                )
                first, last = name.split()[0], ""
            else:
                name, first, last = self.person_name()
            city_index = int(rnd() * len(_CITIES))
            record: Record = {
                "id": 0,
                "active": rnd() >= 0.04,
                "name": name,
                "type": "Commercial" if commercial else "Residential",
                "address": self.address(city_index),
                "customFields": _EMPTY,
                "balance": round(rnd() * 400, 2) if rnd() < 0.2 else 0.0,
                "tagTypeIds": (_TAG_TYPES[int(rnd() * 3)],) if rnd() < 0.15 else _EMPTY,
                "doNotMail": rnd() < 0.05,
                "doNotService": rnd() < 0.02,
                "createdOn": created,
                "createdById": _EMPLOYEES[int(rnd() * 6)],
                "modifiedOn": self.modified(created),
                "mergedToId": None,
                "externalData": _EMPTY,
            }
            rows.append(_Row(created, record, (city_index, first, last)))
        self.assign_ids("customers")
        for index, row in enumerate(rows):
            if not row.record["active"] and index > 0 and rnd() < 0.5:
                row.record["mergedToId"] = rows[int(rnd() * index)].record["id"]

    def locations(self) -> None:
        rnd = self.rnd
        rows = self.rows["locations"]
        for customer_row in self.rows["customers"]:
            customer = customer_row.record
            roll = rnd()
            count = 1 if roll < 0.85 else 2 if roll < 0.97 else 3
            mine = self.locations_of[customer["id"]] = []
            for k in range(count):
                if k == 0:
                    created = self.after(customer_row.created, 3_600_000)
                    address = dict(customer["address"])
                    name = customer["name"].strip()
                else:
                    created = self.after(customer_row.created, 40 * DAY_MS)
                    address = self.address(int(rnd() * len(_CITIES)))
                    name = f"{customer['name'].strip()} - {address['street']}"
                record: Record = {
                    "id": 0,
                    "customerId": customer["id"],
                    "active": customer["active"] and rnd() >= 0.03,
                    "name": name,
                    "address": address,
                    "customFields": _EMPTY,
                    "createdOn": created,
                    "createdById": _EMPLOYEES[int(rnd() * 6)],
                    "modifiedOn": self.modified(created),
                    "mergedToId": None,
                    "zoneId": 6_600 + int(rnd() * 5) if rnd() < 0.7 else None,
                    "tagTypeIds": _EMPTY,
                    "externalData": _EMPTY,
                    "taxZoneId": 6_700 + int(rnd() * 3) if rnd() < 0.5 else None,
                }
                rows.append(_Row(created, record))
                mine.append(record)
        self.assign_ids("locations")

    def contacts(self) -> None:
        rnd = self.rnd
        placeholder = f"noemail@{self.spec.tenant_id}.example"
        rows = self.rows["customer_contacts"]
        used_phones: list[str] = []
        used_emails: list[str] = []
        for customer_row in self.rows["customers"]:
            customer = customer_row.record
            city_index, first, last = customer_row.meta
            roll = rnd()
            count = 0 if roll < 0.10 else 1 if roll < 0.45 else 2 if roll < 0.80 else 3
            area = _CITIES[city_index][5]
            for _ in range(count):
                kind_roll = rnd()
                kind = (
                    "Email"
                    if kind_roll < 0.38
                    else "MobilePhone"
                    if kind_roll < 0.70
                    else "Phone"
                    if kind_roll < 0.95
                    else "Fax"
                )
                phone_settings: dict[str, Any] | None
                if kind == "Email":
                    share = rnd()
                    if share < 0.04 and used_emails:
                        value = used_emails[int(rnd() * len(used_emails))]
                    elif share < 0.08:
                        value = placeholder
                    else:
                        local = "".join(ch for ch in first.lower() if ch.isalnum()) or "contact"
                        surname = "".join(ch for ch in last.lower() if ch.isalnum())
                        dotted = f"{local}.{surname}" if surname else local
                        domain = _EMAIL_DOMAINS[int(rnd() * len(_EMAIL_DOMAINS))]
                        value = f"{dotted}{int(rnd() * 1000)}@{domain}"
                        used_emails.append(value)
                    # [I] Email contacts carry no phone settings. The CRM document lists the
                    # field as required, but Swagger 2.0 cannot say "nullable".
                    phone_settings = None
                else:
                    if rnd() < 0.05 and used_phones:
                        digits = used_phones[int(rnd() * len(used_phones))]
                    else:
                        digits = f"{area}555{int(rnd() * 10_000):04d}"
                        used_phones.append(digits)
                    value = digits
                    if rnd() < 0.1:
                        value = f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
                    phone_settings = {"phoneNumber": digits, "doNotText": rnd() < 0.05}
                created = self.after(customer_row.created, 2 * DAY_MS)
                record: Record = {
                    "id": 0,
                    "type": kind,
                    "value": value,
                    "memo": _CONTACT_MEMOS[int(rnd() * len(_CONTACT_MEMOS))],
                    "phoneSettings": phone_settings,
                    "createdOn": created,
                    "modifiedOn": self.modified(created),
                    "customerId": customer["id"],
                    "active": rnd() >= 0.03,
                }
                rows.append(_Row(created, record))
        self.assign_ids("customer_contacts")

    def jobs(self) -> None:
        rnd = self.rnd
        start_cap = self.start - 1
        old_cutoff = self.old_cutoff
        customers = self.rows["customers"]
        n_customers = len(customers)
        job_rows = self.rows["jobs"]
        appointment_rows = self.rows["appointments"]
        estimate_rows = self.rows["estimates"]
        modified_after = self.modified
        shortly_after = self.after
        for _ in range(self.spec.jobs):
            customer_row = customers[int(rnd() * n_customers)]
            if not customer_row.record["active"] and rnd() < 0.8:
                customer_row = customers[int(rnd() * n_customers)]
            customer_id = customer_row.record["id"]
            places = self.locations_of[customer_id]
            location_id = places[int(rnd() * len(places))]["id"]
            created = max(self.created(), min(customer_row.created + 60_000, start_cap))
            modified = modified_after(created)
            status = _weighted(rnd(), _JOB_STATUSES)
            completed = status == "Completed"
            business_unit = _BUSINESS_UNITS[int(rnd() * 3)]
            project_id = 8_800_000 + int(rnd() * 1000) if rnd() < 0.05 else None
            job = _JOB_TEMPLATE.copy()
            job["projectId"] = project_id
            job["customerId"] = customer_id
            job["locationId"] = location_id
            job["jobStatus"] = status
            if completed:
                job["completedOn"] = created + int(rnd() * (modified - created))
                job["total"] = round(rnd() * 4000, 2)
            job["businessUnitId"] = business_unit[0]
            job["jobTypeId"] = _JOB_TYPES[int(rnd() * 5)]
            job["priority"] = _PRIORITIES[int(rnd() * 6)]
            job["campaignId"] = _CAMPAIGNS[int(rnd() * 4)]
            job["summary"] = _SUMMARIES[int(rnd() * 7)]
            job["noCharge"] = rnd() < 0.03
            job["notificationsEnabled"] = rnd() < 0.9
            job["createdOn"] = created
            job["createdById"] = _EMPLOYEES[int(rnd() * 6)]
            job["modifiedOn"] = modified
            if rnd() < 0.1:
                job["tagTypeIds"] = (_TAG_TYPES[int(rnd() * 3)],)
            if rnd() < 0.3:
                job["soldById"] = _EMPLOYEES[int(rnd() * 6)]
            job["active"] = rnd() >= 0.01
            job_appointments: list[Record] = []
            job_row = _Row(created, job, job_appointments)
            job_rows.append(job_row)
            ceiling = old_cutoff - 1 if created < old_cutoff else start_cap

            roll = rnd()
            n_appointments = 0 if roll < 0.15 else 1 if roll < 0.65 else 2 if roll < 0.90 else 3
            appt_created = created
            for k in range(n_appointments):
                appt_created = shortly_after(appt_created, DAY_MS if k == 0 else 7 * DAY_MS)
                begins = (appt_created // 3_600_000 + 24 + int(rnd() * 240)) * 3_600_000
                appointment = _APPOINTMENT_TEMPLATE.copy()
                appointment["appointmentNumber"] = k + 1
                appointment["start"] = begins
                appointment["end"] = begins + 7_200_000
                if rnd() < 0.7:
                    appointment["arrivalWindowStart"] = begins
                    appointment["arrivalWindowEnd"] = begins + 14_400_000
                if k == n_appointments - 1:
                    appointment["status"] = _APPOINTMENT_STATUS_FOR_JOB[status]
                if rnd() < 0.1:
                    appointment["specialInstructions"] = _INSTRUCTIONS
                appointment["createdOn"] = appt_created
                appointment["modifiedOn"] = modified_after(appt_created)
                appointment["customerId"] = customer_id
                appointment["unused"] = rnd() < 0.02
                appointment["createdById"] = _EMPLOYEES[int(rnd() * 6)]
                appointment["isConfirmed"] = rnd() < 0.6
                appointment["active"] = rnd() >= 0.01
                job_appointments.append(appointment)
                appointment_rows.append(_Row(appt_created, appointment, job))

            roll = rnd()
            n_estimates = 0 if roll < 0.40 else 1 if roll < 0.80 else 2
            est_created = created
            for _ in range(n_estimates):
                # Strictly increasing per job: the product picks "the most recent" estimate.
                step = 3_600_000 + int(rnd() * 5 * DAY_MS)
                est_created += min(step, max(1, (ceiling - est_created) // 2))
                est_modified = modified_after(est_created)
                est_status = _weighted(rnd(), _ESTIMATE_STATUS_WEIGHTS)
                subtotal = round(200 + rnd() * 12_000, 2)
                estimate = _ESTIMATE_TEMPLATE.copy()
                estimate["projectId"] = project_id
                estimate["locationId"] = location_id
                estimate["customerId"] = customer_id
                estimate["name"] = _ESTIMATE_NAMES[int(rnd() * len(_ESTIMATE_NAMES))]
                estimate["status"] = _ESTIMATE_STATUS_OBJECTS[est_status]
                if rnd() >= 0.85:
                    estimate["reviewStatus"] = "NeedsApproval"
                estimate["summary"] = _SUMMARIES[int(rnd() * 7)]
                estimate["createdOn"] = est_created
                estimate["modifiedOn"] = est_modified
                if est_status == "Sold":
                    estimate["soldOn"] = est_created + int(rnd() * (est_modified - est_created))
                    estimate["soldBy"] = _EMPLOYEES[int(rnd() * 6)]
                estimate["active"] = rnd() >= 0.03
                estimate["subtotal"] = subtotal
                estimate["tax"] = round(subtotal * 0.0775, 2)
                estimate["businessUnitId"] = business_unit[0]
                estimate["businessUnitName"] = business_unit[1]
                estimate_rows.append(_Row(est_created, estimate, job))

        self.assign_ids("jobs")
        for invoice_id, job_row in enumerate(job_rows, start=90_000_001):
            job = job_row.record
            job["jobNumber"] = str(job["id"])
            job["invoiceId"] = invoice_id
        self.assign_ids("appointments")
        for row in appointment_rows:
            appointment, parent = row.record, row.meta
            appointment["jobId"] = parent["id"]
            appointment["appointmentNumber"] = (
                f"{parent['jobNumber']}-{appointment['appointmentNumber']}"
            )
        for job_row in job_rows:
            if job_row.meta:
                job = job_row.record
                job["appointmentCount"] = len(job_row.meta)
                job["firstAppointmentId"] = job_row.meta[0]["id"]
                job["lastAppointmentId"] = job_row.meta[-1]["id"]
        self.assign_ids("estimates")
        for row in estimate_rows:
            row.record["jobId"] = row.meta["id"]
            row.record["jobNumber"] = row.meta["jobNumber"]

    def memberships(self) -> None:
        rnd = self.rnd
        customers = self.rows["customers"]
        rows = self.rows["memberships"]
        for _ in range(self.spec.memberships):
            customer = customers[int(rnd() * len(customers))].record
            location_id = self.locations_of[customer["id"]][0]["id"]
            created = self.created()
            modified = self.modified(created)
            status = _weighted(rnd(), _MEMBERSHIP_STATUSES)
            billing = _BILLING[int(rnd() * len(_BILLING))]
            ongoing = rnd() < 0.2
            starts = created - created % DAY_MS
            ends = None if ongoing else starts + 365 * DAY_MS
            record: Record = {
                "id": 0,
                "createdOn": created,
                "createdById": _EMPLOYEES[int(rnd() * 6)] if rnd() < 0.9 else None,
                "modifiedOn": modified,
                "followUpOn": ends if ends is not None else starts + 330 * DAY_MS,
                "cancellationDate": modified if status == "Canceled" else None,
                "from": starts,
                "nextScheduledBillDate": (
                    starts + 30 * DAY_MS if status == "Active" and billing != "OneTime" else None
                ),
                "to": ends,
                "billingFrequency": billing,
                "renewalBillingFrequency": billing if rnd() < 0.5 else None,
                "status": status,
                "followUpStatus": "NotAttempted" if rnd() < 0.8 else "Contacted",
                "active": status != "Deleted" and rnd() >= 0.02,
                "initialDeferredRevenue": round(rnd() * 300, 2),
                "duration": None if ongoing else 12,
                "renewalDuration": None if ongoing else 12,
                "businessUnitId": _BUSINESS_UNITS[int(rnd() * 3)][0],
                "customerId": customer["id"],
                "membershipTypeId": _MEMBERSHIP_TYPES[int(rnd() * 3)],
                "activatedById": None,
                "activatedFromId": None,
                "billingTemplateId": None,
                "cancellationBalanceInvoiceId": None,
                "cancellationInvoiceId": None,
                "followUpCustomStatusId": None,
                "locationId": location_id,
                "paymentMethodId": None,
                "paymentTypeId": None,
                "recurringLocationId": location_id,
                "renewalMembershipTaskId": None,
                "renewedById": None,
                "soldById": _EMPLOYEES[int(rnd() * 6)] if rnd() < 0.6 else None,
                "customerPo": None,
                "importId": None,
                "memo": None,
                "customFields": _EMPTY,
            }
            rows.append(_Row(created, record))
        self.assign_ids("memberships")

    def run(self) -> dict[str, list[Record]]:
        self.customers()
        self.locations()
        self.contacts()
        self.jobs()
        self.memberships()
        return {resource: [row.record for row in rows] for resource, rows in self.rows.items()}


def generate_raw(spec: TenantSpec, start_ms: int) -> dict[str, list[Record]]:
    """All records of one tenant per resource, ordered by id, timestamps as epoch milliseconds.

    `start_ms` is the emulator clock's start; every generated instant lies before it. Garbage
    collection is paused meanwhile: the generator allocates hundreds of thousands of long-lived
    containers, and repeated full collections over them would double the time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        raw = _Generator(spec, start_ms).run()
        raw.update(generate_extras(raw, f"{spec.seed}:{spec.tenant_id}", start_ms))
        return raw
    finally:
        if was_enabled:
            gc.enable()


def generate_tenant(spec: TenantSpec, start_ms: int) -> dict[str, list[Record]]:
    """All records of one tenant per resource, ordered by id, as they appear in export feeds."""
    return {
        resource: [to_wire(resource, record) for record in records]
        for resource, records in generate_raw(spec, start_ms).items()
    }


def new_record_defaults(resource: str, record_id: int, now_ms: int) -> Record:
    """A complete stored record with neutral values, used when a test creates one by upsert.

    Only the fields the caller supplies differ, so tests state just what they care about while the
    record still satisfies the vendor response schema.
    """
    stamp = now_ms
    common: Record = {"id": record_id, "createdOn": stamp, "modifiedOn": stamp}
    if resource == "customers":
        return {
            **common,
            "active": True,
            "name": "New Customer",
            "type": "Residential",
            "address": {
                "street": "1 Main St",
                "unit": None,
                "city": "San Diego",
                "state": "CA",
                "zip": "92101",
                "country": "USA",
                "latitude": None,
                "longitude": None,
            },
            "customFields": [],
            "balance": 0.0,
            "tagTypeIds": [],
            "doNotMail": False,
            "doNotService": False,
            "createdById": API_USER_ID,
            "mergedToId": None,
            "externalData": [],
        }
    if resource == "locations":
        return {
            **common,
            "customerId": 0,
            "active": True,
            "name": "New Location",
            "address": {
                "street": "1 Main St",
                "unit": None,
                "city": "San Diego",
                "state": "CA",
                "zip": "92101",
                "country": "USA",
                "latitude": None,
                "longitude": None,
            },
            "customFields": [],
            "createdById": API_USER_ID,
            "mergedToId": None,
            "zoneId": None,
            "tagTypeIds": [],
            "externalData": [],
            "taxZoneId": None,
        }
    if resource == "customer_contacts":
        return {
            **common,
            "type": "Email",
            "value": "",
            "memo": None,
            "phoneSettings": None,
            "customerId": 0,
            "active": True,
        }
    if resource == "jobs":
        return {
            **common,
            "jobNumber": str(record_id),
            "projectId": None,
            "customerId": 0,
            "locationId": 0,
            "jobStatus": "Scheduled",
            "completedOn": None,
            "businessUnitId": _BUSINESS_UNITS[0][0],
            "jobTypeId": _JOB_TYPES[0],
            "priority": "Normal",
            "campaignId": _CAMPAIGNS[0],
            "summary": None,
            "customFields": [],
            "appointmentCount": 0,
            "firstAppointmentId": 0,
            "lastAppointmentId": 0,
            "recallForId": None,
            "warrantyId": None,
            "jobGeneratedLeadSource": None,
            "noCharge": False,
            "notificationsEnabled": True,
            "createdById": API_USER_ID,
            "tagTypeIds": [],
            "leadCallId": None,
            "bookingId": None,
            "soldById": None,
            "externalData": [],
            "customerPo": "",
            "invoiceId": 0,
            "membershipId": None,
            "total": None,
            "active": True,
        }
    if resource == "appointments":
        return {
            **common,
            "jobId": 0,
            "appointmentNumber": None,
            "start": stamp,
            "end": now_ms + 7_200_000,
            "arrivalWindowStart": None,
            "arrivalWindowEnd": None,
            "status": "Scheduled",
            "specialInstructions": None,
            "customerId": 0,
            "unused": False,
            "createdById": API_USER_ID,
            "isConfirmed": False,
            "active": True,
        }
    if resource == "estimates":
        return {
            **common,
            "jobId": None,
            "projectId": None,
            "locationId": None,
            "customerId": None,
            "name": None,
            "jobNumber": None,
            "status": {"value": 0, "name": "Open"},
            "reviewStatus": "None",
            "summary": None,
            "soldOn": None,
            "soldBy": None,
            "active": True,
            "items": [],
            "externalLinks": [],
            "subtotal": 0.0,
            "tax": 0.0,
            "businessUnitId": None,
            "businessUnitName": None,
        }
    if resource == "memberships":
        return {
            **common,
            "createdById": API_USER_ID,
            "followUpOn": stamp,
            "cancellationDate": None,
            "from": stamp,
            "nextScheduledBillDate": None,
            "to": None,
            "billingFrequency": "Monthly",
            "renewalBillingFrequency": None,
            "status": "Active",
            "followUpStatus": "NotAttempted",
            "active": True,
            "initialDeferredRevenue": 0.0,
            "duration": None,
            "renewalDuration": None,
            "businessUnitId": _BUSINESS_UNITS[0][0],
            "customerId": 0,
            "membershipTypeId": _MEMBERSHIP_TYPES[0],
            "activatedById": None,
            "activatedFromId": None,
            "billingTemplateId": None,
            "cancellationBalanceInvoiceId": None,
            "cancellationInvoiceId": None,
            "followUpCustomStatusId": None,
            "locationId": None,
            "paymentMethodId": None,
            "paymentTypeId": None,
            "recurringLocationId": None,
            "renewalMembershipTaskId": None,
            "renewedById": None,
            "soldById": None,
            "customerPo": None,
            "importId": None,
            "memo": None,
            "customFields": [],
        }
    if resource in EXTRA_RESOURCES:
        return extra_defaults(resource, record_id, now_ms)
    raise ValueError(f"unknown resource {resource!r}; expected one of {', '.join(RESOURCES)}")
