"""The Salesforce connector against ``httpx.MockTransport``: OAuth grants, query paging, session
expiry, error arrays, the daily request limit and the push writers (crm-apis.md §3, §5.4).

The fake org answers like Salesforce's REST API (token responses without ``expires_in``, error
arrays, ``Sforce-Limit-Info`` on every API response); retries sleep into a list, never for real.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pytest

from connectors.errors import (
    AuthError,
    BadRequestError,
    ForbiddenError,
    QuotaExceededError,
    ResponseFormatError,
    TransientError,
)
from connectors.salesforce import (
    USAGE_MAX_AGE,
    SalesforceClient,
    SalesforceCredentials,
    parse_limit_info,
    soql_identifier,
    soql_like_contains,
    soql_quote,
)

LOGIN = "https://login.salesforce.com"
INSTANCE = "https://acme.my.salesforce.com"
V = "/services/data/v60.0"
REFRESH = "5Aep861.refresh-secret"

Handler = Callable[[httpx.Request], httpx.Response | None]


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=orjson.dumps(body),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


@dataclass
class FakeOrg:
    """A minimal org: sessions, records for one query, the daily counter, a request log."""

    records: list[dict[str, Any]] = field(default_factory=list)
    batch_size: int = 2
    used: int = 0
    limit: int = 1000
    tokens: list[str] = field(default_factory=list)
    forms: list[dict[str, str]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    override: Handler | None = None
    rotate_to: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            if self.override is not None:
                answer = self.override(request)
                if answer is not None:
                    return answer
            if request.url.path == "/services/oauth2/token":
                return self._token(request)
            if (
                request.headers.get("Authorization")
                != f"Bearer {self.tokens[-1] if self.tokens else ''}"
            ):
                return _json(
                    401,
                    [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                )
            self.used += 1
            limit = {"Sforce-Limit-Info": f"api-usage={self.used}/{self.limit}"}
            path = request.url.path
            if path == f"{V}/query":
                return _json(200, self._batch(0), limit)
            if path.startswith(f"{V}/query/"):
                return _json(200, self._batch(int(path.rsplit("-", 1)[1])), limit)
            if path.startswith(f"{V}/sobjects/") and request.method == "POST":
                return _json(
                    201, {"id": "00TOp0000000001AAA", "success": True, "errors": []}, limit
                )
            return _json(
                404,
                [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}],
                limit,
            )

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.forms.append(form)
        if form.get("grant_type") == "refresh_token" and form.get("refresh_token") not in (
            REFRESH,
            self.rotate_to,
        ):
            return _json(
                400, {"error": "invalid_grant", "error_description": "expired access/refresh token"}
            )
        token = f"00D!session{len(self.tokens) + 1}"
        self.tokens.append(token)
        body = {
            "access_token": token,
            "instance_url": INSTANCE,
            "id": f"{LOGIN}/id/00D000000000001AAA/005000000000001AAA",
            "token_type": "Bearer",
            "issued_at": "1732111200000",
            "signature": "c2lnbmF0dXJl",
        }
        if self.rotate_to and form.get("grant_type") == "refresh_token":
            body["refresh_token"] = self.rotate_to
        return _json(200, body)

    def _batch(self, offset: int) -> dict[str, Any]:
        end = offset + self.batch_size
        done = end >= len(self.records)
        body: dict[str, Any] = {"totalSize": len(self.records), "done": done}
        if not done:
            body["nextRecordsUrl"] = f"{V}/query/01gD0000002HU6KIAW-{end}"
        body["records"] = [
            {"attributes": {"type": "Contact", "url": f"{V}/sobjects/Contact/{r['Id']}"}, **r}
            for r in self.records[offset:end]
        ]
        return body

    @property
    def api_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.startswith("/services/data")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_client(
    org: FakeOrg,
    credentials: SalesforceCredentials | None = None,
    sleeps: list[float] | None = None,
    **kwargs: Any,
) -> SalesforceClient:
    return SalesforceClient(
        credentials or SalesforceCredentials(client_id="3MVG9.app", refresh_token=REFRESH),
        http=httpx.Client(transport=httpx.MockTransport(org.handler)),
        sleep=(sleeps if sleeps is not None else []).append,
        **kwargs,
    )


def contacts(n: int) -> list[dict[str, Any]]:
    return [{"Id": f"003Op00000000{i:02d}AAA", "LastName": f"L{i}"} for i in range(n)]


# -- OAuth ---------------------------------------------------------------------------------------


def test_refresh_token_grant_needs_no_expires_in_and_calls_the_instance_url() -> None:
    org = FakeOrg(records=contacts(1))
    client = make_client(org)

    session = client.authenticate()
    rows = client.query("SELECT Id, LastName FROM Contact")

    assert org.forms == [
        {
            "client_id": "3MVG9.app",
            "format": "json",
            "grant_type": "refresh_token",
            "refresh_token": REFRESH,
        }
    ]
    assert str(org.requests[0].url) == f"{LOGIN}/services/oauth2/token"
    assert str(org.requests[1].url).startswith(f"{INSTANCE}{V}/query?q=")
    assert session.instance_url == INSTANCE and session.issued_at.year == 2024
    assert rows == [{"Id": "003Op0000000000AAA", "LastName": "L0"}]


def test_password_grant_sends_the_password_followed_by_the_security_token() -> None:
    org = FakeOrg()
    creds = SalesforceCredentials(
        client_id="3MVG9.app",
        client_secret="cs",
        username="api@x.example",
        password="pw",
        security_token="TOK",
    )
    make_client(org, creds, auth_url="https://test.salesforce.com").authenticate()

    assert org.forms[0]["grant_type"] == "password"
    assert org.forms[0]["password"] == "pwTOK" and org.forms[0]["client_secret"] == "cs"
    assert str(org.requests[0].url) == "https://test.salesforce.com/services/oauth2/token"


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"refresh_token": "r", "username": "u", "password": "p", "client_secret": "s"},
        {"username": "u", "client_secret": "s"},
        {"username": "u", "password": "p"},
    ],
)
def test_credentials_need_exactly_one_complete_grant(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"grant|needs"):
        SalesforceCredentials(client_id="3MVG9.app", **kwargs)


def test_a_rejected_refresh_token_is_an_auth_error_naming_the_oauth_error_not_the_token() -> None:
    org = FakeOrg()
    client = make_client(
        org, SalesforceCredentials(client_id="3MVG9.app", refresh_token="5Aep.revoked-value")
    )

    with pytest.raises(AuthError, match="invalid_grant: expired access/refresh token") as caught:
        client.authenticate()
    assert "5Aep.revoked-value" not in str(caught.value)


def test_a_rotated_refresh_token_is_kept_and_handed_to_the_caller() -> None:
    org = FakeOrg(rotate_to="5Aep861.rotated")
    seen: list[str] = []
    client = make_client(org, on_refresh_token=seen.append)
    client.authenticate()
    org.tokens.append("someone-else")  # our session is no longer valid

    client.query("SELECT Id FROM Contact")

    assert seen == ["5Aep861.rotated"]
    assert org.forms[1]["refresh_token"] == "5Aep861.rotated"


def test_token_response_without_instance_url_is_a_format_error() -> None:
    org = FakeOrg(
        override=lambda r: _json(200, {"access_token": "t"}) if "oauth2" in r.url.path else None
    )
    with pytest.raises(ResponseFormatError, match="instance_url"):
        make_client(org).authenticate()


# -- sessions ------------------------------------------------------------------------------------


def test_invalid_session_id_mid_query_refreshes_once_and_resends_transparently() -> None:
    org = FakeOrg(records=contacts(5))
    client = make_client(org)
    client.authenticate()
    calls = {"n": 0}

    def expire_on_second_batch(request: httpx.Request) -> httpx.Response | None:
        if "/query/" in request.url.path and calls["n"] == 0:
            calls["n"] += 1
            org.tokens.append("expired-by-the-org")  # every held session is now invalid
        return None

    org.override = expire_on_second_batch
    rows = client.query("SELECT Id FROM Contact")

    assert [r["Id"] for r in rows] == [c["Id"] for c in contacts(5)]
    assert client.token_fetches == 2 and len(org.forms) == 2


def test_a_second_401_after_refreshing_is_an_auth_error() -> None:
    org = FakeOrg(
        override=lambda r: (
            None
            if "oauth2" in r.url.path
            else _json(
                401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
            )
        )
    )
    client = make_client(org)

    with pytest.raises(AuthError, match="still unauthorized"):
        client.query("SELECT Id FROM Contact")
    assert len(org.forms) == 2, "refreshed exactly once"


# -- queries -------------------------------------------------------------------------------------


def test_a_three_batch_query_follows_next_records_url_until_done() -> None:
    org = FakeOrg(records=contacts(5), batch_size=2)
    client = make_client(org, batch_size=200)

    batches = list(client.query_batches("SELECT Id, LastName FROM Contact"))

    assert [len(b) for b in batches] == [2, 2, 1]
    assert [r.url.path for r in org.api_requests] == [
        f"{V}/query",
        f"{V}/query/01gD0000002HU6KIAW-2",
        f"{V}/query/01gD0000002HU6KIAW-4",
    ]
    assert all(r.headers["Sforce-Query-Options"] == "batchSize=200" for r in org.api_requests)
    assert all("attributes" not in r for b in batches for r in b)


def test_query_all_reads_deleted_rows_from_the_query_all_resource() -> None:
    org = FakeOrg(
        override=lambda r: (
            _json(200, {"totalSize": 0, "done": True, "records": []})
            if "queryAll" in r.url.path
            else None
        )
    )
    assert make_client(org).query("SELECT Id FROM Task", include_deleted=True) == []
    assert org.api_requests[-1].url.path == f"{V}/queryAll"


def test_relationship_fields_come_back_without_attributes() -> None:
    nested = {"attributes": {"type": "Contact"}, "Email": "a@b.example"}
    org = FakeOrg(records=[{"Id": "a0OOp0000000001AAA", "i360core__Contact__r": nested}])
    rows = make_client(org).query("SELECT Id, i360core__Contact__r.Email FROM X__c")
    assert rows == [{"Id": "a0OOp0000000001AAA", "i360core__Contact__r": {"Email": "a@b.example"}}]


def test_an_expired_query_locator_restarts_the_query_once() -> None:
    org = FakeOrg(records=contacts(4))
    failed = {"n": 0}

    def lose_locator(request: httpx.Request) -> httpx.Response | None:
        if "/query/" in request.url.path and failed["n"] == 0:
            failed["n"] += 1
            return _json(
                400, [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]
            )
        return None

    org.override = lose_locator
    rows = make_client(org).query("SELECT Id FROM Contact")

    assert [r["Id"] for r in rows] == [c["Id"] for c in contacts(4)]
    assert [r.url.path for r in org.api_requests].count(f"{V}/query") == 2


def test_error_arrays_are_surfaced_with_their_error_codes() -> None:
    org = FakeOrg(
        override=lambda r: (
            _json(
                400,
                [
                    {
                        "message": "\nSELECT Nope FROM Contact\n       ^\n"
                        "ERROR at Row:1:Column:8\nNo such column 'Nope'",
                        "errorCode": "INVALID_FIELD",
                    }
                ],
            )
            if r.url.path.startswith("/services/data")
            else None
        )
    )
    with pytest.raises(BadRequestError) as caught:
        make_client(org).query("SELECT Nope FROM Contact")
    message = str(caught.value)
    assert "HTTP 400" in message and "INVALID_FIELD: SELECT Nope FROM Contact ^ ERROR" in message
    assert "q=" not in message and REFRESH not in message


def test_a_server_error_is_retried_with_backoff() -> None:
    org = FakeOrg(records=contacts(1))
    failures = {"n": 0}

    def unavailable_once(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == f"{V}/query" and failures["n"] == 0:
            failures["n"] += 1
            return _json(
                503,
                [{"message": "Server temporarily unavailable", "errorCode": "SERVER_UNAVAILABLE"}],
            )
        return None

    org.override = unavailable_once
    sleeps: list[float] = []
    assert len(make_client(org, sleeps=sleeps).query("SELECT Id FROM Contact")) == 1
    assert len(sleeps) == 1


# -- limits --------------------------------------------------------------------------------------


def test_limit_info_header_is_exposed_as_the_latest_api_usage() -> None:
    org = FakeOrg(records=contacts(3), used=41, limit=15000)
    client = make_client(org)
    client.query("SELECT Id FROM Contact")

    usage = client.api_usage
    assert usage is not None and (usage.used, usage.limit, usage.remaining) == (43, 15000, 14957)
    assert parse_limit_info("api-usage=25/15000") == (25, 15000)
    assert parse_limit_info("per-app-api-usage=1/2(appName=x)") is None
    combined = "api-usage=18/5000; per-app-api-usage=17/250(appName=sample-app)"
    assert parse_limit_info(combined) == (18, 5000)


def test_request_limit_exceeded_is_a_quota_error_and_no_further_request_is_sent() -> None:
    org = FakeOrg(
        override=lambda r: (
            _json(
                403,
                [
                    {
                        "message": "TotalRequests Limit exceeded.",
                        "errorCode": "REQUEST_LIMIT_EXCEEDED",
                    }
                ],
                {"Sforce-Limit-Info": "api-usage=15001/15000"},
            )
            if r.url.path.startswith("/services/data")
            else None
        )
    )
    sleeps: list[float] = []
    client = make_client(org, sleeps=sleeps)

    with pytest.raises(
        QuotaExceededError, match="REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded"
    ):
        client.query("SELECT Id FROM Contact")
    with pytest.raises(QuotaExceededError, match="request not sent"):
        client.query("SELECT Id FROM Contact")

    assert len(org.api_requests) == 1 and sleeps == [], "neither retried nor repeated"
    assert not QuotaExceededError("x").retryable


def test_another_403_is_forbidden_with_its_error_code() -> None:
    org = FakeOrg(
        override=lambda r: (
            _json(
                403, [{"message": "insufficient access rights", "errorCode": "INSUFFICIENT_ACCESS"}]
            )
            if r.url.path.startswith("/services/data")
            else None
        )
    )
    with pytest.raises(ForbiddenError, match="INSUFFICIENT_ACCESS") as caught:
        make_client(org).query("SELECT Id FROM Contact")
    assert not isinstance(caught.value, QuotaExceededError)


def test_min_remaining_api_calls_refuses_before_sending_and_a_stale_reading_expires() -> None:
    org = FakeOrg(records=contacts(1), used=95, limit=100)
    clock = Clock()
    client = make_client(org, min_remaining_api_calls=4, clock=clock)

    client.query("SELECT Id FROM Contact")  # leaves 4
    with pytest.raises(QuotaExceededError, match="min_remaining_api_calls=4"):
        client.query("SELECT Id FROM Contact")
    assert len(org.api_requests) == 1

    clock.now += USAGE_MAX_AGE + 1  # the reading is old: ask the org again
    org.used = 10
    client.query("SELECT Id FROM Contact")
    assert len(org.api_requests) == 2


# -- writes --------------------------------------------------------------------------------------


def test_create_note_posts_parent_title_and_body_within_salesforce_lengths() -> None:
    org = FakeOrg()
    client = make_client(org)

    note_id = client.create_note("003Op0000000001AAA", "T" * 100, "B" * 40_000)

    post = org.api_requests[-1]
    body = orjson.loads(post.content)
    assert (post.method, post.url.path) == ("POST", f"{V}/sobjects/Note/")
    assert body["ParentId"] == "003Op0000000001AAA" and body["IsPrivate"] is False
    assert len(body["Title"]) == 80 and len(body["Body"]) == 32_000
    assert note_id == "00TOp0000000001AAA"


def test_create_task_is_a_completed_task_on_the_sales_opportunity() -> None:
    org = FakeOrg()
    make_client(org).create_task(
        "003Op0000000001AAA",
        "a0OOp0000000001AAA",
        "SMS sent [hub:k1]",
        "Hello",
        activity_date=date(2026, 11, 20),
    )
    body = orjson.loads(org.api_requests[-1].content)
    assert body == {
        "Subject": "SMS sent [hub:k1]",
        "Description": "Hello",
        "Status": "Completed",
        "TaskSubtype": "Task",
        "WhoId": "003Op0000000001AAA",
        "WhatId": "a0OOp0000000001AAA",
        "ActivityDate": "2026-11-20",
    }


def test_a_create_that_fails_after_sending_is_ambiguous_and_not_retried() -> None:
    org = FakeOrg(
        override=lambda r: (
            _json(503, [{"message": "unavailable", "errorCode": "SERVER_UNAVAILABLE"}])
            if r.method == "POST" and "sobjects" in r.url.path
            else None
        )
    )
    with pytest.raises(TransientError) as caught:
        make_client(org).create_note("003Op0000000001AAA", "t", "b")
    assert caught.value.ambiguous
    assert len([r for r in org.api_requests if r.method == "POST"]) == 1


def test_a_rejected_create_names_the_error_code() -> None:
    org = FakeOrg(
        override=lambda r: (
            _json(
                400,
                [
                    {
                        "message": "Name ID: id value of incorrect type",
                        "errorCode": "FIELD_INTEGRITY_EXCEPTION",
                        "fields": ["WhoId"],
                    }
                ],
            )
            if r.method == "POST" and "sobjects" in r.url.path
            else None
        )
    )
    with pytest.raises(BadRequestError, match="FIELD_INTEGRITY_EXCEPTION"):
        make_client(org).create_task("a0OOp0000000001AAA", None, "s", "d")


def test_find_record_with_key_escapes_the_key_into_a_like_filter() -> None:
    org = FakeOrg(records=[{"Id": "002Op0000000001AAA"}])
    found = make_client(org).find_record_with_key(
        "Note",
        "hub:50%_o'k",
        field="Title",
        parent_field="ParentId",
        parent_id="003Op0000000001AAA",
    )
    soql = org.api_requests[-1].url.params["q"]
    assert found == "002Op0000000001AAA"
    assert soql == (
        "SELECT Id FROM Note WHERE Title LIKE '%hub:50\\%\\_o\\'k%' "
        "AND ParentId = '003Op0000000001AAA' ORDER BY CreatedDate ASC LIMIT 1"
    )


def test_only_plain_api_names_and_escaped_literals_reach_soql() -> None:
    assert soql_identifier("i360core__Sales_Opportunity__c") == "i360core__Sales_Opportunity__c"
    for bad in ("Contact WHERE Id != null", "x'--", "", "1abc"):
        with pytest.raises(ValueError):
            soql_identifier(bad)
    assert soql_quote("O'Brien\\") == "'O\\'Brien\\\\'"
    assert soql_like_contains("a_b") == "'%a\\_b%'"
