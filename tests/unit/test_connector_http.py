"""The shared HTTP engine and the ServiceTitan client against ``httpx.MockTransport``.

Every test injects a recording ``sleep`` so backoff is asserted, never waited for.
"""

from __future__ import annotations

import logging
import pickle
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import orjson
import pytest

from connectors.errors import (
    AuthError,
    BadRequestError,
    ConnectorError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    ResponseFormatError,
    TransientError,
)
from connectors.http import HttpEngine, TokenProvider, parse_retry_after
from connectors.servicetitan import (
    ServiceTitanClient,
    ServiceTitanCredentials,
    TokenCache,
    first_sync_from,
)

SECRET = "cs1.super-secret-value"
APP_KEY = "ak1.application-key-value"
Handler = Callable[[httpx.Request], httpx.Response]


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class FakeTokens(TokenProvider):
    def get_token(self) -> str:
        return "tok-1"

    def invalidate(self) -> None:
        pass


class Script:
    """A MockTransport handler that plays a list of responses/exceptions and records requests."""

    def __init__(self, *steps: int | httpx.Response | httpx.RequestError | Handler) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, httpx.RequestError):
            raise type(step)(str(step), request=request)
        if isinstance(step, int):
            return httpx.Response(step, json={"ok": step < 400})
        if isinstance(step, httpx.Response):
            return step
        return step(request)


def engine(
    script: Script, sleeps: Sleeps, *, tokens: TokenProvider | None = None, **kwargs: Any
) -> HttpEngine:
    return HttpEngine(
        provider="acme",
        base_url="https://api.example.test",
        token_provider=tokens or FakeTokens(),
        client=httpx.Client(transport=httpx.MockTransport(script)),
        sleep=sleeps,
        rng=random.Random(7),
        **kwargs,
    )


# -- retries -----------------------------------------------------------------------------


def test_429_waits_exactly_the_retry_after_seconds() -> None:
    script, sleeps = Script(httpx.Response(429, headers={"Retry-After": "7"}), 200), Sleeps()
    response = engine(script, sleeps).request("GET", "/things")
    assert response.status_code == 200
    assert sleeps == [7.0]
    assert len(script.requests) == 2


def test_retry_after_is_capped_at_max_retry_after() -> None:
    script, sleeps = Script(httpx.Response(429, headers={"Retry-After": "3600"}), 200), Sleeps()
    engine(script, sleeps, max_retry_after=60).request("GET", "/things")
    assert sleeps == [60.0]


def test_retry_after_as_http_date_is_honoured_on_503() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    script, sleeps = Script(httpx.Response(503, headers={"Retry-After": when}), 200), Sleeps()
    engine(script, sleeps).request("GET", "/things")
    assert len(sleeps) == 1 and 27.0 <= sleeps[0] <= 30.0


def test_parse_retry_after_accepts_seconds_dates_and_ignores_garbage() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("Wed, 01 Jan 2025 00:00:10 GMT", now=now) == 10.0
    assert parse_retry_after("Tue, 31 Dec 2024 00:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_5xx_backs_off_with_full_jitter_then_succeeds() -> None:
    script, sleeps = Script(500, 502, 503, 504, 200), Sleeps()
    response = engine(script, sleeps, backoff_base=0.5).request("GET", "/things")
    assert response.status_code == 200
    assert len(script.requests) == 5
    ceilings = [0.5, 1.0, 2.0, 4.0]
    assert all(0.0 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))
    assert sleeps != ceilings  # jittered, not the plain exponential schedule


def test_backoff_never_exceeds_the_cap() -> None:
    script, sleeps = Script(500, 500, 500, 500, 500, 200), Sleeps()
    engine(script, sleeps, max_attempts=6, backoff_base=10, backoff_cap=12).request("GET", "/x")
    assert len(sleeps) == 5 and max(sleeps) <= 12


