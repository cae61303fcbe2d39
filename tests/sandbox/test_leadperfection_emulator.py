"""The LeadPerfection emulator speaks LP's wire format (crm-apis.md §2, §5.2) over real HTTP.

Every test talks to ``run_emulator`` through httpx with form-encoded bodies, the way the LP
connector does, and checks what a connector depends on: auth, paging, the date filter, the
write-then-read-back contract of AddNotes, and each fault kind.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from sandbox.leadperfection import (
    DELPHI_ZERO_DATE_WITH_TIME,
    WRITE_OK,
    LPClientSpec,
    LPEmulatorState,
    RunningEmulator,
    run_emulator,
)

APPKEY = "0f8fad5b-d9cb-469f-a165-70867728950e"
SPEC = LPClientSpec(
    clientid="wq55a", username="api.user", password="pw", appkey=APPKEY, prospects=60, seed=1
)
# 17:00:00 in New York (EDT, UTC-4): the local wall-clock time LP writes.
START = datetime(2025, 4, 16, 21, 0, 0, tzinfo=UTC)
NOW_LOCAL = "2025-04-16T17:00:00"
NAIVE_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
DENIED = {"Message": "Authorization has been denied for this request."}
GET_LEAD = "/api/Customers/GetLead"
ADD_NOTES = "/api/SalesApi/AddNotes"

# Fixture prospects (sandbox/leadperfection/data.py, fixture_prospects).
ZERO_DATE, SEVERAL_LEADS, NO_LEADS, NO_LASTCHANGED, NO_EMAIL = (
    100001,
    100002,
    100003,
    100004,
    100005,
)
CHILD_ONLY_CHANGE = 100007


def token_form(spec: LPClientSpec = SPEC, **overrides: str) -> dict[str, str]:
    form = {
        "grant_type": "password",
        "username": spec.username,
        "password": spec.password,
        "clientid": spec.clientid,
        "appkey": spec.appkey,
    }
    form.update(overrides)
    return form


class Lp:
    """A minimal LP client: form-encoded POSTs with a bearer token."""

    def __init__(self, http: httpx.Client, spec: LPClientSpec = SPEC) -> None:
        self.http = http
        self.spec = spec
        self.token = self.new_token()

    def new_token(self) -> str:
        response = self.http.post("/token", data=token_form(self.spec))
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        if "json" not in kw:
            kw["data"] = data or {}
        return self.http.post(path, headers=headers, **kw)

    def read(self, path: str, **params: Any) -> list[dict[str, Any]]:
        response = self.post(path, params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        items: list[dict[str, Any]] = response.json()
        assert isinstance(items, list)
        return items

    def prospect(self, cst_id: int) -> dict[str, Any]:
        [found] = self.read(GET_LEAD, cst_id=cst_id)
        return found

    def all_pages(self, page_size: int, **params: Any) -> list[dict[str, Any]]:
        """LP paging as connectors do it: StartIndex += PageSize until a short page."""
        out: list[dict[str, Any]] = []
        start = 1
        while True:
            page = self.read(GET_LEAD, PageSize=page_size, StartIndex=start, **params)
            out.extend(page)
            if len(page) < page_size:
                return out
            start += page_size


@pytest.fixture(scope="module")
def served() -> Iterator[RunningEmulator]:
    with run_emulator([SPEC], port=0, start_time=START, freeze_clock=True) as running:
        yield running


@pytest.fixture
def emu(served: RunningEmulator) -> RunningEmulator:
    """The module's emulator, reset to its seed, start time and an empty log for each test."""
    served.state.reset()
    return served


@pytest.fixture
def http(emu: RunningEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.url, timeout=5) as client:
        yield client


@pytest.fixture
def lp(http: httpx.Client) -> Lp:
    return Lp(http)


def timestamps(prospect: dict[str, Any]) -> list[str]:
    """Every change stamp of a prospect, found independently of the emulator's index."""
    out = [prospect["lastchanged"]]
    for lead in prospect["leads"]:
        out.append(lead["lastchangedon"])
        out += [child["lastchangedon"] for child in lead["jobs"] + lead["appointments"]]
    return [ts for ts in out if ts]


