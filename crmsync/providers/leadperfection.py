"""LeadPerfection as a hub provider (seed 001): one windowed stream of prospects.

**Stream.** ``prospects``: every page is one ``GetLead`` call for a date window; each prospect
comes with its leads, jobs, appointments, notes and calls nested, so a page maps on its own (no
mirror, no look-ups; :mod:`models.mappings.leadperfection` decides which Lead + Prospect or
Prospect combinations the page triggers) and pages are independent.

**Activities** (issue 15, seed 004). With ``inbound_activities.enabled`` the same pages also
give the prospects' notes and call history and their leads' and jobs' notes
(:func:`models.mappings.leadperfection.map_activities`): LP has no list-notes endpoint, GetLead
embeds them, so they cost no request and there is no activity stream of its own. Each list LP
sent is whole (``activity_sets``), so a note gone from it is marked deleted; the 20-minute
window re-reads unchanged notes, which the engine stores no second time. A call log crmsync
pushed is known by the id :func:`_find_call` recorded in the push ledger, the one the inbound
mapping gives it (``call_log_ids``).

**Host.** ``https://{serverid}.leadperfection.com`` unless the integration sets ``base_url``;
the token comes from ``{host}/token`` unless it sets ``auth_url``. Clients (and their tokens) are
cached per process and integration, as for ServiceTitan.

**Window.** The seed syncs what changed "within the last 20 minutes before the sync began".
Taken literally, a run that starts late, or after a failed one, would leave a gap, so the window
of a run that starts at *S* is ``[min(S - 20 min, L), S]`` where *L* is the start of the last run
that read its whole window. The first sync of an integration has no *L* and reads
``first_sync_days`` (process setting, 90 by default, as for ServiceTitan) back from *S*.

**Cursor** (``sync_cursor.cursor``, committed with each page's merge; ARCHITECTURE.md §2.1). A
compact JSON object:

``{"v": 1, "start": S0, "end": S1, "next": N, "anchors": [cst_id, ...], "done": L}``

* ``start``/``end``: the UTC window the page belongs to (``map_page`` classifies leads by it);
* ``next``: the ``StartIndex`` of the window's next page, or null once the window is fully read;
* ``anchors``: the last ``cst_id`` values of the page (the drift check of
  :meth:`connectors.leadperfection.LeadPerfectionClient.window_page`);
* ``done``: *L*, the end (= the run's start) of the last fully read window; it moves only when
  a page that completes a window commits.

A run that finds ``next`` set resumes *that* window at ``next``: a crash mid-window repeats at
most one page, never skips one, and never advances *L*. When the resumed window ends before the
current run's start, the page reports ``has_more`` and the same run goes on with a fresh window
``[min(S - 20 min, L), S]``, so the catch-up does not wait for the next schedule. A cursor that
cannot be read (not this format) is logged and treated as none: a first sync repeats work but
loses nothing, where refusing would stall the integration until someone edits the database.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import httpx
import psycopg
from pydantic import BaseModel

from connectors.errors import TransientError, body_excerpt
from connectors.leadperfection import (
    ADD_CALL_HISTORY,
    ADD_INSTALLER_JOB_NOTES,
    ADD_NOTES,
    LOOKBACK,
    WRITE_OK,
    LeadPerfectionClient,
    LeadPerfectionCredentials,
    WindowCursor,
    format_lp_datetime,
    next_window,
)
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
from models.integrations.leadperfection import (
    LeadPerfectionCredentialsModel,
    LeadPerfectionSettings,
)
from models.mappings.leadperfection import (
    ACTIVITY_KINDS,
    call_log_ids,
    call_when,
    map_activities,
    map_prospects,
)
from models.standard import InboundActivity, RejectedRecord

__all__ = [
    "CALL_LOG",
    "CALL_RESULT_CODES",
    "CALL_TYPES",
    "LOOKBACK",
    "PRODUCTION_NOTE",
    "PROSPECT_NOTE",
    "STREAM",
    "LeadPerfectionCredentialsModel",
    "LeadPerfectionProvider",
    "LeadPerfectionSettings",
    "WindowCursor",
]

logger = logging.getLogger("crmsync.providers.leadperfection")

STREAM = "prospects"


_clients: ClientCache[LeadPerfectionClient] = ClientCache()


def _client(ctx: IntegrationContext) -> LeadPerfectionClient:
    creds = ctx.credentials
    settings = ctx.settings
    assert isinstance(creds, LeadPerfectionCredentialsModel)
    assert isinstance(settings, LeadPerfectionSettings)
    password, appkey = creds.password.get_secret_value(), creds.appkey.get_secret_value()
    return _clients.get(
        ctx,
        [
            creds.serverid or "",
            creds.clientid,
            creds.username,
            password,
            appkey,
            ctx.base_url or "",
            ctx.auth_url or "",
            settings.timezone,
        ],
        lambda: LeadPerfectionClient(
            LeadPerfectionCredentials(
                clientid=creds.clientid,
                username=creds.username,
                password=password,
                appkey=appkey,
                serverid=creds.serverid,
            ),
            base_url=ctx.base_url or None,
            token_url=ctx.auth_url or None,
            timezone=settings.timezone,
            timeout=httpx.Timeout(get_settings().http_timeout_seconds, connect=10.0),
        ),
    )


class LeadPerfectionProvider:
    name: ClassVar[str] = "leadperfection"
    credentials_model: ClassVar[type[BaseModel]] = LeadPerfectionCredentialsModel
    settings_model: ClassVar[type[BaseModel]] = LeadPerfectionSettings

    def streams(self, ctx: IntegrationContext) -> list[str]:
        return [STREAM]

    def pages_independent(self, stream: str) -> bool:
        return True  # a page maps from its own payload only

    def authenticate(self, ctx: IntegrationContext) -> datetime:
        return _client(ctx).authenticate()

    def client(self, ctx: IntegrationContext) -> LeadPerfectionClient:
        """The integration's client (shared by the push layer for notes and call logs)."""
        return _client(ctx)

    def fetch_page(
        self, ctx: IntegrationContext, stream: str, cursor: StreamCursor, started_at: datetime
    ) -> FetchedPage:
        if stream != STREAM:
            raise ValueError(f"unknown LeadPerfection stream {stream!r}")
        settings = self._settings(ctx)
        try:
            state = WindowCursor.load(cursor.cursor)
        except ValueError as exc:
            logger.warning("%s: unreadable cursor (%s); starting a first sync", ctx.label, exc)
            state = None
        anchors: tuple[int, ...] = ()
        if state is None or state.complete:
            done = state.done if state is not None else None
            start, end = next_window(done, started_at, ctx.first_sync_days)
            index = 1
        else:
            start, end, done = state.start, state.end, state.done
            index, anchors = state.next_index or 1, state.anchors
        page = _client(ctx).window_page(
            start, end, start_index=index, anchors=anchors, page_size=settings.page_size
        )
        if page.next_start_index is None:
            new = WindowCursor(start, end, None, (), end if done is None else max(done, end))
            has_more = end < started_at.astimezone(UTC).replace(microsecond=0)
        else:
            new = WindowCursor(start, end, page.next_start_index, page.anchors, done)
            has_more = True
        valid: list[dict[str, Any]] = []
        invalid: list[tuple[Any, str]] = []
        for rec in page.records:
            if isinstance(rec, dict) and rec.get("cst_id") not in (None, ""):
                valid.append(rec)
            else:
                invalid.append((rec, "prospect without a cst_id"))
        return FetchedPage(stream, valid, new.dump(), has_more, window_start=start, invalid=invalid)

    def _settings(self, ctx: IntegrationContext) -> LeadPerfectionSettings:
        assert isinstance(ctx.settings, LeadPerfectionSettings)
        return ctx.settings

    def map_page(
        self,
        ctx: IntegrationContext,
        conn: psycopg.Connection[Any],
        page: FetchedPage,
        overlay: Overlay | None = None,
    ) -> MergeBatch:
        settings = self._settings(ctx)
        window = WindowCursor.load(page.next_cursor)
        assert window is not None, "fetch_page always sets the cursor"
        placeholders = frozenset(settings.placeholder_emails)
        opportunities, rejects = map_prospects(
            page.records,
            window_start=window.start,
            window_end=window.end,
            tz=ZoneInfo(settings.timezone),
            placeholder_emails=placeholders,
            stream=page.stream,
        )
        for raw, reason in page.invalid:
            payload = raw if isinstance(raw, dict) else {"value": raw}
            rejects.append(RejectedRecord(page.stream, None, reason, payload))
        kinds = [kind for kind in ACTIVITY_KINDS if settings.inbound_activities.wants(kind)]
        activities: list[InboundActivity] = []
        activity_sets: list[tuple[str, str]] = []
        if kinds:
            activities, activity_sets, bad = map_activities(
                page.records, tz=ZoneInfo(settings.timezone), kinds=kinds, stream=page.stream
            )
            rejects.extend(bad)
        return MergeBatch(
            tenant_id=ctx.tenant_id,
            integration_id=ctx.id,
            stream=page.stream,
            opportunities=opportunities,
            rejects=rejects,
            placeholder_emails=placeholders,
            match_on_created_at=True,
            cursor=page.next_cursor,
            set_cursor=True,
            window_start=page.window_start,
            fetched=len(page.records) + len(page.invalid),
            activities=activities,
            activity_sets=activity_sets,
        )

    # -- push (crmsync.push; seed 001 "User options" and FAQ, issue 4) -------------------------
    #
    # LeadPerfection receives communications only (texts, emails, calls: seed 001 FAQ "The only
    # thing Hatch will push back to LeadPerfection is the communications"), never campaign events.
    # Each flag the integration sets is one target, so one ledger row and one LP record:
    #
    # * ``prospect_note``: ``AddNotes`` with ``rectype=cst`` on the Prospect;
    # * ``call_log``: ``AddCallHistory`` on the Prospect (see :data:`CALL_TYPES`);
    # * ``production_note``: ``AddInstallerJobNotes`` on the first Job of the Lead.
    #
    # LP has no "include the content" option (seed 001 lists none): the communication *is* the
    # data the seed pushes, so notes always carry the message content. A call log has no free-text
    # field, so it never carries content (nor the push key).
    #
    # None of LP's write endpoints returns an id, and ``AddNotes`` answers "UPDATED SUCCESSFULLY!"
    # even for an unknown ``recid`` (crm-apis.md §2.4): every write is read back (GetLead embeds
    # notes and calls) and only a record found on read-back counts as delivered; anything else
    # raises an *ambiguous* TransientError so the engine's next attempt looks before it writes.

    def push_targets(self, ctx: IntegrationContext, activity: PushActivity) -> list[PushTarget]:
        """Seed 001's flags: ``push_communications`` gates the three ``push_to_*`` targets."""
        settings = self._settings(ctx)
        if activity.kind == "campaign_event" or not settings.push_communications:
            return []
        targets: list[PushTarget] = []
        if settings.push_to_notes:
            targets.append(PushTarget(PROSPECT_NOTE, include_content=True))
        if settings.push_to_call_logs:
            targets.append(PushTarget(CALL_LOG, include_content=False))
        if settings.push_to_production_notes:
            targets.append(PushTarget(PRODUCTION_NOTE, include_content=True))
        return targets

    def resolve_parent(
        self,
        ctx: IntegrationContext,
        conn: psycopg.Connection[Any],
        activity: PushActivity,
        target: PushTarget,
    ) -> str | None:
        """Where the record goes, from the contact's most recent opportunity of this integration
        (the activity's own opportunity first when it names one of them).

        ``prospect_note``: its Prospect (``Prospect.cst_id``), as ``"<cst_id>"``.
        ``production_note``: its Lead's first Job (``Prospect.leads[0].jobs[0].id``), as
        ``"<cst_id>/<job_id>"``; an opportunity whose Lead has no Job yet is passed over for the
        next most recent one, as ServiceTitan job notes pass over memberships, and with none the
        push waits (deferred, then orphaned) for a Job to be synced.
        ``call_log``: see :class:`CallLogRef`; the entry's fields travel in the reference because
        ``create_push`` only receives the rendered text, which a call log cannot hold.
        """
        rows = conn.execute(
            """
            SELECT coalesce(details->>'Prospect.cst_id', external_contact_id),
                   details->>'Prospect.leads[0].jobs[0].id', details->>'Prospect.phone1'
            FROM opportunity WHERE tenant_id = %s AND integration_id = %s AND contact_id = %s
            ORDER BY (id = %s) DESC, external_updated_at DESC NULLS LAST, id DESC
            """,
            (ctx.tenant_id, ctx.id, activity.contact_id, activity.opportunity_id or 0),
        ).fetchall()
        for cst_id, job_id, phone in rows:
            if not _is_id(cst_id):
                continue
            if target.name == PROSPECT_NOTE:
                return str(cst_id)
            if target.name == PRODUCTION_NOTE:
                if _is_id(job_id):
                    return f"{cst_id}/{job_id}"
                continue
            if target.name == CALL_LOG:
                return CallLogRef.for_activity(int(cst_id), activity, phone).dump()
            raise ValueError(f"unknown LeadPerfection push target {target.name!r}")
        return None

    def find_pushed(
        self, ctx: IntegrationContext, target: PushTarget, parent: str, key: str
    ) -> str | None:
        """The record an earlier attempt wrote: a note carrying ``key``, or for a call log the
        entry with the same date, type and result (a call log cannot carry the key)."""
        client = _client(ctx)
        if target.name == CALL_LOG:
            ref = CallLogRef.load(parent)
            return _find_call(client, ref)
        place = _NotePlace.parse(target.name, parent)
        note = client.find_note(place.rectype, place.recid, key, cst_id=place.cst_id)
        return None if note is None else _note_id(target.name, parent, key, note)

    def create_push(
        self, ctx: IntegrationContext, target: PushTarget, parent: str, text: str
    ) -> str:
        """Write, then read back; only a record LP really holds is returned as delivered."""
        client = _client(ctx)
        if target.name == CALL_LOG:
            ref = CallLogRef.load(parent)
            answer = client.add_call_history(
                ref.cst_id,
                call_date=ref.at,
                result_code=ref.result_code,
                phone=ref.phone,
                call_type=ref.call_type,
            )
            found = _find_call(client, ref)
            if found is None:
                raise _unconfirmed(
                    ADD_CALL_HISTORY,
                    answer,
                    f"call log of {ref.at:%Y-%m-%d %H:%M:%S} UTC",
                    f"prospect {ref.cst_id}",
                )
            return found
        place = _NotePlace.parse(target.name, parent)
        key = _key_in(text)
        if target.name == PRODUCTION_NOTE:
            path, answer = (
                ADD_INSTALLER_JOB_NOTES,
                client.add_installer_job_notes(place.recid, text),
            )
        else:
            path, answer = ADD_NOTES, client.add_note(place.rectype, place.recid, text)
        note = client.find_note(place.rectype, place.recid, key, cst_id=place.cst_id)
        if note is None:
            raise _unconfirmed(path, answer, f"note {key}", place.describe())
        return _note_id(target.name, parent, key, note)


