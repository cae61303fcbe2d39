"""Object and field definitions of the emulated improveit360 Lightning org, and Salesforce ids.

**Assumption.** improveit360 Lightning's object API names are not public (crm-apis.md §3.1: the
"Object and Field Schema (June 2025)" workbook was not available). The package namespace
``i360core__`` is confirmed (``i360core__Appointment_Date_Time__c``, ``i360core__Sales_Rep_1__c``);
the object and field names below are our best reading of the Hatch seed ("Sales Opportunity (+
Contact + Account), Sales Appointment, Project (and optionally Project Activities)") in the
package's naming style, and are configurable: pass another ``namespace`` to :func:`build_schema`
(``OrgSpec.namespace``), or a whole :data:`Schema` to ``OrgSpec.schema``.

=====================================  ======  ==================================================
object                                 prefix  fields beyond the system ones
=====================================  ======  ==================================================
``User``                               005     FirstName, LastName, Name, Username, Email, Alias,
                                               IsActive
``Account``                            001     Name, Type, Phone, Billing{Street,City,State,
                                               PostalCode}, OwnerId
``Contact``                            003     AccountId→Account, FirstName, LastName, Name
                                               (computed), Email, Phone, MobilePhone,
                                               Mailing{Street,City,State,PostalCode},
                                               HasOptedOutOfEmail, DoNotCall, OwnerId
``{ns}Staff__c``                       a0F     Name, {ns}Email__c, {ns}Phone__c, {ns}Active__c
``{ns}Sales_Opportunity__c``           a0O     Name (auto-number), {ns}Contact__c→Contact,
                                               {ns}Account__c→Account, {ns}Status__c,
                                               {ns}Source__c, {ns}Product_Interest__c,
                                               {ns}Lead_Date__c, {ns}Estimated_Value__c,
                                               {ns}Street__c/City__c/State__c/Zip__c,
                                               {ns}Comments__c (long text), OwnerId
``{ns}Sales_Appointment__c``           a0A     Name (auto-number), {ns}Sales_Opportunity__c,
                                               {ns}Contact__c, {ns}Appointment_Date_Time__c,
                                               {ns}Duration__c, {ns}Status__c, {ns}Result__c,
                                               {ns}Quoted_Amount__c, {ns}Sales_Rep_1__c→Staff,
                                               OwnerId
``{ns}Project__c``                     a0P     Name (auto-number), {ns}Sales_Opportunity__c,
                                               {ns}Contact__c, {ns}Account__c, {ns}Status__c,
                                               {ns}Job_Type__c, {ns}Contract_Amount__c,
                                               {ns}Sold_On__c, {ns}Install_Date__c,
                                               {ns}Completed_On__c, OwnerId
``{ns}Project_Activity__c``            a0Q     Name (auto-number), {ns}Project__c,
                                               {ns}Activity_Type__c, {ns}Status__c,
                                               {ns}Scheduled_Date__c, {ns}Completed_On__c
``Note``                               002     ParentId (any), Title (80), Body (long), IsPrivate,
                                               OwnerId
``Task``                               00T     WhoId (Contact), WhatId (not Contact/User),
                                               Subject, Description (long), Status, Priority,
                                               ActivityDate, Type, TaskSubtype, IsClosed, OwnerId
``ContentNote``                        069     Title, Content (base64), TextPreview, OwnerId
``ContentDocumentLink``                06A     ContentDocumentId, LinkedEntityId, ShareType,
                                               Visibility
=====================================  ======  ==================================================

Every object has ``Id``, ``IsDeleted``, ``CreatedDate``, ``CreatedById``, ``LastModifiedDate``,
``LastModifiedById`` and ``SystemModstamp``; every object but Note, Task, ContentNote and
ContentDocumentLink has ``Name`` (real Salesforce has no ``Name`` on those: ``SELECT Name FROM
Task`` is an INVALID_FIELD there, so it is one here too).

Field flags follow the Salesforce object reference where it matters to a client: long text
areas (Note.Body, Task.Description) can be neither filtered nor sorted, Note.Title holds 80
characters, Task.Status/Priority are restricted picklists, auto-number and system fields are
not createable.

Ids are real Salesforce ids: 3-character key prefix, 2-character pod, a reserved ``0``, a
9-character base-62 counter and the 3-character case-safe suffix
(https://help.salesforce.com/s/articleView?id=000385008).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

__all__ = [
    "DEFAULT_NAMESPACE",
    "POLYMORPHIC_NAME_FIELDS",
    "FieldDef",
    "IdFactory",
    "ObjectDef",
    "Schema",
    "build_schema",
    "id_checksum",
    "normalize_id",
]

DEFAULT_NAMESPACE = "i360core__"

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?$")

# Types whose values compare case-insensitively in SOQL and accept LIKE.
TEXT_TYPES = frozenset({"string", "textarea", "picklist", "email", "phone", "url", "combobox"})
NUMBER_TYPES = frozenset({"double", "currency", "int", "percent"})

# Fields of the "Name" pseudo-object a polymorphic relationship (Who, What, Parent, …) exposes.
# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_name.htm
POLYMORPHIC_NAME_FIELDS: tuple[str, ...] = (
    "Id",
    "Name",
    "Type",
    "FirstName",
    "LastName",
    "Alias",
    "Email",
    "Phone",
    "Title",
    "IsActive",
)


def id_checksum(id15: str) -> str:
    """The 3-character case-safe suffix Salesforce appends to a 15-character id."""
    return _chunk_check(id15[0:5]) + _chunk_check(id15[5:10]) + _chunk_check(id15[10:15])


@lru_cache(maxsize=1 << 18)
def _chunk_check(chunk: str) -> str:
    bits = 0
    for i, ch in enumerate(chunk):
        if "A" <= ch <= "Z":
            bits |= 1 << i
    return _CHECKSUM_CHARS[bits]


def normalize_id(value: object) -> str | None:
    """The 18-character form of a 15- or 18-character id; None when it is not a well-formed id.

    Salesforce accepts both lengths everywhere and answers with 18. An 18-character id whose
    suffix does not match its first 15 characters is malformed.
    """
    if not isinstance(value, str) or not _ID_RE.match(value):
        return None
    suffix = id_checksum(value[:15])
    if len(value) == 18 and value[15:].upper() != suffix:
        return None
    return value[:15] + suffix


_PAIRS = [a + b for a in _BASE62 for b in _BASE62]


@lru_cache(maxsize=4096)
def _base62_high(n: int) -> str:
    digits = []
    while n:
        n, r = divmod(n, 62)
        digits.append(_BASE62[r])
    return "".join(reversed(digits)).rjust(5, "0")


def _base62_9(n: int) -> str:
    """``n`` in 9 base-62 digits (ids are allocated by the hundred thousand: keep it cheap)."""
    high, low = divmod(n, 3844 * 3844)
    mid, low = divmod(low, 3844)
    return _base62_high(high) + _PAIRS[mid] + _PAIRS[low]


class IdFactory:
    """Allocates ids for one org: a per-prefix counter behind a pod derived from the org id.

    Ids of one prefix sort (as strings) in allocation order, like real ones, because the base-62
    alphabet is in ASCII order and the counter has a fixed width.
    """

    _START = 9_000_000_000

    def __init__(self, org_id: str) -> None:
        digest = hashlib.sha256(org_id.encode()).digest()
        self.pod = _BASE62[digest[0] % 62] + _BASE62[digest[1] % 62]
        self._counters: dict[str, int] = {}

    def new(self, prefix: str) -> str:
        n = self._counters.get(prefix, self._START) + 1
        self._counters[prefix] = n
        id15 = f"{prefix}{self.pod}0{_base62_9(n)}"
        return id15 + id_checksum(id15)


@dataclass(frozen=True)
class FieldDef:
    """One field as ``describe`` reports it, reduced to what the emulator enforces."""

    name: str
    type: str
    label: str = ""
    length: int | None = None
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    polymorphic: bool = False
    createable: bool = True
    nillable: bool = True
    default: object = None
    filterable: bool = True
    sortable: bool = True
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    exclude_reference_to: tuple[str, ...] = ()

    @property
    def required_on_create(self) -> bool:
        return self.createable and not self.nillable and self.default is None

    @property
    def display_label(self) -> str:
        return self.label or self.name


@dataclass
class ObjectDef:
    """One sObject: API name, key prefix and fields (looked up case-insensitively)."""

    name: str
    key_prefix: str
    label: str
    fields: dict[str, FieldDef]
    name_kind: str | None = "text"  # "text" | "auto" | "person" | None (no Name field)
    auto_number_format: str = ""
    custom: bool = False
    _by_lower: dict[str, FieldDef] = field(default_factory=dict, repr=False)
    _by_relationship: dict[str, FieldDef] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_lower = {k.lower(): f for k, f in self.fields.items()}
        self._by_relationship = {
            f.relationship_name.lower(): f for f in self.fields.values() if f.relationship_name
        }

    def field(self, name: str) -> FieldDef | None:
        return self._by_lower.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        return self._by_relationship.get(name.lower())


class Schema:
    """The org's objects, looked up by API name (case-insensitive) or by id key prefix."""

    def __init__(self, objects: Iterable[ObjectDef]) -> None:
        self.objects: dict[str, ObjectDef] = {o.name: o for o in objects}
        self._by_lower = {o.name.lower(): o for o in self.objects.values()}
        self._by_prefix = {o.key_prefix: o for o in self.objects.values()}

    def get(self, name: str) -> ObjectDef | None:
        return self._by_lower.get(name.lower())

    def for_id(self, record_id: str) -> ObjectDef | None:
        return self._by_prefix.get(record_id[:3])

    def __iter__(self) -> Iterable[ObjectDef]:  # type: ignore[override]
        return iter(self.objects.values())


