"""The ServiceTitan connector over real HTTP against the sandbox emulator (crm-apis.md §5.1, §5.4).

Retries use a recording ``sleep``, so faults are survived without waiting; only the latency test
spends real time (a short read timeout against a slower response).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors.errors import (
    AuthError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    TransientError,
)
from connectors.servicetitan import (
    ExportPage,
    ServiceTitanClient,
    ServiceTitanCredentials,
    TokenCache,
    first_sync_from,
)
from sandbox.servicetitan import TenantSpec, run_emulator

TENANT = TenantSpec(
    tenant_id=1234,
    client_id="cid.a",
    client_secret="cs1.a",
    app_key="ak1.a",
    customers=40,
    jobs=60,
    memberships=20,
    seed=1,
)
OTHER = TenantSpec(
    tenant_id=5678, client_id="cid.b", client_secret="cs1.b", app_key="ak1.a", seed=2
)
PAGE_SIZE = 25


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def emu() -> Iterator[Any]:
    with run_emulator([TENANT, OTHER], port=0, export_page_size=PAGE_SIZE) as emulator:
        yield emulator


def credentials(spec: TenantSpec = TENANT, **override: str) -> ServiceTitanCredentials:
    values = {
        "client_id": spec.client_id,
        "client_secret": spec.client_secret,
        "app_key": spec.app_key,
        "tenant_id": str(spec.tenant_id),
        **override,
    }
    return ServiceTitanCredentials(**values)


def make_client(
    emu: Any, creds: ServiceTitanCredentials | None = None, **kwargs: Any
) -> ServiceTitanClient:
    kwargs.setdefault("sleep", Sleeps())
    kwargs.setdefault("token_cache", TokenCache())
    return ServiceTitanClient(
        creds or credentials(),
        base_url=emu.url,
        auth_url=emu.url + "/connect/token",
        **kwargs,
    )


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(emu: Any, sleeps: Sleeps) -> Iterator[ServiceTitanClient]:
    with make_client(emu, sleep=sleeps) as c:
        c.authenticate()
        yield c


def drain(client: ServiceTitanClient, resource: str, from_: str | None) -> list[ExportPage]:
    pages = [client.export_page(resource, from_)]
    while pages[-1].has_more:
        pages.append(client.export_page(resource, pages[-1].continue_from))
        assert len(pages) < 100, "export never ended"
    return pages


def ids(pages: list[ExportPage]) -> list[int]:
    return [record["id"] for page in pages for record in page.records]


# -- paging ------------------------------------------------------------------------------


def test_export_paging_reaches_every_job_exactly_once(client: ServiceTitanClient) -> None:
    pages = drain(client, "jobs", None)
    job_ids = ids(pages)
    assert len(job_ids) == TENANT.jobs == len(set(job_ids))
    assert len(pages) == -(-TENANT.jobs // PAGE_SIZE)
    assert all(len(page.records) <= PAGE_SIZE for page in pages)
    assert any(record["active"] is False for page in pages for record in page.records)


@pytest.mark.parametrize(
    "resource",
    ["appointments", "customers", "customer_contacts", "locations", "memberships", "estimates"],
)
def test_every_export_feed_pages_to_the_end(
    emu: Any, client: ServiceTitanClient, resource: str
) -> None:
    record_ids = ids(drain(client, resource, None))
    expected = {r["id"] for r in emu.state.get_records(TENANT.tenant_id, resource)}
    assert len(record_ids) == len(set(record_ids)) and set(record_ids) == expected


def test_a_later_upsert_appears_after_the_stored_token(
    emu: Any, client: ServiceTitanClient
) -> None:
    stored = drain(client, "jobs", None)[-1].continue_from
    assert client.export_page("jobs", stored).records == []
    job = client.export_page("jobs", None).records[0]
    emu.state.upsert_record(TENANT.tenant_id, "jobs", {**job, "summary": "changed"})
    page = client.export_page("jobs", stored)
    assert [r["id"] for r in page.records] == [job["id"]]
    assert page.records[0]["summary"] == "changed"
    assert page.records[0]["modifiedOn"] > job["modifiedOn"]


def test_first_sync_reads_only_the_last_90_days(emu: Any, client: ServiceTitanClient) -> None:
    everything = [r for page in drain(client, "memberships", None) for r in page.records]
    since = first_sync_from(emu.state.now())
    recent = [r for page in drain(client, "memberships", since) for r in page.records]
    expected = {r["id"] for r in everything if r["modifiedOn"][:10] >= since}
    assert {r["id"] for r in recent} == expected
    assert 0 < len(expected) < len(everything)  # the seed has memberships older than 90 days


def test_customers_and_contacts_are_looked_up_by_id(client: ServiceTitanClient) -> None:
    customers = [r for p in drain(client, "customers", None) for r in p.records]
    wanted = [c["id"] for c in customers]
    got = client.get_customers(wanted)
    assert sorted(c["id"] for c in got) == sorted(wanted)  # inactive ones included
    contacts = client.get_customer_contacts(wanted)
    assert contacts and {c["customerId"] for c in contacts} <= set(wanted)


# -- faults ------------------------------------------------------------------------------


def test_429_is_survived_by_waiting_the_retry_after(
    emu: Any, client: ServiceTitanClient, sleeps: Sleeps
) -> None:
    emu.state.arm_fault("status", route="*export/jobs*", times=2, status=429, retry_after=3)
    assert drain(client, "jobs", None)
    assert sleeps == [3.0, 3.0]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_survived_with_backoff(
    emu: Any, client: ServiceTitanClient, sleeps: Sleeps, status: int
) -> None:
    emu.state.arm_fault("status", route="*export/jobs*", times=2, status=status)
    assert len(ids(drain(client, "jobs", None))) == TENANT.jobs
    assert len(sleeps) == 2


def test_5xx_that_outlives_the_retries_is_transient(emu: Any, client: ServiceTitanClient) -> None:
    emu.state.arm_fault("status", route="*export/jobs*", times=10, status=503)
    with pytest.raises(TransientError) as caught:
        client.export_page("jobs", None)
    assert caught.value.status_code == 503 and caught.value.retryable


def test_429_that_outlives_the_retries_is_rate_limited(
    emu: Any, client: ServiceTitanClient
) -> None:
    emu.state.arm_fault("status", route="*export/jobs*", times=10, status=429, retry_after=2)
    with pytest.raises(RateLimitedError) as caught:
        client.export_page("jobs", None)
    assert caught.value.retry_after == 2.0


def test_dropped_connection_on_a_read_is_retried(emu: Any, client: ServiceTitanClient) -> None:
    emu.state.arm_fault("drop_connection", route="*export/jobs*", times=1)
    pages = drain(client, "jobs", None)
    assert len(ids(pages)) == TENANT.jobs
    assert calls(emu, "GET", "/jpm/v2/tenant/1234/export/jobs") == len(pages) + 1


def test_slow_response_times_out_and_is_retried(emu: Any) -> None:
    with make_client(emu, timeout=0.3) as client:
        client.authenticate()
        emu.state.arm_fault("latency", route="*export/jobs*", times=1, latency_ms=1000)
        pages = drain(client, "jobs", None)
    assert len(ids(pages)) == TENANT.jobs
    assert calls(emu, "GET", "/jpm/v2/tenant/1234/export/jobs") == len(pages) + 1


def test_bad_credentials_are_an_auth_error_without_retries(emu: Any) -> None:
    with make_client(emu, credentials(client_secret="cs1.wrong")) as client:
        with pytest.raises(AuthError) as caught:
            client.authenticate()
        with pytest.raises(AuthError):
            client.export_page("jobs", None)
    assert "cs1.wrong" not in str(caught.value)
    assert "invalid_client" in str(caught.value)
    assert token_requests(emu) == 2  # one per call: no retries, and no API call attempted
    assert len(emu.state.requests) == 2


def test_expired_token_mid_run_is_transparent(emu: Any, client: ServiceTitanClient) -> None:
    first = client.export_page("jobs", None)
    emu.state.advance_clock(901)  # past expires_in on the server; the client cannot know
    rest = drain(client, "jobs", first.continue_from)
    emu.state.arm_fault("expire_token", route="*", times=1)
    again = client.export_page("jobs", None)
    assert len(ids([first, *rest])) == TENANT.jobs and again.records
    assert token_requests(emu) == 3  # the first token, then one re-authentication per expiry


def test_token_for_another_tenant_is_forbidden(emu: Any) -> None:
    wrong_tenant = credentials(OTHER, tenant_id=str(TENANT.tenant_id))
    with make_client(emu, wrong_tenant) as client, pytest.raises(ForbiddenError):
        client.export_page("jobs", None)
    assert calls(emu, "GET", "/jpm/v2/tenant/1234/export/jobs") == 1


# -- notes -------------------------------------------------------------------------------


def some(client: ServiceTitanClient, resource: str) -> dict[str, Any]:
    return client.export_page(resource, None).records[0]


def test_notes_are_created_and_listed_on_jobs_customers_and_locations(
    client: ServiceTitanClient,
) -> None:
    job, customer, location = (some(client, r) for r in ("jobs", "customers", "locations"))
    created = client.create_job_note(job["id"], "[hatch:k1] job note")
    assert created["text"] == "[hatch:k1] job note" and "id" not in created
    assert client.create_customer_note(customer["id"], "[hatch:k2] customer note")["id"]
    assert client.create_location_note(location["id"], "[hatch:k3] location note")["id"]
    assert "[hatch:k1] job note" in [n["text"] for n in client.list_job_notes(job["id"])]
    customer_notes = [n["text"] for n in client.list_customer_notes(customer["id"])]
    assert "[hatch:k2] customer note" in customer_notes
    location_notes = [n["text"] for n in client.list_location_notes(location["id"])]
    assert "[hatch:k3] location note" in location_notes


def test_note_on_an_unknown_job_is_not_found(client: ServiceTitanClient) -> None:
    with pytest.raises(NotFoundError):
        client.create_job_note(1, "nobody home")


def test_note_stored_but_unanswered_is_ambiguous_and_found_on_check(
    emu: Any, client: ServiceTitanClient
) -> None:
    job = some(client, "jobs")
    emu.state.arm_fault("timeout_after_store", route="*/notes", times=1, latency_ms=1500)
    with make_client(emu, timeout=0.4) as impatient, pytest.raises(TransientError) as caught:
        impatient.create_job_note(job["id"], "[hatch:k9] once only")
    assert caught.value.ambiguous
    texts = [n["text"] for n in client.list_job_notes(job["id"])]
    assert texts.count("[hatch:k9] once only") == 1


@pytest.mark.parametrize(
    ("kind", "extra"),
    [("drop_connection", {}), ("status", {"status": 502})],
    ids=["dropped", "5xx"],
)
def test_note_create_failing_after_store_is_not_resent(
    emu: Any, client: ServiceTitanClient, kind: str, extra: dict[str, Any]
) -> None:
    location = some(client, "locations")
    emu.state.arm_fault(kind, route="*/notes", times=1, phase="after", **extra)
    with pytest.raises(TransientError) as caught:
        client.create_location_note(location["id"], "[hatch:k8] maybe")
    assert caught.value.ambiguous
    path = f"/crm/v2/tenant/1234/locations/{location['id']}/notes"
    assert calls(emu, "POST", path) == 1
    texts = [n["text"] for n in client.list_location_notes(location["id"])]
    assert texts.count("[hatch:k8] maybe") == 1


def calls(emu: Any, method: str, path: str) -> int:
    return sum(1 for r in emu.state.requests if r.method == method and r.path == path)


def token_requests(emu: Any) -> int:
    return sum(1 for r in emu.state.requests if r.path == "/connect/token")


@pytest.mark.parametrize(
    ("resource", "verb", "scope"),
    [("estimates", "export", "Sales & Estimates: Estimates"), ("zones", "list", "Dispatch: Zones")],
)
def test_a_missing_scope_says_whether_the_export_or_the_list_was_refused(
    resource: str, verb: str, scope: str
) -> None:
    from connectors.servicetitan import missing_scope

    refused = ForbiddenError("403", provider="servicetitan", status_code=403, method="GET")
    message = str(missing_scope(resource, refused))
    assert f"ServiceTitan refused to {verb} {resource} (HTTP 403)" in message
    assert scope in message