# --- auth ----------------------------------------------------------------------------------------


def test_token_is_issued_for_valid_form_credentials(http: httpx.Client) -> None:
    response = http.post("/token", data=token_form())

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86399
    assert len(body["access_token"]) > 20


@pytest.mark.parametrize("field", ["username", "password", "clientid", "appkey"])
def test_token_with_a_wrong_credential_is_invalid_grant(http: httpx.Client, field: str) -> None:
    response = http.post("/token", data=token_form(SPEC, **{field: "wrong"}))

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "The user name or password is incorrect.",
    }


def test_token_needs_password_grant_sent_as_a_form(http: httpx.Client) -> None:
    wrong_grant = http.post("/token", data=token_form(grant_type="client_credentials"))
    as_json = http.post("/token", json=token_form())

    assert wrong_grant.status_code == as_json.status_code == 400
    assert wrong_grant.json() == as_json.json() == {"error": "unsupported_grant_type"}


@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic YXBpOnB3"])
def test_data_call_without_a_valid_bearer_token_is_denied(
    http: httpx.Client, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = http.post(GET_LEAD, data={"PageSize": "1"}, headers=headers)

    assert response.status_code == 401
    assert response.json() == DENIED


def test_token_expires_by_the_emulator_clock(emu: RunningEmulator, lp: Lp) -> None:
    emu.state.advance_clock(86_398)
    assert lp.post(GET_LEAD, {"PageSize": "1"}).status_code == 200

    emu.state.advance_clock(2)
    expired = lp.post(GET_LEAD, {"PageSize": "1"})
    lp.token = lp.new_token()

    assert expired.status_code == 401
    assert expired.json() == DENIED
    assert lp.post(GET_LEAD, {"PageSize": "1"}).status_code == 200


def test_a_user_without_apisecurity_signs_in_but_every_data_call_is_denied(
    emu: RunningEmulator, http: httpx.Client
) -> None:
    """Seed 001, Requirements: Function Level Security gates the API, not the sign-in."""
    revoked = http.post("/__emulator/clients/wq55a/api-security", json={"granted": False})
    lp = Lp(http)  # /token still answers 200
    read = lp.post(GET_LEAD, {"PageSize": "1"})
    write = lp.post(ADD_NOTES, {"rectype": "cst", "recid": str(NO_LEADS), "notes": "x"})
    fresh_token = Lp(http).post(GET_LEAD, {"PageSize": "1"})
    granted = http.post("/__emulator/clients/wq55a/api-security", json={"granted": True})

    assert revoked.json() == {"granted": False, "denied": ["*"], "status": 401}
    assert read.status_code == write.status_code == fresh_token.status_code == 401
    assert read.json() == write.json() == DENIED
    assert read.headers["www-authenticate"] == "Bearer"
    assert emu.state.get_notes() == [], "a refused write stores nothing"
    assert granted.json()["granted"] is True
    assert lp.post(GET_LEAD, {"PageSize": "1"}).status_code == 200


def test_apisecurity_can_be_refused_per_function_and_as_a_403(emu: RunningEmulator, lp: Lp) -> None:
    emu.state.revoke_api_security(None, functions=["AddNotes"], status=403)
    write = lp.post(ADD_NOTES, {"rectype": "cst", "recid": str(NO_LEADS), "notes": "x"})

    assert write.status_code == 403 and write.json() == DENIED
    assert lp.post(GET_LEAD, {"PageSize": "1"}).status_code == 200
    assert emu.state.stats()["counters"]["api_security_refused"] == 1


# --- reads ---------------------------------------------------------------------------------------


def test_getlead_pages_reach_every_prospect_in_the_window_exactly_once() -> None:
    spec = LPClientSpec("pg01a", "api.user", "pw", APPKEY, prospects=237, seed=7)
    window = {"startdate": "2025-04-06T17:00:00", "enddate": "2025-04-16 17:00"}
    with run_emulator(spec, start_time=START, freeze_clock=True) as running:
        expected = [
            p["cst_id"]
            for p in running.state.get_prospects(spec.clientid)
            if any("2025-04-06T17:00:00" <= ts <= NOW_LOCAL for ts in timestamps(p))
        ]
        with httpx.Client(base_url=running.url, timeout=5) as http:
            lp = Lp(http, spec)
            seen = [p["cst_id"] for p in lp.all_pages(25, **window)]
            first_page = lp.read(GET_LEAD, **window)

    assert 100 < len(expected) < 237  # several pages, and the window really filters
    assert seen == expected  # each exactly once, in stable cst_id order
    assert len(first_page) == 10  # PageSize defaults to 10, StartIndex to 1
    assert [p["cst_id"] for p in first_page] == expected[:10]


def test_date_filter_includes_prospects_changed_only_through_a_child(
    emu: RunningEmulator, lp: Lp
) -> None:
    recent = lp.read(GET_LEAD, startdate="2025-04-16T16:50:00", enddate=NOW_LOCAL, PageSize=500)
    by_id = {p["cst_id"]: p for p in recent}

    child_only = by_id[CHILD_ONLY_CHANGE]
    assert child_only["lastchanged"] < "2025-04-16"
    assert child_only["leads"][0]["jobs"][0]["lastchangedon"] >= "2025-04-16T16:50:00"
    assert by_id[NO_LASTCHANGED]["lastchanged"] is None
    assert all(any(ts >= "2025-04-16T16:50:00" for ts in timestamps(p)) for p in recent)

    old = next(
        p for p in emu.state.get_prospects() if p["leads"] and max(timestamps(p)) < "2025-04-15"
    )
    emu.state.advance_clock(30)
    emu.state.upsert_job(None, old["leads"][0]["id"], {"jobstatus": "Permit"})
    later = lp.read(GET_LEAD, startdate="2025-04-16T17:00:01", PageSize=500)

    assert [p["cst_id"] for p in later] == [old["cst_id"]]
    assert later[0]["lastchanged"] == old["lastchanged"]
    assert later[0]["leads"][0]["jobs"][-1]["lastchangedon"] == "2025-04-16T17:00:30"


def test_a_date_only_enddate_means_midnight_so_today_needs_tomorrow(lp: Lp) -> None:
    until_today = lp.read(GET_LEAD, startdate="2025-04-16", enddate="2025-04-16", PageSize=500)
    until_tomorrow = lp.read(GET_LEAD, startdate="2025-04-16", enddate="2025-04-17", PageSize=500)

    assert until_today == []
    assert {NO_LEADS, CHILD_ONLY_CHANGE} <= {p["cst_id"] for p in until_tomorrow}


def test_us_style_and_utc_dates_mean_the_same_eastern_instant(lp: Lp) -> None:
    local = lp.read(GET_LEAD, startdate="2025-04-16T16:55:00", PageSize=500)
    us_style = lp.read(GET_LEAD, startdate="4/16/2025 4:55 PM", PageSize=500)
    utc = lp.read(GET_LEAD, startdate="2025-04-16T20:55:00Z", PageSize=500)

    assert local and local == us_style == utc


def test_getlead_speaks_lp_wire_format(lp: Lp) -> None:
    prospects = {p["cst_id"]: p for p in lp.read(GET_LEAD, PageSize=12)}

    zero = prospects[ZERO_DATE]["leads"][0]
    assert zero["apptdate"] == DELPHI_ZERO_DATE_WITH_TIME == "1899-12-30T14:00:00"
    assert (zero["apptset"], zero["sat"], zero["sold"]) == ("true", "false", "false")
    several = prospects[SEVERAL_LEADS]
    assert len(several["leads"]) == 3
    assert len(several["leads"][0]["jobs"]) == 2
    job = several["leads"][0]["jobs"][0]
    assert job["brn_id"] == "ORL  "
    assert job["milestones"][0]["mdt_id"] == 1
    assert several["altphones"] == [{"phone": "407-555-0152"}]
    assert several["leads"][0]["entrydate"].endswith("T00:00:00")
    assert prospects[NO_LEADS]["leads"] == []
    assert prospects[NO_LASTCHANGED]["lastchanged"] is None
    assert prospects[NO_LASTCHANGED]["leads"][0]["lastchangedon"]
    assert prospects[NO_EMAIL]["email"] == ""
    for p in prospects.values():
        assert NAIVE_TS.match(p["dateadded"])
        for ts in timestamps(p):
            assert NAIVE_TS.match(ts), ts


def test_prospect_data_and_flat_endpoints_return_arrays(lp: Lp) -> None:
    [extended] = lp.read("/api/Customers/GetProspectData", cst_id=SEVERAL_LEADS)
    leads = lp.read("/api/Leads/GetLeadData", cst_id=SEVERAL_LEADS, milestones="true")
    appts = lp.read("/api/Customers/GetSalesAppointments", cst_id=ZERO_DATE)
    jobs = lp.read("/api/Customers/GetJobStatusChanges", startdate="2025-04-16T16:50:00")

    assert extended["cst_id"] == SEVERAL_LEADS and "address2" in extended
    assert [lead["cst_id"] for lead in leads] == [SEVERAL_LEADS] * 3
    assert leads[0]["milestones"] and "jobs" not in leads[0]
    assert appts[0]["apptdate"] == DELPHI_ZERO_DATE_WITH_TIME and appts[0]["cst_id"] == ZERO_DATE
    assert CHILD_ONLY_CHANGE in {job["cst_id"] for job in jobs}


def test_notes_list_endpoints_do_not_exist(lp: Lp) -> None:
    for path in ("/api/Customers/GetNotes", "/api/Customers/GetLeadNotes"):
        response = lp.post(path, {"cst_id": ZERO_DATE})
        assert response.status_code == 404
        assert response.json()["Message"].startswith("No HTTP resource was found")


def test_paths_and_parameter_names_are_case_insensitive_and_json_is_tolerated(lp: Lp) -> None:
    lower = lp.read("/api/customers/getlead/", CST_ID=NO_LEADS)
    as_json = lp.post(GET_LEAD, json={"cst_id": NO_LEADS})
    wrong_method = lp.http.get(GET_LEAD, headers={"Authorization": f"Bearer {lp.token}"})

    assert [p["cst_id"] for p in lower] == [NO_LEADS]
    assert [p["cst_id"] for p in as_json.json()] == [NO_LEADS]
    assert wrong_method.status_code == 405


# --- writes --------------------------------------------------------------------------------------


def test_add_notes_on_a_prospect_is_read_back_and_bumps_lastchanged(
    emu: RunningEmulator, lp: Lp
) -> None:
    emu.state.advance_clock(60)
    response = lp.post(
        ADD_NOTES, {"rectype": "cst", "recid": NO_LEADS, "notes": "Texted: on my way", "nct_id": 1}
    )
    prospect = lp.prospect(NO_LEADS)
    in_window = lp.read(GET_LEAD, startdate="2025-04-16T17:00:30", PageSize=500)

    assert response.status_code == 200
    assert response.text == '"UPDATED SUCCESSFULLY!"' and response.json() == WRITE_OK
    note = prospect["notes"][-1]
    assert note["notes"] == "Texted: on my way"
    assert (note["rectype"], note["category"], note["enteredon"]) == (
        "cst",
        "General",
        "2025-04-16T17:01:00",
    )
    assert prospect["lastchanged"] == "2025-04-16T17:01:00"
    assert [p["cst_id"] for p in in_window] == [NO_LEADS]
    assert [n["notes"] for n in emu.state.get_notes(rectype="cst", recid=NO_LEADS)] == [
        "Texted: on my way"
    ]


def test_add_notes_on_a_lead_or_job_lands_in_that_records_notes(
    emu: RunningEmulator, lp: Lp
) -> None:
    before = lp.prospect(CHILD_ONLY_CHANGE)
    lead_id = before["leads"][0]["id"]
    job_id = before["leads"][0]["jobs"][0]["id"]
    emu.state.advance_clock(5)

    lp.post(ADD_NOTES, {"rectype": "ils", "recid": lead_id, "notes": "lead note"})
    lp.post(ADD_NOTES, {"rectype": "job", "recid": job_id, "notes": "job note"})
    after = lp.prospect(CHILD_ONLY_CHANGE)

    lead, job = after["leads"][0], after["leads"][0]["jobs"][0]
    assert lead["notes"][-1]["notes"] == "lead note" and lead["notes"][-1]["rectype"] == "ils"
    assert job["notes"][-1]["notes"] == "job note"
    assert lead["lastchangedon"] == job["lastchangedon"] == "2025-04-16T17:00:05"
    assert after["lastchanged"] == before["lastchanged"]
    assert after["notes"] == before["notes"]


def test_add_notes_with_unknown_recid_answers_the_same_and_stores_nothing(
    emu: RunningEmulator, lp: Lp
) -> None:
    before = emu.state.get_prospects()
    responses = [
        lp.post(ADD_NOTES, {"rectype": rectype, "recid": 99_999_999, "notes": "lost"})
        for rectype in ("cst", "ils", "job")
    ]

    assert all(r.status_code == 200 and r.json() == WRITE_OK for r in responses)
    assert emu.state.get_notes() == []
    assert emu.state.get_prospects() == before


def test_add_notes_without_rectype_recid_or_text_is_an_invalid_request(lp: Lp) -> None:
    for form in (
        {"rectype": "xyz", "recid": NO_LEADS, "notes": "x"},
        {"rectype": "cst", "notes": "x"},
        {"rectype": "cst", "recid": NO_LEADS, "notes": ""},
    ):
        response = lp.post(ADD_NOTES, form)
        assert response.status_code == 400
        assert response.json() == {"Message": "The request is invalid."}


def test_call_history_is_read_back_in_calls_without_bumping_lastchanged(
    emu: RunningEmulator, lp: Lp
) -> None:
    before = lp.prospect(NO_LEADS)
    form = {
        "CustID": NO_LEADS,
        "EmpID": "2001",
        "CallDate": "2025-04-16T16:58:12",
        "ResultCode": "TX",
        "Phone": "4075550103",
        "CallType": "T",
        "CallQueueID": "",
        "Duration": "0",
        "RecordingURL": "",
    }
    response = lp.post("/api/Customers/AddCallHistory", form)
    after = lp.prospect(NO_LEADS)

    assert response.status_code == 200
    call = after["calls"][-1]
    assert call["calldatetime"] == "2025-04-16T16:58:12"
    assert (call["resultcode"], call["agent"], call["agentname"]) == ("TX", "2001", "Taylor Quinn")
    assert after["lastchanged"] == before["lastchanged"]  # LP: call results do not trigger a sync
    assert emu.state.get_call_logs(cst_id=NO_LEADS)[0]["phone"] == "4075550103"


@pytest.mark.parametrize("id_field", ["job_id", "jobid"])
def test_installer_job_note_is_read_back_on_the_job(
    emu: RunningEmulator, lp: Lp, id_field: str
) -> None:
    job_id = lp.prospect(CHILD_ONLY_CHANGE)["leads"][0]["jobs"][0]["id"]
    emu.state.advance_clock(7)

    response = lp.post(
        "/api/Installer/AddInstallerJobNotes", {id_field: job_id, "notes": "Crew: 8am"}
    )
    job = lp.prospect(CHILD_ONLY_CHANGE)["leads"][0]["jobs"][0]

    assert response.status_code == 200 and response.json() == WRITE_OK
    assert job["notes"][-1]["notes"] == "Crew: 8am"
    assert job["notes"][-1]["category"] == "Production"
    assert job["lastchangedon"] == "2025-04-16T17:00:07"
    assert [n["job_id"] for n in emu.state.get_production_notes()] == [job_id]


def test_upserted_records_are_served_with_fresh_change_stamps(emu: RunningEmulator, lp: Lp) -> None:
    emu.state.advance_clock(120)
    created = emu.state.upsert_prospect(
        "wq55a",
        {
            "firstname": "New",
            "lastname": "Person",
            "email": "new.person@example.com",
            "leads": [{"source": "TV", "apptset": True, "jobs": [{"grossamount": 100.0}]}],
        },
    )
    served = lp.prospect(created["cst_id"])
    emu.state.advance_clock(60)
    quiet = emu.state.upsert_prospect(
        "wq55a", {"cst_id": created["cst_id"], "phone1": "407-555-0199"}, touch=False
    )

    assert served == created
    assert served["lastchanged"] == served["dateadded"] == "2025-04-16T17:02:00"
    assert served["leads"][0]["apptset"] == "true"
    assert served["leads"][0]["jobs"][0]["lastchangedon"] == "2025-04-16T17:02:00"
    assert quiet["lastchanged"] == "2025-04-16T17:02:00"  # LP does not bump on phone edits


# --- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "content_type", "retry_after"),
    [(500, "application/json", None), (503, "text/html", None), (429, "application/json", "7")],
)
def test_status_fault_answers_once_then_recovers(
    emu: RunningEmulator, lp: Lp, status: int, content_type: str, retry_after: str | None
) -> None:
    emu.state.arm_fault("status", status=status, retry_after=7 if retry_after else None)

    failed = lp.post(GET_LEAD, {"PageSize": "1"})
    recovered = lp.post(GET_LEAD, {"PageSize": "1"})

    assert failed.status_code == status
    assert failed.headers["content-type"].startswith(content_type)
    assert failed.headers.get("retry-after") == retry_after
    if status == 500:
        assert failed.json() == {"Message": "An error has occurred."}
    assert recovered.status_code == 200


