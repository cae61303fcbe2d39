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

**The object selector** (seed 002 "Selecting Object Resources", issue 14): each optional
resource of ``job_resources``/``membership_resources`` adds its streams (``SELECTOR_STREAMS``) and
its links in the record graph. Reference data (tag types, campaigns, zones, business units, job
types, cancel reasons, employees, technicians, membership types) and locations are read from the
start once, then incrementally (export ``continueFrom``, or for the list-only ones a
``modifiedOnOrAfter`` cursor), mirrored in ``crm_record``, and joined to opportunities by ``ref``
links from there, never fetched per opportunity. A changed reference record (a renamed tag type,
a moved zone) re-composes the opportunities that point at it in the same merge, found with one
query per link (``crmsync.compose``), so details never keep a stale name; reference data changes
rarely, and the query reads only the integration's mirrored roots. Child resources (assignments,
canceled logs, invoices and their items, recurring services and events) start 90 days back like
appointments.

**Notes into the hub** (issue 15, seed 004; ``inbound_activities: {enabled: true}``, kind
``note`` only). *Job notes* have an export (tenant-jpm-v2 ``export/job-notes``): stream
``job_notes`` after the roots, read like the other exports from its ``continueFrom`` (first sync
``first_sync_days`` back), edits as newer versions and deletions as ``active: false``; read only
when the ``job`` model is. A job note names its job's opportunity (the export carries no
customer), so it waits until the job is in the hub and is linked when it arrives.

*Customer and location notes* have no export, only each parent's list (tenant-crm-v2
``customers/{id}/notes``, ``locations/{id}/notes``). They are read for the customers and
locations this sync touched: while a page of ``customers``, ``locations``, ``jobs`` or
``memberships`` is mapped, the customers its records name (a customer record itself, the
``customerId`` of a location, job or membership) and the locations (a location record, the
``locationId`` of a job or membership) have their whole note list read, one request each, once
per chunk (the chunk's earlier pages, in the overlay, were polled already), within the app's
shared rate budget. A record counts only when its ``modifiedOn`` lies in the last
``first_sync_days``, so a first sync, which reads every customer from the start, polls the
customers of its 90 days, not the whole tenant. The notes ride on that page's batch and commit
with its cursor, so a failed chunk repeats the polls and never skips them. Each list read is
whole (``activity_sets``): a note gone from it is marked deleted. A quiet customer (nothing of
theirs changed) is revisited by the rolling ``note_sweep`` stream: ``note_sweep_customers`` per
sync (default 20) in turn through the mirrored customers, its cursor the last customer read, so
a note added to a customer nobody touches arrives within ``N / note_sweep_customers`` syncs.
With nothing changed and the sweep at 0, a sync costs no note request at all. A location note
reaches the contact of its location's customer (the chunk's unmerged locations, else the
mirror, one query per page, else the customer of the job naming it). crmsync's own notes carry
their idempotency key and customer and location notes their id in the push ledger: never read
back in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import psycopg
from pydantic import BaseModel

from connectors.errors import ConnectorError, ForbiddenError, NotFoundError
from connectors.servicetitan import (
    ServiceTitanClient,
    ServiceTitanCredentials,
    first_sync_from,
    missing_scope,
)
from crmsync import compose, db
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
from models.mappings.servicetitan import (
    Extras,
    map_crm_notes,
    map_job,
    map_job_notes,
    map_membership,
)
from models.normalize import parse_timestamp
from models.standard import MappedOpportunity, RejectedRecord

REFERENCE_STREAMS: tuple[str, ...] = (
    "tag_types",
    "campaigns",
    "zones",
    "business_units",
    "job_types",
    "cancel_reasons",
    "employees",
    "technicians",
    "membership_types",
)
"""Reference data: a handful of records per tenant, read whole once and then incrementally."""

SELECTOR_STREAMS: dict[str, tuple[str, ...]] = {
    "appointments": ("appointments",),
    "appointment_assignments": ("appointment_assignments",),
    "estimates": ("estimates",),
    "cancel_reasons": ("job_canceled_logs", "cancel_reasons"),
    "tag_types": ("tag_types",),
    "campaigns": ("campaigns",),
    "zones": ("locations", "zones"),
    "employees": ("employees",),
    "technicians": ("technicians",),
    "invoices": ("invoices", "invoice_items"),
    "business_units": ("business_units",),
    "job_types": ("job_types",),
    "membership_types": ("membership_types",),
    "recurring_services": ("recurring_services",),
    "recurring_service_events": ("recurring_service_events",),
}
"""The streams each selectable resource reads (scopes: ``connectors.servicetitan.READ_SCOPES``)."""