# -- push helpers ------------------------------------------------------------------------------

PROSPECT_NOTE = "prospect_note"
CALL_LOG = "call_log"
PRODUCTION_NOTE = "production_note"

CALL_TYPES: dict[str, str] = {
    "inbound_message": "I",
    "outbound_campaign_message": "O",
    "outbound_manual_message": "O",
}
"""``CallType`` of a call log entry: the direction (LP's ``I`` Inbound / ``O`` Outbound).

LP also knows ``T`` (Text), but using it would lose the direction, which the channel already
tells through :data:`CALL_RESULT_CODES`."""

CALL_RESULT_CODES: dict[str, str] = {"sms": "TX", "voicemail": "LM", "email": "EM", "call": ""}
"""``ResultCode`` of a call log entry: the channel. ``TX`` (Text Message) and ``LM`` (Left
Message) are LP result codes; LP has none for an email, so Hatch writes ``EM``; a call's outcome
(answered, busy…) is unknown to the hub, so it gets no result. ``Phone`` is the Prospect's
``phone1`` (none for an email); ``EmpID``, ``CallQueueID``, ``Duration`` and ``RecordingURL`` are
left empty: Hatch is no LP employee, queue or recording, and activities carry no duration."""

_KEY_LINE = re.compile(r"\[ref (hatch-[0-9a-f]+)\]")


