"""ServiceTitan connector: client-credentials auth, incremental export reads, lookups and notes.

Reference: ``/work/shared/reference/crm-apis.md`` §1 and the vendor OpenAPI documents
(https://developer.servicetitan.io/api/docs/apis/tenant-jpm-v2, ``tenant-crm-v2``,
``tenant-memberships-v2``, ``tenant-salestech-v2``).

**Why the export feeds, not ``modifiedOnOrAfter`` list queries.** Incremental reads use the
"data export" endpoints (https://developer.servicetitan.io/docs/transactional-and-export-apis):

* The ``continueFrom`` token marks an exact position in the feed. A timestamp cursor cannot: many
  records share one ``modifiedOn`` (bulk edits, imports), and an inclusive bound re-reads them
  while an exclusive one drops those not yet seen.
* The token is an opaque string we can store in the same transaction as the page it follows
  (ARCHITECTURE.md §2.1): after a crash the next run resumes at the first unmerged page, and at
  worst repeats one page, which the idempotent merge absorbs.
* Exports include inactive and deleted records (``active: false``); list endpoints default to
  active-only, so deactivations would never reach the hub.
* A ``page=N`` walk over a list sorted by ``modifiedOn`` drifts while records change during
  paging (an edited record moves to the end, shifting every later record up and out of reach).
  A continuation token does not drift.
* One request returns a large page, which keeps a 100k-record backfill within the 60 requests per
  second per app and tenant rate limit (crm-apis.md §1.10).

``includeRecentChanges`` stays off so paging is exact; records are still de-duplicated by id
within a page because the feed may repeat a record that changed again while being exported.

**First sync.** A new integration "will begin syncing your last 90 days of data" (Hatch's
ServiceTitan article, seed 002). With no stored token the first export call passes
:func:`first_sync_from` as ``from``: a date string, which the export API reads as a lower bound on
``modifiedOn``; afterwards only ``continueFrom`` tokens are passed.

**Notes** (push side, crm-apis.md §1.8) are creates and therefore never blindly retried; see
:mod:`connectors.http`. Job notes come back without an ``id``, so a push that must check for an
earlier attempt lists the parent's notes and looks for its idempotency key in the text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors.errors import (
    AuthError,
    BadRequestError,
    ForbiddenError,
    ResponseFormatError,
)
from connectors.http import (
    CachedToken,
    CachedTokenProvider,
    HttpEngine,
    TokenCache,
)

__all__ = [
    "DEFAULT_AUTH_URL",
    "DEFAULT_BASE_URL",
    "DEFAULT_TOKEN_CACHE",
    "EXPORT_PATHS",
    "FIRST_SYNC_DAYS",
    "LIST_PATHS",
    "READ_SCOPES",
    "CachedToken",
    "ExportPage",
    "ModifiedCursor",
    "ServiceTitanClient",
    "ServiceTitanCredentials",
    "TokenCache",
    "first_sync_from",
]

PROVIDER = "servicetitan"
DEFAULT_BASE_URL = "https://api.servicetitan.io"
DEFAULT_AUTH_URL = "https://auth.servicetitan.io/connect/token"
FIRST_SYNC_DAYS = 90
TOKEN_REFRESH_MARGIN = 60.0
"""Seconds before expiry at which a cached token is replaced (clock skew, slow calls)."""
_BEGINNING_OF_TIME = "2000-01-01T00:00:00Z"
MAX_IDS_PER_CALL = 50
"""List endpoints accept at most 50 comma-separated ``ids`` (crm-apis.md §1.4)."""

EXPORT_PATHS: dict[str, str] = {
    "jobs": "/jpm/v2/tenant/{tenant}/export/jobs",
    "appointments": "/jpm/v2/tenant/{tenant}/export/appointments",
    "customers": "/crm/v2/tenant/{tenant}/export/customers",
    "customer_contacts": "/crm/v2/tenant/{tenant}/export/customers/contacts",
    "locations": "/crm/v2/tenant/{tenant}/export/locations",
    "memberships": "/memberships/v2/tenant/{tenant}/export/memberships",
    # Irregular on purpose: the sales module exposes /estimates/export, not /export/estimates.
    "estimates": "/sales/v2/tenant/{tenant}/estimates/export",
    # Seed 002's object selector (tenant-dispatch-v2, tenant-jpm-v2, tenant-settings-v2,
    # tenant-accounting-v2, tenant-memberships-v2 export operations).
    "appointment_assignments": "/dispatch/v2/tenant/{tenant}/export/appointment-assignments",
    "job_canceled_logs": "/jpm/v2/tenant/{tenant}/export/job-canceled-logs",
    "employees": "/settings/v2/tenant/{tenant}/export/employees",
    "technicians": "/settings/v2/tenant/{tenant}/export/technicians",
    "business_units": "/settings/v2/tenant/{tenant}/export/business-units",
    "tag_types": "/settings/v2/tenant/{tenant}/export/tag-types",
    "invoices": "/accounting/v2/tenant/{tenant}/export/invoices",
    "invoice_items": "/accounting/v2/tenant/{tenant}/export/invoice-items",
    "membership_types": "/memberships/v2/tenant/{tenant}/export/membership-types",
    "recurring_services": "/memberships/v2/tenant/{tenant}/export/recurring-services",
    "recurring_service_events": "/memberships/v2/tenant/{tenant}/export/recurring-service-events",
    # Issue 15: job notes (tenant-jpm-v2 ``export/job-notes``, ``Jpm.V2.ExportJobNotesResponse``:
    # the note's id, ``active: false`` for a deleted one, ``jobId``). Customer and location notes
    # have no export, only the per-parent lists (``list_customer_notes``, ``list_location_notes``).
    "job_notes": "/jpm/v2/tenant/{tenant}/export/job-notes",
}

LIST_PATHS: dict[str, str] = {
    "zones": "/dispatch/v2/tenant/{tenant}/zones",
    "campaigns": "/marketing/v2/tenant/{tenant}/campaigns",
    "job_types": "/jpm/v2/tenant/{tenant}/job-types",
    "cancel_reasons": "/jpm/v2/tenant/{tenant}/job-cancel-reasons",
}
"""Reference data the vendor offers only as list endpoints (no export feed): read whole, then
incrementally with ``modifiedOnOrAfter`` (see :class:`ModifiedCursor`). Zones: Zone_GetList
(tenant-dispatch-v2); campaigns: Campaigns_GetList (tenant-marketing-v2); job types:
JobTypes_GetList and cancel reasons: JobCancelReasons_GetList (tenant-jpm-v2)."""
LIST_PAGE_SIZE = 500

READ_SCOPES: dict[str, str] = {
    "customers": "CRM: Customers",
    "customer_contacts": "CRM: Customers",
    "locations": "CRM: Locations",
    "appointments": "Job Planning and Management: Appointments",
    "jobs": "Job Planning and Management: Jobs",
    "memberships": "Memberships: Customer Memberships",
    "estimates": "Sales & Estimates: Estimates",
    "appointment_assignments": "Dispatch: Appointment Assignments",
    "zones": "Dispatch: Zones",
    "job_canceled_logs": "Job Planning and Management: Job Cancel Reasons",
    "cancel_reasons": "Job Planning and Management: Job Cancel Reasons",
    "job_types": "Job Planning and Management: Job Types",
    "tag_types": "Settings: Tag Types",
    "employees": "Settings: Employees",
    "technicians": "Settings: Technicians",
    "business_units": "Settings: Business Units",
    "campaigns": "Marketing: Campaigns",
    "membership_types": "Memberships: Membership Types",
    "recurring_services": "Memberships: Recurring Services",
    "recurring_service_events": "Memberships: Recurring Service Events",
    "invoices": "Accounting: Invoices",
    "invoice_items": "Accounting: Invoice Items",
    "job_notes": "Job Planning and Management: Jobs",
    "customer_notes": "CRM: Customers",
    "location_notes": "CRM: Locations",
}
"""The read scope each export needs (seed 002, "The following Read scopes are required")."""

SCOPE_STEPS = (
    "edit the app's API scopes in the developer portal "
    "(https://developer.servicetitan.io/custom/my-apps/ → Edit → Change API Scopes), then "
    '"upgrade version" of the connected app in ServiceTitan (Settings → Integrations → '
    "API Application Access)"
)
"""Seed 002, "How to upgrade the ServiceTitan app": a scope change takes both steps."""


def missing_scope(resource: str, exc: ForbiddenError) -> ForbiddenError:
    """A 403 on an export or a reference list, told as what the operator must do about it."""
    scope = READ_SCOPES.get(resource, "the read scope of this resource")
    verb = "list" if resource in LIST_PATHS else "export"
    return ForbiddenError(
        f"ServiceTitan refused to {verb} {resource} (HTTP 403): the app lacks the read scope "
        f"'{scope}'; {SCOPE_STEPS}. The other resources keep syncing.",
        provider=PROVIDER,
        status_code=403,
        method=exc.method,
        path=exc.path,
    )


@dataclass(frozen=True)
class ServiceTitanCredentials:
    """One ServiceTitan integration's credentials (client id/secret are per tenant and environment).

    The secret and app key are left out of ``repr``/``str`` so a logged or rendered credentials
    object shows only the client id and tenant.
    """

    client_id: str
    client_secret: str = field(repr=False)
    app_key: str = field(repr=False)
    tenant_id: str

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret or not self.app_key:
            raise ValueError("client_id, client_secret and app_key must be non-empty")
        tenant = self.tenant_id
        if not (isinstance(tenant, str) and tenant.isascii() and tenant.isdigit()):
            raise ValueError("tenant_id must be a string of ASCII digits")


DEFAULT_TOKEN_CACHE = TokenCache()


class _ClientCredentialsTokens(CachedTokenProvider):
    """OAuth2 client-credentials grant against ServiceTitan's token endpoint."""

    def __init__(
        self,
        engine: HttpEngine,
        credentials: ServiceTitanCredentials,
        auth_url: str,
        cache: TokenCache,
    ) -> None:
        self._engine = engine
        self._credentials = credentials
        self._auth_url = auth_url
        super().__init__(
            cache, TokenCache.key(auth_url, credentials.client_id, credentials.client_secret)
        )

    def auth_headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "ST-App-Key": self._credentials.app_key,
        }

    def _fetch(self) -> CachedToken:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._credentials.client_id,
            "client_secret": self._credentials.client_secret,
        }
        requested_at = self._cache.clock()
        try:
            response = self._engine.request(
                "POST", self._auth_url, auth=False, idempotent=True, data=form
            )
        except (BadRequestError, AuthError) as exc:
            if exc.status_code not in (400, 401):
                raise
            raise AuthError(
                f"{PROVIDER}: {exc.method} {exc.path} -> HTTP {exc.status_code}: ServiceTitan "
                f"rejected the client id/secret ({_oauth_error_code(exc)}) "
                f"for client id {self._credentials.client_id!r}",
                provider=PROVIDER,
                status_code=exc.status_code,
                method=exc.method,
                path=exc.path,
            ) from None
        body = self._engine.json(response)
        token = body.get("access_token") if isinstance(body, dict) else None
        expires_in = body.get("expires_in") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
            raise self._engine.error(
                ResponseFormatError,
                response.request,
                "token response lacks access_token/expires_in",
                response.status_code,
            )
        return CachedToken(access_token=token, expires_at=requested_at + float(expires_in))


