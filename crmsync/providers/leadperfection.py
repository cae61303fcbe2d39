"""LeadPerfection as a hub provider (seed 001): one windowed stream of prospects.

**Stream.** ``prospects``: every page is one ``GetLead`` call for a date window; each prospect
comes with its leads, jobs, appointments, notes and calls nested, so a page maps on its own (no
mirror, no look-ups; :mod:`models.mappings.leadperfection` decides which Lead + Prospect or
Prospect combinations the page triggers) and pages are independent.

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

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import psycopg
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.leadperfection import (
    DEFAULT_TIMEZONE,
    LeadPerfectionClient,
    LeadPerfectionCredentials,
)
from crmsync.merge import MergeBatch
from crmsync.providers.base import FetchedPage, IntegrationContext, StreamCursor
from crmsync.settings import get_settings
from models.mappings.leadperfection import map_prospects
from models.normalize import normalize_email
from models.standard import RejectedRecord

__all__ = [
    "LOOKBACK",
    "STREAM",
    "LeadPerfectionCredentialsModel",
    "LeadPerfectionProvider",
    "LeadPerfectionSettings",
    "WindowCursor",
]

logger = logging.getLogger("crmsync.providers.leadperfection")

STREAM = "prospects"
LOOKBACK = timedelta(minutes=20)
"""Seed 001: records "updated within the last 20 minutes before the sync began"."""


class LeadPerfectionCredentialsModel(BaseModel):
    """What the seed's setup asks for: the LP client id and the API user's credentials, plus the
    app key LP issues and the customer's server id (``https://{serverid}.leadperfection.com``;
    optional when the integration sets ``base_url``)."""

    model_config = ConfigDict(extra="forbid")
    serverid: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
        description="LP server id, e.g. api, apitest or a customer subdomain",
    )
    clientid: str = Field(min_length=1, description="LP client (company) code, e.g. wq55a")
    username: str = Field(min_length=1)
    password: SecretStr
    appkey: SecretStr

    @field_validator("password", "appkey")
    @classmethod
    def _not_blank(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value():
            raise ValueError("must not be empty")
        return v


class LeadPerfectionSettings(BaseModel):
    """Integration options: seed 001's push flags with its defaults, plus how to read LP."""

    model_config = ConfigDict(extra="forbid")
    timezone: str = Field(
        default=DEFAULT_TIMEZONE,
        description="IANA zone of LP's naive timestamps (the customer's wall clock)",
    )
    push_communications: bool = True
    push_to_call_logs: bool = False
    push_to_notes: bool = True
    push_to_production_notes: bool = False
    placeholder_emails: list[str] = Field(default_factory=list)
    page_size: int = Field(default=500, ge=1, le=5000, description="GetLead PageSize")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("placeholder_emails")
    @classmethod
    def _normalise(cls, v: list[str]) -> list[str]:
        return sorted({e for e in (normalize_email(x) for x in v) if e})


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _parse(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("not a timestamp")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("naive timestamp")
    return parsed.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class WindowCursor:
    """The LP stream's cursor (see the module docstring for the JSON form)."""

    start: datetime
    end: datetime
    next_index: int | None
    anchors: tuple[int, ...]
    done: datetime | None

    @property
    def complete(self) -> bool:
        return self.next_index is None

    def dump(self) -> str:
        return orjson.dumps(
            {
                "v": 1,
                "start": _iso(self.start),
                "end": _iso(self.end),
                "next": self.next_index,
                "anchors": list(self.anchors),
                "done": _iso(self.done),
            }
        ).decode()

    @classmethod
    def load(cls, text: str | None) -> WindowCursor | None:
        """The cursor, or None for none at all; raises ValueError for one that is not ours."""
        if text is None:
            return None
        try:
            raw = orjson.loads(text)
            if not isinstance(raw, dict) or raw.get("v") != 1:
                raise ValueError("unknown cursor version")
            start, end = _parse(raw["start"]), _parse(raw["end"])
            next_index = raw.get("next")
            anchors = raw.get("anchors") or []
            if start is None or end is None:
                raise ValueError("window bounds missing")
            if next_index is not None and (not isinstance(next_index, int) or next_index < 1):
                raise ValueError("bad StartIndex")
            if not all(isinstance(a, int) for a in anchors):
                raise ValueError("bad anchors")
            return cls(start, end, next_index, tuple(anchors), _parse(raw.get("done")))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a LeadPerfection cursor: {exc}") from None


def next_window(done: datetime | None, started_at: datetime) -> tuple[datetime, datetime]:
    """The window a run starting at ``started_at`` reads after the last complete one."""
    end = started_at.astimezone(UTC).replace(microsecond=0)
    if done is None:
        return end - timedelta(days=get_settings().first_sync_days), end
    return min(end - LOOKBACK, done), end


_clients: dict[tuple[int, str], LeadPerfectionClient] = {}
_clients_lock = threading.Lock()


def _client(ctx: IntegrationContext) -> LeadPerfectionClient:
    creds = ctx.credentials
    settings = ctx.settings
    assert isinstance(creds, LeadPerfectionCredentialsModel)
    assert isinstance(settings, LeadPerfectionSettings)
    fingerprint = hashlib.sha256(
        "\x00".join(
            [
                creds.serverid or "",
                creds.clientid,
                creds.username,
                creds.password.get_secret_value(),
                creds.appkey.get_secret_value(),
                ctx.base_url or "",
                ctx.auth_url or "",
                settings.timezone,
            ]
        ).encode()
    ).hexdigest()
    key = (ctx.id, fingerprint)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = LeadPerfectionClient(
                LeadPerfectionCredentials(
                    clientid=creds.clientid,
                    username=creds.username,
                    password=creds.password.get_secret_value(),
                    appkey=creds.appkey.get_secret_value(),
                    serverid=creds.serverid,
                ),
                base_url=ctx.base_url or None,
                token_url=ctx.auth_url or None,
                timezone=settings.timezone,
            )
            _clients[key] = client
        return client


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
            start, end = next_window(done, started_at)
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
        self, ctx: IntegrationContext, conn: psycopg.Connection[Any], page: FetchedPage
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
        )
