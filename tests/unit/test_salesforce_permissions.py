"""Permission refusals told as what to do (issue 14 item 2), at the connector: the codes
Salesforce documents (``API_CURRENTLY_DISABLED``, ``API_DISABLED_FOR_ORG``, ``INVALID_TYPE``,
``INSUFFICIENT_ACCESS…``) and a bare 403, wherever they come from, including the token call.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.errors import AuthError, BadRequestError, ForbiddenError, QuotaExceededError
from connectors.salesforce import explain_refusal
from tests.unit.test_salesforce_connector import REFRESH, FakeOrg, V, _json, make_client


def refusing(status: int, code: str | None, message: str = "", *, at: str = V) -> FakeOrg:
    def override(request: httpx.Request) -> httpx.Response | None:
        if not request.url.path.startswith(at):
            return None
        if at == "/services/oauth2/token":
            return _json(status, {"error": code, "error_description": message})
        body: Any = [{"message": message, "errorCode": code}] if code else "<html>denied</html>"
        return _json(status, body)

    return FakeOrg(override=override)


def test_api_currently_disabled_names_the_call_the_missing_permission_and_the_admins_fix() -> None:
    client = make_client(refusing(403, "API_CURRENTLY_DISABLED", "API is disabled for this User"))
    with pytest.raises(ForbiddenError) as caught:
        client.query("SELECT Id FROM Task")
    message = str(caught.value)
    assert message.startswith(
        "salesforce: Salesforce refused the query of Task (HTTP 403 API_CURRENTLY_DISABLED): "
        'the integration user has no API access: its profile and permission sets lack "API Enabled"'
    )
    assert "System Permissions → API Enabled" in message
    assert caught.value.status_code == 403 and caught.value.path == f"{V}/query"


def test_api_disabled_for_org_names_the_edition_as_well() -> None:
    client = make_client(refusing(403, "API_DISABLED_FOR_ORG", "API is not enabled for this Org"))
    with pytest.raises(ForbiddenError, match="edition includes no API access"):
        client.describe("Note")


def test_api_access_refused_at_the_token_call_is_not_told_as_wrong_credentials() -> None:
    org = refusing(
        400, "API_CURRENTLY_DISABLED", "API is disabled for this User", at="/services/oauth2/token"
    )
    client = make_client(org)
    with pytest.raises(ForbiddenError) as caught:
        client.authenticate()
    message = str(caught.value)
    assert "refused the sign-in (OAuth token request)" in message and "API Enabled" in message
    assert "re-authorise" not in message and REFRESH not in message


def test_wrong_credentials_at_the_token_call_stay_an_auth_error() -> None:
    client = make_client(
        refusing(400, "invalid_grant", "expired access/refresh token", at="/services/oauth2/token")
    )
    with pytest.raises(AuthError, match="re-authorise"):
        client.authenticate()


def test_invalid_type_on_a_query_names_the_object_to_grant_read_on() -> None:
    message = "sObject type 'i360core__Project__c' is not supported."
    client = make_client(refusing(400, "INVALID_TYPE", message))
    with pytest.raises(ForbiddenError) as caught:
        client.query("SELECT Id FROM i360core__Project__c", include_deleted=True)
    assert "refused the queryAll of i360core__Project__c (HTTP 400 INVALID_TYPE)" in str(
        caught.value
    )
    assert "grants Read on i360core__Project__c" in str(caught.value)


def test_insufficient_access_on_a_create_names_the_create_permission() -> None:
    client = make_client(refusing(400, "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access"))
    with pytest.raises(ForbiddenError, match="grants Create on Note"):
        client.create_note("003Op0000000001AAA", "Title", "Body")


def test_a_403_without_a_documented_code_is_told_by_its_status_with_both_fixes() -> None:
    client = make_client(refusing(403, None))
    with pytest.raises(ForbiddenError) as caught:
        client.query("SELECT Id FROM Contact")
    message = str(caught.value)
    assert "refused the query of Contact (HTTP 403)" in message
    assert "grants Read on Contact" in message and '"API Enabled"' in message


def test_request_limit_exceeded_stays_a_quota_error() -> None:
    client = make_client(refusing(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
    with pytest.raises(QuotaExceededError):
        client.query("SELECT Id FROM Contact")


def test_a_query_error_that_is_not_a_refusal_is_left_as_it_was() -> None:
    exc = BadRequestError("salesforce: GET /q -> HTTP 400: rejected (MALFORMED_QUERY: bad)")
    assert explain_refusal(exc, "the query of Contact", "Contact") is exc
