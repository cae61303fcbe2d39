"""The resources of seed 002's object selector beyond jobs, appointments and estimates.

Generated after the core resources (``data._Generator``) from a random stream of their own, so a
tenant's customers, jobs, appointments, estimates and memberships are the same records whether or
not these exist; the only core fields this pass touches are ``soldBy``/``soldById`` (a third of
the sellers become technicians, which are records of their own in ServiceTitan's Settings API).

Shapes are the vendor's export/list response schemas, field for field (the documents in
tests/fixtures/servicetitan-openapi/: ``tenant-settings-v2``, ``tenant-dispatch-v2``,
``tenant-accounting-v2``, ``tenant-marketing-v2``, ``tenant-jpm-v2``, ``tenant-memberships-v2``);
those schemas forbid additional properties, so ``WIRE_DROP`` names the bookkeeping fields the
store keeps but the wire never shows (every stored record has ``createdOn`` and ``modifiedOn``,
because exports order on ``modifiedOn`` and lists filter on both):

- job canceled logs have no ``modifiedOn`` (the log is written once): the store orders them by
  their ``createdOn``;
- appointment assignments have no ``createdOn`` (``assignedOn`` is their creation);
- campaigns have no ``createdOn``.

Reference records (tag types, campaigns, zones, business units, job types, cancel reasons,
employees, technicians, membership types) are a handful per tenant, created long before the clock
start; child records (assignments, canceled logs, invoices, invoice items, recurring services and
their events) follow their parent's age band, so a 90-day first sync reads the same share of them.
"""

from __future__ import annotations

import random
from typing import Any

from .timefmt import DAY_MS

Record = dict[str, Any]

REFERENCE: tuple[str, ...] = (
    "tag_types",
    "campaigns",
    "zones",
    "business_units",
    "job_types",
    "cancel_reasons",
    "employees",
    "technicians",
    "membership_types",
)
CHILDREN: tuple[str, ...] = (
    "appointment_assignments",
    "job_canceled_logs",
    "invoices",
    "invoice_items",
    "recurring_services",
    "recurring_service_events",
)
EXTRA_RESOURCES: tuple[str, ...] = REFERENCE + CHILDREN

EXTRA_TIMESTAMPS: dict[str, tuple[str, ...]] = {
    **{name: ("createdOn", "modifiedOn") for name in REFERENCE},
    "appointment_assignments": ("assignedOn", "createdOn", "modifiedOn"),
    "job_canceled_logs": ("createdOn", "modifiedOn"),
    "invoices": ("invoiceDate", "dueDate", "createdOn", "modifiedOn", "paidOn"),
    "invoice_items": ("createdOn", "modifiedOn"),
    "recurring_services": ("createdOn", "modifiedOn", "from", "to"),
    "recurring_service_events": ("date", "createdOn", "modifiedOn"),
}
WIRE_DROP: dict[str, tuple[str, ...]] = {
    "campaigns": ("createdOn",),
    "appointment_assignments": ("createdOn",),
    "job_canceled_logs": ("modifiedOn",),
}
EXTRA_ID_BASE: dict[str, int] = {
    "tag_types": 5_500,
    "campaigns": 3_300,
    "zones": 6_600,
    "business_units": 1_100,
    "job_types": 2_200,
    "cancel_reasons": 9_100,
    "employees": 7_000_100,
    "technicians": 7_000_200,
    "membership_types": 4_400,
    "appointment_assignments": 51_000_000,
    "job_canceled_logs": 52_000_000,
    "invoices": 90_000_000,
    "invoice_items": 91_000_000,
    "recurring_services": 73_000_000,
    "recurring_service_events": 74_000_000,
}
EXTRA_INDEXES: dict[str, tuple[str, ...]] = {
    **{name: () for name in REFERENCE},
    "appointment_assignments": ("appointmentId", "jobId"),
    "job_canceled_logs": ("jobId",),
    "invoices": (),
    "invoice_items": ("invoiceId",),
    "recurring_services": ("membershipId",),
    "recurring_service_events": ("membershipId",),
}

TECHNICIANS = tuple(7_000_201 + k for k in range(8))
_TECH_NAMES = ("Ana Ruiz", "Ben Carter", "Chloe Park", "Dev Patel", "Eli Stone", "Fay Wu",
               "Gus Moreno", "Hana Sato")  # fmt: skip
