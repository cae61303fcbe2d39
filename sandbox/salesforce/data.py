"""Deterministic seed data for an emulated improveit360 Lightning org.

The generator is seeded (``OrgSpec.seed``) and anchored at the emulator clock's start, so the
same spec and start time always produce the same records, ids included. It is shaped after what
the crmsync merge rules have to cope with in a real home-improvement CRM:

* Contacts with an Account each; some repeat customers with several Sales Opportunities, some
  household members sharing a phone or an email, ~15 % without email and a few with
  placeholder emails (``none@none.com``), phones in the formats people type.
* Every Sales Opportunity points at its Contact and Account; 0-3 Sales Appointments each (past
  ones completed with a result, future ones scheduled); sold opportunities get a Project with
  1-4 Project Activities.
* Timestamps spread over the last ~30 days, truncated to whole seconds (Salesforce stores
  datetimes to the second, so ties on ``SystemModstamp`` are normal); a few "mass update"
  instants shared by hundreds of records at scale, and a few records whose ``SystemModstamp``
  is later than ``LastModifiedDate`` (system-only updates), as in real orgs.
* A few soft-deleted opportunities (``IsDeleted = true``), with their appointments, projects
  and activities: only ``queryAll`` returns them.

50,000 opportunities generate in a few seconds; everything is plain dicts keyed by field API
name, values in their JSON wire form (datetimes as ``2026-11-20T14:03:11.000+0000``).
"""

from __future__ import annotations

import random
import time
from typing import Any

from sandbox.salesforce.schema import (
    ACTIVITY_TYPES,
    PRODUCTS,
    SOURCES,
    IdFactory,
    object_roles,
)

__all__ = ["Record", "format_date", "format_datetime", "generate_org_records"]

Record = dict[str, Any]

_DAY = 86_400
_WINDOW = 30 * _DAY

FIRST_NAMES = tuple(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William "  # noqa: SIM905
    "Barbara Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa "
    "Daniel Nancy Matthew Betty Anthony Sandra Mark Margaret Donald Ashley Steven Kimberly "
    "Paul Emily Andrew Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa "
    "George Deborah Timothy Stephanie Ronald Rebecca Jason Laura Edward Helen Jeffrey "
    "Sharon Ryan Cynthia Jacob Kathleen Gary Amy Nicholas Shirley Eric Angela Jonathan "
    "Anna Larry Ruth Justin Brenda Scott Pamela José María Zoë Seán".split()
)
LAST_NAMES = tuple(
    "Smith,Johnson,Williams,Brown,Jones,Garcia,Miller,Davis,Rodriguez,Martinez,"  # noqa: SIM905
    "Hernandez,"
    "Lopez,Gonzalez,Wilson,Anderson,Thomas,Taylor,Moore,Jackson,Martin,Lee,Perez,Thompson,"
    "White,Harris,Sanchez,Clark,Ramirez,Lewis,Robinson,Walker,Young,Allen,King,Wright,"
    "Scott,Torres,Nguyen,Hill,Flores,Green,Adams,Nelson,Baker,Hall,Rivera,Campbell,"
    "Mitchell,Carter,Roberts,Gomez,Phillips,Evans,Turner,Diaz,Parker,Cruz,Edwards,Collins,"
    "Reyes,Stewart,Morris,Morales,Murphy,Cook,Rogers,Gutierrez,Ortiz,Morgan,Cooper,"
    "Peterson,Bailey,Reed,Kelly,Howard,O'Brien,McDonald,Van Der Berg,St. John".split(",")
)
STREETS = (
    "Maple Ave",
    "Oak St",
    "Pine Rd",
    "Cedar Ln",
    "Elm St",
    "Washington Blvd",
    "Lakeview Dr",
    "Hillcrest Rd",
    "Sunset Blvd",
    "Park Pl",
    "River Rd",
    "Meadow Ln",
    "Church St",
    "Highland Ave",
    "Forest Dr",
)
# (city, state, zip prefix, area codes)
PLACES = (
    ("Columbus", "OH", "432", ("614", "380")),
    ("Denver", "CO", "802", ("303", "720")),
    ("Austin", "TX", "787", ("512", "737")),
    ("Orlando", "FL", "328", ("407", "321")),
    ("Phoenix", "AZ", "850", ("602", "480")),
    ("Raleigh", "NC", "276", ("919", "984")),
    ("Charlotte", "NC", "282", ("704", "980")),
    ("Indianapolis", "IN", "462", ("317", "463")),
    ("Louisville", "KY", "402", ("502",)),
    ("Tampa", "FL", "336", ("813", "656")),
    ("Nashville", "TN", "372", ("615", "629")),
    ("Cleveland", "OH", "441", ("216",)),
    ("Minneapolis", "MN", "554", ("612", "763")),
    ("St. Louis", "MO", "631", ("314", "636")),
    ("Kansas City", "MO", "641", ("816",)),
    ("Pittsburgh", "PA", "152", ("412", "878")),
)
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")
PLACEHOLDER_EMAILS = ("none@none.com", "noemail@noemail.com", "na@na.com", "no@email.com")
STAFF_NAMES = (
    "Dave Kowalski",
    "Maria Santos",
    "Tom Becker",
    "Angela Price",
    "Luis Ortega",
    "Kim Nguyen",
    "Rob Fischer",
    "Tasha Greene",
)
APPT_RESULT_CHOICES = ("Sold", "Demo No Sale", "No Demo", "Reset", "Not Home")
PROJECT_PROGRESS = ("Pending", "Measured", "Ordered", "In Progress")
USER_NAMES = (("Integration", "User"), ("Sam", "Ortiz"), ("Jill", "Carver"), ("Ray", "Ellison"))


