"""Set-based merge of mapped opportunities into contacts and opportunities (seeds' rules).

One call merges one page in one transaction, together with the raw mirror rows, the quarantined
records and the stream's cursor (ARCHITECTURE §2.1: a crash or retry repeats work, never skips it).

Rules implemented here, each with a test named after it in ``tests/integration/test_merge.py``:

* An opportunity replaces the existing one when its match key is the same (tenant, integration,
  model, External ID — plus External Created At for LeadPerfection, seed 001 "Opp Sorting");
  otherwise it is a new opportunity (seeds 000/001/002 "Opportunity Creation & Update").
* It attaches to a matching contact, or a new contact is created. Matching, in order: the same
  integration's External Contact ID seen before, else the same phone, else the same email; an email
  caught by the integration's ``placeholder_emails`` never matches (seed 002 "filter for
  placeholder emails ... will prevent contacts from merging") and is not stored on the contact.
  The filter holds addresses or glob patterns (``noemail@*``, ``*@example.com``), compared without
  case or whitespace by :func:`models.normalize.placeholder_matcher`, compiled once per batch.
* Older data never overwrites newer, and a correct recomputation always applies. External Updated
  At cannot be the guard: it is computed over live children (seed 002: the most recent of
  ``modifiedOn``, ``appointments:1:modifiedOn``, ``estimates:1:modifiedOn``; improveit360 alike),
  so it goes *down* when the newest estimate or appointment is deleted or its resource
  deselected, and a guard on it would keep the deleted child in the details forever. The guard
  compares **source stamps** instead: every mapped opportunity names the CRM records it was
  composed of with their change stamps (:attr:`MappedOpportunity.source_stamps`, ``jobs:7`` →
  ``modifiedOn``, ``estimates:40`` → ``modifiedOn``, …; deleted records included, since a deletion
  is a change with a newer stamp), and the opportunity stores them (column ``source_stamps``,
  UTC ISO-8601 text that sorts chronologically; a missing stamp is the oldest). An update applies
  unless it was composed of an *older version of a record* the stored row knows: a record in both
  whose incoming stamp is older than the stored one. So an older copy (an older job or any older
  child) is refused; a recomputation from the same or newer records applies even when External
  Updated At goes down, and a record that left the composition (deleted and dropped by the caller,
  resource deselected, job moved to another customer) cannot block it. On an update the stored
  stamps become the per-record maximum of both, so a stamp once seen is never forgotten: a stale
  copy of a deleted child cannot bring it back. External Updated At is stored as computed. A
  mapping that gives no stamps is guarded as one record stamped with its External Updated At (the
  former rule), and so are rows stored before migration 0006 (``source_stamps`` NULL) until their
  next update. A record refused as older data changes nothing at all: no contact is created,
  completed or linked for it. The guard is decided in memory under the tenant lock (below), not
  in the upsert statement: within a page it is decided against the page's earlier record of the
  same key, which a statement comparing with the stored row could not do.
* The result never depends on how a page is cut (one batch, parts of any size, one record per
  batch: identical contacts, links and opportunities). A page is read from the database with two
  look-ups (the stored opportunities of its match keys; the contacts its External Contact IDs,
  phones and emails resolve to, with their fields), then merged in memory record by record, in
  page order, exactly as if each record were its own batch: the guard is decided against the
  stored row or the page's earlier record of the same key; a contact completed by one record
  (``coalesce``: it gains the fields it lacked, never loses one) matches the next record on the
  phone/email it gained; a phone or email resolves to the lowest contact id holding it, which is
  what the ``DISTINCT ON … ORDER BY id`` look-up returns to a later batch (a page's new contacts
  take their ids from the sequence in creation order, after every existing one). Only the final
  state is written, set-based. A per-tenant advisory lock, taken before the look-ups, serialises
  merges of one tenant, which is what makes "else create one" race-free without a unique key on
  phone/email and lets the guard be decided in memory. The mirror keeps, per record, the newest
  version of the page (the later one of equal versions), which is what row-by-row upserts leave.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg

from crmsync.activities import link_waiting, merge_activities
from models.normalize import placeholder_matcher
from models.standard import InboundActivity, MappedOpportunity, RejectedRecord

_LOCK_NAMESPACE = 0x43524D53  # "CRMS": first key of the per-tenant advisory lock


@dataclass(slots=True)
class MirrorRow:
    """A raw CRM record kept for composing opportunities later (see ``crm_record``)."""

    resource: str
    external_id: str
    payload: dict[str, Any]
    modified_at: datetime | None = None
    customer_ref: str | None = None
    parent_ref: str | None = None


@dataclass(slots=True, frozen=True)
class CursorUpdate:
    """A stream cursor to commit with a batch (a chunk's last batch carries all of its own)."""

    stream: str
    cursor: str | None
    window_start: datetime | None = None


@dataclass(slots=True)
class MergeBatch:
    tenant_id: int
    integration_id: int
    stream: str
    opportunities: list[MappedOpportunity] = field(default_factory=list)
    mirror: list[MirrorRow] = field(default_factory=list)
    rejects: list[RejectedRecord] = field(default_factory=list)
    placeholder_emails: frozenset[str] = frozenset()
    match_on_created_at: bool = False
    cursor: str | None = None
    set_cursor: bool = False
    window_start: datetime | None = None
    fetched: int = 0
    cursors: list[CursorUpdate] = field(default_factory=list)
    activities: list[InboundActivity] = field(default_factory=list)
    activity_sets: list[tuple[str, str]] = field(default_factory=list)
    """``(parent, kind)`` whose complete activity list this batch carries: stored activities of
    that parent and kind missing from the batch were deleted in the CRM (crmsync.activities)."""


@dataclass(slots=True)
class MergeCounts:
    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    contacts_created: int = 0
    activities: int = 0  # CRM activities stored, changed or marked deleted
    activities_waiting: int = 0  # of those, still waiting for their contact or opportunity
    echoes: int = 0  # crmsync's own pushes read back, dropped

    def add(self, other: MergeCounts) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


def _json(value: Any) -> str:
    """JSON text PostgreSQL accepts: jsonb rejects NUL (``\\u0000``), which CRM text can carry."""
    return orjson.dumps(value, default=str).decode().replace("\\u0000", "")


def _text(value: str | None) -> str | None:
    return value.replace("\x00", "") if value and "\x00" in value else value


_OPP_TEXT = (
    "model",
    "external_id",
    "external_contact_id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "status",
)


def _scrub(batch: MergeBatch) -> None:
    """Drop NUL characters from every text value bound for PostgreSQL, which refuses them in
    text columns; CRM text can carry them, and one such record must not fail its page."""
    for o in batch.opportunities:
        for name in _OPP_TEXT:
            value = getattr(o, name)
            if value and "\x00" in value:
                setattr(o, name, value.replace("\x00", ""))
    for m in batch.mirror:
        for name in ("resource", "external_id", "customer_ref", "parent_ref"):
            value = getattr(m, name)
            if value and "\x00" in value:
                setattr(m, name, value.replace("\x00", ""))
    for r in batch.rejects:
        if r.external_id and "\x00" in r.external_id:
            r.external_id = r.external_id.replace("\x00", "")
        r.reason = r.reason.replace("\x00", "")


def match_key(opp: MappedOpportunity, on_created_at: bool) -> str:
    if not on_created_at:
        return opp.external_id
    created = opp.external_created_at.astimezone(UTC).isoformat() if opp.external_created_at else ""
    return f"{opp.external_id}|{created}"


def _not_older(new: datetime | None, old: datetime | None) -> bool:
    """``new`` may replace ``old``: a missing stamp is the oldest, equal stamps replace."""
    return old is None or (new is not None and new >= old)


Stamps = dict[str, str | None]


def _stamp(moment: datetime | None) -> str | None:
    """A change stamp as stored: fixed-width UTC ISO-8601, so text order is time order."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def source_stamps(opp: MappedOpportunity) -> Stamps:
    """The stamps the guard compares; a mapping without any is one record (``""``) stamped with
    its External Updated At."""
    if opp.source_stamps:
        return {key: _stamp(moment) for key, moment in opp.source_stamps.items()}
    return {"": _stamp(opp.external_updated_at)}


def _applies(
    incoming: Stamps,
    updated: datetime | None,
    stored_stamps: Stamps | None,
    stored_updated: datetime | None,
) -> bool:
    """The stale-write guard: False when ``incoming`` holds an older version of a record the
    stored row was composed of. Rows without stamps (before 0006) compare External Updated At."""
    if stored_stamps is None:
        return _not_older(updated, stored_updated)
    for key, stamp in incoming.items():
        old = stored_stamps.get(key)
        if old is not None and (stamp is None or stamp < old):
            return False
    return True


def merge_batch(
    conn: psycopg.Connection[Any], batch: MergeBatch, run_id: int | None
) -> MergeCounts:
    """Merge one page atomically; the connection's transaction is committed on success."""
    counts = MergeCounts(fetched=batch.fetched, rejected=len(batch.rejects))
    _scrub(batch)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_NAMESPACE, batch.tenant_id % 2**31)
        )
        if batch.mirror:
            _upsert_mirror(cur, batch)
        if batch.opportunities:
            _merge_opportunities(cur, batch, counts, run_id)
            link_waiting(
                cur,
                batch.tenant_id,
                batch.integration_id,
                ((o.external_id, o.external_contact_id) for o in batch.opportunities),
            )
        if batch.activities or batch.activity_sets:
            counts.activities, counts.echoes, counts.activities_waiting = merge_activities(
                cur,
                batch.tenant_id,
                batch.integration_id,
                batch.activities,
                batch.activity_sets,
                run_id,
            )
        _record_rejects(cur, batch, run_id)
        updates = list(batch.cursors)
        if batch.set_cursor:
            updates.insert(0, CursorUpdate(batch.stream, batch.cursor, batch.window_start))
        if updates:
            cur.executemany(
                """
                INSERT INTO sync_cursor (tenant_id, integration_id, stream, cursor, window_start,
                                         last_success_at, updated_at)
                VALUES (%s, %s, %s, %s, %s, now(), now())
                ON CONFLICT (tenant_id, integration_id, stream) DO UPDATE
                SET cursor = excluded.cursor,
                    window_start = coalesce(excluded.window_start, sync_cursor.window_start),
                    last_success_at = now(), updated_at = now()
                """,
                [
                    (batch.tenant_id, batch.integration_id, u.stream, u.cursor, u.window_start)
                    for u in updates
                ],
            )
    return counts