_EMPLOYEE_NAMES = ("Olivia Grant", "Marcus Hill", "Priya Nair", "Tom Becker", "Lena Voss",
                   "Sam Ortiz")  # fmt: skip
_EMPLOYEE_ROLES = ("CSR", "SalesManager", "Dispatch", "Admin", "GeneralOffice", "Owner")
_TAG_TYPES = (
    ("Warranty", "#e53935", "WAR"),
    ("VIP", "#8e24aa", "VIP"),
    ("Do Not Text", "#546e7a", "DNT"),
)
_CAMPAIGNS = (
    ("Google Ads", "Paid Search"),
    ("Yard Signs", "Offline"),
    ("Referral", "Word of Mouth"),
    ("Spring Tune-Up Mailer", "Direct Mail"),
)
_ZONES = (("North", ("92101", "92102")), ("South", ("85004",)), ("East", ("78701", "80202")),
          ("West", ("33602", "28202")), ("Central", ("43215", "97204")))  # fmt: skip
_BUSINESS_UNITS = ("HVAC - Service", "HVAC - Install", "Plumbing")
_JOB_TYPES = ("No Cool", "Tune-Up", "Water Heater", "Install", "Drain Cleaning")
_CANCEL_REASONS = ("Customer rescheduled", "Price too high", "Went with competitor", "No show")
_MEMBERSHIP_TYPES = ("Comfort Club", "Gold Plan", "Plumbing Protection")
_ITEM_NAMES = (("Diagnostic fee", "Service"), ("Capacitor 45/5", "Material"),
               ("Condenser 3 ton", "Equipment"), ("Member discount", "PriceModifier"))  # fmt: skip
_CANCEL_MEMOS = (None, "Called to cancel", "Rescheduling next month", None)