def test_timeouts_and_dropped_connections_are_retried_for_reads() -> None:
    script = Script(
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("dropped"),
        httpx.ConnectError("no"),
        200,
    )
    sleeps = Sleeps()
    assert engine(script, sleeps).request("GET", "/things").status_code == 200
    assert len(sleeps) == 3


def test_exhausted_attempts_raise_transient_error() -> None:
    script, sleeps = Script(503), Sleeps()
    with pytest.raises(TransientError) as caught:
        engine(script, sleeps, max_attempts=3).request("GET", "/things")
    assert len(script.requests) == 3 and len(sleeps) == 2
    assert caught.value.retryable and caught.value.status_code == 503
    assert not caught.value.ambiguous


def test_exhausted_429_raises_rate_limited_error_with_retry_after() -> None:
    script, sleeps = Script(httpx.Response(429, headers={"Retry-After": "2"})), Sleeps()
    with pytest.raises(RateLimitedError) as caught:
        engine(script, sleeps, max_attempts=2).request("GET", "/things")
    assert caught.value.retry_after == 2.0 and caught.value.retryable


def test_exhausted_timeouts_raise_transient_error_without_status() -> None:
    script, sleeps = Script(httpx.ReadTimeout("slow")), Sleeps()
    with pytest.raises(TransientError) as caught:
        engine(script, sleeps, max_attempts=2).request("GET", "/things")
    assert caught.value.status_code is None and "ReadTimeout" in str(caught.value)


# -- auth --------------------------------------------------------------------------------


class RotatingTokens(TokenProvider):
    def __init__(self) -> None:
        self.generation = 1
        self.invalidations = 0

    def get_token(self) -> str:
        return f"tok-{self.generation}"

    def invalidate(self) -> None:
        self.invalidations += 1
        self.generation += 1


def test_401_reauthenticates_once_then_succeeds() -> None:
    tokens = RotatingTokens()

    def handler(request: httpx.Request) -> httpx.Response:
        ok = request.headers["Authorization"] == "Bearer tok-2"
        return httpx.Response(200 if ok else 401)

    script, sleeps = Script(handler), Sleeps()
    assert engine(script, sleeps, tokens=tokens).request("GET", "/x").status_code == 200
    assert tokens.invalidations == 1 and len(script.requests) == 2 and sleeps == []


def test_401_after_reauthentication_is_auth_error() -> None:
    tokens = RotatingTokens()
    script, sleeps = Script(401), Sleeps()
    with pytest.raises(AuthError) as caught:
        engine(script, sleeps, tokens=tokens).request("GET", "/x")
    assert len(script.requests) == 2 and tokens.invalidations == 1
    assert not caught.value.retryable and caught.value.status_code == 401


def test_401_on_a_create_is_resent_after_reauthentication() -> None:
    tokens = RotatingTokens()
    script, sleeps = Script(401, 200), Sleeps()
    engine(script, sleeps, tokens=tokens).request("POST", "/notes", json={"text": "hi"})
    assert len(script.requests) == 2


# -- fail fast ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (403, ForbiddenError),
        (404, NotFoundError),
        (409, BadRequestError),
        (422, BadRequestError),
    ],
)
def test_client_errors_fail_fast_after_one_request(status: int, error: type[Exception]) -> None:
    script, sleeps = (
        Script(httpx.Response(status, json={"title": "nope", "status": status})),
        Sleeps(),
    )
    with pytest.raises(error) as caught:
        engine(script, sleeps).request("GET", "/things/1")
    assert len(script.requests) == 1 and sleeps == []
    assert isinstance(caught.value, ConnectorError) and not caught.value.retryable
    assert caught.value.status_code == status and caught.value.path == "/things/1"