def _oauth_error_code(exc: AuthError | BadRequestError) -> str:
    """The OAuth ``error`` code from the excerpt, for the message only (no control flow)."""
    for code in ("invalid_client", "unauthorized_client", "invalid_grant", "invalid_scope"):
        if code in exc.message:
            return code
    return f"HTTP {exc.status_code}"


@dataclass(frozen=True)
class ExportPage:
    """One page of an export feed: store ``continue_from`` with the merged records."""

    records: list[dict[str, Any]]
    continue_from: str
    has_more: bool


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _instant(value: object) -> datetime | None:
    """A ServiceTitan date-time (up to seven fractional digits, ``Z``) as an aware datetime."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip()))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ModifiedCursor:
    """Position in a list endpoint read by ``modifiedOnOrAfter``: the newest ``modifiedOn`` seen
    and the ids seen at exactly that instant.

    The bound is inclusive (crm-apis.md §1.4), so the next read returns the records of that
    instant again; leaving out the ids already seen at it keeps an unchanged reference record
    from being re-read (and re-composed into every job that shows it) every 15 minutes, while a
    record first modified at the same instant still gets through. Stored as text
    ``<modifiedOn>|<id>,<id>``.
    """

    modified_on: str
    ids: frozenset[str] = frozenset()

    def encode(self) -> str:
        return f"{self.modified_on}|{','.join(sorted(self.ids))}"

    @classmethod
    def decode(cls, text: str | None) -> ModifiedCursor | None:
        if not text:
            return None
        modified_on, _, ids = text.partition("|")
        return cls(modified_on, frozenset(i for i in ids.split(",") if i))

    def advance(self, records: list[dict[str, Any]]) -> ModifiedCursor:
        """The cursor after ``records`` (those already filtered by :meth:`unseen`)."""
        best, best_text, ids = _instant(self.modified_on), self.modified_on, set(self.ids)
        for record in records:
            text = record.get("modifiedOn")
            stamp = _instant(text)
            if stamp is None or not isinstance(text, str):
                continue
            if best is None or stamp > best:
                best, best_text, ids = stamp, text, {str(record.get("id"))}
            elif stamp == best:
                ids.add(str(record.get("id")))
        return ModifiedCursor(best_text, frozenset(ids))

    def unseen(self, record: dict[str, Any]) -> bool:
        stamp, mine = _instant(record.get("modifiedOn")), _instant(self.modified_on)
        return not (stamp is not None and stamp == mine and str(record.get("id")) in self.ids)


def first_sync_from(now: datetime, days: int = FIRST_SYNC_DAYS) -> str:
    """The ``from`` value for an integration's first export call: the UTC date ``days`` ago.

    A whole date (rather than a timestamp) errs towards slightly more than ``days`` of history.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return (now.astimezone(UTC) - timedelta(days=days)).date().isoformat()


