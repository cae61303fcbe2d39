"""What the shared sync machinery needs from each CRM: the provider contract.

A provider glues one connector (HTTP, ``connectors/``) and one pure mapping (``models/mappings/``)
to the hub: it names the streams an integration reads, fetches one page of a stream from a
stored cursor, and turns a page into a :class:`~crmsync.merge.MergeBatch`. Everything else
(cursors, merge, runs, flows, deployments) is shared, so a fourth CRM is one module here plus
a line in :mod:`crmsync.providers`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import psycopg
from pydantic import BaseModel

from crmsync.merge import MergeBatch

Overlay = dict[str, dict[str, dict[str, Any]]]
"""Raw records by resource and external id, read before the mirror (see ``map_page``)."""


@dataclass(slots=True)
class IntegrationContext:
    """One integration as a task sees it: loaded from the database by id, secrets decrypted in
    memory only (never returned from a task, never logged)."""

    id: int
    tenant_id: int
    tenant_slug: str
    name: str
    provider: str
    base_url: str | None
    auth_url: str | None
    credentials: BaseModel = field(repr=False)
    settings: BaseModel = field(repr=False)
    first_sync_days: int = 90

    @property
    def label(self) -> str:
        return f"{self.tenant_slug}/{self.name}"


C = TypeVar("C")


class ClientCache(Generic[C]):
    """One CRM client per integration and configuration in this process, so the tasks of a run
    share its token, session and connection pool. The key holds a hash of what the client was
    built from (secrets included, never kept as text): changed credentials or settings get a
    new client, and the old one is dropped (calls already in flight finish with it)."""

    def __init__(self) -> None:
        self._clients: dict[tuple[int, str], C] = {}
        self._lock = threading.Lock()

    def get(self, ctx: IntegrationContext, parts: Sequence[str], build: Callable[[], C]) -> C:
        fingerprint = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
        key = (ctx.id, fingerprint)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = build()
                for old in [k for k in self._clients if k[0] == ctx.id]:
                    del self._clients[old]
                self._clients[key] = client
            return client

    def clear(self) -> None:
        with self._lock:
            self._clients.clear()


@dataclass(slots=True)
class StreamCursor:
    cursor: str | None
    window_start: datetime | None
    last_success_at: datetime | None


@dataclass(slots=True)
class FetchedPage:
    """One page of raw CRM records and the cursor that resumes after it."""

    stream: str
    records: list[dict[str, Any]]
    next_cursor: str | None
    has_more: bool
    window_start: datetime | None = None
    invalid: list[tuple[Any, str]] = field(default_factory=list)
    commits_cursor: bool = True  # False for every part of a split page but the last


def split_page(page: FetchedPage, size: int) -> list[FetchedPage]:
    """The page as parts of at most ``size`` records, in order, for separate map and merge.

    Only the last part commits the page's cursor (ARCHITECTURE §2.1): a crash after an earlier
    part re-reads the whole page next time, and the merge rules make the repeat harmless.
    Quarantined records travel with the first part.
    """
    if len(page.records) <= size:
        return [page]
    starts = range(0, len(page.records), size)
    return [
        FetchedPage(
            page.stream,
            page.records[i : i + size],
            page.next_cursor,
            page.has_more,
            page.window_start,
            page.invalid if i == 0 else [],
            commits_cursor=i == starts[-1],
        )
        for i in starts
    ]


@dataclass(slots=True)
class PushActivity:
    id: int
    tenant_id: int
    contact_id: int
    opportunity_id: int | None
    kind: str
    channel: str | None
    campaign_event: str | None
    campaign_name: str | None
    body: str | None
    occurred_at: datetime


@dataclass(slots=True, frozen=True)
class PushTarget:
    """Where one activity goes in one CRM: ``name`` is provider-specific (``job_note``…)."""

    name: str
    include_content: bool = False


class Provider(Protocol):
    name: ClassVar[str]
    credentials_model: ClassVar[type[BaseModel]]
    settings_model: ClassVar[type[BaseModel]]

    def streams(self, ctx: IntegrationContext) -> list[str]:
        """Streams in the order they must be read (related resources before the opportunities
        that are composed from them)."""
        ...

    def pages_independent(self, stream: str) -> bool:
        """True when mapping a page reads nothing that earlier pages of the same stream write,
        so page N+1 may be mapped while page N merges."""
        ...

    def authenticate(self, ctx: IntegrationContext) -> datetime:
        """Obtain (or reuse) an access token; raise a connector AuthError on bad credentials."""
        ...

    def fetch_page(
        self, ctx: IntegrationContext, stream: str, cursor: StreamCursor, started_at: datetime
    ) -> FetchedPage: ...

    def map_page(
        self,
        ctx: IntegrationContext,
        conn: psycopg.Connection[Any],
        page: FetchedPage,
        overlay: Overlay | None = None,
    ) -> MergeBatch:
        """The page as a merge batch. ``overlay`` holds raw records of the same chunk's earlier
        pages, not merged yet, by resource and id: they stand in for (and over) the mirror."""
        ...

    # -- push (crmsync.push) -------------------------------------------------------------------

    def push_targets(self, ctx: IntegrationContext, activity: PushActivity) -> list[PushTarget]:
        """Where the integration's settings send this activity (empty: nowhere)."""
        ...

    def resolve_parent(
        self,
        ctx: IntegrationContext,
        conn: psycopg.Connection[Any],
        activity: PushActivity,
        target: PushTarget,
    ) -> str | None:
        """The CRM record the note/task goes under, or None while the contact has no record
        from this integration yet (the push is deferred)."""
        ...

    def find_pushed(
        self, ctx: IntegrationContext, target: PushTarget, parent: str, key: str
    ) -> str | None:
        """The CRM id of a record already carrying ``key`` under ``parent`` (ambiguous retry)."""
        ...

    def create_push(
        self, ctx: IntegrationContext, target: PushTarget, parent: str, text: str
    ) -> str:
        """Write the note/task/call log; returns the CRM's id for it (or a stable stand-in)."""
        ...