def _upsert_mirror(cur: psycopg.Cursor[Any], batch: MergeBatch) -> None:
    # Per record, what upserting the rows one by one would leave: the newest version, the later
    # of equal ones; the statement's guard then compares it with the stored version.
    latest: dict[tuple[str, str], MirrorRow] = {}
    for row in batch.mirror:
        key = (row.resource, row.external_id)
        prev = latest.get(key)
        if prev is None or _not_older(row.modified_at, prev.modified_at):
            latest[key] = row
    rows = list(latest.values())
    cur.execute(
        """
        INSERT INTO crm_record (tenant_id, integration_id, resource, external_id, customer_ref,
                                parent_ref, modified_at, payload)
        SELECT %s, %s, v.resource, v.external_id, v.customer_ref, v.parent_ref, v.modified_at,
               v.payload::jsonb
        FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::timestamptz[], %b::text[])
             AS v(resource, external_id, customer_ref, parent_ref, modified_at, payload)
        ON CONFLICT (tenant_id, integration_id, resource, external_id) DO UPDATE
        SET customer_ref = excluded.customer_ref, parent_ref = excluded.parent_ref,
            modified_at = excluded.modified_at, payload = excluded.payload
        WHERE crm_record.modified_at IS NULL OR excluded.modified_at >= crm_record.modified_at
        """,
        (
            batch.tenant_id,
            batch.integration_id,
            [r.resource for r in rows],
            [r.external_id for r in rows],
            [r.customer_ref for r in rows],
            [r.parent_ref for r in rows],
            [r.modified_at for r in rows],
            [_json(r.payload) for r in rows],
        ),
    )