def _is_id(value: object) -> bool:
    return isinstance(value, str) and value.isdigit() and 0 < len(value) <= 18


def _key_in(text: str) -> str:
    """The idempotency key :func:`crmsync.push.render_text` puts on the note's last line."""
    keys = _KEY_LINE.findall(text)
    if keys:
        return str(keys[-1])
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else text


@dataclass(frozen=True, slots=True)
class _NotePlace:
    """Where a note lives and how it is read back: ``rectype``/``recid`` for ``read_notes``, and
    the owning prospect so a job's notes need no extra look-up."""

    rectype: str
    recid: int
    cst_id: int | None

    @classmethod
    def parse(cls, target: str, parent: str) -> _NotePlace:
        if target == PROSPECT_NOTE:
            return cls("cst", int(parent), None)
        if target == PRODUCTION_NOTE:
            cst_id, _, job_id = parent.partition("/")
            return cls("job", int(job_id), int(cst_id))
        raise ValueError(f"unknown LeadPerfection note target {target!r}")

    def describe(self) -> str:
        if self.rectype == "cst":
            return f"prospect {self.recid}"
        return f"job {self.recid} of prospect {self.cst_id}"


def _note_id(target: str, parent: str, key: str, note: dict[str, Any]) -> str:
    """LP notes usually carry no id (crm-apis.md §2.5), so target, parent and key stand in."""
    if note.get("id") not in (None, ""):
        return str(note["id"])
    return f"{target}:{parent}:{key}"