# ----------------------------------------------------------------------------------------------
# Definitions
# ----------------------------------------------------------------------------------------------


def _s(name: str, length: int = 255, label: str = "", **kw: Any) -> FieldDef:
    return FieldDef(name, "string", label=label, length=length, **kw)


def _ref(name: str, to: str | tuple[str, ...], rel: str, label: str = "", **kw: Any) -> FieldDef:
    targets = (to,) if isinstance(to, str) else to
    return FieldDef(
        name, "reference", label=label, length=18, reference_to=targets, relationship_name=rel, **kw
    )


def _pick(name: str, values: Iterable[str], **kw: Any) -> FieldDef:
    return FieldDef(name, "picklist", length=255, picklist=tuple(values), **kw)


def _long(name: str, length: int = 32000, label: str = "", **kw: Any) -> FieldDef:
    return FieldDef(
        name, "textarea", label=label, length=length, filterable=False, sortable=False, **kw
    )


def _t(name: str, type_: str, **kw: Any) -> FieldDef:
    return FieldDef(name, type_, **kw)


def _system_fields() -> list[FieldDef]:
    ro = {"createable": False}
    return [
        FieldDef("Id", "id", label="Record ID", length=18, createable=False, nillable=False),
        FieldDef("IsDeleted", "boolean", label="Deleted", createable=False, nillable=False),
        _t("CreatedDate", "datetime", label="Created Date", **ro),
        _ref("CreatedById", "User", "CreatedBy", label="Created By ID", **ro),
        _t("LastModifiedDate", "datetime", label="Last Modified Date", **ro),
        _ref("LastModifiedById", "User", "LastModifiedBy", label="Last Modified By ID", **ro),
        _t("SystemModstamp", "datetime", label="System Modstamp", **ro),
    ]