def test_classify_hook_can_turn_a_body_into_a_quota_error() -> None:
    from connectors.errors import QuotaExceededError

    class Quota(HttpEngine):
        def classify(self, response: httpx.Response) -> ConnectorError | None:
            if response.status_code == 403 and b"REQUEST_LIMIT_EXCEEDED" in response.content:
                return self.error(QuotaExceededError, response.request, "quota", 403)
            return super().classify(response)

    script = Script(httpx.Response(403, json=[{"errorCode": "REQUEST_LIMIT_EXCEEDED"}]))
    quota = Quota(
        provider="sf",
        token_provider=FakeTokens(),
        client=httpx.Client(transport=httpx.MockTransport(script)),
        sleep=Sleeps(),
    )
    with pytest.raises(QuotaExceededError):
        quota.request("GET", "https://sf.test/query")


# -- non-idempotent requests -------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), httpx.WriteTimeout("w"), 502],
    ids=["read-timeout", "dropped-after-send", "write-timeout", "5xx"],
)
def test_create_that_may_have_reached_the_server_is_not_retried_and_is_ambiguous(
    failure: httpx.RequestError | int,
) -> None:
    script, sleeps = Script(failure, 200), Sleeps()
    with pytest.raises(TransientError) as caught:
        engine(script, sleeps).request("POST", "/notes", json={"text": "hi"})
    assert caught.value.ambiguous is True and caught.value.retryable
    assert len(script.requests) == 1 and sleeps == []


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), httpx.Response(429, headers={"Retry-After": "1"})],
    ids=["connect-error", "429"],
)
def test_create_refused_before_processing_is_retried(
    failure: httpx.RequestError | httpx.Response,
) -> None:
    script, sleeps = Script(failure, 200), Sleeps()
    assert engine(script, sleeps).request("POST", "/notes", json={}).status_code == 200
    assert len(script.requests) == 2


def test_read_by_post_can_be_declared_idempotent() -> None:
    script, sleeps = Script(httpx.ReadTimeout("slow"), 200), Sleeps()
    engine(script, sleeps).request("POST", "/api/Customers/GetLead", idempotent=True, data={})
    assert len(script.requests) == 2


# -- hooks -------------------------------------------------------------------------------


def test_before_request_hook_runs_before_every_attempt() -> None:
    seen: list[str] = []
    script, sleeps = Script(500, 200), Sleeps()
    engine(script, sleeps, before_request=lambda r: seen.append(r.url.path)).request("GET", "/x")
    assert seen == ["/x", "/x"]


def test_client_side_rate_limit_spaces_requests() -> None:
    script, sleeps = Script(200), Sleeps()
    limited = engine(script, sleeps, rate_limit=2.0, clock=lambda: 100.0)
    for _ in range(4):
        limited.request("GET", "/x")
    assert sleeps == [0.5, 1.0]  # burst of 2, then one slot per half second


# -- ServiceTitan client -----------------------------------------------------------------


CREDS = ServiceTitanCredentials(
    client_id="cid.test", client_secret=SECRET, app_key=APP_KEY, tenant_id="1234"
)


class FakeServiceTitan:
    """Token endpoint plus a few API routes, enough to check the client's wire behaviour."""

    def __init__(self) -> None:
        self.tokens_issued = 0
        self.valid_tokens: set[str] = set()
        self.requests: list[httpx.Request] = []
        self.routes: dict[str, Handler] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/connect/token":
            form = dict(httpx.QueryParams(request.content.decode()))
            if (
                form.get("client_secret") != SECRET
                or form.get("grant_type") != "client_credentials"
            ):
                return httpx.Response(400, json={"error": "invalid_client"})
            self.tokens_issued += 1
            token = f"jwt-{self.tokens_issued}-opaque"
            self.valid_tokens.add(token)
            return httpx.Response(200, json={"access_token": token, "expires_in": 900})
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in self.valid_tokens or request.headers.get("ST-App-Key") != APP_KEY:
            return httpx.Response(401, json={"statusCode": 401, "message": "Unauthorized"})
        return self.routes[request.url.path](request)

    @property
    def api_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path != "/connect/token"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def st() -> FakeServiceTitan:
    return FakeServiceTitan()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(st: FakeServiceTitan, clock: Clock) -> Iterator[ServiceTitanClient]:
    with st_client(st, clock) as c:
        yield c


