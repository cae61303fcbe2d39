"""improveit360 (i360 Lightning) as a hub provider (seed 000): streams read incrementally on
``SystemModstamp``, and Sales Opportunities composed from their Contact, Account, Sales
Appointments and Projects (+ Project Activities).

**Streams**, in order: ``accounts``, ``contacts``, ``appointments``, ``projects``,
``project_activities`` (when ``sync_project_activities`` is on), then ``opportunities``. Every
record is mirrored raw in ``crm_record``; one hub opportunity (model ``sales_opportunity``) is
composed per Sales Opportunity by :func:`models.mappings.improveit360.map_sales_opportunity`.
**How appointment and project changes reach the opportunity:** a page of any related stream
re-composes the mirrored Sales Opportunities that embed the changed records (an appointment's or
project's Sales Opportunity lookup, an activity's project's, a contact's or account's
opportunities) and merges them with that page, so details and External Updated At never go stale
even when the Sales Opportunity itself did not change. An opportunity whose Contact or Account is
not mirrored yet (created after the ``contacts`` stream was read in this run) has it fetched by
Id while its page is mapped, so the shared merge can still match the contact on phone and email.

**Incremental reads.** Each page is one SOQL query ``… ORDER BY SystemModstamp, Id LIMIT
page_size`` whose batches are followed through ``nextRecordsUrl``. Salesforce stores datetimes to
the second, so many records share one ``SystemModstamp``; within a run the next page therefore
starts strictly after the last (``SystemModstamp``, ``Id``) read, which neither skips nor repeats
a record of a tie. The cursor committed with each page is ``<SystemModstamp>|<Id>|<run start>``.
A new run starts ``overlap_seconds`` (default 300) before the stored ``SystemModstamp``, because
a record's ``SystemModstamp`` is taken when its transaction starts and a long transaction can
commit a record stamped earlier than ones already read; re-read records merge as unchanged.

**First sync.** Sales Opportunities start ``first_sync_days`` (process setting, default 90) back,
as for ServiceTitan; the related streams start at the beginning, so every opportunity of the
window is composed with all its appointments and projects, however old. Appointments, projects
and activities are read with ``queryAll`` so a deletion removes the record from its opportunity.

**Quota.** ``403 REQUEST_LIMIT_EXCEEDED`` raises QuotaExceededError: nothing retries it, the page
is not merged (its cursor stays where it was) and the client refuses further requests for a few
minutes, so every remaining stream of the integration's run fails at once with the same error
and without spending a request; the next scheduled run resumes from the committed cursors.

**Inbound activities** (issue 15; seed 004). With ``inbound_activities.enabled`` two more
streams follow the records they hang under: ``notes`` (classic Note, kind ``note``) and
``tasks`` (Task: ``task``, ``call``, ``email`` by ``TaskSubtype``), each read only when its kinds
are chosen, the Task query narrowed to them in SOQL. They page like the record streams (keyset on
``SystemModstamp``, Id; first sync ``first_sync_days`` back) through ``queryAll``, so an edit comes
back as a newer version and a deletion as the row with ``IsDeleted = true`` that the recycle bin
keeps (the deletion moves ``SystemModstamp``): one query per page serves edits and deletions.
Each page resolves its parents once (:meth:`Improveit360Provider._activity_parents`): the key
prefix of a ParentId/WhatId/WhoId (from the objects' describes) says whether it is a Sales
Opportunity (``opportunity_ref``), a Contact (``contact_ref``, what ``external_contact_id``
holds) or a related record; a Sales Appointment, Project or Project Activity is looked up in the
mirror (``crm_record``, with the chunk's unmerged records over it) in one query for the page,
giving its Sales Opportunity. A parent not in the hub yet leaves the activity waiting; the engine
links it when the record arrives. crmsync's own Notes and Tasks carry their key in Title/Subject
and Body/Description and their Id in the push ledger, so they never come back in (no echo).

The i360 Lightning object and field API names are not public (crm-apis.md §3.1): they live in
the integration's settings (:class:`Improveit360Objects`, :class:`Improveit360StandardFields`)
with defaults matching the emulator's schema, so a real org is matched by configuration alone.
Which fields are read is not configured: each object's describe lists them (all the integration
user can see), as seed 000 says "any fields or values under these objects" sync.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

import httpx
import psycopg
from pydantic import (
    BaseModel,
)

from connectors.errors import ConnectorError, ForbiddenError, PermanentError, ResponseFormatError
from connectors.salesforce import (
    API_DISABLED_CODES,
    DEFAULT_AUTH_URL,
    NOTE_TITLE_MAX,
    TASK_SUBJECT_MAX,
    SalesforceClient,
    encode_cursor,
    modstamp_where,
    soql_quote,
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
from crmsync.settings import get_settings
from models.integrations.improveit360 import (
    Improveit360CredentialsModel,
    Improveit360Settings,
    PushLocation,
)
from models.mappings.improveit360 import (
    AUTHOR,
    NOTE_FIELDS,
    TASK_FIELDS,
    UNKNOWN_PARENT,
    ActivityParent,
    map_note,
    map_sales_opportunity,
    map_task,
)
from models.normalize import parse_timestamp
from models.standard import MappedOpportunity, MappingError, RejectedRecord

PROVIDER = "improveit360"


# -- streams -------------------------------------------------------------------------------------

OPPORTUNITIES = "opportunities"
NOTES = "notes"
TASKS = "tasks"
ACTIVITY_STREAMS = (NOTES, TASKS)
_CHILDREN = ("appointments", "projects", "project_activities")
_TASK_KINDS = ("task", "call", "email")
_SUBTYPES = {"call": ("Call",), "email": ("Email", "ListEmail")}
_SYSTEM_FIELDS = ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp")


_OBJECT_SETTINGS = {
    "accounts": "account",
    "contacts": "contact",
    "appointments": "sales_appointment",
    "projects": "project",
    "project_activities": "project_activity",
    "opportunities": "sales_opportunity",
}


def refused(stream: str, exc: ForbiddenError) -> ForbiddenError:
    """A permission refusal met while reading ``stream`` (:func:`connectors.salesforce.
    explain_refusal` has said which call, why and the admin's fix), with the stream and the
    setting naming its object, and that the other streams keep syncing (issue 14 item 2: "the
    other resources keep syncing"); a user without API access is told so by the connector."""
    if any(code in exc.message for code in API_DISABLED_CODES):
        return exc
    setting = _OBJECT_SETTINGS.get(stream)
    where = f"stream {stream}" + (f", settings.objects.{setting}" if setting else "")
    return ForbiddenError(
        f"{exc.message} [{where}] The other streams sync.",
        provider=exc.provider,
        status_code=exc.status_code,
        method=exc.method,
        path=exc.path,
    )


def _object_of(settings: Improveit360Settings, stream: str) -> str:
    o = settings.objects
    return {
        NOTES: "Note",
        TASKS: "Task",
        "accounts": o.account,
        "contacts": o.contact,
        "appointments": o.sales_appointment,
        "projects": o.project,
        "project_activities": o.project_activity,
        OPPORTUNITIES: o.sales_opportunity,
    }[stream]


def _link_fields(settings: Improveit360Settings, stream: str) -> dict[str, str]:
    """The lookup fields a stream's records must carry: {settings key: field API name}."""
    f = settings.standard_fields
    return {
        "appointments": {"appointment_opportunity": f.appointment_opportunity},
        "projects": {"project_opportunity": f.project_opportunity},
        "project_activities": {"activity_project": f.activity_project},
        OPPORTUNITIES: {
            "opportunity_contact": f.opportunity_contact,
            "opportunity_account": f.opportunity_account,
            "opportunity_status": f.opportunity_status,
        },
    }.get(stream, {})


# -- clients -------------------------------------------------------------------------------------

_clients: ClientCache[SalesforceClient] = ClientCache()


def _client(ctx: IntegrationContext) -> SalesforceClient:
    creds = ctx.credentials
    settings = ctx.settings
    assert isinstance(creds, Improveit360CredentialsModel)
    assert isinstance(settings, Improveit360Settings)
    plain = creds.connector_credentials()
    login = ctx.auth_url or ctx.base_url or DEFAULT_AUTH_URL
    return _clients.get(
        ctx,
        [
            plain.client_id,
            plain.client_secret or "",
            plain.refresh_token or "",
            plain.username or "",
            plain.password or "",
            plain.security_token or "",
            login,
            settings.api_version,
            str(settings.min_remaining_api_calls),
        ],
        lambda: SalesforceClient(
            plain,
            auth_url=login,
            api_version=settings.api_version,
            min_remaining_api_calls=settings.min_remaining_api_calls,
            provider=PROVIDER,
            timeout=httpx.Timeout(get_settings().http_timeout_seconds, connect=10.0),
        ),
    )


def clear_clients() -> None:
    """Forget every cached client (tests; a worker that must drop sessions and usage readings)."""
    _clients.clear()


def stream_fields(ctx: IntegrationContext, stream: str) -> list[str]:
    """The fields a stream selects: every selectable field the describe lists, after checking
    that the ones the sync relies on exist (a clear error names the setting to fix)."""
    settings = ctx.settings
    assert isinstance(settings, Improveit360Settings)
    sobject = _object_of(settings, stream)
    fields = _client(ctx).selectable_fields(sobject)
    known = {f.lower() for f in fields}
    for setting, name in _link_fields(settings, stream).items():
        if name.lower() not in known:
            raise PermanentError(
                f"{PROVIDER}: field {name!r} is not on {sobject} (or not visible to the "
                f"integration user); set settings.standard_fields.{setting}",
                provider=PROVIDER,
            )
    missing = [f for f in _SYSTEM_FIELDS if f.lower() not in known]
    if missing:
        raise PermanentError(f"{PROVIDER}: {sobject} lacks {', '.join(missing)}", provider=PROVIDER)
    return fields


def activity_fields(ctx: IntegrationContext, stream: str) -> list[str]:
    """The Note or Task fields read (:data:`NOTE_FIELDS`, :data:`TASK_FIELDS`) that the object's
    describe lists (an old API version has no ``TaskSubtype``; field-level security may hide
    one), plus the author's name through the ``CreatedBy`` relationship."""
    settings = ctx.settings
    assert isinstance(settings, Improveit360Settings)
    known = {f.lower() for f in _client(ctx).selectable_fields(_object_of(settings, stream))}
    wanted = NOTE_FIELDS if stream == NOTES else TASK_FIELDS
    return [f for f in wanted if f.lower() in known] + [AUTHOR]


def task_filter(settings: Improveit360Settings) -> str | None:
    """The SOQL condition narrowing Tasks to the chosen kinds (None: every Task is wanted).

    A ``task`` is any Task that is not a call or an email, so it is the complement of the
    other subtypes; the mapping checks the kind again (``Type`` on orgs without subtypes)."""
    wanted = [k for k in _TASK_KINDS if settings.inbound_activities.wants(k)]
    if len(wanted) == len(_TASK_KINDS):
        return None
    chosen = [v for k in wanted if k != "task" for v in _SUBTYPES[k]]
    others = [v for k in _TASK_KINDS if k not in wanted and k != "task" for v in _SUBTYPES[k]]
    quoted = ", ".join(soql_quote(v) for v in (others if "task" in wanted else chosen))
    return f"TaskSubtype NOT IN ({quoted})" if "task" in wanted else f"TaskSubtype IN ({quoted})"


# -- provider ------------------------------------------------------------------------------------


class Improveit360Provider:
    name: ClassVar[str] = PROVIDER
    credentials_model: ClassVar[type[BaseModel]] = Improveit360CredentialsModel
    settings_model: ClassVar[type[BaseModel]] = Improveit360Settings

    def streams(self, ctx: IntegrationContext) -> list[str]:
        settings = self._settings(ctx)
        out = ["accounts", "contacts", "appointments", "projects"]
        if settings.sync_project_activities:
            out.append("project_activities")
        out.append(OPPORTUNITIES)
        wanted = settings.inbound_activities
        if wanted.wants("note"):
            out.append(NOTES)
        if any(wanted.wants(kind) for kind in _TASK_KINDS):
            out.append(TASKS)
        return out

    def pages_independent(self, stream: str) -> bool:
        # Opportunity pages read only the related streams, complete by then; related pages
        # re-compose mirrored opportunities, which earlier pages of the stream may still change.
        # Activity pages only add rows of their own, resolved against the related streams.
        return stream == OPPORTUNITIES or stream in ACTIVITY_STREAMS

    def authenticate(self, ctx: IntegrationContext) -> datetime:
        """Log in (or reuse the session); Salesforce sends no expiry, so the nominal end of a
        session idle for the default 2 hours is returned."""
        return _client(ctx).authenticate().nominal_expiry

    def client(self, ctx: IntegrationContext) -> SalesforceClient:
        return _client(ctx)

    def _settings(self, ctx: IntegrationContext) -> Improveit360Settings:
        assert isinstance(ctx.settings, Improveit360Settings)
        return ctx.settings

    def fields(self, ctx: IntegrationContext, stream: str) -> list[str]:
        return stream_fields(ctx, stream)

    def fetch_page(
        self, ctx: IntegrationContext, stream: str, cursor: StreamCursor, started_at: datetime
    ) -> FetchedPage:
        try:
            return self._fetch_page(ctx, stream, cursor, started_at)
        except ForbiddenError as exc:
            raise refused(stream, exc) from None

    def _fetch_page(
        self, ctx: IntegrationContext, stream: str, cursor: StreamCursor, started_at: datetime
    ) -> FetchedPage:
        settings = self._settings(ctx)
        activities = stream in ACTIVITY_STREAMS
        sobject = _object_of(settings, stream)
        fields = activity_fields(ctx, stream) if activities else stream_fields(ctx, stream)
        windowed = stream == OPPORTUNITIES or activities
        since = started_at - timedelta(days=ctx.first_sync_days) if windowed else None
        where, after = modstamp_where(cursor.cursor, started_at, since, settings.overlap_seconds)
        clauses = [c for c in (where, task_filter(settings) if stream == TASKS else None) if c]
        soql = (
            f"SELECT {', '.join(fields)} FROM {sobject}"
            + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
            + f" ORDER BY SystemModstamp ASC, Id ASC LIMIT {settings.page_size}"
        )
        records = _client(ctx).query(soql, include_deleted=stream in _CHILDREN or activities)
        valid: list[dict[str, Any]] = []
        invalid: list[tuple[Any, str]] = []
        last: tuple[datetime, str] | None = None
        for rec in records:
            ident = rec.get("Id")
            try:
                stamp = parse_timestamp(rec.get("SystemModstamp"))
            except ValueError:
                stamp = None
            if not isinstance(ident, str) or not ident or stamp is None:
                invalid.append((rec, f"{stream} record without an Id or SystemModstamp"))
                continue
            valid.append(rec)
            last = (stamp, ident)
        has_more = len(records) >= settings.page_size
        if has_more and last is None:
            raise ResponseFormatError(
                f"{PROVIDER}: a full {stream} page holds no record with Id and SystemModstamp",
                provider=PROVIDER,
            )
        if after is not None and last is not None and last <= after:
            raise ConnectorError(
                f"{PROVIDER}: {stream} page did not move past {after[0].isoformat()} {after[1]}",
                provider=PROVIDER,
            )
        next_cursor = encode_cursor(last[0], last[1], started_at) if last else cursor.cursor
        return FetchedPage(stream, valid, next_cursor, has_more, invalid=invalid)

    def map_page(
        self,
        ctx: IntegrationContext,
        conn: psycopg.Connection[Any],
        page: FetchedPage,
        overlay: Overlay | None = None,
    ) -> MergeBatch:
        settings = self._settings(ctx)
        stream = page.stream
        batch = MergeBatch(
            tenant_id=ctx.tenant_id,
            integration_id=ctx.id,
            stream=stream,
            placeholder_emails=frozenset(settings.placeholder_emails),
            cursor=page.next_cursor,
            set_cursor=True,
            fetched=len(page.records) + len(page.invalid),
        )
        for raw, reason in page.invalid:
            ext = raw.get("Id") if isinstance(raw, dict) else None
            payload = raw if isinstance(raw, dict) else {"value": raw}
            batch.rejects.append(
                RejectedRecord(stream, ext if isinstance(ext, str) else None, reason, payload)
            )
        if stream in ACTIVITY_STREAMS:
            self._map_activities(ctx, conn, batch, page.records, overlay or {})
            return batch
        compose.map_page(
            record_graph(ctx, settings),
            conn,
            batch,
            page.records,
            overlay if overlay is not None else {},
        )
        return batch

    # -- inbound activities (issue 15) ----------------------------------------------------------

    def _map_activities(
        self,
        ctx: IntegrationContext,
        conn: psycopg.Connection[Any],
        batch: MergeBatch,
        records: list[dict[str, Any]],
        overlay: Overlay,
    ) -> None:
        """A Note or Task page into ``batch.activities`` (only the chosen kinds); a malformed
        record into ``batch.rejects`` with the mapping's reason."""
        settings = self._settings(ctx)
        mapper = map_note if batch.stream == NOTES else map_task
        ids = {
            str(value)
            for rec in records
            for name in ("ParentId", "WhatId", "WhoId")
            if _is_sf_id(value := rec.get(name))
        }
        parents = self._activity_parents(ctx, conn, settings, sorted(ids), overlay)
        for rec in records:
            try:
                act = mapper(rec, parents)
            except MappingError as exc:
                batch.rejects.append(
                    RejectedRecord(batch.stream, _ref(rec.get("Id")), str(exc), rec)
                )
                continue
            if settings.inbound_activities.wants(act.kind):
                batch.activities.append(act)

    def _activity_parents(
        self,
        ctx: IntegrationContext,
        conn: psycopg.Connection[Any],
        settings: Improveit360Settings,
        ids: list[str],
        overlay: Overlay,
    ) -> dict[str, ActivityParent]:
        """What each id is to the hub, for one page: its object by key prefix, and for a Sales
        Opportunity, Sales Appointment, Project or Project Activity its Sales Opportunity (and
        Contact) from the chunk's unmerged records, else the mirror: one query for the page."""
        client = _client(ctx)
        streams: dict[str, str] = {}
        for stream in ("accounts", "contacts", *_CHILDREN, OPPORTUNITIES):
            try:
                prefix = client.key_prefix(_object_of(settings, stream))
            except ConnectorError:
                continue  # an object the user cannot describe: its ids stay unknown parents
            if prefix:
                streams[prefix] = stream
        kinds = {i: streams.get(i[:3], UNKNOWN_PARENT) for i in ids}
        graph = record_graph(ctx, settings).resources
        keys: dict[tuple[str, str], tuple[str | None, str | None]] = {}

        def known(resource: str, ident: str) -> bool:
            rec = overlay.get(resource, {}).get(ident)
            if rec is not None:
                res = graph[resource]
                keys[(resource, ident)] = (res.customer(rec), res.parent(rec))
            return (resource, ident) in keys

        looked_up = [(kinds[i], i) for i in ids if kinds[i] in (OPPORTUNITIES, *_CHILDREN)]
        wanted = {pair for pair in looked_up if not known(*pair)}
        projects = {
            ("projects", parent)
            for (resource, ident) in looked_up
            if resource == "project_activities"
            and (parent := keys.get((resource, ident), (None, None))[1])
            and not known("projects", parent)
        }
        wanted |= projects
        if wanted:
            rows = conn.execute(
                """
                SELECT r.resource, r.external_id, r.customer_ref, r.parent_ref, p.parent_ref
                FROM crm_record r
                LEFT JOIN crm_record p
                  ON r.resource = 'project_activities' AND p.tenant_id = r.tenant_id
                 AND p.integration_id = r.integration_id AND p.resource = 'projects'
                 AND p.external_id = r.parent_ref
                WHERE r.tenant_id = %s AND r.integration_id = %s
                  AND r.resource = ANY(%s) AND r.external_id = ANY(%s)
                """,
                (
                    ctx.tenant_id,
                    ctx.id,
                    sorted({r for r, _ in wanted}),
                    sorted({i for _, i in wanted}),
                ),
            ).fetchall()
            for resource, ident, customer, parent, project_opportunity in rows:
                keys.setdefault((resource, ident), (customer, parent))
                if project_opportunity and parent:
                    keys.setdefault(("projects", parent), (None, project_opportunity))

        def opportunity_of(resource: str, ident: str) -> str | None:
            if resource == OPPORTUNITIES:
                return ident
            known(resource, ident)
            parent = keys.get((resource, ident), (None, None))[1]
            if resource == "project_activities":
                return opportunity_of("projects", parent) if parent else None
            return parent if resource in ("appointments", "projects") else None

        out: dict[str, ActivityParent] = {}
        for ident in ids:
            resource = kinds[ident]
            if resource == "contacts":
                out[ident] = ActivityParent(resource, None, ident)
            elif resource == OPPORTUNITIES:
                contact = keys.get((resource, ident), (None, None))[0]
                out[ident] = ActivityParent(resource, ident, contact)
            else:
                out[ident] = ActivityParent(resource, opportunity_of(resource, ident))
        return out

    # -- push (crmsync.push; seed 000 "Hatch → improveit360", issue 4) -------------------------
    #
    # Each trigger's setting (``push_*``) lists where its events go; every location is one
    # target, so one ledger row and one Salesforce record:
    #
    # * ``contact_note``: a classic Note whose ParentId is the Sales Opportunity's Contact;
    # * ``opportunity_task``: a completed Task on the Sales Opportunity (WhatId), with its Contact
    #   as WhoId (Task.WhoId takes only a Contact or Lead).
    #
    # Campaign events are pushed only when ``campaign_events`` lists them. Seed 000 has no
    # "include the content" option: the communication is what it syncs, so notes and tasks carry
    # the message, as LeadPerfection's notes do.
    #
    # The idempotency key travels twice: on the text's last line (``[ref hatch-…]``, from
    # :func:`crmsync.push.render_text`) and at the end of the Note's Title / Task's Subject.
    # Long text areas (Note.Body, Task.Description) cannot be filtered in SOQL, so the short field
    # is what lets a retry after an ambiguous failure find an earlier copy with one query.
    # Quota errors (403 REQUEST_LIMIT_EXCEEDED, or the client refusing to spend the org's last
    # requests) are ConnectorErrors: the engine records that push as failed and retries it later.

    def push_targets(self, ctx: IntegrationContext, activity: PushActivity) -> list[PushTarget]:
        """The locations the trigger's ``push_*`` setting lists, in the order configured."""
        settings = self._settings(ctx)
        if activity.kind == "campaign_event":
            if activity.campaign_event not in settings.campaign_events:
                return []
            where: list[PushLocation] = settings.push_campaign_events
        else:
            attr = _PUSH_SETTINGS.get(activity.kind)
            if attr is None:
                return []
            where = getattr(settings, attr)
        return [PushTarget(location, include_content=True) for location in where]

    def resolve_parent(
        self,
        ctx: IntegrationContext,
        conn: psycopg.Connection[Any],
        activity: PushActivity,
        target: PushTarget,
    ) -> str | None:
        """Where the record goes, from the contact's most recent Sales Opportunity of this
        integration (the activity's own opportunity first when it names one of them).

        ``contact_note``: the opportunity's Contact (External Contact ID), as ``"<Contact Id>"``.
        ``opportunity_task``: see :class:`TaskRef`. Opportunities or contacts the details mark
        ``IsDeleted`` are passed over (Salesforce refuses children of deleted records), as is
        an opportunity without a Contact for a note; with none left the push waits.
        """
        settings = self._settings(ctx)
        rows = conn.execute(
            """
            SELECT external_id, external_contact_id,
                   coalesce(details->>'IsDeleted', 'false') = 'true',
                   coalesce(details->>'contact:IsDeleted', 'false') = 'true'
            FROM opportunity WHERE tenant_id = %s AND integration_id = %s AND contact_id = %s
            ORDER BY (id = %s) DESC, external_updated_at DESC NULLS LAST, id DESC
            """,
            (ctx.tenant_id, ctx.id, activity.contact_id, activity.opportunity_id or 0),
        ).fetchall()
        for opportunity_id, contact_id, opportunity_deleted, contact_deleted in rows:
            if opportunity_deleted:
                continue
            contact = contact_id if _is_sf_id(contact_id) and not contact_deleted else None
            if target.name == CONTACT_NOTE:
                if contact is not None:
                    return str(contact)
                continue
            if target.name == OPPORTUNITY_TASK:
                if not _is_sf_id(opportunity_id):
                    continue
                # WhoId must be a Contact (or Lead): a custom contact object cannot be one.
                who = contact if settings.objects.contact == "Contact" else None
                return TaskRef.for_activity(str(opportunity_id), who, activity).dump()
            raise ValueError(f"unknown improveit360 push target {target.name!r}")
        return None

    def find_pushed(
        self, ctx: IntegrationContext, target: PushTarget, parent: str, key: str
    ) -> str | None:
        """The Note under the Contact, or the Task on the Sales Opportunity, whose Title or
        Subject carries ``key``: one SOQL query."""
        client = _client(ctx)
        if target.name == CONTACT_NOTE:
            return client.find_record_with_key(
                "Note", key, field="Title", parent_field="ParentId", parent_id=parent
            )
        if target.name == OPPORTUNITY_TASK:
            ref = TaskRef.load(parent)
            return client.find_record_with_key(
                "Task", key, field="Subject", parent_field="WhatId", parent_id=ref.what_id
            )
        raise ValueError(f"unknown improveit360 push target {target.name!r}")

    def create_push(
        self, ctx: IntegrationContext, target: PushTarget, parent: str, text: str
    ) -> str:
        """Create the Note or the completed Task; its Title/Subject is the text's headline
        followed by ``[<key>]``, its Body/Description the whole text."""
        client = _client(ctx)
        key = push_key_in(text)
        headline = text.splitlines()[0]
        if target.name == CONTACT_NOTE:
            return client.create_note(parent, keyed_title(headline, key, NOTE_TITLE_MAX), text)
        if target.name == OPPORTUNITY_TASK:
            ref = TaskRef.load(parent)
            return client.create_task(
                ref.who_id,
                ref.what_id,
                keyed_title(headline, key, TASK_SUBJECT_MAX),
                text,
                "Completed",
                activity_date=ref.activity_date,
            )
        raise ValueError(f"unknown improveit360 push target {target.name!r}")


# -- push helpers ------------------------------------------------------------------------------

CONTACT_NOTE: PushLocation = "contact_note"
OPPORTUNITY_TASK: PushLocation = "opportunity_task"
_PUSH_SETTINGS: dict[str, str] = {
    "outbound_campaign_message": "push_outgoing_campaign_messages",
    "outbound_manual_message": "push_outgoing_manual_messages",
    "inbound_message": "push_incoming_messages",
}
_KEY_LINE = re.compile(r"\[ref (hatch-[0-9a-f]+)\]")
_SF_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")


def _is_sf_id(value: object) -> bool:
    return isinstance(value, str) and bool(_SF_ID.match(value))


def push_key_in(text: str) -> str:
    """The idempotency key :func:`crmsync.push.render_text` puts on the text's last line."""
    keys = _KEY_LINE.findall(text)
    if not keys:
        raise ValueError("push text carries no [ref hatch-…] key")
    return str(keys[-1])


def keyed_title(headline: str, key: str, limit: int) -> str:
    """``"<headline> [<key>]"`` within ``limit`` characters: the headline is shortened, never the
    key (the connector would cut the end, and with it the key the retry check looks for)."""
    suffix = f" [{key}]"
    room = limit - len(suffix)
    if room < 1:
        raise ValueError(f"a {limit}-character field cannot hold the key {key!r}")
    head = headline.strip()
    if len(head) > room:
        head = head[: room - 1].rstrip() + "…"
    return head + suffix


@dataclass(frozen=True, slots=True)
class TaskRef:
    """An ``opportunity_task`` push's parent (the ledger's ``target_ref``):
    ``"<Sales Opportunity Id>/<Contact Id or empty>/<ActivityDate>"``.

    ``create_push`` only receives the rendered text, so the Task's WhoId and ActivityDate (the
    activity's UTC date: a completed Task shows in the activity history under that date) travel
    here, fixed when the parent is resolved.
    """

    what_id: str
    who_id: str | None
    activity_date: date

    @classmethod
    def for_activity(cls, what_id: str, who_id: str | None, activity: PushActivity) -> TaskRef:
        return cls(what_id, who_id, activity.occurred_at.astimezone(UTC).date())

    def dump(self) -> str:
        return f"{self.what_id}/{self.who_id or ''}/{self.activity_date.isoformat()}"

    @classmethod
    def load(cls, text: str) -> TaskRef:
        try:
            what_id, who_id, day = text.split("/", 2)
            if not _is_sf_id(what_id) or (who_id and not _is_sf_id(who_id)):
                raise ValueError
            return cls(what_id, who_id or None, date.fromisoformat(day))
        except ValueError:
            raise ValueError(f"not an improveit360 task reference: {text[:80]!r}") from None


# -- mirror and composition ------------------------------------------------------------------------


def _ref(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _modified(rec: Record) -> datetime | None:
    return parse_timestamp(rec.get("SystemModstamp"))


def _field(name: str) -> Callable[[Record], str | None]:
    return lambda rec: _ref(rec.get(name))


def _id(rec: Record) -> str | None:
    return _ref(rec.get("Id"))


def _no_key(rec: Record) -> str | None:
    return None


def record_graph(ctx: IntegrationContext, settings: Improveit360Settings) -> compose.RecordGraph:
    """A Sales Opportunity with its Contact (``customer``) and Account (``parent``), its Sales
    Appointments and Projects, and with ``sync_project_activities`` the Projects' Activities.
    The lookup fields are the org's own (``standard_fields``); a Contact or Account the mirror
    lacks is read by Id (seed 000: an opportunity may name a person synced long ago)."""
    f = settings.standard_fields

    resources = {
        name: compose.Resource(
            name,
            _id,
            _modified,
            _field(customer) if customer else _no_key,
            _field(parent) if parent else _no_key,
            modified_field="SystemModstamp",
        )
        for name, customer, parent in (
            ("accounts", None, None),
            ("contacts", "Id", None),
            (OPPORTUNITIES, f.opportunity_contact, f.opportunity_account),
            ("appointments", None, f.appointment_opportunity),
            ("projects", None, f.project_opportunity),
            ("project_activities", None, f.activity_project),
        )
    }
    links = [
        compose.Link("contact", "contacts", "id", on="customer", many=False, fetch_missing=True),
        compose.Link("account", "accounts", "id", on="parent", many=False, fetch_missing=True),
        compose.Link("appointments", "appointments", "parent"),
        compose.Link("projects", "projects", "parent"),
    ]
    if settings.sync_project_activities:
        links.append(compose.Link("activities", "project_activities", "parent", via="projects"))
    paths = f.paths()
    placeholders = frozenset(settings.placeholder_emails)

    def opportunity(rec: Record, rel: compose.Related) -> MappedOpportunity:
        return map_sales_opportunity(
            rec,
            rel["contact"],
            rel["account"],
            rel["appointments"],
            rel["projects"],
            rel.get("activities"),
            paths=paths,
            placeholder_emails=placeholders,
        )

    def fetch(resource: str, ids: list[str]) -> list[Record]:
        sobject = _object_of(settings, resource)
        return _client(ctx).query_by_ids(sobject, stream_fields(ctx, resource), ids)

    return compose.RecordGraph(
        resources, (compose.Root(OPPORTUNITIES, tuple(links), opportunity),), fetch
    )