STREAM_ORDER: tuple[str, ...] = (
    "locations",
    *REFERENCE_STREAMS,
    "appointments",
    "appointment_assignments",
    "estimates",
    "job_canceled_logs",
    "invoices",
    "invoice_items",
    "recurring_services",
    "recurring_service_events",
)
"""Related streams before the records that hang under them, all before the roots."""

FROM_THE_START = frozenset({"customers", "customer_contacts", "locations", *REFERENCE_STREAMS})
"""Streams a first sync reads from the beginning: a job of the last 90 days often belongs to an
older customer and location, and points at reference data of any age."""

JOB_NOTES = "job_notes"
NOTE_SWEEP = "note_sweep"
NOTE_TOUCHERS = ("customers", "locations", "jobs", "memberships")
"""Streams whose records say a customer (and a location) changed: their notes are read."""

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
        """Streams in dependency order: the person, reference data, related records, roots.

        A selector resource may stand for several streams (``invoices`` → invoices and invoice
        items; ``zones`` → locations and zones); a stream both models need is read once."""
        s = self._settings(ctx)
        selected: list[str] = []
        if "job" in s.opportunity_models:
            selected += s.job_resources
        if "membership" in s.opportunity_models:
            selected += s.membership_resources
        wanted = {stream for name in selected for stream in SELECTOR_STREAMS[name]}
        out = ["customers", "customer_contacts"]
        out += [stream for stream in STREAM_ORDER if stream in wanted]
        if "job" in s.opportunity_models:
            out.append("jobs")
        if "membership" in s.opportunity_models:
            out.append("memberships")
        if s.inbound_activities.wants("note"):
            if "job" in s.opportunity_models and "job" in s.note_sources:
                out.append(JOB_NOTES)
            if s.note_sweep_customers and "customer" in s.note_sources:
                out.append(NOTE_SWEEP)
        return out

    def pages_independent(self, stream: str) -> bool:
        # Job/membership pages read only the related streams, which are complete by then;
        # related-stream pages re-compose mirrored jobs, which earlier pages may still change.
        # Note pages only add activity rows of their own.
        return stream in ("jobs", "memberships", JOB_NOTES, NOTE_SWEEP)

    def authenticate(self, ctx: IntegrationContext) -> datetime:
        return _client(ctx).authenticate()

    def client(self, ctx: IntegrationContext) -> ServiceTitanClient:
        return _client(ctx)

    def fetch_page(
        self, ctx: IntegrationContext, stream: str, cursor: StreamCursor, started_at: datetime
    ) -> FetchedPage:
        if stream == NOTE_SWEEP:
            return self._fetch_sweep(ctx, cursor)
        from_ = cursor.cursor
        if from_ is None and stream not in FROM_THE_START:
            from_ = first_sync_from(started_at, days=ctx.first_sync_days)
        try:
            page = _client(ctx).read_page(stream, from_)
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
        if page.stream == JOB_NOTES:
            batch.activities, rejects = map_job_notes(page.records, page.stream)
            batch.rejects += rejects
            return batch
        if page.stream == NOTE_SWEEP:
            for rec in page.records:
                customer = str(rec["id"])
                self._add_notes(batch, "customers", customer, customer, rec["notes"])
            return batch
        overlay = overlay if overlay is not None else {}
        polled: tuple[dict[str, None], dict[str, str | None]] = ({}, {})
        sources = settings.note_sources
        wants_notes = (
            settings.inbound_activities.wants("note")
            and page.stream in NOTE_TOUCHERS
            and ("customer" in sources or "location" in sources)
        )
        if wants_notes:
            floor = datetime.now(UTC) - timedelta(days=ctx.first_sync_days)
            polled = _touched(((r, recs.values()) for r, recs in overlay.items()), floor)
            touched = _touched([(page.stream, page.records)], floor)
        compose.map_page(record_graph(settings), conn, batch, page.records, overlay)
        if wants_notes:
            customers = [c for c in touched[0] if c not in polled[0] and "customer" in sources]
            locations = {
                k: v for k, v in touched[1].items() if k not in polled[1] and "location" in sources
            }
            self._poll_notes(ctx, conn, batch, customers, locations, overlay)
        return batch

    # -- inbound notes (issue 15) ----------------------------------------------------------------

    def _poll_notes(
        self,
        ctx: IntegrationContext,
        conn: psycopg.Connection[Any],
        batch: MergeBatch,
        customers: list[str],
        locations: dict[str, str | None],
        overlay: Overlay,
    ) -> None:
        """Read the whole note list of each touched customer and location into ``batch``.

        A location's customer comes from the chunk's unmerged locations, else the mirror (one
        query for the page), else the customer of the record that named the location."""
        client = _client(ctx)
        owners = {
            lid: str(rec["customerId"])
            for lid in locations
            if (rec := overlay.get("locations", {}).get(lid)) and rec.get("customerId")
        }
        unknown = sorted(set(locations) - set(owners))
        if unknown:
            owners.update(
                conn.execute(
                    "SELECT external_id, customer_ref FROM crm_record WHERE tenant_id = %s "
                    "AND integration_id = %s AND resource = 'locations' "
                    "AND external_id = ANY(%s) AND customer_ref IS NOT NULL",
                    (ctx.tenant_id, ctx.id, unknown),
                ).fetchall()
            )
        for customer in customers:
            notes = _read_notes(client.list_customer_notes, "customer_notes", customer)
            if notes is not None:
                self._add_notes(batch, "customers", customer, customer, notes)
        for location, named_by in locations.items():
            notes = _read_notes(client.list_location_notes, "location_notes", location)
            if notes is not None:
                owner = owners.get(location, named_by)
                self._add_notes(batch, "locations", location, owner, notes)

    def _add_notes(
        self,
        batch: MergeBatch,
        parent: str,
        parent_id: str,
        customer: str | None,
        notes: list[dict[str, Any]],
    ) -> None:
        """One parent's whole note list: its notes, and the parent as a complete set unless a
        note was malformed (its stored version must not read as deleted)."""
        acts, rejects = map_crm_notes(notes, parent, parent_id, customer, batch.stream)
        batch.activities += acts
        batch.rejects += rejects
        if not rejects:
            batch.activity_sets.append((f"{parent}:{parent_id}", "note"))

    def _fetch_sweep(self, ctx: IntegrationContext, cursor: StreamCursor) -> FetchedPage:
        """The next ``note_sweep_customers`` mirrored customers after the cursor (in id text
        order, starting over at the end), each with its whole note list: one request each."""
        size = self._settings(ctx).note_sweep_customers
        after = cursor.cursor or ""
        query = (
            "SELECT external_id FROM crm_record WHERE tenant_id = %s AND integration_id = %s "
            "AND resource = 'customers' AND external_id > %s ORDER BY external_id LIMIT %s"
        )
        with db.connect() as conn:
            ids = [r[0] for r in conn.execute(query, (ctx.tenant_id, ctx.id, after, size))]
            if len(ids) < size and after:
                more = conn.execute(query, (ctx.tenant_id, ctx.id, "", size - len(ids)))
                ids += [r[0] for r in more if r[0] <= after and r[0] not in ids]
        client = _client(ctx)
        records: list[dict[str, Any]] = []
        for customer in ids:
            notes = _read_notes(client.list_customer_notes, "customer_notes", customer)
            if notes is not None:
                records.append({"id": customer, "notes": notes})
        return FetchedPage(NOTE_SWEEP, records, ids[-1] if ids else cursor.cursor, False)


