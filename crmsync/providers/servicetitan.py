"""ServiceTitan as a hub provider (seed 002): streams, paging from the export cursor, composition
of Job and Membership opportunities from their related resources.

Streams, in order: ``customers`` and ``customer_contacts`` (the person behind every opportunity),
``appointments`` and ``estimates`` (the optional Job resources that are enabled), then ``jobs`` and
``memberships`` (the enabled opportunity models). Every record is mirrored raw in ``crm_record``;
a Job opportunity is composed from its job, customer, customer contacts, appointments and
estimates. When only a related record changes (a new estimate, a corrected phone), the opportunities
that embed it are re-composed in the same page's merge, so details and External Updated At
(``appointments:1:modifiedOn``, ``estimates:1:modifiedOn``) never go stale.

First sync: customers and their contacts are read from the start of the export feed (a job of
the last 90 days often belongs to an older customer); appointments, estimates, jobs and
memberships start 90 days back (seed 002: "the integration will begin syncing your last 90 days of
data"). Later syncs resume from each stream's stored ``continueFrom`` token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import httpx
import psycopg
from pydantic import BaseModel

from connectors.errors import ConnectorError, ForbiddenError
from connectors.servicetitan import (
    ServiceTitanClient,
    ServiceTitanCredentials,
    first_sync_from,
    missing_scope,
)
from crmsync import compose
from crmsync.compose import Record
from crmsync.merge import MergeBatch
from crmsync.providers.base import (
    ClientCache,
    FetchedPage,
    IntegrationContext,
    Overlay,
    PushActivity,
    PushTarget,
    StreamCursor,
)
from crmsync.ratelimit import shared_budget
from crmsync.settings import get_settings
from models.integrations.servicetitan import (
    PROD_API,
    PROD_AUTH,
    ServiceTitanCredentialsModel,
    ServiceTitanSettings,
)
from models.mappings.servicetitan import map_job, map_membership
from models.normalize import parse_timestamp
from models.standard import MappedOpportunity, RejectedRecord

_PUSH_CATEGORY: dict[str, tuple[str, str | None]] = {
    "outbound_campaign_message": (
        "push_outgoing_campaign_messages",
        "push_outgoing_campaign_messages_content",
    ),
    "inbound_message": ("push_incoming_messages", "push_incoming_messages_content"),
    "outbound_manual_message": (
        "push_outgoing_manual_messages",
        "push_outgoing_manual_messages_content",
    ),
    "campaign_event": ("push_campaign_events", None),
}


def _note_id(target: str, parent: str, note: dict[str, Any]) -> str:
    """Customer/location notes have an id; JPM job notes have none (crm-apis §1.8), so the
    parent and creation time stand in for it."""
    if note.get("id") is not None:
        return str(note["id"])
    return f"{target}:{parent}:{note.get('createdOn', '')}"


_clients: ClientCache[ServiceTitanClient] = ClientCache()


def _client(ctx: IntegrationContext) -> ServiceTitanClient:
    creds = ctx.credentials
    assert isinstance(creds, ServiceTitanCredentialsModel)
    secret, app_key = creds.client_secret.get_secret_value(), creds.app_key.get_secret_value()
    settings = get_settings()
    return _clients.get(
        ctx,
        [creds.client_id, secret, app_key, creds.tenant_id, ctx.base_url or "", ctx.auth_url or ""],
        lambda: ServiceTitanClient(
            ServiceTitanCredentials(
                client_id=creds.client_id,
                client_secret=secret,
                app_key=app_key,
                tenant_id=creds.tenant_id,
            ),
            base_url=ctx.base_url or PROD_API,
            auth_url=ctx.auth_url or PROD_AUTH,
            timeout=httpx.Timeout(settings.http_timeout_seconds, connect=10.0),
            before_request=shared_budget(
                "servicetitan", app_key, settings.servicetitan_requests_per_second
            ),
        ),
    )


class ServiceTitanProvider:
    name: ClassVar[str] = "servicetitan"
    credentials_model: ClassVar[type[BaseModel]] = ServiceTitanCredentialsModel
    settings_model: ClassVar[type[BaseModel]] = ServiceTitanSettings

    def streams(self, ctx: IntegrationContext) -> list[str]:
        s = self._settings(ctx)
        out = ["customers", "customer_contacts"]
        if "job" in s.opportunity_models:
            out += list(s.job_resources)
            out.append("jobs")
        if "membership" in s.opportunity_models:
            out.append("memberships")
        return out

    def pages_independent(self, stream: str) -> bool:
        # Job/membership pages read only the related streams, which are complete by then;
        # related-stream pages re-compose mirrored jobs, which earlier pages may still change.
        return stream in ("jobs", "memberships")

    def authenticate(self, ctx: IntegrationContext) -> datetime:
        return _client(ctx).authenticate()

    def client(self, ctx: IntegrationContext) -> ServiceTitanClient:
        return _client(ctx)

    def fetch_page(
        self, ctx: IntegrationContext, stream: str, cursor: StreamCursor, started_at: datetime
    ) -> FetchedPage:
        from_ = cursor.cursor
        if from_ is None and stream not in ("customers", "customer_contacts"):
            from_ = first_sync_from(started_at, days=ctx.first_sync_days)
        try:
            page = _client(ctx).export_page(stream, from_)
        except ForbiddenError as exc:
            raise missing_scope(stream, exc) from None
        if page.has_more and page.continue_from == from_:
            raise ConnectorError(
                f"ServiceTitan export {stream} returned hasMore with an unchanged continueFrom",
                provider="servicetitan",
            )
        valid: list[dict[str, Any]] = []
        invalid: list[tuple[Any, str]] = []
        for rec in page.records:
            if isinstance(rec, dict) and rec.get("id") is not None:
                valid.append(rec)
            else:
                invalid.append((rec, f"{stream} record without an id"))
        return FetchedPage(stream, valid, page.continue_from, page.has_more, invalid=invalid)

    # -- push ----------------------------------------------------------------------------------

    def push_targets(self, ctx: IntegrationContext, activity: PushActivity) -> list[PushTarget]:
        """Seed 002 "Push Events and Communications": per category, where (none, job, customer,
        location) and whether the message content is included."""
        settings = self._settings(ctx)
        where_attr, content_attr = _PUSH_CATEGORY[activity.kind]
        where = getattr(settings, where_attr)
        if where == "none":
            return []
        content = bool(content_attr and getattr(settings, content_attr))
        return [PushTarget(f"{where}_note", content)]

    def resolve_parent(
        self,
        ctx: IntegrationContext,
        conn: psycopg.Connection[Any],
        activity: PushActivity,
        target: PushTarget,
    ) -> str | None:
        """The record behind the contact's most recent ServiceTitan opportunity (the activity's
        own opportunity when it names one of this integration's). Deleted records (exports
        carry them with ``active: false``) cannot take notes, so they are passed over."""
        rows = conn.execute(
            """
            SELECT model, external_id, coalesce(details->>'customer:id', external_contact_id),
                   details->>'locationId'
            FROM opportunity WHERE tenant_id = %s AND integration_id = %s AND contact_id = %s
              AND coalesce(details->>'active', 'true') <> 'false'
            ORDER BY (id = %s) DESC, external_updated_at DESC NULLS LAST, id DESC
            """,
            (ctx.tenant_id, ctx.id, activity.contact_id, activity.opportunity_id or 0),
        ).fetchall()
        for model, external_id, customer_id, location_id in rows:
            if target.name == "job_note" and model == "job":
                return str(external_id)
            if target.name == "customer_note" and customer_id:
                return str(customer_id)
            if target.name == "location_note" and location_id:
                return str(location_id)
        return None

    def find_pushed(
        self, ctx: IntegrationContext, target: PushTarget, parent: str, key: str
    ) -> str | None:
        client = _client(ctx)
        lister = {
            "job_note": client.list_job_notes,
            "customer_note": client.list_customer_notes,
            "location_note": client.list_location_notes,
        }[target.name]
        for note in lister(int(parent)):
            if key in str(note.get("text", "")):
                return _note_id(target.name, parent, note)
        return None

    def create_push(
        self, ctx: IntegrationContext, target: PushTarget, parent: str, text: str
    ) -> str:
        client = _client(ctx)
        writer = {
            "job_note": client.create_job_note,
            "customer_note": client.create_customer_note,
            "location_note": client.create_location_note,
        }[target.name]
        return _note_id(target.name, parent, writer(int(parent), text))

    # -- mapping -------------------------------------------------------------------------------

    def _settings(self, ctx: IntegrationContext) -> ServiceTitanSettings:
        assert isinstance(ctx.settings, ServiceTitanSettings)
        return ctx.settings

    def map_page(
        self,
        ctx: IntegrationContext,
        conn: psycopg.Connection[Any],
        page: FetchedPage,
        overlay: Overlay | None = None,
    ) -> MergeBatch:
        settings = self._settings(ctx)
        batch = MergeBatch(
            tenant_id=ctx.tenant_id,
            integration_id=ctx.id,
            stream=page.stream,
            placeholder_emails=frozenset(settings.placeholder_emails),
            cursor=page.next_cursor,
            set_cursor=True,
            fetched=len(page.records) + len(page.invalid),
        )
        for raw, reason in page.invalid:
            payload = raw if isinstance(raw, dict) else {"value": raw}
            batch.rejects.append(RejectedRecord(page.stream, None, reason, payload))
        compose.map_page(
            record_graph(settings),
            conn,
            batch,
            page.records,
            overlay if overlay is not None else {},
        )
        return batch


# -- the record graph (seed 002 "Selecting Object Resources") ------------------------------------


def _ref(value: Any) -> str | None:
    """A record id as text; NUL is dropped because PostgreSQL text cannot hold it."""
    return None if value is None else str(value).replace("\x00", "")


def _id(rec: Record) -> str | None:
    return _ref(rec.get("id"))


def _customer(rec: Record) -> str | None:
    return _ref(rec.get("customerId"))


def _job(rec: Record) -> str | None:
    return _ref(rec.get("jobId"))


def _modified(rec: Record) -> datetime | None:
    return parse_timestamp(rec.get("modifiedOn"))


RESOURCES: dict[str, compose.Resource] = {
    "customers": compose.Resource("customers", _id, _modified, customer=_id),
    "customer_contacts": compose.Resource("customer_contacts", _id, _modified, _customer),
    "appointments": compose.Resource("appointments", _id, _modified, _customer, _job),
    "estimates": compose.Resource("estimates", _id, _modified, _customer, _job),
    "jobs": compose.Resource("jobs", _id, _modified, _customer),
    "memberships": compose.Resource("memberships", _id, _modified, _customer),
}
_CUSTOMER = compose.Link("customer", "customers", key="id", on="customer", many=False)
_CONTACTS = compose.Link("contacts", "customer_contacts", key="customer", on="customer")


def record_graph(settings: ServiceTitanSettings) -> compose.RecordGraph:
    """A Job opportunity: the job, its customer and the customer's contacts, plus the optional
    Job resources selected; a Membership opportunity: the membership, customer and contacts.
    Deleted records (exports carry them with ``active: false``) reach the mapping, which leaves
    them out of the details but remembers their change stamps (see crmsync.merge)."""
    placeholders = frozenset(settings.placeholder_emails)
    children = tuple(compose.Link(r, r, key="parent", on="id") for r in settings.job_resources)

    def job(rec: Record, rel: compose.Related) -> MappedOpportunity:
        return map_job(
            rec,
            rel["customer"],
            rel["contacts"],
            rel.get("appointments", []),
            rel.get("estimates", []),
            placeholder_emails=placeholders,
        )

    def membership(rec: Record, rel: compose.Related) -> MappedOpportunity:
        return map_membership(
            rec, rel["customer"], rel["contacts"], placeholder_emails=placeholders
        )

    roots: list[compose.Root] = []
    if "job" in settings.opportunity_models:
        roots.append(compose.Root("jobs", (_CUSTOMER, _CONTACTS, *children), job))
    if "membership" in settings.opportunity_models:
        roots.append(compose.Root("memberships", (_CUSTOMER, _CONTACTS), membership))
    return compose.RecordGraph(RESOURCES, tuple(roots))