def _reference(start: int) -> dict[str, list[Record]]:
    """The tenant's reference data: created a year before the clock start, edited a month later."""
    created = start - 400 * DAY_MS
    stamp = {"createdOn": created, "modifiedOn": created + 30 * DAY_MS}
    out: dict[str, list[Record]] = {
        "tag_types": [
            {
                "id": 5_501 + k,
                "name": name,
                "color": color,
                "code": code,
                "importance": "High" if k == 1 else None,
                "isConversionOpportunity": k == 1,
                "allowToUseOnTimesheetActivity": False,
                "active": True,
                **stamp,
            }
            for k, (name, color, code) in enumerate(_TAG_TYPES)
        ],
        "campaigns": [
            {
                "id": 3_301 + k,
                "name": name,
                "active": True,
                "category": {"id": 3_401 + k, "name": category, "active": True},
                **stamp,
            }
            for k, (name, category) in enumerate(_CAMPAIGNS)
        ],
        "zones": [
            {
                "id": 6_600 + k,
                "active": True,
                "name": name,
                "zips": list(zips),
                "cities": [],
                "territoryNumbers": [],
                "locnNumbers": [],
                "createdBy": 7_000_101,
                "serviceDaysEnabled": False,
                "serviceDays": [],
                "businessUnits": [1_101, 1_102],
                "technicians": [TECHNICIANS[k]],
                **stamp,
            }
            for k, (name, zips) in enumerate(_ZONES)
        ],
        "business_units": [
            {
                "id": 1_101 + k,
                "active": True,
                "name": name,
                "officialName": f"Acme {name}",
                "email": None,
                "currency": "USD",
                "phoneNumber": None,
                "invoiceHeader": None,
                "invoiceMessage": None,
                "defaultTaxRate": 0.0775,
                "authorizationParagraph": None,
                "acknowledgementParagraph": None,
                "address": None,
                "materialSku": None,
                "quickbooksClass": None,
                "accountCode": None,
                "franchiseId": None,
                "conceptCode": None,
                "corporateContractNumber": None,
                "tenant": None,
                "externalData": None,
                **stamp,
            }
            for k, name in enumerate(_BUSINESS_UNITS)
        ],
        "job_types": [
            {
                "id": 2_201 + k,
                "name": name,
                "businessUnitIds": [1_101 + k % 3],
                "skills": [],
                "tagTypeIds": [],
                "priority": "Normal",
                "duration": 7_200,
                "soldThreshold": None,
                "class": "Service" if k != 3 else "Install",
                "summary": "",
                "noCharge": False,
                "enforceRecurringServiceEventSelection": None,
                "invoiceSignaturesRequired": False,
                "externalData": [],
                "active": True,
                **stamp,
            }
            for k, name in enumerate(_JOB_TYPES)
        ],
        "cancel_reasons": [
            {"id": 9_101 + k, "name": name, "active": True, **stamp}
            for k, name in enumerate(_CANCEL_REASONS)
        ],
        "employees": [
            {
                "id": 7_000_101 + k,
                "userId": 8_000_101 + k,
                "name": name,
                "role": _EMPLOYEE_ROLES[k],
                "roleIds": None,
                "businessUnitId": 1_101 + k % 3,
                "email": f"{name.split()[0].lower()}@acme-hvac.example",
                "phoneNumber": f"61955501{k:02d}",
                "loginName": name.split()[0].lower(),
                "customFields": None,
                "active": True,
                "aadUserId": None,
                "permissions": None,
                "accountLocked": False,
                **stamp,
            }
            for k, name in enumerate(_EMPLOYEE_NAMES)
        ],
        "technicians": [
            {
                "id": tech_id,
                "userId": 8_000_201 + k,
                "name": _TECH_NAMES[k],
                "roleIds": None,
                "businessUnitId": 1_101 + k % 3,
                "mainZoneId": 6_600 + k % 5,
                "zoneIds": [6_600 + k % 5],
                "email": None,
                "phoneNumber": f"61955502{k:02d}",
                "loginName": None,
                "home": None,
                "dailyGoal": 1_500.0,
                "isManagedTech": False,
                "customFields": None,
                "active": k != 7,
                "aadUserId": None,
                "burdenRate": 0.0,
                "team": "Field",
                "jobFilter": None,
                "permissions": None,
                "accountLocked": False,
                **stamp,
            }
            for k, tech_id in enumerate(TECHNICIANS)
        ],
        "membership_types": [
            {
                "id": 4_401 + k,
                "createdById": 7_000_101,
                "importId": None,
                "billingTemplateId": None,
                "durationBilling": None,
                "name": name,
                "displayName": name,
                "active": True,
                "discountMode": "Basic",
                "locationTarget": "SingleLocation",
                "revenueRecognitionMode": "Deferred",
                "autoCalculateInvoiceTemplates": False,
                "useMembershipPricingTable": True,
                "showMembershipSavings": True,
                **stamp,
            }
            for k, name in enumerate(_MEMBERSHIP_TYPES)
        ],
    }
    return out