def _touched(
    pages: Iterable[tuple[str, Iterable[Record]]], floor: datetime
) -> tuple[dict[str, None], dict[str, str | None]]:
    """(customers, locations → the customer of the record naming it) that records of
    :data:`NOTE_TOUCHERS` modified since ``floor`` say changed."""
    customers: dict[str, None] = {}
    locations: dict[str, str | None] = {}
    for stream, records in pages:
        if stream not in NOTE_TOUCHERS:
            continue
        for rec in records:
            try:
                modified = _modified(rec)
            except ValueError:
                continue
            if modified is None or modified < floor:
                continue
            customer = _id(rec) if stream == "customers" else _customer(rec)
            if customer:
                customers[customer] = None
            location = _id(rec) if stream == "locations" else _ref(rec.get("locationId"))
            if stream != "customers" and location and location != "0":
                locations.setdefault(location, customer)
    return customers, locations


def _read_notes(
    lister: Callable[[int], list[dict[str, Any]]], resource: str, parent: str
) -> list[dict[str, Any]] | None:
    """A parent's whole note list; None when ServiceTitan no longer knows the parent (404)."""
    try:
        return lister(int(parent))
    except NotFoundError:
        return None
    except ForbiddenError as exc:
        raise missing_scope(resource, exc) from None


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