def _owner() -> FieldDef:
    return _ref("OwnerId", "User", "Owner", label="Owner ID", nillable=False, default="$user")


def _obj(
    name: str,
    prefix: str,
    label: str,
    fields: list[FieldDef],
    *,
    name_kind: str | None = "text",
    auto_number_format: str = "",
    custom: bool = False,
) -> ObjectDef:
    all_fields = _system_fields()
    if name_kind == "text":
        all_fields.insert(1, _s("Name", 255, label=f"{label} Name", nillable=False))
    elif name_kind in ("auto", "person"):
        all_fields.insert(1, _s("Name", 255 if name_kind == "person" else 80, createable=False))
    all_fields.extend(fields)
    return ObjectDef(
        name=name,
        key_prefix=prefix,
        label=label,
        fields={f.name: f for f in all_fields},
        name_kind=name_kind,
        auto_number_format=auto_number_format,
        custom=custom,
    )


SALES_OPPORTUNITY_STATUSES = (
    "New",
    "Contacted",
    "Appointment Set",
    "Demo No Sale",
    "Sold",
    "Cancelled",
    "Dead",
)
SOURCES = (
    "Website",
    "Home Show",
    "Referral",
    "Google Ads",
    "Facebook",
    "Door Knocking",
    "Radio",
    "Yard Sign",
    "Angi",
    "HomeAdvisor",
)
PRODUCTS = (
    "Windows",
    "Roofing",
    "Siding",
    "Bath",
    "Kitchen",
    "Doors",
    "Gutters",
    "Basement Waterproofing",
)
APPOINTMENT_STATUSES = ("Scheduled", "Confirmed", "Completed", "Cancelled", "Rescheduled")
APPOINTMENT_RESULTS = ("Sold", "Demo No Sale", "No Demo", "Reset", "Not Home")
PROJECT_STATUSES = (
    "Pending",
    "Measured",
    "Ordered",
    "Scheduled",
    "In Progress",
    "Completed",
    "Cancelled",
)
ACTIVITY_TYPES = (
    "Measure",
    "Order Materials",
    "Permit",
    "Install",
    "Inspection",
    "Final Walkthrough",
)
ACTIVITY_STATUSES = ("Open", "Scheduled", "Completed", "Cancelled")
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")