def st_client(
    st: FakeServiceTitan, clock: Clock, cache: TokenCache | None = None, **kwargs: Any
) -> ServiceTitanClient:
    return ServiceTitanClient(
        CREDS,
        base_url="https://st.test",
        auth_url="https://st.test/connect/token",
        http=httpx.Client(transport=httpx.MockTransport(st)),
        sleep=Sleeps(),
        token_cache=cache or TokenCache(clock=clock),
        **kwargs,
    )


def export_body(records: list[dict[str, Any]], token: str = "t1", more: bool = False) -> Handler:
    body = {"data": records, "continueFrom": token, "hasMore": more}
    return lambda request: httpx.Response(200, json=body)


JOBS = "/jpm/v2/tenant/1234/export/jobs"


def test_api_calls_carry_bearer_token_app_key_and_tenant_path(
    st: FakeServiceTitan, client: ServiceTitanClient
) -> None:
    st.routes[JOBS] = export_body([{"id": 1}])
    client.export_page("jobs", None)
    (call,) = st.api_requests
    assert call.headers["Authorization"] == "Bearer jwt-1-opaque"
    assert call.headers["ST-App-Key"] == APP_KEY
    assert call.url.path == JOBS and "from" not in call.url.params
    token_call = st.requests[0]
    assert "ST-App-Key" not in token_call.headers
    assert token_call.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_token_is_reused_until_shortly_before_expiry_then_refreshed(
    st: FakeServiceTitan, client: ServiceTitanClient, clock: Clock
) -> None:
    st.routes[JOBS] = export_body([])
    start = clock.now
    assert client.authenticate() == datetime.fromtimestamp(start + 900, UTC)
    client.export_page("jobs", "t0")
    clock.now = start + 900 - 61
    client.export_page("jobs", "t0")
    assert st.tokens_issued == 1
    clock.now = start + 900 - 59
    client.export_page("jobs", "t0")
    assert st.tokens_issued == 2
    assert st.api_requests[-1].headers["Authorization"] == "Bearer jwt-2-opaque"


def test_clients_of_one_integration_share_a_token(st: FakeServiceTitan, clock: Clock) -> None:
    st.routes[JOBS] = export_body([])
    cache = TokenCache(clock=clock)
    with st_client(st, clock, cache) as first, st_client(st, clock, cache) as second:
        first.export_page("jobs", None)
        second.export_page("jobs", None)
    assert st.tokens_issued == 1


def test_revoked_token_is_replaced_transparently(
    st: FakeServiceTitan, client: ServiceTitanClient
) -> None:
    st.routes[JOBS] = export_body([{"id": 5}])
    client.export_page("jobs", None)
    st.valid_tokens.clear()  # server-side expiry the client could not foresee
    assert client.export_page("jobs", None).records == [{"id": 5}]
    assert st.tokens_issued == 2


def test_bad_credentials_raise_auth_error_without_retry(st: FakeServiceTitan, clock: Clock) -> None:
    bad = ServiceTitanCredentials(
        client_id="cid.test", client_secret="cs1.wrong-secret", app_key=APP_KEY, tenant_id="1234"
    )
    with (
        ServiceTitanClient(
            bad,
            base_url="https://st.test",
            auth_url="https://st.test/connect/token",
            http=httpx.Client(transport=httpx.MockTransport(st)),
            sleep=Sleeps(),
            token_cache=TokenCache(clock=clock),
        ) as client,
        pytest.raises(AuthError) as caught,
    ):
        client.authenticate()
    assert len(st.requests) == 1
    message = str(caught.value)
    assert "rejected the client id/secret (invalid_client)" in message
    assert "wrong-secret" not in message and "cs1." not in message
    assert message.startswith("servicetitan: POST /connect/token -> HTTP 400")