def test_latency_fault_delays_only_matching_routes(emu: RunningEmulator, lp: Lp) -> None:
    emu.state.arm_fault("latency", route="*/AddNotes", latency_ms=2500, times=None)

    started = time.perf_counter()
    lp.post(GET_LEAD, {"PageSize": "1"})
    fast = time.perf_counter() - started
    started = time.perf_counter()
    lp.post(ADD_NOTES, {"rectype": "cst", "recid": NO_LEADS, "notes": "slow"})
    slow = time.perf_counter() - started

    assert fast < 2.0  # generous: CI shares 2 cores
    assert slow >= 2.5


def test_drop_connection_breaks_the_read(emu: RunningEmulator, lp: Lp) -> None:
    emu.state.arm_fault("drop_connection", route=GET_LEAD)

    with pytest.raises(httpx.RemoteProtocolError):
        lp.post(GET_LEAD, {"PageSize": "5"})
    assert lp.post(GET_LEAD, {"PageSize": "5"}).status_code == 200


def test_drop_connection_after_the_write_leaves_the_note_stored(
    emu: RunningEmulator, lp: Lp
) -> None:
    emu.state.arm_fault("drop_connection", route=ADD_NOTES, phase="after")

    with pytest.raises(httpx.RemoteProtocolError):
        lp.post(ADD_NOTES, {"rectype": "cst", "recid": NO_LEADS, "notes": "did it land?"})
    assert lp.prospect(NO_LEADS)["notes"][-1]["notes"] == "did it land?"