def build_schema(namespace: str = DEFAULT_NAMESPACE) -> Schema:
    """The default org schema with custom objects and fields under ``namespace``."""
    ns = namespace
    staff = f"{ns}Staff__c"
    opp = f"{ns}Sales_Opportunity__c"
    appt = f"{ns}Sales_Appointment__c"
    project = f"{ns}Project__c"
    activity = f"{ns}Project_Activity__c"

    def c(suffix: str) -> str:
        return f"{ns}{suffix}__c"

    def r(suffix: str) -> str:
        return f"{ns}{suffix}__r"

    objects = [
        _obj(
            "User",
            "005",
            "User",
            [
                _s("FirstName", 40),
                _s("LastName", 80, nillable=False),
                _s("Username", 80, nillable=False),
                _t("Email", "email", length=128, nillable=False),
                _s("Alias", 8, nillable=False),
                _t("IsActive", "boolean", default=True),
            ],
            name_kind="person",
        ),
        _obj(
            "Account",
            "001",
            "Account",
            [
                _pick("Type", ("Household", "Customer", "Prospect", "Other")),
                _t("Phone", "phone", length=40),
                _t("BillingStreet", "textarea", length=255),
                _s("BillingCity", 40),
                _s("BillingState", 80),
                _s("BillingPostalCode", 20),
                _owner(),
            ],
        ),
        _obj(
            "Contact",
            "003",
            "Contact",
            [
                _ref("AccountId", "Account", "Account", label="Account ID"),
                _s("FirstName", 40),
                _s("LastName", 80, nillable=False),
                _t("Email", "email", length=80),
                _t("Phone", "phone", length=40),
                _t("MobilePhone", "phone", length=40),
                _t("MailingStreet", "textarea", length=255),
                _s("MailingCity", 40),
                _s("MailingState", 80),
                _s("MailingPostalCode", 20),
                _t("HasOptedOutOfEmail", "boolean", default=False),
                _t("DoNotCall", "boolean", default=False),
                _owner(),
            ],
            name_kind="person",
        ),
        _obj(
            staff,
            "a0F",
            "Staff",
            [
                _t(c("Email"), "email", length=80),
                _t(c("Phone"), "phone", length=40),
                _t(c("Active"), "boolean", default=True),
            ],
            custom=True,
        ),
        _obj(
            opp,
            "a0O",
            "Sales Opportunity",
            [
                _ref(c("Contact"), "Contact", r("Contact"), label="Contact"),
                _ref(c("Account"), "Account", r("Account"), label="Account"),
                _pick(c("Status"), SALES_OPPORTUNITY_STATUSES),
                _pick(c("Source"), SOURCES),
                _pick(c("Product_Interest"), PRODUCTS),
                _t(c("Lead_Date"), "date"),
                _t(c("Estimated_Value"), "currency"),
                _s(c("Street"), 255),
                _s(c("City"), 40),
                _s(c("State"), 20),
                _s(c("Zip"), 20),
                _long(c("Comments")),
                _owner(),
            ],
            name_kind="auto",
            auto_number_format="SO-{0:07d}",
            custom=True,
        ),
        _obj(
            appt,
            "a0A",
            "Sales Appointment",
            [
                _ref(c("Sales_Opportunity"), opp, r("Sales_Opportunity"), nillable=False),
                _ref(c("Contact"), "Contact", r("Contact"), label="Contact"),
                _t(c("Appointment_Date_Time"), "datetime"),
                _t(c("Duration"), "double"),
                _pick(c("Status"), APPOINTMENT_STATUSES),
                _pick(c("Result"), APPOINTMENT_RESULTS),
                _t(c("Quoted_Amount"), "currency"),
                _ref(c("Sales_Rep_1"), staff, r("Sales_Rep_1"), label="Sales Rep 1"),
                _owner(),
            ],
            name_kind="auto",
            auto_number_format="SA-{0:07d}",
            custom=True,
        ),
        _obj(
            project,
            "a0P",
            "Project",
            [
                _ref(c("Sales_Opportunity"), opp, r("Sales_Opportunity")),
                _ref(c("Contact"), "Contact", r("Contact"), label="Contact"),
                _ref(c("Account"), "Account", r("Account"), label="Account"),
                _pick(c("Status"), PROJECT_STATUSES),
                _pick(c("Job_Type"), PRODUCTS),
                _t(c("Contract_Amount"), "currency"),
                _t(c("Sold_On"), "date"),
                _t(c("Install_Date"), "date"),
                _t(c("Completed_On"), "date"),
                _owner(),
            ],
            name_kind="auto",
            auto_number_format="PR-{0:07d}",
            custom=True,
        ),
        _obj(
            activity,
            "a0Q",
            "Project Activity",
            [
                _ref(c("Project"), project, r("Project"), nillable=False),
                _pick(c("Activity_Type"), ACTIVITY_TYPES),
                _pick(c("Status"), ACTIVITY_STATUSES),
                _t(c("Scheduled_Date"), "date"),
                _t(c("Completed_On"), "date"),
            ],
            name_kind="auto",
            auto_number_format="PA-{0:07d}",
            custom=True,
        ),
        _obj(
            "Note",
            "002",
            "Note",
            [
                _ref("ParentId", (), "Parent", label="Parent ID", polymorphic=True, nillable=False),
                _s("Title", 80, nillable=False),
                _long("Body"),
                _t("IsPrivate", "boolean", default=False),
                _owner(),
            ],
            name_kind=None,
        ),
        _obj(
            "Task",
            "00T",
            "Task",
            [
                _ref("WhoId", ("Contact",), "Who", label="Name ID", polymorphic=True),
                _ref(
                    "WhatId",
                    (),
                    "What",
                    label="Related To ID",
                    polymorphic=True,
                    exclude_reference_to=("Contact", "User"),
                ),
                FieldDef("Subject", "combobox", length=255),
                _long("Description"),
                _pick(
                    "Status", TASK_STATUSES, restricted=True, nillable=False, default="Not Started"
                ),
                _pick(
                    "Priority",
                    ("High", "Normal", "Low"),
                    restricted=True,
                    nillable=False,
                    default="Normal",
                ),
                _t("ActivityDate", "date", label="Due Date Only"),
                _pick("Type", ("Call", "Email", "Meeting", "Other")),
                _pick(
                    "TaskSubtype",
                    ("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"),
                    restricted=True,
                    default="Task",
                ),
                _t("IsClosed", "boolean", createable=False, nillable=False),
                _owner(),
            ],
            name_kind=None,
        ),
        _obj(
            "ContentNote",
            "069",
            "Note",
            [
                _s("Title", 255, nillable=False),
                FieldDef("Content", "base64", filterable=False, sortable=False),
                _s("TextPreview", 255, createable=False),
                _owner(),
            ],
            name_kind=None,
        ),
        _obj(
            "ContentDocumentLink",
            "06A",
            "Content Document Link",
            [
                _ref("ContentDocumentId", ("ContentNote",), "ContentDocument", nillable=False),
                _ref("LinkedEntityId", (), "LinkedEntity", polymorphic=True, nillable=False),
                _pick("ShareType", ("V", "C", "I"), restricted=True, nillable=False),
                _pick(
                    "Visibility",
                    ("AllUsers", "InternalUsers", "SharedUsers"),
                    restricted=True,
                    default="AllUsers",
                ),
            ],
            name_kind=None,
        ),
    ]
    return Schema(objects)


def object_roles(namespace: str = DEFAULT_NAMESPACE) -> Mapping[str, str]:
    """API names of the objects the seed data generator fills, by role."""
    return {
        "staff": f"{namespace}Staff__c",
        "opportunity": f"{namespace}Sales_Opportunity__c",
        "appointment": f"{namespace}Sales_Appointment__c",
        "project": f"{namespace}Project__c",
        "activity": f"{namespace}Project_Activity__c",
    }