def test_errors_reprs_and_logs_never_contain_secrets_or_tokens(
    st: FakeServiceTitan, client: ServiceTitanClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="crmsync.connectors")
    st.routes["/crm/v2/tenant/1234/customers/9/notes"] = lambda r: httpx.Response(
        500, json={"echo": r.headers.get("Authorization")}
    )
    st.routes[JOBS] = lambda r: httpx.Response(401)
    failures: list[ConnectorError] = []
    for call in (
        lambda: client.create_customer_note(9, "hello"),
        lambda: client.export_page("jobs", "opaque-cursor"),
    ):
        with pytest.raises(ConnectorError) as caught:
            call()
        failures.append(caught.value)
    texts = [repr(CREDS), str(CREDS), repr(client), caplog.text]
    texts += [str(e) for e in failures] + [repr(e) for e in failures]
    for text in texts:
        for secret in (SECRET, APP_KEY, "jwt-1-opaque", "jwt-2-opaque", "opaque-cursor"):
            assert secret not in text


def test_export_page_returns_records_token_and_has_more(
    st: FakeServiceTitan, client: ServiceTitanClient
) -> None:
    st.routes[JOBS] = export_body([{"id": 1}, {"id": 2}], token="next", more=True)
    page = client.export_page("jobs", "prev")
    assert (page.records, page.continue_from, page.has_more) == (
        [{"id": 1}, {"id": 2}],
        "next",
        True,
    )
    assert st.api_requests[0].url.params["from"] == "prev"


def test_export_page_keeps_the_last_copy_of_a_repeated_id(
    st: FakeServiceTitan, client: ServiceTitanClient
) -> None:
    records: list[dict[str, Any]] = [{"id": 1, "v": "old"}, {"id": 2}, {"id": 1, "v": "new"}]
    st.routes[JOBS] = export_body(records)
    assert client.export_page("jobs", None).records == [{"id": 2}, {"id": 1, "v": "new"}]


@pytest.mark.parametrize(
    ("resource", "path"),
    [
        ("appointments", "/jpm/v2/tenant/1234/export/appointments"),
        ("customers", "/crm/v2/tenant/1234/export/customers"),
        ("customer_contacts", "/crm/v2/tenant/1234/export/customers/contacts"),
        ("locations", "/crm/v2/tenant/1234/export/locations"),
        ("memberships", "/memberships/v2/tenant/1234/export/memberships"),
        ("estimates", "/sales/v2/tenant/1234/estimates/export"),
    ],
)
def test_export_resources_map_to_the_vendor_paths(
    st: FakeServiceTitan, client: ServiceTitanClient, resource: str, path: str
) -> None:
    st.routes[path] = export_body([{"id": 3}])
    assert client.export_page(resource, None).records == [{"id": 3}]


def test_unknown_export_resource_is_a_value_error(client: ServiceTitanClient) -> None:
    with pytest.raises(ValueError, match="unknown ServiceTitan export 'warranties'"):
        client.export_page("warranties", None)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>gateway</html>",
        orjson.dumps({"data": [], "hasMore": False}),
        orjson.dumps({"data": [], "continueFrom": "x"}),
        orjson.dumps({"hasMore": False, "continueFrom": "x"}),
        orjson.dumps({"data": [1], "hasMore": False, "continueFrom": "x"}),
        orjson.dumps([]),
    ],
    ids=["not-json", "no-continueFrom", "no-hasMore", "no-data", "non-object-item", "array"],
)
def test_export_page_with_undocumented_shape_is_response_format_error(
    st: FakeServiceTitan, client: ServiceTitanClient, body: bytes
) -> None:
    st.routes[JOBS] = lambda request: httpx.Response(200, content=body)
    with pytest.raises(ResponseFormatError):
        client.export_page("jobs", None)
    assert len(st.api_requests) == 1