def test_expire_token_fault_denies_until_the_client_reauthenticates(
    emu: RunningEmulator, lp: Lp
) -> None:
    emu.state.arm_fault("expire_token")

    denied = lp.post(GET_LEAD, {"PageSize": "1"})
    still_denied = lp.post(GET_LEAD, {"PageSize": "1"})
    lp.token = lp.new_token()

    assert denied.status_code == still_denied.status_code == 401
    assert denied.json() == DENIED
    assert lp.post(GET_LEAD, {"PageSize": "1"}).status_code == 200


def test_timeout_after_store_stores_the_note_but_the_client_times_out() -> None:
    # Its own server: the held reply must not outlive the test into a shared emulator.
    with (
        run_emulator(SPEC, start_time=START) as running,
        httpx.Client(base_url=running.url, timeout=5) as http,
    ):
        lp = Lp(http)
        running.state.arm_fault("timeout_after_store", route=ADD_NOTES, latency_ms=2_000)

        with pytest.raises(httpx.ReadTimeout):
            lp.post(
                ADD_NOTES, {"rectype": "cst", "recid": NO_LEADS, "notes": "ambiguous"}, timeout=0.3
            )
        assert lp.prospect(NO_LEADS)["notes"][-1]["notes"] == "ambiguous"
        assert len(running.state.get_notes()) == 1


