"""The LeadPerfection client against ``httpx.MockTransport`` (crm-apis.md §2, §5.4).

A small in-memory LP (:class:`FakeLP`) answers ``/token`` and ``GetLead`` the way the real API
does (form-encoded POSTs, bare JSON arrays, ``PageSize``/1-based ``StartIndex``); sleeps are
recorded, never waited for.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest

from connectors.errors import AuthError, ForbiddenError, ResponseFormatError, TransientError
from connectors.leadperfection import (
    WRITE_OK,
    LeadPerfectionClient,
    LeadPerfectionCredentials,
    base_url_for,
    lp_window,
)
from connectors.servicetitan import TokenCache

PASSWORD = "pw.super-secret-value"
APPKEY = "0f8fad5b-d9cb-469f-a165-70867728950e"
CREDS = LeadPerfectionCredentials("wq55a", "api.user", PASSWORD, APPKEY, serverid="th97")
GET_LEAD = "/api/Customers/GetLead"
EASTERN = ZoneInfo("America/New_York")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeLP:
    """An LP host: tokens, GetLead over ``prospects`` with LP paging, writes that are logged."""

    def __init__(self, prospects: int = 0, *, expires_in: int | None = 86_399) -> None:
        self.prospects: list[dict[str, Any]] = [
            {"cst_id": 100_001 + i, "notes": [], "calls": [], "leads": []} for i in range(prospects)
        ]
        self.expires_in = expires_in
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.tokens = 0
        self.valid: set[str] = set()
        self.before_read: Callable[[int], None] | None = None
        self.status: list[int] = []
        self.hosts: set[str] = set()
        self.deny = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode(), keep_blank_values=True))
        path = request.url.path
        self.requests.append((path, form))
        self.hosts.add(f"{request.url.scheme}://{request.url.host}")
        if self.status:
            return httpx.Response(self.status.pop(0), json={"Message": "An error has occurred."})
        if path == "/token":
            assert request.headers["content-type"] == "application/x-www-form-urlencoded"
            if form.get("password") != PASSWORD:
                return httpx.Response(
                    400,
                    json={
                        "error": "invalid_grant",
                        "error_description": "The user name or password is incorrect.",
                    },
                )
            self.tokens += 1
            token = f"tok-{self.tokens}"
            self.valid.add(token)
            body: dict[str, Any] = {"access_token": token, "token_type": "bearer"}
            if self.expires_in is not None:
                body["expires_in"] = self.expires_in
            return httpx.Response(200, json=body)
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in self.valid or self.deny:
            return httpx.Response(
                401, json={"Message": "Authorization has been denied for this request."}
            )
        if path == GET_LEAD:
            if self.before_read is not None:
                self.before_read(len([r for r in self.requests if r[0] == GET_LEAD]))
            items = self.prospects
            if "cst_id" in form:
                items = [p for p in items if p["cst_id"] == int(form["cst_id"])]
            size, start = int(form.get("PageSize", 10)), int(form.get("StartIndex", 1))
            return httpx.Response(200, content=orjson.dumps(items[start - 1 : start - 1 + size]))
        if path == "/api/Customers/GetJobStatusChanges":
            return httpx.Response(200, json=[{"job_id": int(form["job_id"]), "cst_id": 100_001}])
        return httpx.Response(200, content=orjson.dumps(WRITE_OK))

    def reads(self) -> list[dict[str, str]]:
        return [form for path, form in self.requests if path == GET_LEAD]


def client(
    fake: FakeLP,
    *,
    creds: LeadPerfectionCredentials = CREDS,
    clock: Clock | None = None,
    sleeps: list[float] | None = None,
    **kwargs: Any,
) -> LeadPerfectionClient:
    cache = TokenCache(clock=clock or Clock(), refresh_margin=300)
    record = sleeps.append if sleeps is not None else (lambda _s: None)
    return LeadPerfectionClient(
        creds,
        http=httpx.Client(transport=httpx.MockTransport(fake)),
        token_cache=cache,
        sleep=record,
        **kwargs,
    )


# --- host and auth -------------------------------------------------------------------------------


def test_the_host_is_the_customers_serverid_under_leadperfection_com() -> None:
    fake = FakeLP(1)
    client(fake).get_lead(page_size=1)
    assert fake.hosts == {"https://th97.leadperfection.com"}
    assert base_url_for("TH97") == "https://th97.leadperfection.com"


def test_base_url_overrides_the_serverid_host_and_the_serverid_may_then_be_left_out() -> None:
    creds = LeadPerfectionCredentials("wq55a", "api.user", PASSWORD, APPKEY)
    fake = FakeLP()
    client(fake, creds=creds, base_url="http://127.0.0.1:9").get_lead()
    assert fake.hosts == {"http://127.0.0.1"}
    with pytest.raises(ValueError, match="serverid or a base_url"):
        LeadPerfectionClient(creds)
    with pytest.raises(ValueError, match="host label"):
        LeadPerfectionCredentials("wq55a", "u", "p", "k", serverid="evil.example.com/x")


def test_token_is_a_form_encoded_password_grant_with_clientid_and_appkey() -> None:
    fake = FakeLP()
    client(fake).authenticate()
    ((path, form),) = fake.requests
    assert path == "/token"
    assert form == {
        "grant_type": "password",
        "username": "api.user",
        "password": PASSWORD,
        "clientid": "wq55a",
        "appkey": APPKEY,
    }


def test_token_is_cached_until_shortly_before_expires_in() -> None:
    fake, clock = FakeLP(2, expires_in=3600), Clock()
    lp = client(fake, clock=clock)
    expires = lp.authenticate()
    lp.get_lead(page_size=1)
    clock.now += 3600 - 301
    lp.get_lead(page_size=1)
    assert fake.tokens == 1
    clock.now += 2  # inside the refresh margin
    lp.get_lead(page_size=1)
    assert fake.tokens == 2
    assert expires == datetime.fromtimestamp(1_000_000 + 3600, UTC)


def test_a_token_response_without_expires_in_is_kept_for_an_hour() -> None:
    fake, clock = FakeLP(expires_in=None), Clock()
    assert client(fake, clock=clock).authenticate() == datetime.fromtimestamp(1_000_000 + 3600, UTC)


def test_wrong_credentials_are_an_auth_error_that_names_the_user_but_no_secret() -> None:
    creds = LeadPerfectionCredentials("wq55a", "api.user", "wrong-password", APPKEY, "th97")
    with pytest.raises(AuthError) as caught:
        client(FakeLP(), creds=creds).authenticate()
    message = str(caught.value)
    assert "invalid_grant" in message and "'api.user'" in message
    assert "wrong-password" not in message and APPKEY not in message and not caught.value.retryable


def test_a_401_reauthenticates_once_and_resends_the_read() -> None:
    fake = FakeLP(3)
    lp = client(fake)
    lp.authenticate()
    fake.valid.clear()  # LP restarted: every token it issued is gone

    assert len(lp.get_lead(page_size=5)) == 3
    assert [path for path, _ in fake.requests] == ["/token", GET_LEAD, "/token", GET_LEAD]


def test_a_401_again_with_a_fresh_token_is_the_missing_apisecurity_permission() -> None:
    """Seed 001, Requirements: the user signs in but is refused; the error says what to do."""
    fake = FakeLP(3)
    lp = client(fake)
    fake.deny = True  # the API user lacks its APISecurity rights
    with pytest.raises(ForbiddenError) as caught:
        lp.get_lead()
    assert [path for path, _ in fake.requests] == ["/token", GET_LEAD, "/token", GET_LEAD]
    message = str(caught.value)
    assert message.startswith("LeadPerfection refused GetLead (POST /api/Customers/GetLead")
    assert "user 'api.user' signed in: the user lacks the APISecurity permission" in message
    assert "Security → User Access" in message and "Function Level Security" in message
    assert "Check All" in message and not caught.value.retryable
    assert PASSWORD not in message and APPKEY not in message and "tok-" not in message


def test_a_403_on_a_write_names_the_refused_call_and_the_apisecurity_steps() -> None:
    fake = FakeLP(1)
    lp = client(fake)
    lp.authenticate()
    fake.status = [403]
    with pytest.raises(ForbiddenError, match=r"refused AddNotes \(POST /api/SalesApi/AddNotes"):
        lp.add_note("cst", 100_001, "hello")


def test_a_refused_token_stays_wrong_credentials_not_a_missing_permission() -> None:
    fake = FakeLP(1)
    lp = client(fake, creds=LeadPerfectionCredentials("wq55a", "api.user", "no", APPKEY, "th97"))
    with pytest.raises(AuthError, match="rejected the credentials"):
        lp.get_lead()


# --- reads ---------------------------------------------------------------------------------------


def test_reads_are_form_encoded_posts_retried_after_a_server_error() -> None:
    fake, sleeps = FakeLP(2), list[float]()
    lp = client(fake, sleeps=sleeps)
    lp.authenticate()
    fake.status = [500, 503]

    assert len(lp.get_lead(cst_id=100_001)) == 1
    assert len(sleeps) == 2
    assert fake.reads()[-1] == {"cst_id": "100001"}


def test_a_read_that_is_not_a_json_array_is_a_format_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 60})
        return httpx.Response(200, json={"Message": "odd"})

    lp = LeadPerfectionClient(
        CREDS, http=httpx.Client(transport=httpx.MockTransport(handler)), token_cache=TokenCache()
    )
    with pytest.raises(ResponseFormatError, match="expected a JSON array"):
        lp.get_lead()


def test_window_dates_are_sent_as_naive_wall_clock_time_in_the_customers_zone() -> None:
    fake = FakeLP()
    start = datetime(2025, 4, 16, 20, 40, 12, 999_000, tzinfo=UTC)
    client(fake).window_page(start, datetime(2025, 4, 16, 21, 0, tzinfo=UTC))
    (form,) = fake.reads()
    assert (form["startdate"], form["enddate"]) == ("2025-04-16T16:40:12", "2025-04-16T17:00:00")
    assert (form["PageSize"], form["StartIndex"]) == ("500", "1")


def test_a_window_across_the_autumn_fold_is_widened_so_it_never_shrinks_or_inverts() -> None:
    # 05:50 UTC is 01:50 EDT; 06:10 UTC is 01:10 EST, the same wall clock an hour later.
    start = datetime(2025, 11, 2, 5, 50, tzinfo=UTC)
    end = datetime(2025, 11, 2, 6, 10, tzinfo=UTC)
    assert lp_window(start, end, EASTERN) == ("2025-11-02T00:50:00", "2025-11-02T01:10:00")
    spring = datetime(2025, 3, 9, 6, 50, tzinfo=UTC), datetime(2025, 3, 9, 7, 10, tzinfo=UTC)
    assert lp_window(*spring, EASTERN) == ("2025-03-09T01:50:00", "2025-03-09T03:10:00")


def test_paging_starts_at_index_1_and_moves_by_page_size_until_a_short_page() -> None:
    fake = FakeLP(23)
    pages = list(client(fake).iter_window("2025-04-01", "2025-04-17", page_size=10, overlap=0))
    assert [len(page) for page in pages] == [10, 10, 3]
    assert [(f["PageSize"], f["StartIndex"]) for f in fake.reads()] == [
        ("10", "1"),
        ("10", "11"),
        ("10", "21"),
    ]
    assert [p["cst_id"] for page in pages for p in page] == [100_001 + i for i in range(23)]


def test_a_full_last_page_ends_with_one_more_read_that_comes_back_short() -> None:
    fake = FakeLP(20)
    pages = list(client(fake).iter_window("2025-04-01", "2025-04-17", page_size=10, overlap=0))
    assert [len(page) for page in pages] == [10, 10, 0]


def test_pages_overlap_by_a_few_records_that_are_not_returned_twice() -> None:
    fake = FakeLP(23)
    pages = list(client(fake).iter_window("2025-04-01", "2025-04-17", page_size=10, overlap=2))
    assert [f["StartIndex"] for f in fake.reads()] == ["1", "9", "17"]
    assert [p["cst_id"] for page in pages for p in page] == [100_001 + i for i in range(23)]


def test_records_leaving_the_window_between_pages_do_not_push_others_past_the_next_page() -> None:
    """Offset paging over a shrinking result skips records; the anchors catch it."""
    fake = FakeLP(30)

    def edit_three_already_read(read: int) -> None:
        if read == 2:  # before the second page: three prospects of page 1 leave the window
            del fake.prospects[2:5]

    fake.before_read = edit_three_already_read
    seen = [
        p["cst_id"]
        for page in client(fake).iter_window("2025-04-01", "2025-04-17", page_size=10, overlap=2)
        for p in page
    ]
    assert [f["StartIndex"] for f in fake.reads()][:3] == ["1", "9", "1"]  # stepped back once
    assert seen == [100_001 + i for i in range(30)]  # the three were read before they left

    plain = FakeLP(30)
    plain.before_read = lambda read: plain.prospects.__delitem__(slice(2, 5)) if read == 2 else None
    lost = [
        p["cst_id"]
        for page in client(plain).iter_window("2025-04-01", "2025-04-17", page_size=10, overlap=0)
        for p in page
    ]
    assert len(lost) == 27  # without anchors, the three records after page 1 are never read


def test_when_every_anchor_is_gone_the_window_is_read_again_from_the_start() -> None:
    fake = FakeLP(12)
    lp = client(fake)
    page = lp.window_page("a", "b", start_index=9, anchors=(999, 998), page_size=10, overlap=2)
    assert [f["StartIndex"] for f in fake.reads()] == ["9", "1"]
    assert len(page.records) == 10 and page.next_start_index == 9 and page.stepped_back == 1


# --- writes and read-back ------------------------------------------------------------------------


def test_add_note_posts_rectype_recid_and_text_and_is_never_retried() -> None:
    fake = FakeLP()
    lp = client(fake)
    assert lp.add_note("cst", 100_001, "Texted: on my way", nct_id="2") == WRITE_OK
    assert fake.requests[-1] == (
        "/api/SalesApi/AddNotes",
        {"rectype": "cst", "recid": "100001", "notes": "Texted: on my way", "nct_id": "2"},
    )
    fake.status = [500]
    with pytest.raises(TransientError) as caught:
        lp.add_note("job", 5_000_001, "again")
    assert caught.value.ambiguous
    assert sum(path == "/api/SalesApi/AddNotes" for path, _ in fake.requests) == 2
    with pytest.raises(ValueError, match="rectype"):
        lp.add_note("lead", 1, "x")


def test_an_add_notes_answer_proves_nothing_so_find_note_reads_the_record_back() -> None:
    fake = FakeLP(1)
    fake.prospects[0]["notes"] = [
        "bare string note",
        {"notes": "Hatch [k:abc123] Texted the homeowner", "enteredby": "api.user"},
    ]
    fake.prospects[0]["leads"] = [
        {
            "id": 2_000_001,
            "notes": [{"notes": "lead note"}],
            "jobs": [{"id": 5_000_001, "notes": [{"notes": "Production [k:p1]"}]}],
            "appointments": [{"id": 8_000_001}],
        }
    ]
    lp = client(fake)

    assert lp.find_note("cst", 100_001, "[k:abc123]") == {
        "notes": "Hatch [k:abc123] Texted the homeowner",
        "enteredby": "api.user",
    }
    assert lp.find_note("cst", 100_001, "[k:missing]") is None
    assert lp.read_notes("cst", 100_001)[0] == {"notes": "bare string note"}
    assert lp.find_note("job", 5_000_001, "[k:p1]") is not None  # owner found via job status
    assert lp.read_notes("cst", 999) == []


def test_add_call_history_sends_lps_field_names_with_the_call_in_local_time() -> None:
    fake = FakeLP()
    client(fake).add_call_history(
        100_001,
        call_date=datetime(2025, 4, 16, 21, 0, 5, tzinfo=UTC),
        result_code="TX",
        phone="4075550101",
        call_type="T",
        duration=0,
    )
    path, form = fake.requests[-1]
    assert path == "/api/Customers/AddCallHistory"
    assert form == {
        "CustID": "100001",
        "EmpID": "",
        "CallDate": "2025-04-16T17:00:05",
        "ResultCode": "TX",
        "Phone": "4075550101",
        "CallType": "T",
        "CallQueueID": "",
        "Duration": "0",
        "RecordingURL": "",
    }


def test_add_installer_job_notes_posts_the_job_id_and_text() -> None:
    fake = FakeLP()
    assert client(fake).add_installer_job_notes(5_000_001, "Crew on site") == WRITE_OK
    assert fake.requests[-1] == (
        "/api/Installer/AddInstallerJobNotes",
        {"job_id": "5000001", "notes": "Crew on site"},
    )


# --- provider: settings, credentials, window and cursor ---------------------------------------


def test_integration_settings_have_the_seeds_names_and_defaults() -> None:
    from pydantic import ValidationError

    from crmsync.providers.leadperfection import LeadPerfectionSettings

    settings = LeadPerfectionSettings()
    assert settings.model_dump() == {
        "timezone": "America/New_York",
        "push_communications": True,
        "push_to_call_logs": False,
        "push_to_notes": True,
        "push_to_production_notes": False,
        "placeholder_emails": [],
        "page_size": 500,
        "real_time": False,  # seed 003: background delivery by default
        "real_time_timeout_seconds": 5.0,
        "inbound_activities": {"enabled": False, "kinds": ["note", "call"]},
    }
    assert LeadPerfectionSettings(placeholder_emails=[" None@None.com "]).placeholder_emails == [
        "none@none.com"
    ]
    calls_only = {"inbound_activities": {"enabled": True, "kinds": ["call"]}}
    assert LeadPerfectionSettings.model_validate(calls_only).inbound_activities.wants("call")
    for bad in (
        {"timezone": "Mars/Olympus"},
        {"push_to_everything": True},
        {"page_size": 0},
        {"inbound_activities": {"enabled": True, "kinds": ["note", "task"]}},
    ):
        with pytest.raises(ValidationError):
            LeadPerfectionSettings.model_validate(bad)


def test_credentials_are_clientid_username_password_appkey_and_an_optional_serverid() -> None:
    from pydantic import ValidationError

    from crmsync.providers.leadperfection import LeadPerfectionCredentialsModel

    creds = LeadPerfectionCredentialsModel.model_validate(
        {"clientid": "wq55a", "username": "api.user", "password": PASSWORD, "appkey": APPKEY}
    )
    assert creds.serverid is None
    assert PASSWORD not in repr(creds) and APPKEY not in repr(creds)
    for bad in (
        {"clientid": "wq55a", "username": "u", "password": "", "appkey": APPKEY},
        {"clientid": "wq55a", "username": "u", "password": "p", "appkey": "k", "serverid": "a/b"},
        {"clientid": "wq55a", "username": "u", "password": "p", "appkey": "k", "token": "t"},
    ):
        with pytest.raises(ValidationError):
            LeadPerfectionCredentialsModel.model_validate(bad)


def test_the_window_starts_20_minutes_before_the_sync_or_at_the_last_complete_sync_if_earlier() -> (
    None
):
    from datetime import timedelta

    from crmsync.providers.leadperfection import next_window

    start = datetime(2025, 4, 16, 21, 0, 0, 250_000, tzinfo=UTC)
    on_time = start - timedelta(minutes=15)
    late = start - timedelta(hours=2)
    assert next_window(on_time, start) == (
        datetime(2025, 4, 16, 20, 40, tzinfo=UTC),
        datetime(2025, 4, 16, 21, 0, tzinfo=UTC),
    )
    assert next_window(late, start)[0] == late
    assert next_window(None, start)[0] == datetime(2025, 1, 16, 21, 0, tzinfo=UTC)  # 90 days


def test_the_cursor_round_trips_and_a_foreign_cursor_is_refused() -> None:
    from crmsync.providers.leadperfection import WindowCursor

    cursor = WindowCursor(
        datetime(2025, 4, 16, 20, 40, tzinfo=UTC),
        datetime(2025, 4, 16, 21, 0, tzinfo=UTC),
        496,
        (100_500, 100_501),
        datetime(2025, 4, 16, 20, 45, tzinfo=UTC),
    )
    text = cursor.dump()
    assert orjson.loads(text) == {
        "v": 1,
        "start": "2025-04-16T20:40:00+00:00",
        "end": "2025-04-16T21:00:00+00:00",
        "next": 496,
        "anchors": [100_500, 100_501],
        "done": "2025-04-16T20:45:00+00:00",
    }
    assert WindowCursor.load(text) == cursor and not cursor.complete
    assert WindowCursor.load(None) is None
    for foreign in ("eyJjb250aW51ZUZyb20iOjF9", '{"v": 2}', '{"v": 1, "start": "x", "end": 1}'):
        with pytest.raises(ValueError):
            WindowCursor.load(foreign)
