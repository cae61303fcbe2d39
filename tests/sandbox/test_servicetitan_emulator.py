"""The ServiceTitan emulator speaks the vendor's wire format (crm-apis.md §1 and §5.1).

Everything goes through real HTTP (httpx against uvicorn on loopback), because the connector under
test will too. Response bodies are validated against the vendor's own OpenAPI documents in
tests/fixtures/servicetitan-openapi/.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft4Validator

from sandbox.servicetitan import (
    EmulatorState,
    RunningEmulator,
    TenantSpec,
    generate_tenant,
    run_emulator,
)
from sandbox.servicetitan.__main__ import parse_tenant

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "servicetitan-openapi"
START = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)
DAY_MS = 86_400_000
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

ACME = TenantSpec(1234, "cid.acme", "cs1.acme", "ak1.demo", customers=40, jobs=60, memberships=20)
BETA = TenantSpec(5678, "cid.beta", "cs1.beta", "ak1.demo", customers=8, jobs=10, memberships=4)
GAMMA = TenantSpec(9012, "cid.gamma", "cs1.gamma", "ak1.other", customers=8, jobs=10, seed=3)
SPECS = [ACME, BETA, GAMMA]


class Api:
    """A minimal client for one tenant, the way a connector talks to ServiceTitan."""

    def __init__(self, emu: RunningEmulator, spec: TenantSpec, timeout: float = 5.0) -> None:
        self.emu = emu
        self.spec = spec
        self.http = httpx.Client(base_url=emu.url, timeout=timeout)
        self.token = self.new_token()

    def new_token(self) -> str:
        response = self.http.post(
            "/connect/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.spec.client_id,
                "client_secret": self.spec.client_secret,
            },
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def headers(self) -> dict[str, str]:
        return {"ST-App-Key": self.spec.app_key, "Authorization": f"Bearer {self.token}"}

    def url(self, module: str, path: str, tenant: int | None = None) -> str:
        return f"/{module}/v2/tenant/{tenant or self.spec.tenant_id}/{path}"

    def get(self, module: str, path: str, **params: Any) -> httpx.Response:
        return self.http.get(self.url(module, path), params=params, headers=self.headers())

    def post(self, module: str, path: str, body: Any) -> httpx.Response:
        return self.http.post(self.url(module, path), json=body, headers=self.headers())

    def export_all(self, module: str, path: str, **params: Any) -> tuple[list[dict[str, Any]], str]:
        """Follow `continueFrom` until `hasMore` is false: (items, last token)."""
        items: list[dict[str, Any]] = []
        token = params.pop("from_", None)
        for _ in range(1000):
            query = dict(params)
            if token is not None:
                query["from"] = token
            response = self.get(module, path, **query)
            assert response.status_code == 200, response.text
            body = response.json()
            items.extend(body["data"])
            token = body["continueFrom"]
            if not body["hasMore"]:
                return items, token
        raise AssertionError("export never ended")

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def server() -> Iterator[RunningEmulator]:
    with run_emulator(SPECS, start_time=START, frozen_clock=True) as running:
        yield running


@pytest.fixture
def emu(server: RunningEmulator) -> RunningEmulator:
    """The module's server, reset to its initial state (fresh data, no tokens, faults or log)."""
    server.state.reset()
    return server


@pytest.fixture
def acme(emu: RunningEmulator) -> Iterator[Api]:
    api = Api(emu, ACME)
    yield api
    api.close()


# -- vendor schemas --------------------------------------------------------------------------