def test_get_customers_chunks_ids_by_50_and_follows_has_more(
    st: FakeServiceTitan, client: ServiceTitanClient
) -> None:
    def customers(request: httpx.Request) -> httpx.Response:
        ids = [int(i) for i in request.url.params["ids"].split(",")]
        page = int(request.url.params["page"])
        half = len(ids) // 2 or 1
        chunk = ids[:half] if page == 1 else ids[half:]
        return httpx.Response(
            200, json={"page": page, "data": [{"id": i} for i in chunk], "hasMore": page == 1}
        )

    st.routes["/crm/v2/tenant/1234/customers"] = customers
    wanted = [*range(1, 121), 5]  # a duplicate id is asked for once
    got = client.get_customers(wanted)
    assert sorted(r["id"] for r in got) == list(range(1, 121))
    id_lists = [r.url.params["ids"].split(",") for r in st.api_requests]
    assert all(len(ids) <= 50 for ids in id_lists)
    assert {r.url.params["active"] for r in st.api_requests} == {"Any"}
    assert len(st.api_requests) == 6  # 3 chunks x 2 pages


def test_get_customer_contacts_queries_by_customer_ids(
    st: FakeServiceTitan, client: ServiceTitanClient
) -> None:
    st.routes["/crm/v2/tenant/1234/customers/contacts"] = lambda r: httpx.Response(
        200, json={"data": [{"id": 1, "customerId": 7, "type": "Email"}], "hasMore": False}
    )
    assert client.get_customer_contacts([7]) == [{"id": 1, "customerId": 7, "type": "Email"}]
    assert st.api_requests[0].url.params["customerIds"] == "7"
    assert client.get_customer_contacts([]) == []


def test_note_create_posts_text_and_dropped_reply_is_ambiguous(
    st: FakeServiceTitan, client: ServiceTitanClient
) -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected", request=request)

    st.routes["/jpm/v2/tenant/1234/jobs/77/notes"] = drop
    with pytest.raises(TransientError) as caught:
        client.create_job_note(77, "[hatch:abc] hello")
    assert caught.value.ambiguous
    (call,) = st.api_requests
    assert call.method == "POST" and orjson.loads(call.content) == {"text": "[hatch:abc] hello"}


def test_note_listing_pages_through_has_more(
    st: FakeServiceTitan, client: ServiceTitanClient
) -> None:
    def notes(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        return httpx.Response(200, json={"data": [{"text": f"n{page}"}], "hasMore": page < 3})

    st.routes["/crm/v2/tenant/1234/locations/5/notes"] = notes
    assert [n["text"] for n in client.list_location_notes(5)] == ["n1", "n2", "n3"]


# -- small rules -------------------------------------------------------------------------


def test_first_sync_starts_90_days_back() -> None:
    now = datetime(2025, 6, 30, 23, 30, tzinfo=UTC)
    assert first_sync_from(now) == "2025-04-01"
    assert first_sync_from(now, days=1) == "2025-06-29"
    with pytest.raises(ValueError):
        first_sync_from(datetime(2025, 6, 30))


@pytest.mark.parametrize("tenant_id", ["12/../3", "", "\uff11\uff12"])
def test_tenant_id_must_be_ascii_digits(tenant_id: str) -> None:
    with pytest.raises(ValueError):
        ServiceTitanCredentials(client_id="c", client_secret="s", app_key="a", tenant_id=tenant_id)


def test_connector_errors_survive_pickling_with_their_attributes() -> None:
    error = RateLimitedError("acme: GET /x -> HTTP 429", provider="acme", retry_after=3.0)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.provider, copy.retry_after, copy.retryable, str(copy)) == (
        "acme",
        3.0,
        True,
        str(error),
    )
    ambiguous = pickle.loads(pickle.dumps(TransientError("t", ambiguous=True)))
    assert ambiguous.ambiguous is True


def test_a_crm_that_does_not_answer_is_reported_with_its_host_and_port() -> None:
    script, sleeps = Script(httpx.ConnectError("refused")), Sleeps()
    with pytest.raises(TransientError) as caught:
        engine(script, sleeps, max_attempts=2).request("GET", "/things")
    assert "GET /things: ConnectError before sending: api.example.test:443 does not answer" in str(
        caught.value
    )
