"""LeadPerfection mapping, one test per sentence of seed 001's triggers, combinations and
"Hatch Opportunities to LeadPerfection Field Mapping" table. Prospects are shaped as GetLead
returns them (crm-apis.md §2.5): naive US-Eastern stamps, string flags, Delphi zero dates."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from models.mappings.leadperfection import (
    LEAD_AND_PROSPECT,
    PROSPECT_ONLY,
    Combination,
    combinations,
    lp_bool,
    lp_timestamp,
    map_combination,
    map_prospects,
)
from models.mappings.servicetitan import PLACEHOLDER_EMAIL_DETAIL
from models.standard import MappingError

Record = dict[str, Any]
EASTERN = ZoneInfo("America/New_York")
# The window of a sync that began at 2025-04-16 17:00 New York time (EDT, UTC-4).
WINDOW_START = datetime(2025, 4, 16, 20, 40, tzinfo=UTC)
WINDOW_END = datetime(2025, 4, 16, 21, 0, tzinfo=UTC)
IN_WINDOW = "2025-04-16T16:55:00"  # 20:55 UTC
BEFORE_WINDOW = "2025-04-10T09:00:00"


def _lead(**overrides: Any) -> Record:
    lead: Record = {
        "id": 2000001,
        "source": "Internet",
        "disposition": "Demo No Sale",
        "salesrepname": "Pat Morgan",
        "apptset": "true",
        "sat": "true",
        "sold": "false",
        "apptdate": "2025-04-12T10:00:00",
        "gsa": 0.0,
        "entrydate": "2025-04-10T00:00:00",
        "dateentered": "2025-04-10T09:00:00",
        "lastchangedon": IN_WINDOW,
        "notes": [],
        "jobs": [],
        "appointments": [],
    }
    lead.update(overrides)
    return lead


def _prospect(**overrides: Any) -> Record:
    prospect: Record = {
        "cst_id": 100001,
        "firstname": " Ann ",
        "lastname": "Lee",
        "address1": "1 Main St",
        "phone1": "(407) 555-0101",
        "phone2": "",
        "altphones": [],
        "email": " Ann.Lee@Example.com ",
        "dateadded": "2025-04-10T08:30:00",
        "lastchanged": "2025-04-15T12:00:00",
        "notes": [],
        "calls": [],
        "leads": [_lead()],
    }
    prospect.update(overrides)
    return prospect


def _map(prospect: Record, **kwargs: Any) -> Any:
    return map_combination(Combination(prospect, LEAD_AND_PROSPECT), tz=EASTERN, **kwargs)


def _page(*prospects: object, **kwargs: Any) -> Any:
    return map_prospects(
        list(prospects), window_start=WINDOW_START, window_end=WINDOW_END, tz=EASTERN, **kwargs
    )


def _et(local: str) -> datetime:
    return datetime.fromisoformat(local).replace(tzinfo=EASTERN).astimezone(UTC)


# --- standard fields -------------------------------------------------------------------------


def test_email_is_prospect_email() -> None:
    assert _map(_prospect()).email == "ann.lee@example.com"


def test_external_id_is_prospect_leads_0_id() -> None:
    assert _map(_prospect()).external_id == "2000001"


def test_external_contact_id_is_prospect_cst_id() -> None:
    assert _map(_prospect()).external_contact_id == "100001"


def test_external_created_at_is_prospect_dateadded_read_in_the_integrations_time_zone() -> None:
    opp = _map(_prospect())
    assert opp.external_created_at == datetime(2025, 4, 10, 12, 30, tzinfo=UTC)  # EDT is UTC-4
    chicago = map_combination(Combination(_prospect(), PROSPECT_ONLY), tz=ZoneInfo("US/Central"))
    assert chicago.external_created_at == datetime(2025, 4, 10, 13, 30, tzinfo=UTC)


def test_external_updated_at_is_prospect_lastchanged() -> None:
    assert _map(_prospect()).external_updated_at == _et("2025-04-15T12:00:00")


@pytest.mark.parametrize("missing", [None, "", "1899-12-30T00:00:00", "1900-01-01T14:00:00"])
def test_external_updated_at_is_leads_0_lastchangedon_if_lastchanged_is_missing(
    missing: str | None,
) -> None:
    opp = _map(_prospect(lastchanged=missing))
    assert opp.external_updated_at == _et(IN_WINDOW)


def test_external_updated_at_is_leads_0_dateentered_if_lastchangedon_is_missing() -> None:
    opp = _map(_prospect(lastchanged=None, leads=[_lead(lastchangedon=None)]))
    assert opp.external_updated_at == _et("2025-04-10T09:00:00")


def test_external_updated_at_is_leads_0_jobs_0_contractdate_if_dateentered_is_missing() -> None:
    jobs = [{"id": 5, "contractdate": "2025-04-11T15:00:00"}, {"id": 6, "contractdate": None}]
    lead = _lead(lastchangedon=None, dateentered="1899-12-30T00:00:00", jobs=jobs)
    opp = _map(_prospect(lastchanged=None, leads=[lead]))
    assert opp.external_updated_at == _et("2025-04-11T15:00:00")


def test_external_updated_at_is_leads_0_appointments_0_lastchangedon_if_contractdate_missing() -> (
    None
):
    appts = [{"id": 8, "lastchangedon": "2025-04-12T11:00:00"}]
    lead = _lead(lastchangedon=None, dateentered=None, jobs=[{"id": 5}], appointments=appts)
    opp = _map(_prospect(lastchanged=None, leads=[lead]))
    assert opp.external_updated_at == _et("2025-04-12T11:00:00")


def test_external_updated_at_with_every_fallback_missing_is_a_missing_field() -> None:
    lead = _lead(lastchangedon=None, dateentered=None)
    with pytest.raises(MappingError, match=r"missing External Updated At \(Prospect.lastchanged"):
        _map(_prospect(lastchanged=None, leads=[lead]))


def test_first_name_is_prospect_firstname_and_last_name_prospect_lastname() -> None:
    opp = _map(_prospect())
    assert (opp.first_name, opp.last_name) == ("Ann", "Lee")


def test_phone_is_prospect_phone1() -> None:
    assert _map(_prospect()).phone == "+14075550101"


def test_status_is_prospect_leads_0_disposition() -> None:
    assert _map(_prospect()).status == "Demo No Sale"


def test_a_lead_without_a_result_yet_has_no_status_and_still_syncs() -> None:
    assert _map(_prospect(leads=[_lead(disposition="")])).status is None


# --- missing fields --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": ""}, "Prospect.email"),
        ({"email": None}, "Prospect.email"),
        ({"firstname": "  "}, "Prospect.firstname"),
        ({"lastname": None}, "Prospect.lastname"),
        ({"phone1": ""}, "Prospect.phone1"),
        ({"dateadded": "1899-12-30T14:00:00"}, "Prospect.dateadded"),
        ({"cst_id": None}, "Prospect.cst_id"),
        ({"leads": []}, "Prospect.leads[0].id"),
        ({"leads": [_lead(disposition=None)]}, "Prospect.leads[0].disposition"),
    ],
)
def test_a_record_missing_a_field_mapped_to_a_standard_field_is_not_synced_naming_the_field(
    change: Record, field: str
) -> None:
    with pytest.raises(MappingError) as caught:
        _map(_prospect(**change))
    assert "missing " in str(caught.value) and field in str(caught.value)


def test_the_reason_names_every_missing_field_and_the_record() -> None:
    with pytest.raises(MappingError) as caught:
        _map(_prospect(email="", phone1=None))
    assert str(caught.value) == (
        "prospect 100001, lead 2000001: missing Prospect.email, Prospect.phone1"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"email": "n/a"}, "Prospect.email is not an address: 'n/a'"),
        ({"phone1": "555-1234"}, "Prospect.phone1 is not a phone number: '555-1234'"),
        ({"dateadded": "yesterday"}, "Prospect.dateadded is not a timestamp: 'yesterday'"),
        ({"lastchanged": "soon"}, "Prospect.lastchanged is not a timestamp: 'soon'"),
    ],
)
def test_a_value_that_cannot_be_the_field_is_named_as_malformed(
    change: Record, message: str
) -> None:
    with pytest.raises(MappingError, match=message):
        _map(_prospect(**change))


def test_missing_fields_are_rejected_with_the_prospect_and_the_rest_of_the_page_syncs() -> None:
    good = _prospect(cst_id=7, leads=[_lead(id=70)])
    bad = _prospect(cst_id=8, email="", leads=[_lead(id=80)])
    leadless = _prospect(cst_id=9, leads=[], lastchanged=IN_WINDOW)

    opps, rejects = _page(good, bad, leadless, "junk")

    assert [o.external_id for o in opps] == ["70"]
    assert [(r.external_id, r.reason) for r in rejects] == [
        ("80", "prospect 8, lead 80: missing Prospect.email"),
        (
            "cst:9",
            "prospect 9: missing Prospect.leads[0].id, Prospect.leads[0].disposition",
        ),
        (None, "prospect is not an object"),
    ]
    assert rejects[0].payload["cst_id"] == 8 and rejects[0].stream == "prospects"


# --- triggers and combinations ---------------------------------------------------------------


def test_a_lead_updated_in_the_window_syncs_the_lead_and_its_prospect() -> None:
    (found,) = combinations(
        _prospect(), window_start=WINDOW_START, window_end=WINDOW_END, tz=EASTERN
    )
    assert found.kind == LEAD_AND_PROSPECT
    assert found.prospect["leads"][0]["id"] == 2000001
    assert found.prospect["firstname"] == " Ann "


@pytest.mark.parametrize(
    "lead",
    [
        _lead(lastchangedon=BEFORE_WINDOW, dateentered=IN_WINDOW),
        _lead(lastchangedon=BEFORE_WINDOW, jobs=[{"id": 5, "lastchangedon": IN_WINDOW}]),
        _lead(lastchangedon=None, appointments=[{"id": 8, "lastchangedon": IN_WINDOW}]),
    ],
    ids=["created", "job", "appointment"],
)
def test_a_lead_created_or_with_a_job_or_appointment_changed_in_the_window_is_updated(
    lead: Record,
) -> None:
    (found,) = combinations(
        _prospect(leads=[lead]), window_start=WINDOW_START, window_end=WINDOW_END, tz=EASTERN
    )
    assert found.kind == LEAD_AND_PROSPECT


def test_a_prospect_updated_in_the_window_not_associated_with_a_synced_lead_syncs_alone() -> None:
    second = _lead(id=2000002, lastchangedon=BEFORE_WINDOW)
    prospect = _prospect(lastchanged=IN_WINDOW, leads=[_lead(lastchangedon=BEFORE_WINDOW), second])

    (found,) = combinations(prospect, window_start=WINDOW_START, window_end=WINDOW_END, tz=EASTERN)
    opp = map_combination(found, tz=EASTERN)

    assert found.kind == PROSPECT_ONLY
    assert opp.external_id == "2000001"  # the table's Prospect.leads[0]
    assert "Prospect.leads[1].id" not in opp.details


def test_several_leads_updated_in_the_window_give_one_opportunity_per_lead_and_prospect() -> None:
    leads = [_lead(id=1), _lead(id=2, disposition="Sold"), _lead(id=3, lastchangedon=BEFORE_WINDOW)]

    opps, rejects = _page(_prospect(leads=leads))

    assert rejects == []
    assert [(o.external_id, o.status) for o in opps] == [("1", "Demo No Sale"), ("2", "Sold")]
    assert {o.external_contact_id for o in opps} == {"100001"}
    assert opps[1].details["Prospect.leads[0].id"] == 2


def test_a_lead_with_several_prospects_gives_one_opportunity_for_every_combination() -> None:
    shared = _lead(id=2000009)
    first = _prospect(cst_id=1, dateadded="2025-04-01T10:00:00", leads=[shared])
    second = _prospect(
        cst_id=2,
        firstname="Bob",
        phone1="407-555-0102",
        email="bob@example.com",
        dateadded="2025-04-02T10:00:00",
        leads=[copy.deepcopy(shared)],
    )

    opps, _ = _page(first, second)

    assert [(o.external_id, o.external_contact_id) for o in opps] == [
        ("2000009", "1"),
        ("2000009", "2"),
    ]
    # Same External ID, different External Created At: two opportunities (seed "Opp Sorting").
    assert opps[0].external_created_at != opps[1].external_created_at


def test_a_call_result_alone_is_not_an_update_that_triggers_a_lead() -> None:
    lead = _lead(lastchangedon=BEFORE_WINDOW)
    calls = [{"calldatetime": IN_WINDOW, "resultcode": "NA"}]
    prospect = _prospect(lastchanged=BEFORE_WINDOW, leads=[lead], calls=calls)

    (found,) = combinations(prospect, window_start=WINDOW_START, window_end=WINDOW_END, tz=EASTERN)

    assert found.kind == PROSPECT_ONLY  # LP returned it, but no Lead changed


def test_the_window_includes_both_of_its_ends() -> None:
    at_start = _lead(lastchangedon="2025-04-16T16:40:00")
    at_end = _lead(id=2, lastchangedon="2025-04-16T17:00:00")
    after = _lead(id=3, lastchangedon="2025-04-16T17:00:01")

    found = combinations(
        _prospect(leads=[at_start, at_end, after]),
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        tz=EASTERN,
    )

    assert [c.prospect["leads"][0]["id"] for c in found] == [2000001, 2]


# --- details and values ----------------------------------------------------------------------


def test_details_hold_every_field_in_the_seeds_notation_with_lp_values_converted() -> None:
    job = {
        "id": 5000001,
        "brn_id": "ORL  ",
        "contractdate": "2025-04-11T15:00:00",
        "milestones": [{"mdt_id": 1, "actdate": None, "estdate": "2025-04-12T00:00:00"}],
    }
    appointment = {"id": 8000001, "apptdate": "1899-12-30T14:00:00", "sat": "FALSE"}
    lead = _lead(jobs=[job], appointments=[appointment])
    prospect = _prospect(notes=["Bare string note", {"notes": "true", "enteredby": "Office"}])
    prospect["leads"] = [lead]

    details = _map(prospect).details

    assert details["Prospect.email"] == " Ann.Lee@Example.com "  # raw value, as LP sent it
    assert details["Prospect.leads[0].id"] == 2000001
    assert details["Prospect.leads[0].jobs[0].contractdate"] == "2025-04-11T19:00:00Z"
    assert details["Prospect.leads[0].jobs[0].milestones[0].estdate"] == "2025-04-12T04:00:00Z"
    assert details["Prospect.leads[0].jobs[0].milestones[0].actdate"] is None
    assert details["Prospect.leads[0].jobs[0].brn_id"] == "ORL  "
    assert details["Prospect.leads[0].appointments[0].apptdate"] is None  # Delphi zero date
    assert details["Prospect.leads[0].apptset"] is True
    assert details["Prospect.leads[0].appointments[0].sat"] is False
    assert details["Prospect.notes[0]"] == "Bare string note"
    assert details["Prospect.notes[1].enteredby"] == "Office"
    assert details["Prospect.altphones"] == [] and details["Prospect.calls"] == []
    orjson.dumps(details)  # JSON-serialisable as it is


def test_placeholder_email_is_kept_and_flagged_so_it_never_matches_a_contact() -> None:
    opp = _map(_prospect(email="None@None.com"), placeholder_emails=frozenset({"none@none.com"}))
    assert opp.email == "none@none.com"
    assert opp.details[PLACEHOLDER_EMAIL_DETAIL] is True
    assert PLACEHOLDER_EMAIL_DETAIL not in _map(_prospect()).details


def test_lp_flags_and_zero_dates_read_as_booleans_and_missing() -> None:
    assert (lp_bool("true"), lp_bool("False"), lp_bool("Sold"), lp_bool(1)) == (
        True,
        False,
        "Sold",
        1,
    )
    assert lp_timestamp("1899-12-30T14:00:00", EASTERN) is None
    assert lp_timestamp("1900-01-01T00:00:00", EASTERN) is None
    assert lp_timestamp("2025-01-15T09:00:00", EASTERN) == datetime(2025, 1, 15, 14, tzinfo=UTC)
    assert lp_timestamp("2025-01-15T09:00:00Z", EASTERN) == datetime(2025, 1, 15, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    "local",
    [
        "2025-03-09T01:59:59",  # EST, just before the spring gap
        "2025-03-09T03:00:00",  # EDT, just after it
        "2025-11-02T01:30:00",  # the repeated autumn hour: read as its first (EDT) occurrence
        "2025-11-02T02:00:00",  # EST
        "2025-07-04T23:59:59.5",
    ],
)
def test_naive_timestamps_are_read_in_the_integrations_time_zone_on_both_sides_of_dst(
    local: str,
) -> None:
    expected = datetime.fromisoformat(local).replace(tzinfo=EASTERN).astimezone(UTC)
    prospect = _prospect(lastchanged=local)

    opp = _map(prospect)

    assert opp.external_updated_at == expected
    detail = opp.details["Prospect.lastchanged"]
    assert datetime.fromisoformat(detail.replace("Z", "+00:00")) == expected


@pytest.mark.parametrize(
    ("email", "flagged"),
    [
        pytest.param("noemail@tenant.example", True, id="glob-local-part"),
        pytest.param("NoEmail@Other.Example", True, id="glob-any-case"),
        pytest.param("anyone@example.com", True, id="glob-domain"),
        pytest.param("none@none.com", True, id="exact"),
        pytest.param("ann@lee.com", False, id="real"),
    ],
)
def test_placeholder_email_patterns_flag_the_email_like_the_other_crms(
    email: str, flagged: bool
) -> None:
    """Seed 002's placeholder filter takes addresses or globs (``noemail@*``) for every CRM,
    as models.normalize.placeholder_matcher reads them; LeadPerfection too."""
    patterns = frozenset({"noemail@*", "*@example.com", "None@None.com "})
    opp = _map(_prospect(email=email), placeholder_emails=patterns)
    assert (PLACEHOLDER_EMAIL_DETAIL in opp.details) is flagged
