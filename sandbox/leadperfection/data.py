"""Seed data for the LeadPerfection emulator: LP's wire shapes, generated deterministically.

Record shapes follow crm-apis.md §2.5 (field names gathered from public LP client code, lower-case
as LP sends them): a prospect carries ``notes[]``, ``calls[]`` and ``leads[]``; a lead carries
``notes[]``, ``jobs[]`` and ``appointments[]``; a job carries ``milestones[]`` and ``notes[]``.
LP quirks are reproduced on purpose because the product must cope with them:

* timestamps are naive US-Eastern wall-clock strings (``2025-04-16T17:00:07``) with no offset;
* ``entrydate`` is "midnight-zeroed" (``2025-04-16T00:00:00``), ``dateentered`` has the time;
* a missing date is the Delphi zero date (``1899-12-30T14:00:00`` for a time with no date);
* ``apptset``/``sat``/``sold`` are the strings ``"true"``/``"false"``, not JSON booleans;
* branch codes are blank-padded (``"ORL  "``), missing strings are ``""`` rather than null;
* calls carry no ``id`` (public client comment: "No id field — generate from lead + datetime +
  agent") and notes carry none either.

The first prospects are hand-written fixtures (see :func:`fixture_prospects`), each one an edge
case the product's rules depend on; the rest are drawn from ``random.Random(seed)``. Every
timestamp is an offset from an anchor instant (the emulator clock at start), so one seed always
gives the same records relative to "now", and the same bytes for the same anchor.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

Record = dict[str, Any]

CST_BASE = 100_000
LEAD_BASE = 2_000_000
JOB_BASE = 5_000_000
APPT_BASE = 8_000_000

DELPHI_ZERO_DATE = "1899-12-30T00:00:00"
DELPHI_ZERO_DATE_WITH_TIME = "1899-12-30T14:00:00"


@dataclass(frozen=True)
class LPClientSpec:
    """One LP customer ("client") the emulator hosts: its credentials and its seed data.

    ``prospects`` is the total number of prospects; the first ones are the edge-case fixtures
    (when ``fixtures`` is true), the rest are generated from ``seed``. ``timezone`` is the wall
    clock LP writes its naive timestamps in (US Eastern for the public clients we know of).
    """

    clientid: str
    username: str
    password: str
    appkey: str
    prospects: int = 50
    seed: int = 1
    timezone: str = "America/New_York"
    token_ttl_seconds: int = 86_399
    history_days: int = 30
    fixtures: bool = True


_MINUTE_SECOND = tuple(f"{n // 60:02d}:{n % 60:02d}" for n in range(3600))


class LocalTime:
    """Formats UTC epoch seconds as LP does: naive wall-clock time in the client's zone.

    Large seeds format hundreds of thousands of timestamps; US zones change offset only on whole
    hours, so the ``YYYY-MM-DDTHH:`` prefix of each UTC hour is cached.
    """

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        self._hour_prefix: dict[int, str] = {}

    def format(self, epoch: int) -> str:
        hour, rest = divmod(epoch, 3600)
        prefix = self._hour_prefix.get(hour)
        if prefix is None:
            local = datetime.fromtimestamp(hour * 3600, UTC).astimezone(self.zone)
            prefix = local.strftime("%Y-%m-%dT%H:")
            self._hour_prefix[hour] = prefix
        return prefix + _MINUTE_SECOND[rest]

    def midnight(self, epoch: int) -> str:
        """The "date only" shape LP uses for ``entrydate``: the local day at 00:00:00."""
        return self.format(epoch)[:11] + "00:00:00"

    def to_local_naive(self, value: datetime) -> datetime:
        """An aware instant as naive local wall-clock time (naive values are taken as local)."""
        if value.tzinfo is None:
            return value
        return value.astimezone(self.zone).replace(tzinfo=None)


# --- reference lists -------------------------------------------------------------------------


def _words(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(sep))


FIRST_NAMES = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy "
    "Matthew Betty Anthony Sandra Mark Margaret Donald Ashley Steven Kimberly Andrew Emily "
    "Paul Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa George Deborah "
    "Timothy Stephanie Ronald Rebecca Jason Sharon Edward Laura Jeffrey Cynthia Ryan Dorothy "
    "Jacob Amy Gary Kathleen Nicholas Angela Eric Shirley Jonathan Brenda Stephen Emma"
)
LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips "
    "Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook "
    "Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward"
)
STREETS = _words(
    "Oak St|Maple Ave|Pine Rd|Cedar Ln|Elm St|Lakeview Dr|Park Ave|Sunset Blvd|Palm Way|"
    "Magnolia Ct|Orange Blossom Trl|Colonial Dr|Bay St|Hillcrest Rd|Riverside Dr|Willow Bend",
    "|",
)

# (brn_id padded as LP sends it, branch name, area codes, [(city, state, zip prefix)])
BRANCHES: tuple[tuple[str, str, tuple[str, ...], tuple[tuple[str, str, str], ...]], ...] = (
    (
        "ORL  ",
        "Orlando",
        ("407", "321"),
        (("Orlando", "FL", "328"), ("Kissimmee", "FL", "347"), ("Sanford", "FL", "327")),
    ),
    (
        "TPA  ",
        "Tampa",
        ("813", "727"),
        (("Tampa", "FL", "336"), ("Clearwater", "FL", "337"), ("Brandon", "FL", "335")),
    ),
    (
        "JAX  ",
        "Jacksonville",
        ("904",),
        (("Jacksonville", "FL", "322"), ("Orange Park", "FL", "320")),
    ),
    (
        "ATL  ",
        "Atlanta",
        ("404", "770"),
        (("Atlanta", "GA", "303"), ("Marietta", "GA", "300"), ("Decatur", "GA", "300")),
    ),
)

# (source, sourcesubdescr, has promoter)
SOURCES: tuple[tuple[str, str, bool], ...] = (
    ("Internet", "Modernize", False),
    ("Internet", "HomeAdvisor", False),
    ("Internet", "Website Form", False),
    ("TV", "WESH Morning", False),
    ("Canvass", "Door Knock", True),
    ("Home Show", "Orlando Home Show", True),
    ("Referral", "Customer Referral", False),
    ("Radio", "92.5", False),
    ("Direct Mail", "Postcard", False),
)
PRODUCTS = (("WIN", "Windows"), ("ROOF", "Roofing"), ("BATH", "Bath Remodel"), ("SIDE", "Siding"))

# (emp id, name): sales reps, call-centre agents and installers share LP's employee table.
EMPLOYEES: tuple[tuple[str, str], ...] = (
    ("1001", "Jamie Rivera"),
    ("1002", "Pat Morgan"),
    ("1003", "Chris Ellison"),
    ("1004", "Dana Whitfield"),
    ("1005", "Sam Okafor"),
    ("1006", "Alex Brennan"),
    ("2001", "Taylor Quinn"),
    ("2002", "Jordan Blake"),
    ("2003", "Casey Lindqvist"),
)
SALES_REPS = tuple(name for emp, name in EMPLOYEES if emp.startswith("1"))
AGENTS = tuple(e for e in EMPLOYEES if e[0].startswith("2"))
PROMOTERS = ("Rick Alvarez", "Tina Boyd", "Marcus Chen", "Lena Fox")
EMPLOYEE_NAMES = dict(EMPLOYEES)

CALL_RESULTS = {
    "NA": "No Answer",
    "LM": "Left Message",
    "BZ": "Busy",
    "AS": "Appointment Set",
    "NI": "Not Interested",
    "CB": "Call Back",
    "WN": "Wrong Number",
    "TX": "Text Message",
}
CALL_TYPES = {"O": "Outbound", "I": "Inbound", "T": "Text"}
NOTE_CATEGORIES = {"1": "General", "2": "Sales", "3": "Production", "4": "Customer Service"}
JOB_STATUSES = ("Sold", "Measure", "Permit", "Scheduled", "Installed", "Complete")
# (mdt_id, description) in the order a job reaches them.
MILESTONES = ((1, "Contract Signed"), (2, "Measure"), (3, "Permit Approved"), (4, "Installed"))
NOTE_TEXTS = (
    "Homeowner asked for a call back after 5pm.",
    "Spouse needs to be present for the demo.",
    "Interested in financing options.",
    "Prefers text messages over calls.",
    "Gate code 4411 at the community entrance.",
    "Asked for a second quote on the back windows.",
)
# Appointment slots as UTC hours: 10/13/16/18 o'clock Eastern in winter, an hour later in summer.
_APPT_UTC_HOURS = (15, 18, 21, 23)
_GENERATED_RESULTS = ("NA", "LM", "BZ", "AS", "NI", "CB")
PRODUCTION_NOTE_TEXTS = (
    "Measure completed, 14 openings.",
    "Permit submitted to county.",
    "Install crew scheduled, dumpster ordered.",
)


# --- record constructors ---------------------------------------------------------------------


def empty_prospect(cst_id: int) -> Record:
    return {
        "cst_id": cst_id,
        "firstname": "",
        "lastname": "",
        "address1": "",
        "city": "",
        "state": "",
        "zip": "",
        "phone1": "",
        "phone2": "",
        "altphones": [],
        "email": "",
        "dateadded": None,
        "lastchanged": None,
        "notes": [],
        "calls": [],
        "leads": [],
    }


def empty_lead(lead_id: int) -> Record:
    return {
        "id": lead_id,
        "productid": "",
        "productdescr": "",
        "source": "",
        "sourcesubdescr": "",
        "promotername": "",
        "disposition": "",
        "salesrepname": "",
        "apptset": "false",
        "apptdate": None,
        "sat": "false",
        "sold": "false",
        "gsa": 0.0,
        "entrydate": None,
        "dateentered": None,
        "lastchangedon": None,
        "notes": [],
        "jobs": [],
        "appointments": [],
    }


def empty_job(job_id: int) -> Record:
    return {
        "id": job_id,
        "jobnumber": f"C{job_id}",
        "jobstatus": "Sold",
        "grossamount": 0.0,
        "gsa": 0.0,
        "salesrepname": "",
        "entrydate": None,
        "contractdate": None,
        "lastchangedon": None,
        "brn_id": "ORL  ",
        "branch": "Orlando",
        "milestones": [],
        "notes": [],
    }


def empty_appointment(appt_id: int) -> Record:
    return {
        "id": appt_id,
        "apptdate": None,
        "salesrepname": "",
        "disposition": "",
        "sat": "false",
        "sold": "false",
        "gsa": 0.0,
        "dateentered": None,
        "lastchangedon": None,
    }


def extra_fields(prospect: Record) -> Record:
    """Fields only ``GetProspectData`` adds ("alternative lead endpoint with more fields")."""
    return {
        "address2": "",
        "phone3": "",
        "phonetype1": "Cell" if prospect.get("phone1") else "",
        "phonetype2": "Home" if prospect.get("phone2") else "",
    }


@dataclass
class SeedData:
    prospects: list[Record]
    next_cst: int
    next_lead: int
    next_job: int
    next_appt: int


class _Ids:
    def __init__(self) -> None:
        self.cst = CST_BASE
        self.lead = LEAD_BASE
        self.job = JOB_BASE
        self.appt = APPT_BASE

    def next_cst(self) -> int:
        self.cst += 1
        return self.cst

    def next_lead(self) -> int:
        self.lead += 1
        return self.lead

    def next_job(self) -> int:
        self.job += 1
        return self.job

    def next_appt(self) -> int:
        self.appt += 1
        return self.appt


def _note(text: str, rectype: str, category: str, by: str, on: str | None) -> Record:
    return {
        "notes": text,
        "rectype": rectype,
        "category": category,
        "enteredby": by,
        "enteredon": on,
    }


def _call(t: LocalTime, epoch: int, phone: str, result: str, ctype: str, agent: int) -> Record:
    emp, name = AGENTS[agent % len(AGENTS)]
    return {
        "calldatetime": t.format(epoch),
        "phone": phone,
        "resultcode": result,
        "resultdescr": CALL_RESULTS[result],
        "calltype": ctype,
        "calltypedescr": CALL_TYPES[ctype],
        "agent": emp,
        "agentname": name,
        "duration": 0 if result in ("NA", "BZ", "TX") else 45 + agent * 17 % 400,
        "callqueueid": "",
        "recordingurl": "",
    }


def _milestones(t: LocalTime, contract: int, reached: int, by: str, now: int) -> list[Record]:
    out = []
    for step, (mdt_id, descr) in enumerate(MILESTONES):
        est = contract + step * 5 * 86_400
        done = step < reached and est <= now
        out.append(
            {
                "mdt_id": mdt_id,
                "description": descr,
                "datetype": "A" if done else "E",
                "estdate": t.midnight(est),
                "actdate": t.midnight(est) if done else None,
                "enteredby": by,
                "enteredon": t.format(contract + step * 3600),
            }
        )
    return out


# --- hand-written fixtures -------------------------------------------------------------------


def fixture_prospects(t: LocalTime, now: int, ids: _Ids) -> list[Record]:
    """Edge cases the seed's rules and LP's quirks depend on, in cst_id order.

    Times are offsets from ``now`` (the emulator clock at start) so the "updated in the last 20
    minutes" trigger sees the recent ones on the first sync.
    """
    minute, day = 60, 86_400
    fmt = t.format
    out: list[Record] = []

    def prospect(first: str, last: str, email: str | None, phone: str, added: int) -> Record:
        p = empty_prospect(ids.next_cst())
        p.update(
            firstname=first,
            lastname=last,
            email=email,
            phone1=phone,
            address1="100 Fixture Way",
            city="Orlando",
            state="FL",
            zip="32801",
            dateadded=fmt(added),
        )
        return p

    def lead(entered: int, changed: int | None, **fields: Any) -> Record:
        ld = empty_lead(ids.next_lead())
        ld.update(
            productid="WIN",
            productdescr="Windows",
            source="Internet",
            sourcesubdescr="Website Form",
            entrydate=t.midnight(entered),
            dateentered=fmt(entered),
            lastchangedon=fmt(changed) if changed is not None else None,
        )
        ld.update(fields)
        return ld

    # 1. An appointment with a time but no date: the Delphi zero date, and string booleans.
    p = prospect("Delphi", "Zerodate", "delphi.zerodate@example.com", "407-555-0101", now - 3 * day)
    p["lastchanged"] = fmt(now - 5 * minute)
    ld = lead(now - 3 * day, now - 5 * minute, apptset="true", sat="false", sold="false")
    ld.update(apptdate=DELPHI_ZERO_DATE_WITH_TIME, salesrepname="Jamie Rivera")
    appt = empty_appointment(ids.next_appt())
    appt.update(
        apptdate=DELPHI_ZERO_DATE_WITH_TIME,
        salesrepname="Jamie Rivera",
        dateentered=fmt(now - 3 * day),
        lastchangedon=fmt(now - 5 * minute),
    )
    ld["appointments"] = [appt]
    p["leads"] = [ld]
    out.append(p)

    # 2. Several leads on one prospect; the sold lead has several jobs with milestones.
    p = prospect("Multi", "Leadson", "multi.leadson@example.com", "(407) 555-0102", now - 20 * day)
    p["lastchanged"] = fmt(now - 12 * minute)
    p["altphones"] = [{"phone": "407-555-0152"}]
    sold_at = now - 15 * day
    first = lead(now - 20 * day, now - 12 * minute, apptset="true", sat="true", sold="true")
    first.update(
        disposition="Sold",
        salesrepname="Pat Morgan",
        apptdate=fmt(sold_at - sold_at % 3600),
        gsa=18_450.0,
    )
    for n, status in enumerate(("Permit", "Sold")):
        job = empty_job(ids.next_job())
        job.update(
            jobstatus=status,
            grossamount=12_300.0 if n == 0 else 6_150.0,
            gsa=12_300.0 if n == 0 else 6_150.0,
            salesrepname="Pat Morgan",
            entrydate=t.midnight(sold_at),
            contractdate=fmt(sold_at),
            lastchangedon=fmt(now - (2 + n) * day),
            milestones=_milestones(t, sold_at, 3 - 2 * n, "Pat Morgan", now),
        )
        first["jobs"].append(job)
    second = lead(now - 9 * day, now - 2 * day, apptset="true", sat="true")
    second.update(disposition="Demo No Sale", salesrepname="Chris Ellison", productid="ROOF")
    third = lead(now - 1 * day, now - 1 * day, source="TV", sourcesubdescr="WESH Morning")
    p["leads"] = [first, second, third]
    p["notes"] = [_note("Wants both floors quoted.", "cst", "Sales", "Pat Morgan", fmt(sold_at))]
    out.append(p)

    # 3. A prospect with no leads at all (the seed's "Prospect only" opportunity).
    p = prospect("Solo", "Prospect", "solo.prospect@example.com", "407-555-0103", now - 2 * day)
    p["lastchanged"] = fmt(now - 8 * minute)
    out.append(p)

    # 4. lastchanged null but the lead's lastchangedon set (External Updated At fallback #2).
    p = prospect("Nolast", "Changed", "nolast.changed@example.com", "407-555-0104", now - 6 * day)
    p["lastchanged"] = None
    p["leads"] = [lead(now - 6 * day, now - 3 * minute, disposition="Reset", apptset="true")]
    out.append(p)

    # 5. No email: a mapped standard field is missing, so the record must not sync.
    p = prospect("Missing", "Email", "", "407-555-0105", now - 1 * day)
    p["lastchanged"] = fmt(now - 6 * minute)
    p["leads"] = [lead(now - 1 * day, now - 6 * minute)]
    out.append(p)

    # 6. Email null rather than "", and only the prospect changed recently.
    p = prospect("Null", "Email", None, "407-555-0106", now - 4 * day)
    p["lastchanged"] = fmt(now - 9 * minute)
    out.append(p)

    # 7. Only a child changed: prospect and lead are old, the job changed minutes ago.
    p = prospect(
        "Child", "Onlychange", "child.onlychange@example.com", "407-555-0107", now - 25 * day
    )
    p["lastchanged"] = fmt(now - 20 * day)
    ld = lead(now - 25 * day, now - 18 * day, apptset="true", sat="true", sold="true")
    ld.update(disposition="Sold", salesrepname="Dana Whitfield", gsa=9_800.0)
    job = empty_job(ids.next_job())
    job.update(
        jobstatus="Scheduled",
        grossamount=9_800.0,
        gsa=9_800.0,
        salesrepname="Dana Whitfield",
        entrydate=t.midnight(now - 18 * day),
        contractdate=fmt(now - 18 * day),
        lastchangedon=fmt(now - 2 * minute),
        brn_id="TPA  ",
        branch="Tampa",
        milestones=_milestones(t, now - 18 * day, 2, "Dana Whitfield", now),
    )
    ld["jobs"] = [job]
    p["leads"] = [ld]
    out.append(p)

    # 8. Fallback #3: lastchanged and lastchangedon null, dateentered set; an appointment moved.
    p = prospect(
        "Fallback", "Dateentered", "fallback.entered@example.com", "407-555-0108", now - 7 * day
    )
    ld = lead(now - 7 * day, None, apptset="true")
    appt = empty_appointment(ids.next_appt())
    appt.update(
        apptdate=fmt(now + 2 * day - (now + 2 * day) % 3600),
        salesrepname="Sam Okafor",
        dateentered=fmt(now - 7 * day),
        lastchangedon=fmt(now - 4 * minute),
    )
    ld["appointments"] = [appt]
    p["leads"] = [ld]
    out.append(p)

    # 9. Fallback #4: only the first job's contractdate (and its lastchangedon) is set.
    p = prospect(
        "Fallback", "Contract", "fallback.contract@example.com", "407-555-0109", now - 10 * day
    )
    ld = lead(now - 10 * day, None, apptset="true", sat="true", sold="true", disposition="Sold")
    ld["dateentered"] = None
    job = empty_job(ids.next_job())
    job.update(
        grossamount=7_200.0,
        gsa=7_200.0,
        entrydate=t.midnight(now - 9 * day),
        contractdate=fmt(now - 9 * day),
        lastchangedon=fmt(now - 7 * minute),
    )
    ld["jobs"] = [job]
    p["leads"] = [ld]
    out.append(p)

    # 10. Fallback #5: only the first appointment's lastchangedon is set.
    p = prospect(
        "Fallback", "Appointment", "fallback.appt@example.com", "407-555-0110", now - 5 * day
    )
    ld = lead(now - 5 * day, None, apptset="true")
    ld["dateentered"] = None
    appt = empty_appointment(ids.next_appt())
    appt.update(
        apptdate=fmt(now + day - (now + day) % 3600),
        salesrepname="Alex Brennan",
        dateentered=None,
        lastchangedon=fmt(now - 11 * minute),
    )
    ld["appointments"] = [appt]
    p["leads"] = [ld]
    out.append(p)

    # 11. A placeholder email typed by an office user; must never match a contact.
    p = prospect("Place", "Holder", "none@none.com", "407-555-0111", now - 3 * day)
    p["lastchanged"] = fmt(now - 13 * minute)
    p["leads"] = [lead(now - 3 * day, now - 13 * minute)]
    out.append(p)

    # 12. Same person as #2 entered again as a new prospect (same email, phone formatted apart).
    p = prospect("Multi", "Leadson", "Multi.Leadson@Example.com", "4075550102", now - 1 * day)
    p["lastchanged"] = fmt(now - 14 * minute)
    p["leads"] = [lead(now - 1 * day, now - 14 * minute, source="Referral")]
    # A bare-string note, as LP sometimes returns.
    p["notes"] = ["Duplicate of an older prospect? Check with office."]
    out.append(p)
    return out


# --- generated prospects ---------------------------------------------------------------------


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a large seed.

    It would otherwise rescan the growing heap of fresh dicts again and again, which doubles the
    time a 50,000-prospect seed takes; nothing built here is cyclic garbage.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def generate(spec: LPClientSpec, anchor: datetime) -> SeedData:
    """All prospects of one client: fixtures first, then ``random.Random(spec.seed)`` draws."""
    with paused_gc():
        return _generate(spec, anchor)


def _generate(spec: LPClientSpec, anchor: datetime) -> SeedData:
    t = LocalTime(spec.timezone)
    now = int(anchor.timestamp())
    ids = _Ids()
    out = fixture_prospects(t, now, ids) if spec.fixtures else []
    rng = random.Random(spec.seed)
    rnd = rng.random
    fmt = t.format
    midnight = t.midnight
    span = spec.history_days * 86_400
    n_first, n_last, n_streets = len(FIRST_NAMES), len(LAST_NAMES), len(STREETS)

    for _ in range(max(0, spec.prospects - len(out))):
        cst_id = ids.next_cst()
        first = FIRST_NAMES[int(rnd() * n_first)]
        last = LAST_NAMES[int(rnd() * n_last)]
        brn_id, branch, areas, cities = BRANCHES[int(rnd() * len(BRANCHES))]
        city, state, zip3 = cities[int(rnd() * len(cities))]
        area = areas[int(rnd() * len(areas))]
        # Unique per prospect (exchange from the id's ten-thousands), formatted three ways as
        # office users type them; fixtures use the fictional 555-01xx range instead.
        exchange, line = 200 + (cst_id // 10_000) % 800, cst_id % 10_000
        style = rnd()
        if style < 0.5:
            phone1 = f"{area}-{exchange}-{line:04d}"
        elif style < 0.8:
            phone1 = f"({area}) {exchange}-{line:04d}"
        else:
            phone1 = f"{area}{exchange}{line:04d}"
        roll = rnd()
        if roll < 0.03:
            email: str | None = ""
        elif roll < 0.04:
            email = None
        elif roll < 0.07:
            email = f"{first}.{last}{cst_id}@Example.com"
        else:
            email = f"{first.lower()}.{last.lower()}{cst_id}@example.com"
        added = now - (int(rnd() * span) if rnd() < 0.85 else span + int(rnd() * 11 * span))
        p: Record = {
            "cst_id": cst_id,
            "firstname": first,
            "lastname": last,
            "address1": f"{100 + int(rnd() * 9800)} {STREETS[int(rnd() * n_streets)]}",
            "city": city,
            "state": state,
            "zip": f"{zip3}{int(rnd() * 100):02d}",
            "phone1": phone1,
            "phone2": f"{area}-{exchange + 1}-{line:04d}" if rnd() < 0.3 else "",
            "altphones": [{"phone": f"{area}-{exchange + 2}-{line:04d}"}] if rnd() < 0.15 else [],
            "email": email,
            "dateadded": fmt(added),
            "lastchanged": fmt(max(added, now - int(rnd() * span))) if rnd() >= 0.02 else None,
            "notes": [],
            "calls": [],
            "leads": [],
        }
        for _n in range(int(rnd() * 2.6)):
            at = added + int(rnd() * (now - added))
            text = NOTE_TEXTS[int(rnd() * len(NOTE_TEXTS))]
            p["notes"].append(_note(text, "cst", "General", "Office", fmt(at)))
        for _n in range(int(rnd() * 4)):
            at = added + int(rnd() * (now - added))
            at = max(added, at - at % 86_400 + 13 * 3600 + int(rnd() * 36_000))  # office hours
            if at > now:
                at -= 86_400
            result = _GENERATED_RESULTS[int(rnd() * 6)]
            p["calls"].append(
                _call(t, at, phone1, result, "O" if rnd() < 0.8 else "I", int(rnd() * 9))
            )

        roll = rnd()
        n_leads = 0 if roll < 0.1 else 1 if roll < 0.75 else 2 if roll < 0.93 else 3
        for _n in range(n_leads):
            entered = max(added, now - int(rnd() * span))
            source, sub, has_promoter = SOURCES[int(rnd() * len(SOURCES))]
            product, product_descr = PRODUCTS[int(rnd() * len(PRODUCTS))]
            rep = SALES_REPS[int(rnd() * len(SALES_REPS))]
            lead = empty_lead(ids.next_lead())
            lead.update(
                productid=product,
                productdescr=product_descr,
                source=source,
                sourcesubdescr=sub,
                promotername=PROMOTERS[int(rnd() * len(PROMOTERS))] if has_promoter else "",
                entrydate=midnight(entered),
                dateentered=fmt(entered),
                lastchangedon=fmt(max(entered, now - int(rnd() * span))),
            )
            if rnd() < 0.8:
                appt_at = entered + 3600 + int(rnd() * (now - entered + 7 * 86_400))
                appt_at += _APPT_UTC_HOURS[int(rnd() * 4)] * 3600 - appt_at % 86_400
                if appt_at < entered:
                    appt_at += 86_400
                outcome = rnd()
                if appt_at + 5400 > now:  # not sat yet (a sale is signed 90 minutes in)
                    disposition, sat, sold = "", "false", "false"
                elif outcome < 0.3:
                    disposition, sat, sold = "Sold", "true", "true"
                elif outcome < 0.55:
                    disposition, sat, sold = "Demo No Sale", "true", "false"
                elif outcome < 0.7:
                    disposition, sat, sold = "One Leg", "false", "false"
                elif outcome < 0.85:
                    disposition, sat, sold = "Not Home", "false", "false"
                else:
                    disposition, sat, sold = "Reset", "false", "false"
                apptdate = fmt(appt_at) if rnd() >= 0.01 else DELPHI_ZERO_DATE_WITH_TIME
                gsa = float(int(4_000 + rnd() * 26_000)) if sold == "true" else 0.0
                lead.update(
                    disposition=disposition,
                    salesrepname=rep,
                    apptset="true",
                    apptdate=apptdate,
                    sat=sat,
                    sold=sold,
                    gsa=gsa,
                )
                if appt_at + 7200 <= now:  # the result is keyed in within two hours of the visit
                    appt_changed = appt_at + int(rnd() * 7200)
                else:  # still ahead; last touched when it was booked or rescheduled
                    appt_changed = max(entered, now - int(rnd() * span))
                lead["appointments"].append(
                    {
                        "id": ids.next_appt(),
                        "apptdate": apptdate,
                        "salesrepname": rep,
                        "disposition": disposition,
                        "sat": sat,
                        "sold": sold,
                        "gsa": gsa,
                        "dateentered": fmt(entered),
                        "lastchangedon": fmt(appt_changed),
                    }
                )
                if sold == "true":
                    n_jobs = 1 if rnd() < 0.9 else 2
                    contract = appt_at + 5400
                    for j in range(n_jobs):
                        amount = gsa if n_jobs == 1 else round(gsa / 2, 2)
                        reached = 1 + int(rnd() * len(MILESTONES))
                        job = empty_job(ids.next_job())
                        job.update(
                            jobstatus=JOB_STATUSES[min(reached + j, len(JOB_STATUSES) - 1)],
                            grossamount=amount,
                            gsa=amount,
                            salesrepname=rep,
                            entrydate=midnight(appt_at),
                            contractdate=fmt(contract),
                            lastchangedon=fmt(max(contract, now - int(rnd() * span))),
                            brn_id=brn_id,
                            branch=branch,
                            milestones=_milestones(t, contract, reached, rep, now),
                        )
                        if rnd() < 0.3:
                            text = PRODUCTION_NOTE_TEXTS[int(rnd() * len(PRODUCTION_NOTE_TEXTS))]
                            job["notes"].append(
                                _note(text, "job", "Production", "Installer", job["lastchangedon"])
                            )
                        lead["jobs"].append(job)
            elif rnd() < 0.5:
                lead["disposition"] = "Not Interested"
            if rnd() < 0.25:
                text = NOTE_TEXTS[int(rnd() * len(NOTE_TEXTS))]
                lead["notes"].append(_note(text, "ils", "Sales", rep, lead["lastchangedon"]))
            p["leads"].append(lead)
        if p["lastchanged"] is None and not p["leads"]:
            # Null lastchanged is kept only where a lead's lastchangedon stands in for it (the
            # seed's fallback chain); a prospect with no change stamp at all would be invisible
            # to every date-window read.
            p["lastchanged"] = fmt(max(added, now - span // 3))
        out.append(p)

    return SeedData(out, ids.cst + 1, ids.lead + 1, ids.job + 1, ids.appt + 1)


def anchor_default() -> datetime:
    """The real time now, to the second (the default start of the emulator clock)."""
    return datetime.now(UTC).replace(microsecond=0)