@dataclass(slots=True)
class _Person:
    """A contact's identity fields as merging the page so far has left them."""

    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    completed: bool = False  # an existing contact that gained a field in this page


def _rank(cid: int) -> tuple[int, int]:
    """Contact id order: existing contacts by id, then the page's new contacts (negative
    placeholders) in creation order, which is the order of the ids the sequence gives them."""
    return (0, cid) if cid > 0 else (1, -cid)


def _index(index: dict[str, int], value: str | None, cid: int) -> None:
    """Record that contact ``cid`` now holds ``value``; the lowest id holding it wins, as in the
    ``DISTINCT ON (value) … ORDER BY id`` look-up a later batch would run."""
    if value is None:
        return
    held = index.get(value)
    if held is None or _rank(cid) < _rank(held):
        index[value] = cid


_CONTACTS_SQL = """
SELECT 'x', l.external_contact_id, c.id, c.email, c.phone, c.first_name, c.last_name
FROM contact_link l JOIN contact c ON c.id = l.contact_id
WHERE l.tenant_id = %(t)s AND l.integration_id = %(i)s AND l.external_contact_id = ANY(%(x)s)
UNION ALL
(SELECT DISTINCT ON (phone) 'p', phone, id, email, phone, first_name, last_name FROM contact
 WHERE tenant_id = %(t)s AND phone = ANY(%(p)s) ORDER BY phone, id)
UNION ALL
(SELECT DISTINCT ON (email) 'e', email, id, email, phone, first_name, last_name FROM contact
 WHERE tenant_id = %(t)s AND email = ANY(%(e)s) ORDER BY email, id)
"""