@dataclass(frozen=True, slots=True)
class CallLogRef:
    """A call log push's reference (the ledger's ``target_ref``):
    ``"<cst_id>/<UTC time>/<CallType>/<ResultCode>/<Phone>"``.

    It fixes the entry's fields when the push is planned for delivery, so every attempt writes,
    and looks for, the same entry. The entry's identity on read-back is (prospect, ``CallDate``
    to the second, ``CallType``, ``ResultCode``): two communications of the same channel and
    direction with the same contact in the same second would be taken for one by a retry's
    check, which is the price of a record that cannot carry the push key.
    """

    cst_id: int
    at: datetime
    call_type: str
    result_code: str
    phone: str

    @classmethod
    def for_activity(cls, cst_id: int, activity: PushActivity, phone: str | None) -> CallLogRef:
        channel = activity.channel or ""
        return cls(
            cst_id,
            activity.occurred_at.astimezone(UTC).replace(microsecond=0),
            CALL_TYPES.get(activity.kind, "O"),
            CALL_RESULT_CODES.get(channel, ""),
            "" if channel == "email" else (phone or ""),
        )

    def dump(self) -> str:
        at = self.at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{self.cst_id}/{at}/{self.call_type}/{self.result_code}/{self.phone}"

    @classmethod
    def load(cls, text: str) -> CallLogRef:
        try:
            cst_id, at, call_type, result_code, phone = text.split("/", 4)
            return cls(int(cst_id), datetime.fromisoformat(at), call_type, result_code, phone)
        except ValueError:
            raise ValueError(f"not a LeadPerfection call log reference: {text[:80]!r}") from None