def test_default_route_spares_the_token_endpoint(emu: RunningEmulator, http: httpx.Client) -> None:
    emu.state.arm_fault("status", status=500)
    token_ok = http.post("/token", data=token_form())
    emu.state.clear_faults()
    emu.state.arm_fault("status", status=503, route="/token")
    token_down = http.post("/token", data=token_form())

    assert token_ok.status_code == 200
    assert token_down.status_code == 503
    assert [f.kind for f in emu.state.faults()] == []


def test_rate_faults_fire_on_the_same_requests_for_the_same_seed() -> None:
    def pattern() -> list[bool]:
        state = LPEmulatorState(SPEC, start_time=START, fault_seed=3)
        state.arm_fault("status", status=503, rate=0.3)
        return [state.plan_faults(GET_LEAD).terminal is not None for _ in range(200)]

    first, second = pattern(), pattern()
    assert first == second
    assert 30 < sum(first) < 90


def test_request_log_and_control_api_over_http(
    emu: RunningEmulator, http: httpx.Client, lp: Lp
) -> None:
    armed = http.post("/__emulator/faults", json={"kind": "status", "status": 503}).json()
    failed = lp.post(GET_LEAD, {"PageSize": "2", "cst_id": NO_LEADS})
    clock = http.post("/__emulator/clock", json={"advance_seconds": 3600}).json()
    log = http.get("/__emulator/requests").json()
    notes = http.get("/__emulator/clients/wq55a/notes").json()

    assert armed["kind"] == "status" and failed.status_code == 503
    assert clock["now"].startswith("2025-04-16T22:00:00")
    assert log[0]["path"] == "/token" and log[0]["body"]["password"] == "***"
    assert log[0]["body"]["appkey"] == "***"
    assert log[-1]["faults"] == ["status"] and log[-1]["status"] == 503
    assert notes == []
    assert emu.state.stats()["by_status"] == {"200": 1, "503": 1}