def generate_extras(raw: dict[str, list[Record]], seed: str, start: int) -> dict[str, list[Record]]:
    """The selector's resources for a tenant whose core records are ``raw`` (stored shape)."""
    rng = random.Random(f"servicetitan-extras:{seed}")
    rnd = rng.random
    old_cutoff = start - 120 * DAY_MS

    def after(instant: int, max_ms: int) -> int:
        ceiling = old_cutoff - 1 if instant < old_cutoff else start - 1
        return max(instant, min(instant + 1 + int(rnd() * max_ms), ceiling))

    out = _reference(start)
    for name in CHILDREN:
        out[name] = []
    customers = {c["id"]: c for c in raw["customers"]}
    locations = {loc["id"]: loc for loc in raw["locations"]}

    for estimate in raw["estimates"]:
        if estimate.get("soldBy") is not None and rnd() < 0.34:
            estimate["soldBy"] = TECHNICIANS[int(rnd() * 7)]
    for membership in raw["memberships"]:
        if membership.get("soldById") is not None and rnd() < 0.34:
            membership["soldById"] = TECHNICIANS[int(rnd() * 7)]

    assignments = out["appointment_assignments"]
    next_id = EXTRA_ID_BASE["appointment_assignments"] + 1
    for appointment in raw["appointments"]:
        count = 1 if rnd() < 0.85 else 2
        for k in range(count):
            tech = int(rnd() * 7)
            assigned = after(appointment["createdOn"], 3_600_000 * (k + 1))
            status = appointment["status"]
            assignments.append({
                "id": next_id, "technicianId": TECHNICIANS[tech],
                "technicianName": _TECH_NAMES[tech], "assignedById": 7_000_101 + int(rnd() * 6),
                "assignedOn": assigned,
                "status": status if status in ("Scheduled", "Dispatched", "Working", "Done")
                else "Scheduled",
                "isPaused": False, "jobId": appointment["jobId"],
                "appointmentId": appointment["id"], "createdOn": assigned,
                "modifiedOn": after(assigned, DAY_MS),
                "active": appointment["active"] and rnd() >= 0.02,
            })  # fmt: skip
            next_id += 1

    logs = out["job_canceled_logs"]
    next_id = EXTRA_ID_BASE["job_canceled_logs"] + 1
    for job in raw["jobs"]:
        if job["jobStatus"] != "Canceled":
            continue
        created = job["modifiedOn"]
        logs.append({
            "id": next_id, "jobId": job["id"], "reasonId": 9_101 + int(rnd() * 4),
            "memo": _CANCEL_MEMOS[int(rnd() * 4)], "createdOn": created,
            "createdById": 7_000_101 + int(rnd() * 6), "active": True, "modifiedOn": created,
        })  # fmt: skip
        next_id += 1

    invoices, items = out["invoices"], out["invoice_items"]
    next_item = EXTRA_ID_BASE["invoice_items"] + 1
    for job in raw["jobs"]:
        invoice_id = job.get("invoiceId")
        if not invoice_id:
            continue
        customer = customers.get(job["customerId"]) or {}
        location = locations.get(job["locationId"]) or {}
        created = after(job["createdOn"], 2 * DAY_MS)
        modified = after(created, 10 * DAY_MS)
        subtotal = 0.0
        for order in range(1 + int(rnd() * 3)):
            name, kind = _ITEM_NAMES[int(rnd() * 4)]
            price = round(-25.0 if kind == "PriceModifier" else 80 + rnd() * 900, 2)
            subtotal += price
            item_created = after(created, 3_600_000)
            items.append({
                "id": next_item, "description": f"<p>{name}</p>", "quantity": "1",
                "cost": f"{price * 0.4:.2f}", "totalCost": f"{price * 0.4:.2f}",
                "inventoryLocation": None, "price": f"{price:.2f}", "type": kind,
                "skuName": name, "skuId": 12_000 + int(rnd() * 50), "total": f"{price:.2f}",
                "inventory": kind == "Equipment", "taxable": kind != "Service",
                "generalLedgerAccount": None, "costOfSaleAccount": None, "assetAccount": None,
                "membershipTypeId": 0, "itemGroup": None, "displayName": name,
                "soldHours": None, "createdOn": item_created,
                "modifiedOn": after(item_created, DAY_MS), "serviceDate": None,
                "order": order + 1, "businessUnit": None, "createdById": None,
                "displayInAmount": None, "importId": None, "exportId": None,
                "inventoryStatus": None, "addOn": False, "memberPrice": None,
                "technicianId": None, "installedEquipmentId": None,
                "active": rnd() >= 0.02, "invoiceId": invoice_id,
            })  # fmt: skip
            next_item += 1
        paid = job["jobStatus"] == "Completed" and rnd() < 0.6
        total = round(subtotal * 1.0775, 2)
        invoices.append({
            "id": invoice_id, "syncStatus": "Pending", "summary": job.get("summary"),
            "referenceNumber": str(job["jobNumber"]), "invoiceDate": created,
            "dueDate": created + 30 * DAY_MS, "subTotal": f"{subtotal:.2f}",
            "salesTax": f"{total - subtotal:.2f}", "salesTaxCode": None, "total": f"{total:.2f}",
            "balance": "0.00" if paid else f"{total:.2f}", "invoiceType": None,
            "customer": {"id": job["customerId"], "name": customer.get("name")},
            "customerAddress": None,
            "location": {"id": job["locationId"], "name": location.get("name")},
            "locationAddress": None,
            "businessUnit": {"id": job["businessUnitId"], "name": None},
            "termName": "Due Upon Receipt", "createdBy": "api", "batch": None,
            "depositedOn": None, "createdOn": created, "modifiedOn": modified,
            "adjustmentToId": None,
            "job": {"id": job["id"], "number": str(job["jobNumber"]), "type": None},
            "projectId": job.get("projectId"), "royalty": None, "employeeInfo": None,
            "commissionEligibilityDate": None,
            "sentStatus": "Sent" if rnd() < 0.7 else "NotSent",
            "reviewStatus": "Reviewed" if paid else "NeedsReview", "assignedTo": None,
            "items": None, "customFields": [], "active": job["active"] and rnd() >= 0.01,
            "discountTotal": None, "importId": None, "exportId": None, "materialSkuId": None,
            "membershipId": job.get("membershipId"), "paidOn": modified if paid else None,
        })  # fmt: skip

    services, events = out["recurring_services"], out["recurring_service_events"]
    next_event = EXTRA_ID_BASE["recurring_service_events"] + 1
    for service_id, membership in enumerate(
        raw["memberships"], start=EXTRA_ID_BASE["recurring_services"] + 1
    ):
        if rnd() >= 0.7:
            continue
        created = after(membership["createdOn"], DAY_MS)
        service_name = f"{_MEMBERSHIP_TYPES[membership['membershipTypeId'] % 3]} visit"
        services.append({
            "id": service_id, "name": service_name,
            "active": membership["active"], "createdOn": created, "createdById": 7_000_101,
            "modifiedOn": after(created, 5 * DAY_MS), "importId": None,
            "membershipId": membership["id"], "locationId": membership["locationId"] or 0,
            "recurringServiceTypeId": 4_501 + int(rnd() * 2), "durationType": "NumberOfVisits",
            "durationLength": 2, "from": membership["from"], "to": membership["to"],
            "memo": None, "invoiceTemplateId": None, "invoiceTemplateForFollowingYearsId": None,
            "firstVisitComplete": rnd() < 0.5, "activatedFromId": None, "allocation": 0.0,
            "businessUnitId": membership["businessUnitId"], "jobTypeId": 2_202,
            "campaignId": 3_304, "priority": "Normal", "jobSummary": None,
            "recurrenceType": "Seasonal", "recurrenceInterval": 1,
            "recurrenceMonths": ["April", "October"], "recurrenceDaysOfWeek": [],
            "recurrenceWeek": "None", "recurrenceDayOfNthWeek": None,
            "recurrenceDaysOfMonth": [], "jobStartTime": None, "estimatedPayrollCost": None,
        })  # fmt: skip
        for k in range(1 + int(rnd() * 2)):
            event_created = after(created, 3_600_000 * (k + 1))
            events.append({
                "id": next_event, "locationRecurringServiceId": service_id,
                "locationRecurringServiceName": services[-1]["name"],
                "membershipId": membership["id"], "membershipName": None,
                "status": "NotAttempted" if k else "Contacted",
                "date": (membership["from"] or created) + (180 * k + 30) * DAY_MS,
                "createdOn": event_created, "jobId": None, "createdById": 7_000_101,
                "modifiedOn": after(event_created, DAY_MS), "active": True,
            })  # fmt: skip
            next_event += 1
    return out