def _find_call(client: LeadPerfectionClient, ref: CallLogRef) -> str | None:
    """The id of the prospect's entry matching ``ref``: LP's, or the stand-in
    :func:`models.mappings.leadperfection.call_log_ids` gives it (``call_log:<cst_id>:<CallDate>``
    for the first entry of its second), which the inbound read gives it too (no echo)."""
    wanted = format_lp_datetime(ref.at, client.tz)
    calls = client.read_calls(ref.cst_id)
    for call, ident in zip(calls, call_log_ids(ref.cst_id, calls), strict=True):
        if (
            call_when(call) == wanted
            and str(call.get("calltype") or "").upper() == ref.call_type.upper()
            and str(call.get("resultcode") or "").upper() == ref.result_code.upper()
        ):
            return ident
    return None


def _unconfirmed(path: str, answer: str, what: str, where: str) -> TransientError:
    """A write LP acknowledged (or answered oddly) that read-back cannot find: not delivered,
    and ambiguous, since it may still have been stored (or become visible later)."""
    said = "its usual answer" if answer == WRITE_OK else f"{body_excerpt(answer, 80)!r}"
    return TransientError(
        f"leadperfection: POST {path} gave {said} but the {what} is not on {where} when read "
        "back (unknown record, or not stored)",
        provider="leadperfection",
        status_code=200,
        method="POST",
        path=path,
        ambiguous=True,
    )