def _merge_opportunities(
    cur: psycopg.Cursor[Any], batch: MergeBatch, counts: MergeCounts, run_id: int | None
) -> None:
    tenant, integ = batch.tenant_id, batch.integration_id
    page = batch.opportunities
    keys = [(o.model, match_key(o, batch.match_on_created_at)) for o in page]
    is_placeholder = placeholder_matcher(batch.placeholder_emails)
    emails = [None if is_placeholder(o.email) else o.email for o in page]

    distinct_keys = list(dict.fromkeys(keys))
    cur.execute(
        """
        SELECT o.model, o.match_key, o.source_stamps, o.external_updated_at FROM opportunity o
        JOIN unnest(%b::text[], %b::text[]) AS k(model, match_key) USING (model, match_key)
        WHERE o.tenant_id = %s AND o.integration_id = %s
        """,
        ([m for m, _ in distinct_keys], [k for _, k in distinct_keys], tenant, integ),
    )
    # Per key, the guard's state: the stored row's (or the page's last applied record's) stamps.
    stored: dict[tuple[str, str], tuple[Stamps | None, datetime | None]] = {
        (m, k): (stamps, updated) for m, k, stamps, updated in cur.fetchall()
    }

    cur.execute(
        _CONTACTS_SQL,
        {
            "t": tenant,
            "i": integ,
            "x": sorted({o.external_contact_id for o in page if o.external_contact_id}),
            "p": sorted({o.phone for o in page if o.phone}),
            "e": sorted({e for e in emails if e}),
        },
    )
    people: dict[int, _Person] = {}
    linked: dict[str, int] = {}
    by_phone: dict[str, int] = {}
    by_email: dict[str, int] = {}
    for kind, value, cid, email, phone, first_name, last_name in cur.fetchall():
        people.setdefault(cid, _Person(email, phone, first_name, last_name))
        (linked if kind == "x" else by_phone if kind == "p" else by_email)[value] = cid

    # Record by record, in page order, as if each were its own batch; a negative id is a contact
    # this page creates.
    final: dict[tuple[str, str], tuple[MappedOpportunity, int, Stamps]] = {}
    created: list[int] = []
    new_links: dict[str, int] = {}
    for opp, key, email in zip(page, keys, emails, strict=True):
        incoming = source_stamps(opp)
        if key in stored:
            stored_stamps, stored_updated = stored[key]
            if not _applies(incoming, opp.external_updated_at, stored_stamps, stored_updated):
                continue
            # Not older anywhere, so the union keeps, per record, the newer stamp.
            incoming = {**(stored_stamps or {}), **incoming}
        stored[key] = (incoming, opp.external_updated_at)
        ext = opp.external_contact_id
        cid = (
            (linked.get(ext) if ext else None)
            or (by_phone.get(opp.phone) if opp.phone else None)
            or (by_email.get(email) if email else None)
        )
        if cid is None:
            cid = -(len(created) + 1)
            created.append(cid)
            people[cid] = _Person(email, opp.phone, opp.first_name, opp.last_name)
            _index(by_phone, opp.phone, cid)
            _index(by_email, email, cid)
        else:
            person = people[cid]
            if person.phone is None and opp.phone is not None:
                person.phone = opp.phone
                person.completed = True
                _index(by_phone, opp.phone, cid)
            if person.email is None and email is not None:
                person.email = email
                person.completed = True
                _index(by_email, email, cid)
            if person.first_name is None and opp.first_name is not None:
                person.first_name = opp.first_name
                person.completed = True
            if person.last_name is None and opp.last_name is not None:
                person.last_name = opp.last_name
                person.completed = True
        if ext and ext not in linked:
            linked[ext] = cid
            new_links[ext] = cid
        final[key] = (opp, cid, incoming)

    real_ids: dict[int, int] = {}
    if created:
        cur.execute(
            "SELECT nextval(pg_get_serial_sequence('contact', 'id')) FROM generate_series(1, %s)",
            (len(created),),
        )
        real_ids = dict(zip(created, sorted(row[0] for row in cur.fetchall()), strict=True))
        new_people = [people[p] for p in created]
        cur.execute(
            """
            INSERT INTO contact (id, tenant_id, email, phone, first_name, last_name)
            SELECT v.id, %s, v.email, v.phone, v.first_name, v.last_name
            FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[])
                 AS v(id, email, phone, first_name, last_name)
            """,
            (
                tenant,
                [real_ids[p] for p in created],
                [_text(c.email) for c in new_people],
                [_text(c.phone) for c in new_people],
                [_text(c.first_name) for c in new_people],
                [_text(c.last_name) for c in new_people],
            ),
        )
        counts.contacts_created += len(created)

    if new_links:
        items = [(ext, real_ids.get(c, c)) for ext, c in new_links.items()]
        cur.execute(
            """
            INSERT INTO contact_link (tenant_id, integration_id, external_contact_id, contact_id)
            SELECT %s, %s, v.ext, v.cid FROM unnest(%b::text[], %b::bigint[]) AS v(ext, cid)
            ON CONFLICT DO NOTHING
            """,
            (tenant, integ, [e for e, _ in items], [c for _, c in items]),
        )
    completed = [(cid, p) for cid, p in people.items() if cid > 0 and p.completed]
    if completed:
        cur.execute(
            """
            UPDATE contact c
            SET email = coalesce(c.email, v.email), phone = coalesce(c.phone, v.phone),
                first_name = coalesce(c.first_name, v.first_name),
                last_name = coalesce(c.last_name, v.last_name), updated_at = now()
            FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[])
                 AS v(id, email, phone, first_name, last_name)
            WHERE c.id = v.id AND c.tenant_id = %s
            """,
            (
                [cid for cid, _ in completed],
                [_text(p.email) for _, p in completed],
                [_text(p.phone) for _, p in completed],
                [_text(p.first_name) for _, p in completed],
                [_text(p.last_name) for _, p in completed],
                tenant,
            ),
        )

    opps = [o for o, _, _ in final.values()]
    contact_ids = [real_ids.get(c, c) for _, c, _ in final.values()]
    stamps = [_json(dict(sorted(s.items()))) for _, _, s in final.values()]
    cur.execute(
        """
        WITH up AS (
        INSERT INTO opportunity AS o (tenant_id, integration_id, contact_id, model, match_key,
            external_id, external_contact_id, external_created_at, external_updated_at, email,
            first_name, last_name, phone, status, details, source_stamps)
        SELECT %s, %s, v.contact_id, v.model, v.match_key, v.external_id, v.external_contact_id,
               v.created, v.updated, v.email, v.first_name, v.last_name, v.phone, v.status,
               v.details::jsonb, v.stamps::jsonb
        FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[],
                    %b::timestamptz[], %b::timestamptz[], %b::text[], %b::text[], %b::text[],
                    %b::text[], %b::text[], %b::text[], %b::text[])
             AS v(contact_id, model, match_key, external_id, external_contact_id, created,
                  updated, email, first_name, last_name, phone, status, details, stamps)
        ON CONFLICT (tenant_id, integration_id, model, match_key) DO UPDATE
        SET contact_id = excluded.contact_id, external_id = excluded.external_id,
            external_contact_id = excluded.external_contact_id,
            external_created_at = excluded.external_created_at,
            external_updated_at = excluded.external_updated_at, email = excluded.email,
            first_name = excluded.first_name, last_name = excluded.last_name,
            phone = excluded.phone, status = excluded.status, details = excluded.details,
            source_stamps = excluded.source_stamps, updated_at = now()
        WHERE (o.contact_id, o.external_contact_id, o.external_created_at, o.external_updated_at,
               o.email, o.first_name, o.last_name, o.phone, o.status, o.details, o.source_stamps)
              IS DISTINCT FROM
              (excluded.contact_id, excluded.external_contact_id, excluded.external_created_at,
               excluded.external_updated_at, excluded.email, excluded.first_name,
               excluded.last_name, excluded.phone, excluded.status, excluded.details,
               excluded.source_stamps)
        RETURNING (xmax = 0) AS created, o.model, o.external_id
        ), lineage AS (
            INSERT INTO sync_lineage (tenant_id, run_id, integration_id, stream, model,
                                      external_id, action)
            SELECT %s, %s, %s, %s, up.model, up.external_id,
                   CASE WHEN up.created THEN 'created' ELSE 'updated' END
            FROM up WHERE %s::bigint IS NOT NULL
        )
        SELECT created FROM up
        """,
        (
            tenant,
            integ,
            contact_ids,
            [o.model for o in opps],
            [k for _, k in final],
            [o.external_id for o in opps],
            [o.external_contact_id for o in opps],
            [o.external_created_at for o in opps],
            [o.external_updated_at for o in opps],
            [_text(o.email) for o in opps],
            [_text(o.first_name) for o in opps],
            [_text(o.last_name) for o in opps],
            [_text(o.phone) for o in opps],
            [_text(o.status) for o in opps],
            [_json(o.details) for o in opps],
            stamps,
            tenant,
            run_id,
            integ,
            batch.stream,
            run_id,
        ),
    )
    inserted = [row[0] for row in cur.fetchall()]
    counts.created += sum(inserted)
    counts.updated += len(inserted) - sum(inserted)
    counts.unchanged += len(page) - len(inserted)
    cur.execute(
        "DELETE FROM rejected_record WHERE tenant_id = %s AND integration_id = %s "
        "AND stream = %s AND external_key = ANY(%s)",
        (tenant, integ, batch.stream, sorted({o.external_id for o in page})),
    )