def _field(name: str) -> Callable[[Record], str | None]:
    def key(rec: Record) -> str | None:
        return _ref(rec.get(name))

    return key


def _invoice_job(rec: Record) -> str | None:
    """An invoice names its job as ``job: {id, number, type}`` (Accounting.V2.JobResponse)."""
    job = rec.get("job")
    return _ref(job.get("id")) if isinstance(job, dict) else None


def _invoice_customer(rec: Record) -> str | None:
    customer = rec.get("customer")
    return _ref(customer.get("id")) if isinstance(customer, dict) else None


def _created(rec: Record) -> datetime | None:
    return parse_timestamp(rec.get("createdOn"))


def _reference(name: str) -> compose.Resource:
    return compose.Resource(name, _id, _modified)


RESOURCES: dict[str, compose.Resource] = {
    "customers": compose.Resource("customers", _id, _modified, customer=_id),
    "customer_contacts": compose.Resource("customer_contacts", _id, _modified, _customer),
    "locations": compose.Resource("locations", _id, _modified, _customer),
    "appointments": compose.Resource("appointments", _id, _modified, _customer, _job),
    "estimates": compose.Resource("estimates", _id, _modified, _customer, _job),
    "appointment_assignments": compose.Resource(
        "appointment_assignments", _id, _modified, parent=_field("appointmentId")
    ),
    # Canceled logs are written once and carry no modifiedOn (Jpm.V2.ExportJobCanceledLogResponse).
    "job_canceled_logs": compose.Resource(
        "job_canceled_logs", _id, _created, parent=_job, modified_field="createdOn"
    ),
    "invoices": compose.Resource("invoices", _id, _modified, _invoice_customer, _invoice_job),
    "invoice_items": compose.Resource("invoice_items", _id, _modified, parent=_field("invoiceId")),
    "recurring_services": compose.Resource(
        "recurring_services", _id, _modified, parent=_field("membershipId")
    ),
    "recurring_service_events": compose.Resource(
        "recurring_service_events", _id, _modified, parent=_field("membershipId")
    ),
    **{name: _reference(name) for name in REFERENCE_STREAMS},
    "jobs": compose.Resource("jobs", _id, _modified, _customer),
    "memberships": compose.Resource("memberships", _id, _modified, _customer),
}
_CUSTOMER = compose.Link("customer", "customers", key="id", on="customer", many=False)
_CONTACTS = compose.Link("contacts", "customer_contacts", key="customer", on="customer")


def _one_ref(name: str, resource: str, ref: str) -> compose.Link:
    return compose.Link(name, resource, key="id", many=False, ref=ref)


_SOLD_BY = (
    _one_ref("sold_by_employee", "employees", "soldById"),
    _one_ref("sold_by_technician", "technicians", "soldById"),
)
_ZONE = (
    compose.Link("locations", "locations", key="customer", on="customer"),
    compose.Link("zone", "zones", key="id", via="locations", ref="zoneId"),
)
_CUSTOMER_TAGS = (
    compose.Link("customer_tag_types", "tag_types", key="id", via="customer", ref="tagTypeIds"),
)
_BUSINESS_UNIT = (_one_ref("business_unit", "business_units", "businessUnitId"),)