def format_datetime(epoch_s: float) -> str:
    """Salesforce's JSON datetime form, always UTC and whole seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime(int(epoch_s)))


def format_date(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(int(epoch_s)))


def _phone(rng: random.Random, area: str) -> str:
    line = f"{rng.randrange(10_000):04d}"
    style = rng.random()
    if style < 0.45:
        return f"({area}) 555-{line}"
    if style < 0.7:
        return f"{area}-555-{line}"
    if style < 0.85:
        return f"{area}555{line}"
    if style < 0.95:
        return f"+1 {area} 555 {line}"
    return f"{area}.555.{line}"


def generate_org_records(
    *,
    namespace: str,
    opportunities: int,
    seed: int,
    anchor_epoch: int,
    ids: IdFactory,
    api_username: str,
    org_domain: str = "example.com",
) -> tuple[dict[str, list[Record]], str]:
    """Records per object API name, plus the id of the API user (owner of the session).

    ``anchor_epoch`` is "now" for the data: every timestamp lies in the ~30 days before it,
    except future appointment and install dates.
    """
    rng = random.Random(seed)
    roles = object_roles(namespace)
    ns = namespace
    out: dict[str, list[Record]] = {
        "User": [],
        "Account": [],
        "Contact": [],
        roles["staff"]: [],
        roles["opportunity"]: [],
        roles["appointment"]: [],
        roles["project"]: [],
        roles["activity"]: [],
    }
    start = anchor_epoch - _WINDOW - _DAY

    # Users: the API user first, then sales reps who own the records.
    users = []
    for i, (first, last) in enumerate(USER_NAMES):
        username = api_username if i == 0 else f"{first.lower()}.{last.lower()}@{org_domain}"
        uid = ids.new("005")
        ts = format_datetime(start - _DAY * (30 + i))
        users.append(uid)
        out["User"].append(
            {
                "Id": uid,
                "IsDeleted": False,
                "Name": f"{first} {last}",
                "FirstName": first,
                "LastName": last,
                "Username": username,
                "Email": username if "@" in username else f"{username}@{org_domain}",
                "Alias": (first[:1] + last[:4]).lower(),
                "IsActive": True,
                "CreatedDate": ts,
                "CreatedById": users[0],
                "LastModifiedDate": ts,
                "LastModifiedById": users[0],
                "SystemModstamp": ts,
            }
        )
    api_user = users[0]
    owners = users[1:]

    staff_ids = []
    ts = format_datetime(start)
    for name in STAFF_NAMES:
        sid = ids.new("a0F")
        staff_ids.append(sid)
        out[roles["staff"]].append(
            {
                "Id": sid,
                "IsDeleted": False,
                "Name": name,
                f"{ns}Email__c": name.lower().replace(" ", ".") + f"@{org_domain}",
                f"{ns}Phone__c": _phone(rng, "614"),
                f"{ns}Active__c": True,
                "CreatedDate": ts,
                "CreatedById": api_user,
                "LastModifiedDate": ts,
                "LastModifiedById": api_user,
                "SystemModstamp": ts,
            }
        )

    # "Mass update" instants: many records end up with the very same SystemModstamp.
    bursts = sorted(anchor_epoch - rng.randrange(_DAY, _WINDOW - _DAY) for _ in range(3))
    created_times = sorted(anchor_epoch - rng.randrange(60, _WINDOW) for _ in range(opportunities))

    contacts: list[Record] = []
    accounts: list[Record] = []
    n_appt = n_proj = n_act = 0
    choice = rng.choice
    rand = rng.random
    opp_list = out[roles["opportunity"]]
    appt_list = out[roles["appointment"]]
    proj_list = out[roles["project"]]
    act_list = out[roles["activity"]]

    def stamps(rec: Record, created: int, modified: int, who: str) -> None:
        c = format_datetime(created)
        m = c if modified == created else format_datetime(modified)
        rec["CreatedDate"] = c
        rec["CreatedById"] = who
        rec["LastModifiedDate"] = m
        rec["LastModifiedById"] = who
        rec["SystemModstamp"] = m
        if rand() < 0.03:  # a system-only update moved SystemModstamp alone
            later = min(anchor_epoch, modified + rng.randrange(1, 3600))
            rec["SystemModstamp"] = format_datetime(later)

    def modified_after(created: int) -> int:
        if rand() < 0.3:
            return created
        return created + int((anchor_epoch - created) * rand() ** 2)

    def new_contact(created: int, owner: str) -> tuple[Record, Record]:
        first = choice(FIRST_NAMES)
        last = choice(LAST_NAMES)
        city, state, zip3, areas = choice(PLACES)
        street = f"{rng.randrange(100, 9999)} {choice(STREETS)}"
        zipc = f"{zip3}{rng.randrange(100):02d}"
        phone = _phone(rng, choice(areas)) if rand() < 0.9 else None
        mobile = _phone(rng, choice(areas)) if rand() < 0.4 else None
        r = rand()
        email: str | None
        if r < 0.15:
            email = None
        elif r < 0.17:
            email = choice(PLACEHOLDER_EMAILS)
        else:
            local = f"{first.lower()}.{last.lower().replace(' ', '')}{rng.randrange(1000)}"
            email = f"{local}@{choice(EMAIL_DOMAINS)}"
        if contacts and rand() < 0.05:  # household member sharing a phone or an email
            other = contacts[rng.randrange(len(contacts))]
            if rand() < 0.5 and other.get("Phone"):
                phone = other["Phone"]
            elif other.get("Email"):
                email = other["Email"]
        account: Record = {
            "Id": ids.new("001"),
            "IsDeleted": False,
            "Name": f"{first} {last}",
            "Type": "Household",
            "Phone": phone,
            "BillingStreet": street,
            "BillingCity": city,
            "BillingState": state,
            "BillingPostalCode": zipc,
            "OwnerId": owner,
        }
        acc_created = created - rng.randrange(0, 120)
        stamps(account, acc_created, acc_created, api_user)
        contact: Record = {
            "Id": ids.new("003"),
            "IsDeleted": False,
            "AccountId": account["Id"],
            "FirstName": first,
            "LastName": last,
            "Name": f"{first} {last}",
            "Email": email,
            "Phone": phone,
            "MobilePhone": mobile,
            "MailingStreet": street,
            "MailingCity": city,
            "MailingState": state,
            "MailingPostalCode": zipc,
            "HasOptedOutOfEmail": rand() < 0.03,
            "DoNotCall": rand() < 0.02,
            "OwnerId": owner,
        }
        stamps(contact, acc_created, modified_after(acc_created), api_user)
        accounts.append(account)
        contacts.append(contact)
        return contact, account

    for n_opp, created in enumerate(created_times, 1):
        owner = choice(owners)
        if contacts and rand() < 0.12:  # repeat customer
            i = rng.randrange(len(contacts))
            contact, account = contacts[i], accounts[i]  # created in pairs
        else:
            contact, account = new_contact(created, owner)
        product = choice(PRODUCTS)
        deleted = rand() < 0.005  # deleting a Sales Opportunity deletes its detail records
        opp: Record = {
            "Id": ids.new("a0O"),
            "IsDeleted": deleted,
            "Name": f"SO-{n_opp:07d}",
            f"{ns}Contact__c": contact["Id"],
            f"{ns}Account__c": account["Id"],
            f"{ns}Status__c": "New",
            f"{ns}Source__c": choice(SOURCES),
            f"{ns}Product_Interest__c": product,
            f"{ns}Lead_Date__c": format_date(created),
            f"{ns}Estimated_Value__c": float(rng.randrange(20, 400) * 100),
            f"{ns}Street__c": contact["MailingStreet"],
            f"{ns}City__c": contact["MailingCity"],
            f"{ns}State__c": contact["MailingState"],
            f"{ns}Zip__c": contact["MailingPostalCode"],
            f"{ns}Comments__c": (
                f"Interested in {product.lower()}; prefers evenings." if rand() < 0.3 else None
            ),
            "OwnerId": owner,
        }
        opp_list.append(opp)
        status = "Contacted" if rand() < 0.3 else "New"
        sold_at: int | None = None
        sold_amount = 0.0
        n_appts = rng.choices((0, 1, 2, 3), (25, 45, 20, 10))[0]
        last_time = created
        for _ in range(n_appts):
            a_created = last_time + rng.randrange(60, max(61, (anchor_epoch - last_time) // 2 + 61))
            a_created = min(a_created, anchor_epoch - 1)
            when = a_created + rng.randrange(1, 10) * _DAY
            when = when - when % 3600 + 3600  # on the hour
            rep = choice(staff_ids)
            result: str | None = None
            quoted: float | None = None
            if when < anchor_epoch:
                a_status = rng.choices(("Completed", "Cancelled", "Rescheduled"), (80, 12, 8))[0]
                if a_status == "Completed":
                    result = rng.choices(APPT_RESULT_CHOICES, (30, 45, 12, 8, 5))[0]
                    if result in ("Sold", "Demo No Sale"):
                        quoted = float(rng.randrange(30, 500) * 100)
                a_modified = min(anchor_epoch, when + rng.randrange(3600, 3 * _DAY))
            else:
                a_status = "Confirmed" if rand() < 0.4 else "Scheduled"
                a_modified = a_created
            n_appt += 1
            appt: Record = {
                "Id": ids.new("a0A"),
                "IsDeleted": deleted,
                "Name": f"SA-{n_appt:07d}",
                f"{ns}Sales_Opportunity__c": opp["Id"],
                f"{ns}Contact__c": contact["Id"],
                f"{ns}Appointment_Date_Time__c": format_datetime(when),
                f"{ns}Duration__c": float(choice((60, 90, 120))),
                f"{ns}Status__c": a_status,
                f"{ns}Result__c": result,
                f"{ns}Quoted_Amount__c": quoted,
                f"{ns}Sales_Rep_1__c": rep,
                "OwnerId": owner,
            }
            stamps(appt, a_created, a_modified, api_user)
            appt_list.append(appt)
            status = "Appointment Set" if result is None else status
            if result == "Demo No Sale":
                status = "Demo No Sale"
            if result == "Sold" and sold_at is None:
                sold_at, sold_amount, status = when, quoted or 0.0, "Sold"
            last_time = max(last_time, a_modified)
        if status != "Sold" and rand() < 0.04:
            status = choice(("Cancelled", "Dead"))
        opp[f"{ns}Status__c"] = status
        opp_modified = max(modified_after(created), min(last_time, anchor_epoch))
        if rand() < 0.04:
            burst = choice(bursts)
            if burst >= opp_modified:
                opp_modified = burst
        stamps(opp, created, opp_modified, api_user)

        if sold_at is not None and sold_at + 3600 < anchor_epoch:
            p_created = sold_at + rng.randrange(600, 3600)
            n_proj += 1
            install = p_created + rng.randrange(7, 40) * _DAY
            n_steps = rng.randrange(1, 5)
            done_steps = 0
            project: Record = {
                "Id": ids.new("a0P"),
                "IsDeleted": deleted,
                "Name": f"PR-{n_proj:07d}",
                f"{ns}Sales_Opportunity__c": opp["Id"],
                f"{ns}Contact__c": contact["Id"],
                f"{ns}Account__c": account["Id"],
                f"{ns}Job_Type__c": product,
                f"{ns}Contract_Amount__c": sold_amount,
                f"{ns}Sold_On__c": format_date(sold_at),
                f"{ns}Install_Date__c": format_date(install),
                f"{ns}Completed_On__c": None,
                "OwnerId": owner,
            }
            p_last = p_created
            step_time = p_created
            for step in range(n_steps):
                step_time += rng.randrange(_DAY, 6 * _DAY)
                done = step_time < anchor_epoch
                done_steps += done
                n_act += 1
                act: Record = {
                    "Id": ids.new("a0Q"),
                    "IsDeleted": deleted,
                    "Name": f"PA-{n_act:07d}",
                    f"{ns}Project__c": project["Id"],
                    f"{ns}Activity_Type__c": ACTIVITY_TYPES[min(step, len(ACTIVITY_TYPES) - 1)],
                    f"{ns}Status__c": "Completed" if done else "Scheduled",
                    f"{ns}Scheduled_Date__c": format_date(step_time),
                    f"{ns}Completed_On__c": format_date(step_time) if done else None,
                }
                a_mod = min(anchor_epoch, step_time) if done else p_created
                stamps(act, p_created, a_mod, api_user)
                act_list.append(act)
                p_last = max(p_last, a_mod)
            if done_steps == n_steps:
                project[f"{ns}Status__c"] = "Completed"
                project[f"{ns}Completed_On__c"] = format_date(p_last)
            else:
                project[f"{ns}Status__c"] = PROJECT_PROGRESS[min(done_steps, 3)]
            stamps(project, p_created, p_last, api_user)
            proj_list.append(project)

    out["Account"] = accounts
    out["Contact"] = contacts
    return out, api_user