def extra_defaults(resource: str, record_id: int, now_ms: int) -> Record:
    """A neutral complete record of a selector resource, for tests that create one by upsert."""
    template = _reference(now_ms)
    if resource in template:
        record = dict(template[resource][0])
    else:
        sample: list[Record] = []
        for attempt in range(20):
            sample = generate_extras(_SAMPLE, f"defaults-{attempt}", now_ms + 200 * DAY_MS)[
                resource
            ]
            if sample:
                break
        record = dict(sample[0])
    record.update({"id": record_id, "createdOn": now_ms, "modifiedOn": now_ms, "active": True})
    return record


_SAMPLE: dict[str, list[Record]] = {
    "customers": [{"id": 1, "name": "Sample"}],
    "locations": [{"id": 2, "name": "Sample"}],
    "appointments": [
        {"id": 3, "jobId": 4, "createdOn": 0, "status": "Scheduled", "active": True}
    ],
    "jobs": [
        {"id": 4, "customerId": 1, "locationId": 2, "jobStatus": "Canceled", "createdOn": 0,
         "modifiedOn": 0, "invoiceId": 5, "jobNumber": "4", "summary": None,
         "businessUnitId": 1_101, "projectId": None, "membershipId": None, "active": True}
    ],
    "estimates": [],
    "memberships": [
        {"id": 6, "createdOn": 0, "membershipTypeId": 4_401, "active": True, "locationId": 2,
         "from": 0, "to": None, "businessUnitId": 1_101, "soldById": None}
    ],
}  # fmt: skip