class ServiceTitanClient:
    """A ServiceTitan API client for one tenant, usable from a Python shell.

    ``http`` lets tests inject a client (e.g. with ``httpx.MockTransport``); ``token_cache``
    defaults to the process-wide cache so clients built by separate tasks share a token.
    """

    def __init__(
        self,
        credentials: ServiceTitanCredentials,
        *,
        base_url: str = DEFAULT_BASE_URL,
        auth_url: str = DEFAULT_AUTH_URL,
        http: httpx.Client | None = None,
        timeout: httpx.Timeout | float | None = None,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        token_cache: TokenCache | None = None,
        rate_limit: float | None = None,
        before_request: Callable[[httpx.Request], None] | None = None,
    ) -> None:
        self.credentials = credentials
        self.tenant_id = credentials.tenant_id
        self.engine = HttpEngine(
            provider=PROVIDER,
            base_url=base_url,
            client=http,
            timeout=timeout,
            max_attempts=max_attempts,
            sleep=sleep,
            rate_limit=rate_limit,
            before_request=before_request,
        )
        self._tokens = _ClientCredentialsTokens(
            self.engine,
            credentials,
            auth_url,
            token_cache if token_cache is not None else DEFAULT_TOKEN_CACHE,
        )
        self.engine.token_provider = self._tokens

    def __repr__(self) -> str:
        return (
            f"ServiceTitanClient(tenant_id={self.tenant_id!r}, base_url={self.engine.base_url!r})"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> ServiceTitanClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- auth --------------------------------------------------------------------------------

    def authenticate(self) -> datetime:
        """Make sure a token is held (fetching one if needed) and return its expiry (UTC).

        The flow's first step calls this so bad credentials fail the run at once, as AuthError.
        """
        return self._tokens.current().expires

    # -- incremental reads -------------------------------------------------------------------

    def export_page(self, resource: str, from_: str | None) -> ExportPage:
        """One page of the ``resource`` export feed after ``from_`` (a token, a date, or None).

        ``from_=None`` starts at the beginning of the tenant's history; pass
        :func:`first_sync_from` on a first sync and the stored ``continue_from`` afterwards.
        """
        try:
            template = EXPORT_PATHS[resource]
        except KeyError:
            known = ", ".join(sorted(EXPORT_PATHS))
            raise ValueError(f"unknown ServiceTitan export {resource!r}; known: {known}") from None
        params = {"from": from_} if from_ else None
        response = self.engine.request("GET", template.format(tenant=self.tenant_id), params=params)
        body = self.engine.json(response)
        if not isinstance(body, dict):
            raise self._format_error(response, "export response is not an object")
        data, has_more, continue_from = (
            body.get("data"),
            body.get("hasMore"),
            body.get("continueFrom"),
        )
        if not isinstance(data, list) or not isinstance(has_more, bool):
            raise self._format_error(response, "export response lacks data/hasMore")
        if not isinstance(continue_from, str):
            raise self._format_error(response, "export response lacks continueFrom")
        return ExportPage(
            records=_dedupe_by_id(self._records(response, data)),
            continue_from=continue_from,
            has_more=has_more,
        )

    def list_page(self, resource: str, cursor: str | None) -> ExportPage:
        """Every record of a reference list (``LIST_PATHS``) changed since ``cursor``, active or
        not, as one page whose ``continue_from`` is the next :class:`ModifiedCursor`.

        Reference data is tens to hundreds of records, so all of its pages are read in one call;
        ``cursor=None`` reads all of it.
        """
        try:
            template = LIST_PATHS[resource]
        except KeyError:
            known = ", ".join(sorted(LIST_PATHS))
            raise ValueError(f"unknown ServiceTitan list {resource!r}; known: {known}") from None
        position = ModifiedCursor.decode(cursor)
        params: dict[str, Any] = {"active": "Any"}
        if position is not None:
            params["modifiedOnOrAfter"] = position.modified_on
        records = self._paged(
            template.format(tenant=self.tenant_id), params, page_size=LIST_PAGE_SIZE
        )
        if position is not None:
            records = [record for record in records if position.unseen(record)]
        after = (position or ModifiedCursor("")).advance(records)
        return ExportPage(
            records=_dedupe_by_id(records), continue_from=after.encode(), has_more=False
        )

    def read_page(self, resource: str, cursor: str | None) -> ExportPage:
        """One page of ``resource``: its export feed, or for list-only reference data its whole
        change set since ``cursor``."""
        if resource in LIST_PATHS:
            return self.list_page(resource, cursor)
        return self.export_page(resource, cursor)

    # -- lookups -----------------------------------------------------------------------------

    def get_customers(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        """Customers by id, active or not (chunks of 50 ids, every page followed)."""
        path = self._path("crm", "customers")
        records: list[dict[str, Any]] = []
        for chunk in _chunks(ids, MAX_IDS_PER_CALL):
            params = {"ids": _csv(chunk), "active": "Any"}
            records.extend(self._paged(path, params, page_size=MAX_IDS_PER_CALL))
        return records

    def get_customer_contacts(self, customer_ids: Iterable[int]) -> list[dict[str, Any]]:
        """Contacts (phones, emails) of the given customers; each record carries ``customerId``."""
        path = self._path("crm", "customers/contacts")
        records: list[dict[str, Any]] = []
        for chunk in _chunks(customer_ids, MAX_IDS_PER_CALL):
            # The spec is split on whether customerIds alone is enough: the operation summary
            # says so, the date parameters say a modified bound "must be specified". A bound
            # before any possible record satisfies both readings and filters nothing out.
            params = {"customerIds": _csv(chunk), "modifiedOnOrAfter": _BEGINNING_OF_TIME}
            records.extend(self._paged(path, params, page_size=500))
        return records

    # -- notes (push) ------------------------------------------------------------------------

    def create_job_note(
        self, job_id: int, text: str, *, pin_to_top: bool = False
    ) -> dict[str, Any]:
        """Add a note to a job. The response has no ``id`` (JPM ``NoteResponse``)."""
        return self._create_note(self._path("jpm", f"jobs/{int(job_id)}/notes"), text, pin_to_top)

    def create_customer_note(
        self, customer_id: int, text: str, *, pin_to_top: bool = False
    ) -> dict[str, Any]:
        """Add a note to a customer; the response carries the note ``id``."""
        path = self._path("crm", f"customers/{int(customer_id)}/notes")
        return self._create_note(path, text, pin_to_top)

    def create_location_note(
        self, location_id: int, text: str, *, pin_to_top: bool = False
    ) -> dict[str, Any]:
        """Add a note to a location; the response carries the note ``id``."""
        path = self._path("crm", f"locations/{int(location_id)}/notes")
        return self._create_note(path, text, pin_to_top)

    def list_job_notes(self, job_id: int) -> list[dict[str, Any]]:
        return self._paged(self._path("jpm", f"jobs/{int(job_id)}/notes"), {}, page_size=200)

    def list_customer_notes(self, customer_id: int) -> list[dict[str, Any]]:
        path = self._path("crm", f"customers/{int(customer_id)}/notes")
        return self._paged(path, {}, page_size=200)

    def list_location_notes(self, location_id: int) -> list[dict[str, Any]]:
        path = self._path("crm", f"locations/{int(location_id)}/notes")
        return self._paged(path, {}, page_size=200)

    # -- internals ---------------------------------------------------------------------------

    def _path(self, module: str, rest: str) -> str:
        return f"/{module}/v2/tenant/{self.tenant_id}/{rest}"

    def _create_note(self, path: str, text: str, pin_to_top: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {"text": text}
        if pin_to_top:
            payload["pinToTop"] = True
        response = self.engine.request("POST", path, idempotent=False, json=payload)
        body = self.engine.json(response)
        if not isinstance(body, dict):
            raise self._format_error(response, "note response is not an object")
        return body

    def _paged(self, path: str, params: dict[str, Any], *, page_size: int) -> list[dict[str, Any]]:
        """Every record of a list endpoint, following ``hasMore`` with ``page+1``."""
        records: list[dict[str, Any]] = []
        page = 1
        while True:
            query = {**params, "page": page, "pageSize": page_size}
            response = self.engine.request("GET", path, params=query)
            body = self.engine.json(response)
            data = body.get("data") if isinstance(body, dict) else None
            has_more = body.get("hasMore") if isinstance(body, dict) else None
            if not isinstance(data, list) or not isinstance(has_more, bool):
                raise self._format_error(response, "list response lacks data/hasMore")
            records.extend(self._records(response, data))
            if not has_more:
                return records
            if not data:
                raise self._format_error(response, "hasMore is true on an empty page")
            page += 1

    def _records(self, response: httpx.Response, data: list[Any]) -> list[dict[str, Any]]:
        if not all(isinstance(item, dict) for item in data):
            raise self._format_error(response, "data holds a non-object item")
        return data

    def _format_error(self, response: httpx.Response, what: str) -> ResponseFormatError:
        return self.engine.error(ResponseFormatError, response.request, what, response.status_code)


def _dedupe_by_id(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the last occurrence of each id, at its last position (records without id kept)."""
    last_index = {record["id"]: i for i, record in enumerate(records) if "id" in record}
    return [
        record
        for i, record in enumerate(records)
        if "id" not in record or last_index[record["id"]] == i
    ]


def _chunks(ids: Iterable[int], size: int) -> Iterator[list[int]]:
    unique = list(dict.fromkeys(int(i) for i in ids))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


def _csv(ids: list[int]) -> str:
    return ",".join(str(i) for i in ids)