JOB_LINKS: dict[str, tuple[compose.Link, ...]] = {
    "appointments": (compose.Link("appointments", "appointments", key="parent"),),
    "appointment_assignments": (
        compose.Link("assignments", "appointment_assignments", key="parent", via="appointments"),
    ),
    "estimates": (compose.Link("estimates", "estimates", key="parent"),),
    "cancel_reasons": (
        compose.Link("cancel_logs", "job_canceled_logs", key="parent"),
        compose.Link(
            "cancel_reasons", "cancel_reasons", key="id", via="cancel_logs", ref="reasonId"
        ),
    ),
    "tag_types": (
        compose.Link("tag_types", "tag_types", key="id", ref="tagTypeIds"),
        *_CUSTOMER_TAGS,
    ),
    "campaigns": (_one_ref("campaign", "campaigns", "campaignId"),),
    "zones": _ZONE,
    "employees": (
        _SOLD_BY[0],
        compose.Link(
            "estimate_sold_by_employee", "employees", key="id", via="estimates", ref="soldBy"
        ),
    ),
    "technicians": (
        _SOLD_BY[1],
        compose.Link(
            "estimate_sold_by_technician", "technicians", key="id", via="estimates", ref="soldBy"
        ),
    ),
    "invoices": (
        compose.Link("invoices", "invoices", key="parent"),
        compose.Link("invoice_items", "invoice_items", key="parent", via="invoices"),
    ),
    "business_units": _BUSINESS_UNIT,
    "job_types": (_one_ref("job_type", "job_types", "jobTypeId"),),
}
"""Seed 002's optional Job resources as record-graph links (link names = ``Extras`` fields)."""

MEMBERSHIP_LINKS: dict[str, tuple[compose.Link, ...]] = {
    "membership_types": (_one_ref("membership_type", "membership_types", "membershipTypeId"),),
    "recurring_services": (compose.Link("recurring_services", "recurring_services", key="parent"),),
    "recurring_service_events": (
        compose.Link("recurring_service_events", "recurring_service_events", key="parent"),
    ),
    "employees": (_SOLD_BY[0],),
    "technicians": (_SOLD_BY[1],),
    "zones": _ZONE,
    "tag_types": _CUSTOMER_TAGS,
    "business_units": _BUSINESS_UNIT,
}
"""Seed 002's optional Membership resources as record-graph links."""

_EXTRAS_FIELDS = frozenset(Extras.__dataclass_fields__)


def _links(selected: list[str], table: dict[str, tuple[compose.Link, ...]]) -> list[compose.Link]:
    """Links of the selected resources, a via link after the link it hangs under (estimates
    before their sellers, whichever was listed first)."""
    links = [link for name in selected for link in table[name]]
    direct = [link for link in links if link.via is None]
    names = {link.name for link in direct} | {_CUSTOMER.name}
    nested = [link for link in links if link.via is not None and link.via in names]
    return [*direct, *nested]


def _extras(rel: compose.Related) -> Extras:
    return Extras(**{name: value for name, value in rel.items() if name in _EXTRAS_FIELDS})


def record_graph(settings: ServiceTitanSettings) -> compose.RecordGraph:
    """A Job opportunity: the job, its customer and the customer's contacts, plus the optional
    Job resources selected; a Membership opportunity: the membership, customer and contacts,
    plus the optional Membership resources selected. Deleted records (exports carry them with
    ``active: false``) reach the mapping, which leaves them out of the details but remembers
    their change stamps (see crmsync.merge)."""
    placeholders = frozenset(settings.placeholder_emails)

    def job(rec: Record, rel: compose.Related) -> MappedOpportunity:
        return map_job(
            rec,
            rel["customer"],
            rel["contacts"],
            rel.get("appointments", []),
            rel.get("estimates", []),
            placeholder_emails=placeholders,
            extras=_extras(rel),
        )

    def membership(rec: Record, rel: compose.Related) -> MappedOpportunity:
        return map_membership(
            rec,
            rel["customer"],
            rel["contacts"],
            placeholder_emails=placeholders,
            extras=_extras(rel),
        )

    roots: list[compose.Root] = []
    if "job" in settings.opportunity_models:
        job_links = _links(list(settings.job_resources), JOB_LINKS)
        roots.append(compose.Root("jobs", (_CUSTOMER, _CONTACTS, *job_links), job))
    if "membership" in settings.opportunity_models:
        mem_links = _links(list(settings.membership_resources), MEMBERSHIP_LINKS)
        roots.append(compose.Root("memberships", (_CUSTOMER, _CONTACTS, *mem_links), membership))
    return compose.RecordGraph(RESOURCES, tuple(roots))