# --- data generation -----------------------------------------------------------------------------


def test_seed_data_is_deterministic_for_a_seed_and_start_time() -> None:
    spec = LPClientSpec("det01", "u", "p", APPKEY, prospects=300, seed=42)

    first = LPEmulatorState(spec, start_time=START).get_prospects()
    again = LPEmulatorState(spec, start_time=START).get_prospects()
    other = LPEmulatorState(
        LPClientSpec("det01", "u", "p", APPKEY, prospects=300, seed=43), start_time=START
    ).get_prospects()

    assert first == again
    assert first != other
    assert first[:12] == other[:12]  # the hand-written fixtures do not depend on the seed
    assert all(ts <= NOW_LOCAL for p in first for ts in timestamps(p))
    assert all(p["lastchanged"] >= "2025-03-17T17:00:00" for p in first if p["lastchanged"])


def test_fifty_thousand_prospects_generate_and_serve_pages_fast() -> None:
    spec = LPClientSpec("big01", "api.user", "pw", APPKEY, prospects=50_000, seed=1)
    started = time.perf_counter()
    state = LPEmulatorState(spec, start_time=START, freeze_clock=True)
    generated = time.perf_counter() - started

    with run_emulator(spec, state=state) as running, httpx.Client(base_url=running.url) as http:
        response = http.post("/token", data=token_form(spec))
        headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
        window = {"startdate": "2025-03-01", "enddate": "2025-04-17", "PageSize": "500"}
        timings = []
        for start_index in (1, 501, 20_001, 45_001):
            started = time.perf_counter()
            page = http.post(GET_LEAD, data={**window, "StartIndex": start_index}, headers=headers)
            timings.append(time.perf_counter() - started)
            assert page.status_code == 200 and len(page.json()) == 500

    assert generated < 60
    assert max(timings) < 5.0, timings