def _nullable_oas3(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` becomes a JSON Schema `anyOf` with null."""
    if isinstance(node, list):
        return [_nullable_oas3(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_oas3(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [{"type": "null"}, converted]}
    return converted


def _nullable_swagger2(node: Any) -> Any:
    """Swagger 2.0 cannot say "nullable", and the vendor's CRM document (generated from C#)
    marks nothing so; the real API returns null for absent optional values. So properties that
    are not `required` may be null. `phoneSettings` may be null too: it is listed as required but
    only applies to phone-type contacts (emulator choice for Email contacts, see data.py)."""
    if isinstance(node, list):
        return [_nullable_swagger2(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_swagger2(value) for key, value in node.items()}
    properties = converted.get("properties")
    if isinstance(properties, dict) and node.get("type") == "object":
        required = set(node.get("required", []))
        for name, schema in list(properties.items()):
            if name not in required or name == "phoneSettings":
                properties[name] = {"anyOf": [{"type": "null"}, schema]}
    return converted


@functools.cache
def _document(name: str) -> dict[str, Any]:
    raw = json.loads((FIXTURES / name).read_text())
    return _nullable_swagger2(raw) if "swagger" in raw else _nullable_oas3(raw)


def validate_response(document: str, spec_path: str, method: str, body: Any) -> None:
    """Validate a 200 body against the operation's response schema in the vendor document."""
    doc = _document(document)
    operation = doc["paths"][spec_path][method]
    ok = operation["responses"]["200"]
    schema = ok["schema"] if "schema" in ok else ok["content"]["application/json"]["schema"]
    root: dict[str, Any] = {key: doc[key] for key in ("components", "definitions") if key in doc}
    root["allOf"] = [schema]
    validator = Draft4Validator(root, format_checker=Draft4Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(body), key=lambda error: list(error.absolute_path))
    assert not errors, "\n".join(
        f"{list(error.absolute_path)}: {error.message[:300]}" for error in errors[:10]
    )
    _assert_timestamp_shape(body)


def _assert_timestamp_shape(node: Any, key: str = "") -> None:
    """Every emulator date-time is RFC3339 UTC with milliseconds, e.g. 2026-11-20T14:03:11.123Z."""
    if isinstance(node, dict):
        for name, value in node.items():
            _assert_timestamp_shape(value, name)
    elif isinstance(node, list):
        for item in node:
            _assert_timestamp_shape(item, key)
    elif isinstance(node, str) and (
        key.endswith("On") or key in {"start", "end", "from", "to", "cancellationDate"}
    ):
        assert TIMESTAMP.match(node), f"{key}={node!r}"


# Every read route and note POST of the emulator contract (crm-apis.md §5.1), with the vendor
# operation whose 200 response schema it must satisfy.
JPM, CRM = "tenant-jpm-v2.json", "tenant-crm-v2.json"
MEM, SALES = "tenant-memberships-v2.json", "tenant-salestech-v2.json"
DISPATCH, SETTINGS = "tenant-dispatch-v2.json", "tenant-settings-v2.json"
ACCOUNTING, MARKETING = "tenant-accounting-v2.json", "tenant-marketing-v2.json"
READ_ROUTES: list[tuple[str, str, str, str, dict[str, Any]]] = [
    (JPM, "jpm", "jobs", "/tenant/{tenant}/jobs", {"pageSize": 500, "includeTotal": "true"}),
    (JPM, "jpm", "jobs/{job}", "/tenant/{tenant}/jobs/{id}", {}),
    (JPM, "jpm", "jobs/{job}/notes", "/tenant/{tenant}/jobs/{id}/notes", {}),
    (JPM, "jpm", "appointments", "/tenant/{tenant}/appointments", {"pageSize": 500}),
    (JPM, "jpm", "appointments/{appointment}", "/tenant/{tenant}/appointments/{id}", {}),
    (JPM, "jpm", "export/jobs", "/tenant/{tenant}/export/jobs", {}),
    (JPM, "jpm", "export/appointments", "/tenant/{tenant}/export/appointments", {}),
    (JPM, "jpm", "export/job-notes", "/tenant/{tenant}/export/job-notes", {}),
    (CRM, "crm", "customers", "/tenant/{tenant}/customers", {"active": "Any", "pageSize": 500}),
    (CRM, "crm", "customers/{customer}", "/tenant/{tenant}/customers/{id}", {}),
    (
        CRM,
        "crm",
        "customers/{customer}/contacts",
        "/tenant/{tenant}/customers/{id}/contacts",
        {"includeTotal": "true"},
    ),
    (
        CRM,
        "crm",
        "customers/contacts",
        "/tenant/{tenant}/customers/contacts",
        {"modifiedOnOrAfter": "2000-01-01T00:00:00Z", "pageSize": 500},
    ),
    (CRM, "crm", "customers/{customer}/notes", "/tenant/{tenant}/customers/{id}/notes", {}),
    (CRM, "crm", "locations", "/tenant/{tenant}/locations", {"active": "Any", "pageSize": 500}),
    (CRM, "crm", "locations/{location}", "/tenant/{tenant}/locations/{id}", {}),
    (CRM, "crm", "locations/{location}/notes", "/tenant/{tenant}/locations/{id}/notes", {}),
    (CRM, "crm", "export/customers", "/tenant/{tenant}/export/customers", {}),
    (CRM, "crm", "export/customers/contacts", "/tenant/{tenant}/export/customers/contacts", {}),
    (CRM, "crm", "export/locations", "/tenant/{tenant}/export/locations", {}),
    (MEM, "memberships", "memberships", "/tenant/{tenant}/memberships", {"active": "Any"}),
    (MEM, "memberships", "memberships/{membership}", "/tenant/{tenant}/memberships/{id}", {}),
    (MEM, "memberships", "export/memberships", "/tenant/{tenant}/export/memberships", {}),
    (SALES, "sales", "estimates", "/tenant/{tenant}/estimates", {"active": "Any"}),
    (SALES, "sales", "estimates/{estimate}", "/tenant/{tenant}/estimates/{id}", {}),
    (SALES, "sales", "estimates/export", "/tenant/{tenant}/estimates/export", {}),
    # Seed 002's object selector (issue 14): reference data and the optional child resources.
    (DISPATCH, "dispatch", "zones", "/tenant/{tenant}/zones", {"active": "Any"}),
    (
        DISPATCH,
        "dispatch",
        "export/appointment-assignments",
        "/tenant/{tenant}/export/appointment-assignments",
        {},
    ),
    (SETTINGS, "settings", "export/employees", "/tenant/{tenant}/export/employees", {}),
    (SETTINGS, "settings", "export/technicians", "/tenant/{tenant}/export/technicians", {}),
    (SETTINGS, "settings", "export/business-units", "/tenant/{tenant}/export/business-units", {}),
    (SETTINGS, "settings", "export/tag-types", "/tenant/{tenant}/export/tag-types", {}),
    (ACCOUNTING, "accounting", "export/invoices", "/tenant/{tenant}/export/invoices", {}),
    (
        ACCOUNTING,
        "accounting",
        "export/invoice-items",
        "/tenant/{tenant}/export/invoice-items",
        {},
    ),
    (MARKETING, "marketing", "campaigns", "/marketing/v2/tenant/{tenant}/campaigns", {}),
    (JPM, "jpm", "job-types", "/tenant/{tenant}/job-types", {"active": "Any"}),
    (JPM, "jpm", "job-cancel-reasons", "/tenant/{tenant}/job-cancel-reasons", {}),
    (JPM, "jpm", "export/job-canceled-logs", "/tenant/{tenant}/export/job-canceled-logs", {}),
    (MEM, "memberships", "export/membership-types", "/tenant/{tenant}/export/membership-types", {}),
    (
        MEM,
        "memberships",
        "export/recurring-services",
        "/tenant/{tenant}/export/recurring-services",
        {},
    ),
    (
        MEM,
        "memberships",
        "export/recurring-service-events",
        "/tenant/{tenant}/export/recurring-service-events",
        {},
    ),
]


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[Api, dict[str, int]]]:
    """One emulator for the schema checks, with notes written so the note lists have data."""
    with run_emulator([ACME], start_time=START, frozen_clock=True) as running:
        api = Api(running, ACME)
        state = running.state

        def first_active(resource: str) -> int:
            return next(r["id"] for r in state.get_records(ACME.tenant_id, resource) if r["active"])

        ids = {
            "job": first_active("jobs"),
            "appointment": first_active("appointments"),
            "customer": next(
                r["customerId"]
                for r in state.get_records(ACME.tenant_id, "customer_contacts")
                if r["active"]
            ),
            "location": first_active("locations"),
            "membership": first_active("memberships"),
            "estimate": first_active("estimates"),
        }
        api.post("jpm", f"jobs/{ids['job']}/notes", {"text": "Called the customer."})
        api.post("crm", f"customers/{ids['customer']}/notes", {"text": "Texted.", "pinToTop": True})
        api.post("crm", f"locations/{ids['location']}/notes", {"text": "Email sent."})
        yield api, ids
        api.close()


@pytest.mark.parametrize(
    ("document", "module", "path", "spec_path", "params"),
    READ_ROUTES,
    ids=[route[2] for route in READ_ROUTES],
)
def test_read_route_matches_the_vendor_response_schema(
    shared: tuple[Api, dict[str, int]],
    document: str,
    module: str,
    path: str,
    spec_path: str,
    params: dict[str, Any],
) -> None:
    api, ids = shared
    response = api.get(module, path.format(**ids), **params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    validate_response(document, spec_path, "get", body)
    items = body["data"] if isinstance(body.get("data"), list) else [body]
    assert items, "the route returned no records, so the schema check proved nothing"


@pytest.mark.parametrize(
    ("document", "module", "parent", "spec_path", "has_id"),
    [
        (JPM, "jpm", "jobs/{job}", "/tenant/{tenant}/jobs/{id}/notes", False),
        (CRM, "crm", "customers/{customer}", "/tenant/{tenant}/customers/{id}/notes", True),
        (CRM, "crm", "locations/{location}", "/tenant/{tenant}/locations/{id}/notes", True),
    ],
    ids=["job", "customer", "location"],
)
def test_note_post_returns_the_vendor_note_response(
    shared: tuple[Api, dict[str, int]],
    document: str,
    module: str,
    parent: str,
    spec_path: str,
    has_id: bool,
) -> None:
    api, ids = shared
    response = api.post(module, f"{parent.format(**ids)}/notes", {"text": "Hatch: reply received"})
    assert response.status_code == 200, response.text
    body = response.json()
    validate_response(document, spec_path, "post", body)
    assert ("id" in body) is has_id  # the JPM NoteResponse has no id (crm-apis.md §1.8)
    assert body["text"] == "Hatch: reply received"
    assert body["isPinned"] is False


def test_job_notes_export_carries_ids_edits_and_deletions_as_inactive(
    emu: RunningEmulator, acme: Api
) -> None:
    """Issue 15: a CSR's notes (control routes) reach ``export/job-notes`` in the vendor shape;
    an edit comes again after the token, a deletion with ``active: false``."""
    job = next(r["id"] for r in emu.state.get_records(ACME.tenant_id, "jobs") if r["active"])
    control = f"{emu.url}/__emulator/tenants/{ACME.tenant_id}/notes/job/{job}"
    kept = httpx.post(control, json={"text": "Gate code 1234", "createdById": 42}).json()
    gone = httpx.post(control, json={"text": "Wrong house"}).json()
    first, token = acme.export_all("jpm", "export/job-notes")
    assert [(n["id"], n["jobId"], n["active"]) for n in first] == [
        (kept["id"], job, True),
        (gone["id"], job, True),
    ]
    assert first[0]["createdById"] == 42
    validate_response(
        JPM,
        "/tenant/{tenant}/export/job-notes",
        "get",
        {"hasMore": False, "continueFrom": token, "data": first},
    )

    emu.state.advance_clock(60)
    assert httpx.patch(f"{control}/{kept['id']}", json={"text": "Gate code 4321"}).is_success
    assert httpx.delete(f"{control}/{gone['id']}").is_success
    later, _ = acme.export_all("jpm", "export/job-notes", from_=token)
    assert [(n["id"], n["text"], n["active"]) for n in later] == [
        (kept["id"], "Gate code 4321", True),
        (gone["id"], "Wrong house", False),
    ]
    listed = acme.get("jpm", f"jobs/{job}/notes").json()["data"]
    assert [n["text"] for n in listed] == ["Gate code 4321"], "a deleted note leaves the list"


def test_a_deleted_customer_note_leaves_the_customers_note_list(
    emu: RunningEmulator, acme: Api
) -> None:
    customer = emu.state.get_records(ACME.tenant_id, "customers")[0]["id"]
    control = f"{emu.url}/__emulator/tenants/{ACME.tenant_id}/notes/customer/{customer}"
    note = httpx.post(control, json={"text": "Has a dog"}).json()
    assert [n["id"] for n in acme.get("crm", f"customers/{customer}/notes").json()["data"]] == [
        note["id"]
    ]
    assert httpx.delete(f"{control}/{note['id']}").is_success
    assert acme.get("crm", f"customers/{customer}/notes").json()["data"] == []
    assert httpx.delete(f"{control}/{note['id']}").status_code == 404


# -- auth ------------------------------------------------------------------------------------


def test_token_endpoint_issues_a_fresh_bearer_token_on_every_call(emu: RunningEmulator) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": "cid.acme",
        "client_secret": "cs1.acme",
    }
    with httpx.Client(base_url=emu.url) as http:
        first = http.post("/connect/token", data=form)
        second = http.post("/connect/token", data=form)
    assert first.status_code == second.status_code == 200
    body = first.json()
    assert set(body) == {"access_token", "expires_in", "token_type", "scope"}
    assert body["expires_in"] == 900
    assert body["token_type"] == "Bearer"
    assert body["access_token"] != second.json()["access_token"]


@pytest.mark.parametrize(
    ("client_id", "client_secret"),
    [("cid.acme", "wrong"), ("cid.nobody", "cs1.acme"), ("", "")],
)
def test_token_endpoint_rejects_bad_client_credentials_with_invalid_client(
    emu: RunningEmulator, client_id: str, client_secret: str
) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
    }
    response = httpx.post(f"{emu.url}/connect/token", data=form)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_client"}


def test_token_endpoint_rejects_other_grant_types_with_unsupported_grant_type(
    emu: RunningEmulator,
) -> None:
    form = {"grant_type": "password", "client_id": "cid.acme", "client_secret": "cs1.acme"}
    response = httpx.post(f"{emu.url}/connect/token", data=form)
    assert response.status_code == 400
    assert response.json() == {"error": "unsupported_grant_type"}


def test_token_request_never_logs_the_client_secret(emu: RunningEmulator, acme: Api) -> None:
    token_calls = [entry for entry in emu.state.requests if entry.path == "/connect/token"]
    assert token_calls
    assert all("cs1.acme" not in json.dumps(entry.as_dict()) for entry in token_calls)


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no app key, no token
        {"Authorization": "Bearer {token}"},  # no app key
        {"ST-App-Key": "ak1.unknown", "Authorization": "Bearer {token}"},  # unknown app key
        {"ST-App-Key": "ak1.demo"},  # no token
        {"ST-App-Key": "ak1.demo", "Authorization": "Bearer not-a-token"},  # unknown token
    ],
    ids=["nothing", "no-app-key", "bad-app-key", "no-token", "bad-token"],
)
def test_api_call_without_valid_app_key_and_token_is_401(
    acme: Api, headers: dict[str, str]
) -> None:
    sent = {key: value.format(token=acme.token) for key, value in headers.items()}
    response = acme.http.get(acme.url("jpm", "jobs"), headers=sent)
    assert response.status_code == 401
    body = response.json()
    assert body["statusCode"] == 401
    assert body["message"]


def test_token_works_with_or_without_bearer_prefix_and_app_key_in_query(acme: Api) -> None:
    url = acme.url("crm", "customers")
    raw = acme.http.get(url, headers={"ST-App-Key": "ak1.demo", "Authorization": acme.token})
    query_key = acme.http.get(
        url,
        params={"servicetitanapplicationkey": "ak1.demo"},
        headers={"Authorization": f"Bearer {acme.token}"},
    )
    assert raw.status_code == 200, raw.text
    assert query_key.status_code == 200, query_key.text


def test_token_expires_900_seconds_after_issue_on_the_emulator_clock(
    emu: RunningEmulator, acme: Api
) -> None:
    emu.state.advance_clock(899)
    assert acme.get("jpm", "jobs").status_code == 200
    emu.state.advance_clock(2)
    expired = acme.get("jpm", "jobs")
    assert expired.status_code == 401
    assert expired.json()["statusCode"] == 401
    acme.token = acme.new_token()
    assert acme.get("jpm", "jobs").status_code == 200


def test_token_of_another_tenant_is_forbidden(emu: RunningEmulator, acme: Api) -> None:
    response = acme.http.get(acme.url("jpm", "jobs", tenant=BETA.tenant_id), headers=acme.headers())
    assert response.status_code == 403
    assert response.json()["statusCode"] == 403


def test_token_issued_for_another_application_is_rejected(emu: RunningEmulator) -> None:
    gamma = Api(emu, GAMMA)
    try:
        headers = {"ST-App-Key": "ak1.demo", "Authorization": f"Bearer {gamma.token}"}
        response = gamma.http.get(gamma.url("jpm", "jobs"), headers=headers)
        assert response.status_code == 401
    finally:
        gamma.close()


# -- lists -----------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [0, -1, 5001, "abc"])
def test_page_size_outside_1_to_5000_is_a_400_api_error(acme: Api, page_size: Any) -> None:
    response = acme.get("jpm", "jobs", pageSize=page_size)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"type", "title", "status", "traceId", "errors", "data"}
    assert body["status"] == 400
    assert "pageSize" in body["errors"]


def test_page_size_5000_is_accepted(acme: Api) -> None:
    response = acme.get("jpm", "appointments", pageSize=5000)
    assert response.status_code == 200
    assert response.json()["pageSize"] == 5000


def test_more_than_50_ids_is_a_400_api_error(acme: Api) -> None:
    response = acme.get("crm", "customers", ids=",".join(str(i) for i in range(1, 52)))
    assert response.status_code == 400
    assert "ids" in response.json()["errors"]


def test_ids_filter_returns_exactly_those_records(emu: RunningEmulator, acme: Api) -> None:
    wanted = [r["id"] for r in emu.state.get_records(ACME.tenant_id, "customers") if r["active"]][
        :5
    ]
    response = acme.get("crm", "customers", ids=",".join(map(str, reversed(wanted))))
    assert [c["id"] for c in response.json()["data"]] == sorted(wanted)


def test_list_pages_follow_has_more_and_total_count_only_when_asked(
    emu: RunningEmulator, acme: Api
) -> None:
    expected = [r["id"] for r in emu.state.get_records(ACME.tenant_id, "customers") if r["active"]]
    seen: list[int] = []
    page = 1
    while True:
        body = acme.get("crm", "customers", page=page, pageSize=7).json()
        assert body["page"] == page and body["pageSize"] == 7 and body["totalCount"] is None
        seen.extend(c["id"] for c in body["data"])
        if not body["hasMore"]:
            break
        page += 1
    assert seen == expected  # default order: id ascending
    totals = acme.get("crm", "customers", pageSize=7, includeTotal="true").json()
    assert totals["totalCount"] == len(expected)


def test_date_bounds_are_inclusive_below_and_exclusive_above(
    emu: RunningEmulator, acme: Api
) -> None:
    job = emu.state.get_records(ACME.tenant_id, "jobs")[10]
    assert job["active"]
    stamp = job["modifiedOn"]
    on_or_after = acme.get("jpm", "jobs", modifiedOnOrAfter=stamp, pageSize=5000).json()["data"]
    before = acme.get("jpm", "jobs", modifiedBefore=stamp, pageSize=5000).json()["data"]
    assert job["id"] in {j["id"] for j in on_or_after}
    assert job["id"] not in {j["id"] for j in before}
    assert all(j["modifiedOn"] >= stamp for j in on_or_after)
    assert all(j["modifiedOn"] < stamp for j in before)
    created = acme.get("jpm", "jobs", createdOnOrAfter=job["createdOn"], pageSize=5000).json()
    assert job["id"] in {j["id"] for j in created["data"]}


def test_active_parameter_defaults_to_active_records_only(emu: RunningEmulator, acme: Api) -> None:
    records = emu.state.get_records(ACME.tenant_id, "customers")
    inactive = {r["id"] for r in records if not r["active"]}
    assert inactive, "the generated data should hold inactive customers"

    def listed(**params: Any) -> set[int]:
        return {
            c["id"] for c in acme.get("crm", "customers", pageSize=5000, **params).json()["data"]
        }

    assert listed() == {r["id"] for r in records if r["active"]}
    assert listed(active="Any") == {r["id"] for r in records}
    assert listed(active="False") == inactive
    assert acme.get("crm", "customers", active="Maybe").status_code == 400


def test_sort_orders_by_the_named_field_in_either_direction(acme: Api) -> None:
    data = acme.get("jpm", "jobs", sort="-ModifiedOn", pageSize=5000).json()["data"]
    stamps = [job["modifiedOn"] for job in data]
    assert stamps == sorted(stamps, reverse=True)
    # An unencoded "+" arrives as a space; it still means ascending.
    ascending = acme.http.get(
        acme.url("jpm", "jobs") + "?sort=+CreatedOn&pageSize=5000", headers=acme.headers()
    ).json()["data"]
    created = [job["createdOn"] for job in ascending]
    assert created == sorted(created)
    assert acme.get("jpm", "jobs", sort="+Color").status_code == 400


def test_parent_filters_return_the_children_of_that_parent(emu: RunningEmulator, acme: Api) -> None:
    state = emu.state
    appointments = [a for a in state.get_records(ACME.tenant_id, "appointments") if a["active"]]
    job_id = Counter(a["jobId"] for a in appointments).most_common(1)[0][0]
    listed = acme.get("jpm", "appointments", jobId=job_id).json()["data"]
    assert {a["id"] for a in listed} == {a["id"] for a in appointments if a["jobId"] == job_id}

    estimates = [e for e in state.get_records(ACME.tenant_id, "estimates") if e["active"]]
    job_id = estimates[0]["jobId"]
    listed = acme.get("sales", "estimates", jobId=job_id).json()["data"]
    assert {e["id"] for e in listed} == {e["id"] for e in estimates if e["jobId"] == job_id}

    customer_id = next(r["customerId"] for r in state.get_records(ACME.tenant_id, "locations"))
    listed = acme.get("crm", "locations", customerId=customer_id, active="Any").json()["data"]
    assert listed and all(loc["customerId"] == customer_id for loc in listed)

    contacts = [c for c in state.get_records(ACME.tenant_id, "customer_contacts") if c["active"]]
    customer_id = contacts[0]["customerId"]
    listed = acme.get("crm", f"customers/{customer_id}/contacts").json()["data"]
    assert {c["id"] for c in listed} == {
        c["id"] for c in contacts if c["customerId"] == customer_id
    }
    assert all("customerId" not in c for c in listed)  # per-customer shape has no customerId

    memberships = state.get_records(ACME.tenant_id, "memberships")
    two = sorted({m["customerId"] for m in memberships})[:2]
    listed = acme.get(
        "memberships", "memberships", customerIds=",".join(map(str, two)), active="Any"
    ).json()["data"]
    assert {m["id"] for m in listed} == {m["id"] for m in memberships if m["customerId"] in two}


def test_modified_contacts_list_requires_a_modified_bound(acme: Api) -> None:
    assert acme.get("crm", "customers/contacts").status_code == 400
    response = acme.get("crm", "customers/contacts", modifiedOnOrAfter="2000-01-01")
    assert response.status_code == 200
    assert all("customerId" in contact for contact in response.json()["data"])


def test_unknown_record_is_a_404_api_error(acme: Api) -> None:
    response = acme.get("jpm", "jobs/1")
    assert response.status_code == 404
    body = response.json()
    assert body["status"] == 404 and set(body) >= {"type", "title", "traceId", "errors", "data"}


def test_deleted_jobs_are_hidden_from_lists_but_exported_inactive(
    emu: RunningEmulator, acme: Api
) -> None:
    job = emu.state.get_records(ACME.tenant_id, "jobs")[0]
    emu.state.upsert_record(ACME.tenant_id, "jobs", {"id": job["id"], "active": False})
    assert acme.get("jpm", f"jobs/{job['id']}").status_code == 404
    listed = acme.get("jpm", "jobs", pageSize=5000).json()["data"]
    assert job["id"] not in {j["id"] for j in listed}
    assert all("active" not in j for j in listed)  # JobResponse has no `active`
    exported, _ = acme.export_all("jpm", "export/jobs")
    assert {"id": job["id"], "active": False}.items() <= next(
        j for j in exported if j["id"] == job["id"]
    ).items()


# -- exports ---------------------------------------------------------------------------------

EXPORTS = [
    ("jpm", "export/jobs", "jobs"),
    ("jpm", "export/appointments", "appointments"),
    ("crm", "export/customers", "customers"),
    ("crm", "export/customers/contacts", "customer_contacts"),
    ("crm", "export/locations", "locations"),
    ("memberships", "export/memberships", "memberships"),
    ("sales", "estimates/export", "estimates"),
]


def test_export_pages_reach_every_record_exactly_once_in_modified_order() -> None:
    with run_emulator([ACME], start_time=START, frozen_clock=True, export_page_size=7) as emu:
        api = Api(emu, ACME)
        try:
            for module, path, resource in EXPORTS:
                stored = emu.state.get_records(ACME.tenant_id, resource)
                deleted = emu.state.upsert_record(
                    ACME.tenant_id, resource, {"id": stored[3]["id"], "active": False}
                )
                items, _ = api.export_all(module, path)
                ids = [item["id"] for item in items]
                assert len(ids) == len(set(ids)), f"{path} repeated records"
                assert set(ids) == {r["id"] for r in stored}, f"{path} missed records"
                keys = [(item["modifiedOn"], item["id"]) for item in items]
                assert keys == sorted(keys)
                assert all(isinstance(item["active"], bool) for item in items)
                assert items[-1] == deleted  # inactive records are exported, flagged
                if resource == "customer_contacts":
                    assert all("customerId" in item for item in items)
        finally:
            api.close()


def test_export_token_after_the_end_yields_only_later_changes(
    emu: RunningEmulator, acme: Api
) -> None:
    items, token = acme.export_all("jpm", "export/jobs")
    again = acme.get("jpm", "export/jobs", **{"from": token}).json()
    assert again["data"] == [] and again["hasMore"] is False and again["continueFrom"]

    emu.state.advance_clock(60)
    changed = emu.state.upsert_record(
        ACME.tenant_id, "jobs", {"id": items[0]["id"], "jobStatus": "Canceled"}
    )
    created = emu.state.upsert_record(
        ACME.tenant_id,
        "jobs",
        {"customerId": items[1]["customerId"], "locationId": items[1]["locationId"]},
    )
    later, _ = acme.export_all("jpm", "export/jobs", from_=again["continueFrom"])
    assert [job["id"] for job in later] == [changed["id"], created["id"]]
    assert later[0]["jobStatus"] == "Canceled"
    assert later[0]["modifiedOn"] > items[-1]["modifiedOn"]


def test_export_from_a_date_starts_at_records_modified_on_or_after_it(
    emu: RunningEmulator, acme: Api
) -> None:
    everything, _ = acme.export_all("crm", "export/customers")
    pivot = everything[len(everything) // 2]["modifiedOn"]
    since, _ = acme.export_all("crm", "export/customers", from_=pivot)
    assert since == [c for c in everything if c["modifiedOn"] >= pivot]
    day = pivot[:10]
    since_day, _ = acme.export_all("crm", "export/customers", from_=day)
    assert since_day == [c for c in everything if c["modifiedOn"] >= f"{day}T00:00:00.000Z"]


def test_export_with_recent_changes_may_repeat_records_but_misses_none() -> None:
    with run_emulator([ACME], start_time=START, frozen_clock=True, export_page_size=5) as emu:
        api = Api(emu, ACME)
        try:
            items, _ = api.export_all("jpm", "export/jobs", includeRecentChanges="true")
            ids = [item["id"] for item in items]
            assert len(ids) > len(set(ids))
            assert set(ids) == {j["id"] for j in emu.state.get_records(ACME.tenant_id, "jobs")}
        finally:
            api.close()


def test_export_rejects_a_from_value_it_did_not_issue(acme: Api) -> None:
    response = acme.get("jpm", "export/jobs", **{"from": "not a token"})
    assert response.status_code == 400
    assert "from" in response.json()["errors"]


# -- notes -----------------------------------------------------------------------------------


def test_notes_are_stored_and_readable_over_http_and_in_process(
    emu: RunningEmulator, acme: Api
) -> None:
    job_id = next(j["id"] for j in emu.state.get_records(ACME.tenant_id, "jobs") if j["active"])
    first = acme.post(
        "jpm", f"jobs/{job_id}/notes", {"text": "Outbound SMS sent", "pinToTop": True}
    )
    second = acme.post("jpm", f"jobs/{job_id}/notes", {"text": "Customer replied"})
    assert first.status_code == second.status_code == 200
    listed = acme.get("jpm", f"jobs/{job_id}/notes", includeTotal="true").json()
    assert listed["totalCount"] == 2
    assert [n["text"] for n in listed["data"]] == ["Outbound SMS sent", "Customer replied"]
    assert listed["data"][0]["isPinned"] is True
    assert emu.state.get_notes(ACME.tenant_id, "job", job_id) == listed["data"]


def test_note_on_an_unknown_parent_is_a_404_api_error(acme: Api) -> None:
    for module, path in [
        ("jpm", "jobs/1/notes"),
        ("crm", "customers/1/notes"),
        ("crm", "locations/1/notes"),
    ]:
        response = acme.post(module, path, {"text": "hello"})
        assert response.status_code == 404, path
        assert response.json()["status"] == 404


@pytest.mark.parametrize("body", [{"text": ""}, {"text": "   "}, {}, {"text": None}])
def test_note_without_text_is_a_400_naming_the_text_field(
    emu: RunningEmulator, acme: Api, body: dict[str, Any]
) -> None:
    customer_id = emu.state.get_records(ACME.tenant_id, "customers")[0]["id"]
    response = acme.post("crm", f"customers/{customer_id}/notes", body)
    assert response.status_code == 400
    assert "text" in response.json()["errors"]
    assert emu.state.get_notes(ACME.tenant_id, "customer", customer_id) == []


def test_customer_note_can_be_copied_to_the_customers_active_locations(
    emu: RunningEmulator, acme: Api
) -> None:
    location = next(
        loc for loc in emu.state.get_records(ACME.tenant_id, "locations") if loc["active"]
    )
    response = acme.post(
        "crm", f"customers/{location['customerId']}/notes", {"text": "Hi", "addToLocations": True}
    )
    assert response.status_code == 200
    assert [n["text"] for n in emu.state.get_notes(ACME.tenant_id, "location", location["id"])] == [
        "Hi"
    ]


# -- rate limit ------------------------------------------------------------------------------


def test_more_than_60_requests_per_second_on_one_app_key_get_429_with_retry_after(
    emu: RunningEmulator,
) -> None:
    acme, beta, gamma = Api(emu, ACME), Api(emu, BETA), Api(emu, GAMMA)
    try:
        statuses: dict[str, list[int]] = defaultdict(list)
        rejected: httpx.Response | None = None
        for i in range(200):
            api = acme if i % 2 else beta  # two tenants, one app: one shared budget
            response = api.get("crm", "customers", pageSize=1)
            statuses[api.spec.client_id].append(response.status_code)
            if response.status_code == 429:
                rejected = response
        assert rejected is not None
        assert int(rejected.headers["Retry-After"]) >= 1
        assert rejected.json()["statusCode"] == 429
        assert rejected.json()["message"].startswith("Rate limit is exceeded. Try again in ")
        assert 429 in statuses["cid.acme"] and 429 in statuses["cid.beta"]
        assert gamma.get("crm", "customers").status_code == 200  # another app key is unaffected
        stats = emu.state.stats()
        demo = stats["ak1.demo"]
        assert demo["responses_429"] == sum(s.count(429) for s in statuses.values())
        assert demo["total_requests"] == 200
        assert demo["peak_requests_per_second"] > 60
        assert stats["ak1.other"]["responses_429"] == 0
    finally:
        for api in (acme, beta, gamma):
            api.close()


# -- faults ----------------------------------------------------------------------------------


def test_status_fault_answers_once_then_the_route_recovers(emu: RunningEmulator, acme: Api) -> None:
    emu.state.arm_fault("status", route="*/export/jobs", status=503)
    assert acme.get("jpm", "export/jobs").status_code == 503
    assert acme.get("jpm", "export/jobs").status_code == 200


def test_status_429_fault_carries_the_requested_retry_after(
    emu: RunningEmulator, acme: Api
) -> None:
    emu.state.arm_fault("status", status=429, retry_after=7, times=2)
    for _ in range(2):
        response = acme.get("crm", "customers")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
    assert acme.get("crm", "customers").status_code == 200
    assert emu.state.stats()["ak1.demo"]["responses_429"] == 2


def test_latency_fault_delays_the_answer(emu: RunningEmulator, acme: Api) -> None:
    emu.state.arm_fault("latency", latency_ms=300)
    began = time.monotonic()
    assert acme.get("jpm", "jobs").status_code == 200
    assert time.monotonic() - began >= 0.3


def test_drop_connection_fault_breaks_the_read(emu: RunningEmulator, acme: Api) -> None:
    emu.state.arm_fault("drop_connection", route="*/jobs")
    with pytest.raises(httpx.TransportError):
        acme.get("jpm", "jobs").read()
    assert acme.get("jpm", "jobs").status_code == 200


def test_expire_token_fault_revokes_issued_tokens(emu: RunningEmulator, acme: Api) -> None:
    emu.state.arm_fault("expire_token")
    assert acme.get("jpm", "jobs").status_code == 401
    assert acme.get("jpm", "jobs").status_code == 401  # the old token stays dead
    acme.token = acme.new_token()
    assert acme.get("jpm", "jobs").status_code == 200


def test_timeout_after_store_keeps_the_write_although_the_client_timed_out(
    emu: RunningEmulator,
) -> None:
    api = Api(emu, ACME, timeout=0.2)
    try:
        customer_id = emu.state.get_records(ACME.tenant_id, "customers")[0]["id"]
        emu.state.arm_fault("timeout_after_store", route="*/notes", latency_ms=500)
        with pytest.raises(httpx.TimeoutException):
            api.post("crm", f"customers/{customer_id}/notes", {"text": "Sent once"})
        notes = emu.state.get_notes(ACME.tenant_id, "customer", customer_id)
        assert [note["text"] for note in notes] == ["Sent once"]
        assert api.get("crm", f"customers/{customer_id}").status_code == 200  # GETs unaffected
    finally:
        api.close()


@pytest.mark.parametrize("kind", ["status", "drop_connection"])
def test_after_phase_fault_keeps_the_write_but_the_client_sees_a_failure(
    emu: RunningEmulator, acme: Api, kind: str
) -> None:
    location_id = emu.state.get_records(ACME.tenant_id, "locations")[0]["id"]
    emu.state.arm_fault(kind, route="*/notes", status=502, phase="after")
    try:
        response = acme.post("crm", f"locations/{location_id}/notes", {"text": "Ambiguous"})
        response.read()
        assert response.status_code == 502
    except httpx.TransportError:
        assert kind == "drop_connection"
    assert len(emu.state.get_notes(ACME.tenant_id, "location", location_id)) == 1
    assert emu.state.requests[-1].fault == kind


def test_rate_based_faults_are_reproducible_with_the_same_fault_seed() -> None:
    def pattern(seed: int) -> list[bool]:
        state = EmulatorState([], fault_seed=seed)
        state.arm_fault("status", route="/crm/*", status=500, rate=0.3)
        return [
            state.plan_faults("GET", "/crm/v2/tenant/1/customers").terminal is not None
            for _ in range(200)
        ]

    first = pattern(5)
    assert first == pattern(5)
    assert 20 < sum(first) < 100
    assert pattern(6) != first


def test_fault_route_glob_limits_where_the_fault_fires(emu: RunningEmulator, acme: Api) -> None:
    emu.state.arm_fault("status", route="/sales/*", status=500, times=None)
    assert acme.get("crm", "customers").status_code == 200
    assert acme.get("sales", "estimates").status_code == 500
    assert acme.get("sales", "estimates").status_code == 500
    emu.state.clear_faults()
    assert acme.get("sales", "estimates").status_code == 200


# -- control API, log, records ---------------------------------------------------------------


def test_control_api_drives_faults_clock_records_and_log_over_http(
    emu: RunningEmulator, acme: Api
) -> None:
    control = acme.http
    customer = emu.state.get_records(ACME.tenant_id, "customers")[0]
    armed = control.post(
        "/__emulator/faults", json={"kind": "status", "status": 500, "route": "*/customers/*"}
    )
    assert armed.status_code == 200 and armed.json()["times"] == 1
    assert acme.get("crm", f"customers/{customer['id']}").status_code == 500
    assert control.get("/__emulator/faults").json() == []

    before = control.get("/__emulator/clock").json()["now"]
    after = control.post("/__emulator/clock", json={"advance_seconds": 3600}).json()["now"]
    assert after > before
    assert acme.get("crm", "customers").status_code == 401  # the clock expired the token
    acme.token = acme.new_token()

    updated = control.post(
        f"/__emulator/tenants/{ACME.tenant_id}/records/customers",
        json={"id": customer["id"], "name": "Renamed, Person"},
    ).json()
    assert updated["name"] == "Renamed, Person" and updated["modifiedOn"] == after
    assert acme.get("crm", f"customers/{customer['id']}").json()["name"] == "Renamed, Person"

    acme.post("crm", f"customers/{customer['id']}/notes", {"text": "via API"})
    notes = control.get(f"/__emulator/tenants/{ACME.tenant_id}/notes/customer/{customer['id']}")
    assert [n["text"] for n in notes.json()] == ["via API"]

    log = control.get("/__emulator/requests").json()
    posted = [e for e in log if e["method"] == "POST" and e["path"].endswith("/notes")]
    assert posted[-1]["body"] == {"text": "via API"} and posted[-1]["status"] == 200
    assert posted[-1]["app_key"] == "ak1.demo" and posted[-1]["tenant_id"] == ACME.tenant_id
    faulted = [e for e in log if e["fault"] == "status"]
    assert faulted and faulted[0]["status"] == 500
    assert all(not e["path"].startswith("/__emulator") for e in log)
    assert control.get("/__emulator/stats").json()["ak1.demo"]["total_requests"] >= 3


def test_request_log_records_method_path_query_status_and_app_key(
    emu: RunningEmulator, acme: Api
) -> None:
    acme.get("jpm", "jobs", pageSize=3)
    entry = emu.state.requests[-1]
    assert (entry.method, entry.path, entry.status, entry.app_key) == (
        "GET",
        "/jpm/v2/tenant/1234/jobs",
        200,
        "ak1.demo",
    )
    assert entry.query == "pageSize=3"
    assert TIMESTAMP.match(entry.timestamp)


def test_upsert_bumps_modified_on_to_the_emulator_clock_and_creates_new_ids(
    emu: RunningEmulator,
) -> None:
    state = emu.state
    job = state.get_records(ACME.tenant_id, "jobs")[0]
    state.advance_clock(30)
    updated = state.upsert_record(ACME.tenant_id, "jobs", {"id": job["id"], "priority": "Urgent"})
    assert updated["modifiedOn"] == "2026-11-20T14:00:30.000Z"
    assert updated["priority"] == "Urgent" and updated["createdOn"] == job["createdOn"]
    again = state.upsert_record(ACME.tenant_id, "jobs", {"id": job["id"], "summary": "x"})
    assert again["modifiedOn"] > updated["modifiedOn"]  # never two changes at one instant
    new = state.upsert_record(ACME.tenant_id, "customers", {"name": "Doe, Jane"})
    assert new["id"] > max(c["id"] for c in state.get_records(ACME.tenant_id, "customers")[:-1])
    assert new["active"] is True and new["createdOn"] == new["modifiedOn"]
    appointment = state.upsert_record(ACME.tenant_id, "appointments", {"jobId": job["id"]})
    assert appointment["customerId"] == job["customerId"]  # links filled from the parent job
    with pytest.raises(ValueError):
        state.upsert_record(ACME.tenant_id, "customer_contacts", {"type": "Email", "value": "x"})


# -- generated data --------------------------------------------------------------------------


def test_same_seed_generates_identical_data_and_another_seed_does_not() -> None:
    spec = TenantSpec(1, "c", "s", "k", customers=30, jobs=50, memberships=10, seed=11)
    first = generate_tenant(spec, START_MS)
    assert first == generate_tenant(spec, START_MS)
    other = generate_tenant(TenantSpec(1, "c", "s", "k", customers=30, jobs=50, seed=12), START_MS)
    assert other["customers"] != first["customers"]
    a = EmulatorState([spec], start_time=START)
    b = EmulatorState([spec], start_time=START)
    assert a.get_records(1, "jobs") == b.get_records(1, "jobs")


def test_generated_data_has_the_shapes_a_sync_product_must_handle() -> None:
    spec = TenantSpec(77, "c", "s", "k", customers=300, jobs=500, memberships=100, seed=4)
    data = generate_tenant(spec, START_MS)
    for resource, records in data.items():
        ids = [r["id"] for r in records]
        assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids), resource

    names = [c["name"] for c in data["customers"]]
    assert any("," in n for n in names)
    assert any("," not in n and " " in n.strip() for n in names)
    assert any(" " not in n.strip() and "," not in n for n in names)

    contacts = [c for c in data["customer_contacts"] if c["active"]]
    assert {c["type"] for c in contacts} == {"Phone", "MobilePhone", "Email", "Fax"}
    owners: dict[str, set[int]] = defaultdict(set)
    for contact in contacts:
        key = (
            contact["phoneSettings"]["phoneNumber"]
            if contact["phoneSettings"]
            else contact["value"]
        )
        owners[key].add(contact["customerId"])
    shared = [value for value, who in owners.items() if len(who) > 1]
    assert any("@" in value and "noemail" not in value for value in shared)
    assert any("@" not in value for value in shared)
    assert any(c["value"] == "noemail@77.example" for c in contacts)
    per_customer = Counter(c["customerId"] for c in data["customer_contacts"])
    assert max(per_customer.values()) <= 3 and len(per_customer) < len(data["customers"])

    jobs = {j["id"]: j for j in data["jobs"]}
    locations = {loc["id"]: loc for loc in data["locations"]}
    assert all(locations[j["locationId"]]["customerId"] == j["customerId"] for j in jobs.values())
    appointments = defaultdict(list)
    for appointment in data["appointments"]:
        job = jobs[appointment["jobId"]]
        assert appointment["customerId"] == job["customerId"]
        appointments[job["id"]].append(appointment)
    assert {len(appointments.get(i, [])) for i in jobs} == {0, 1, 2, 3}
    assert all(
        job["appointmentCount"] == len(appointments.get(job["id"], [])) for job in jobs.values()
    )
    estimates = defaultdict(list)
    for estimate in data["estimates"]:
        estimates[estimate["jobId"]].append(estimate)
        assert isinstance(estimate["status"], dict) and set(estimate["status"]) == {"value", "name"}
    assert {len(estimates.get(i, [])) for i in jobs} == {0, 1, 2}
    assert all(len({e["createdOn"] for e in group}) == len(group) for group in estimates.values())
    assert all(isinstance(j["jobStatus"], str) for j in jobs.values())
    assert {m["customerId"] for m in data["memberships"]} <= {c["id"] for c in data["customers"]}

    start = START.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    recent = (START - timedelta(days=61)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    old = (START - timedelta(days=120)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    stamps = [(r["createdOn"], r["modifiedOn"]) for rows in data.values() for r in rows]
    assert all(c <= m < start for c, m in stamps)
    assert all(m >= recent or m < old for _, m in stamps)  # a 90-day sync: all or nothing
    assert sum(m < old for _, m in stamps) > 0
    assert sum(m >= recent for _, m in stamps) > 0.9 * len(stamps)


@pytest.mark.slow
def test_a_100k_job_tenant_generates_in_seconds_and_serves_export_pages_fast() -> None:
    spec = TenantSpec(1, "c", "s", "k", customers=30_000, jobs=100_000, memberships=5_000)
    began = time.monotonic()
    state = EmulatorState([spec], start_time=START)
    generated = time.monotonic() - began
    assert len(state.store(1, "jobs")) == 100_000
    with run_emulator(state=state) as emu:
        api = Api(emu, spec)
        try:
            began = time.monotonic()
            first = api.get("jpm", "export/jobs").json()
            middle = api.get("jpm", "export/jobs", **{"from": first["continueFrom"]}).json()
            served = (time.monotonic() - began) / 2
        finally:
            api.close()
    assert len(first["data"]) == len(middle["data"]) == 5000 and middle["hasMore"]
    assert generated < 60, f"generation took {generated:.1f}s"  # about 4 s on a laptop core
    assert served < 5.0, f"an export page took {served:.2f}s"


def test_cli_tenant_flag_parses_credentials_and_counts() -> None:
    spec = parse_tenant("1234:cid.acme:cs1.acme:ak1.demo:jobs=500,customers=80:seed=9")
    assert spec == TenantSpec(1234, "cid.acme", "cs1.acme", "ak1.demo", 80, 500, 20, 9)
    with pytest.raises(ValueError):
        parse_tenant("1234:cid.acme:cs1.acme")
    with pytest.raises(ValueError):
        parse_tenant("1234:cid.acme:cs1.acme:ak1.demo:colour=blue")