def reject_key(rec: RejectedRecord) -> str:
    if rec.external_id:
        return rec.external_id
    return (
        "sha1:" + hashlib.sha1(orjson.dumps(rec.payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
    )


def _record_rejects(cur: psycopg.Cursor[Any], batch: MergeBatch, run_id: int | None) -> None:
    if not batch.rejects:
        return
    latest = {reject_key(r): r for r in batch.rejects}
    cur.execute(
        """
        INSERT INTO rejected_record AS r (tenant_id, integration_id, run_id, stream, external_key,
                                          reason, payload)
        SELECT %s, %s, %s, %s, v.key, v.reason, v.payload::jsonb
        FROM unnest(%b::text[], %b::text[], %b::text[]) AS v(key, reason, payload)
        ON CONFLICT (tenant_id, integration_id, stream, external_key) DO UPDATE
        SET reason = excluded.reason, payload = excluded.payload, run_id = excluded.run_id,
            times_seen = r.times_seen + 1, last_seen_at = now()
        """,
        (
            batch.tenant_id,
            batch.integration_id,
            run_id,
            batch.stream,
            list(latest),
            [_text(r.reason) for r in latest.values()],
            [_json(r.payload) for r in latest.values()],
        ),
    )
    if run_id is not None:
        cur.execute(
            """
            INSERT INTO sync_lineage (tenant_id, run_id, integration_id, stream, external_id,
                                      action)
            SELECT %s, %s, %s, %s, k, 'rejected' FROM unnest(%b::text[]) AS k
            """,
            (batch.tenant_id, run_id, batch.integration_id, batch.stream, list(latest)),
        )
