"""Activities made in the CRMs, merged into the hub (issue 15; seed 004 "Activity Sync").

Providers map their activity streams (ServiceTitan notes, LeadPerfection notes and call history,
improveit360 Notes/Tasks) to :class:`models.standard.InboundActivity` and hand them over in the
page's :class:`crmsync.merge.MergeBatch`; :func:`merge_activities` stores them in the same
transaction as the page's opportunities and cursor. The rules, each with a test named after it
in ``tests/integration/test_inbound_activities.py``:

* **No echo.** crmsync's own writes never come back in. A note or task crmsync wrote carries its
  idempotency key on its last line (:func:`crmsync.push.render_text`); a record that cannot
  carry it (a LeadPerfection call log, a ServiceTitan job note without an id) is known by the
  CRM id the push ledger recorded for it (``push_ledger.crm_record_id``, the same stand-in the
  provider computes when it reads the record back). Either match, tenant-wide for the key and
  per integration for the id, drops the activity; a row stored before the ledger learned the id
  (the push's answer was lost and read back later) is removed when the echo is recognised.
  Seed 004's peers "detect pre-existing Activity records ... limited to records we have Created
  through the integration"; the key also recognises a note another integration of the same
  tenant wrote and a person copied.
* **Never pushed out again.** Inbound activities live in ``crm_activity`` only; the push outbox
  (``activity``) never receives one, so no integration of the tenant can send it anywhere.
* **Parent first.** An activity is linked to a hub contact only through its own CRM's records:
  the opportunity it names (``opportunity_ref``) or the contact link of its ``contact_ref``, both
  of the same integration. Until one of them is in the hub the row waits, unlinked
  (``contact_id`` NULL), and :func:`link_waiting` links it in the merge that brings its parent.
  It is never attached by name, phone or email, so never to a wrong contact, and never dropped.
* **Edits and deletions.** One row per (integration, kind, CRM id): a re-read updates it unless
  it is older than the stored version (``external_modified_at``); a deletion the CRM reports sets
  ``deleted_at``; and for CRMs that send an activity list whole with its parent (LeadPerfection's
  notes and calls inside the prospect), an activity missing from the parent's complete list
  (:attr:`MergeBatch.activity_sets`) is marked deleted. A re-read that changes nothing writes
  nothing, so LeadPerfection's overlapping windows cost no writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson
import psycopg

from models.standard import InboundActivity

KEY_PATTERN = re.compile(r"hatch-[0-9a-f]{20}")
"""The idempotency key :func:`crmsync.push.idempotency_key` makes, as it appears in a text."""


def _clean(value: str | None) -> str | None:
    return value.replace("\x00", "") if value and "\x00" in value else value


def _echo_filter(
    cur: psycopg.Cursor[Any], tenant_id: int, integration_id: int, acts: list[InboundActivity]
) -> tuple[list[InboundActivity], list[InboundActivity]]:
    """(kept, echoes): activities that are not, and are, crmsync's own pushes read back."""
    if not acts:
        return [], []
    keys_of = [{k for text in (a.body, a.subject) for k in _keys(text)} for a in acts]
    cur.execute(
        """
        SELECT idempotency_key, NULL FROM push_ledger
        WHERE tenant_id = %s AND idempotency_key = ANY(%s)
        UNION ALL
        SELECT NULL, crm_record_id FROM push_ledger
        WHERE tenant_id = %s AND integration_id = %s AND crm_record_id = ANY(%s)
        """,
        (
            tenant_id,
            sorted(set().union(*keys_of)),
            tenant_id,
            integration_id,
            sorted({a.external_id for a in acts}),
        ),
    )
    own_keys: set[str] = set()
    own_ids: set[str] = set()
    for key, record_id in cur:
        if key is not None:
            own_keys.add(key)
        if record_id is not None:
            own_ids.add(record_id)
    kept: list[InboundActivity] = []
    echoes: list[InboundActivity] = []
    for a, keys in zip(acts, keys_of, strict=True):
        (echoes if a.external_id in own_ids or keys & own_keys else kept).append(a)
    return kept, echoes


def _keys(text: str | None) -> list[str]:
    return KEY_PATTERN.findall(text) if text else []


def _newest(acts: Iterable[InboundActivity]) -> list[InboundActivity]:
    """One activity per (kind, id): the newest version, the later one of equal versions."""
    latest: dict[tuple[str, str], InboundActivity] = {}
    for a in acts:
        key = (a.kind, a.external_id)
        old = latest.get(key)
        if (
            old is None
            or old.modified_at is None
            or (a.modified_at is not None and a.modified_at >= old.modified_at)
        ):
            latest[key] = a
    return list(latest.values())


def merge_activities(
    cur: psycopg.Cursor[Any],
    tenant_id: int,
    integration_id: int,
    activities: list[InboundActivity],
    activity_sets: list[tuple[str, str]],
    run_id: int | None,
) -> tuple[int, int, int]:
    """Store a page's activities; returns (stored or changed, echoes dropped, left waiting).

    Runs inside the batch's transaction, under the tenant's merge lock (:mod:`crmsync.merge`).
    """
    kept, echoes = _echo_filter(cur, tenant_id, integration_id, activities)
    if echoes:
        cur.execute(
            "DELETE FROM crm_activity WHERE tenant_id = %s AND integration_id = %s "
            "AND (kind, external_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
            (
                tenant_id,
                integration_id,
                [a.kind for a in echoes],
                [a.external_id for a in echoes],
            ),
        )
    kept = _newest(kept)
    changed = waiting = 0
    if kept:
        changed, waiting = _upsert(cur, tenant_id, integration_id, kept, run_id)
    if activity_sets:
        changed += _delete_missing(cur, tenant_id, integration_id, activities, activity_sets)
    return changed, len(echoes), waiting


def _resolve(
    cur: psycopg.Cursor[Any],
    tenant_id: int,
    integration_id: int,
    refs: Iterable[tuple[str, str] | None],
    people: Iterable[str | None],
) -> tuple[dict[tuple[str, str], tuple[int, int]], dict[str, int]]:
    """The hub's opportunities ``(model, external_id) → (id, contact)`` and contact links
    ``external_contact_id → contact`` of this integration, for the given CRM references.

    Two look-ups driven by the wanted keys (a join from ``unnest``, one index probe per key),
    joined by the caller. Filters such as ``external_id = ANY(%s)`` or a join from the staged
    rows go wrong on a first load, while the tables' statistics still say "empty": the planner
    then scans every row of the integration once per key. Never prepared (see
    :func:`crmsync.db._pool`): a generic plan, blind to the keys, is that scan too.
    """
    ids = sorted({r[1] for r in refs if r})
    opps: dict[tuple[str, str], tuple[int, int]] = {}
    if ids:
        cur.execute(
            "SELECT o.model, o.external_id, o.id, o.contact_id "
            "FROM unnest(%s::text[]) AS r(external_id) JOIN opportunity o "
            "ON o.tenant_id = %s AND o.integration_id = %s AND o.external_id = r.external_id "
            "ORDER BY o.id",
            (ids, tenant_id, integration_id),
        )
        opps = {(model, ext): (oid, cid) for model, ext, oid, cid in cur}
    wanted = sorted({p for p in people if p})
    links: dict[str, int] = {}
    if wanted:
        cur.execute(
            "SELECT l.external_contact_id, l.contact_id "
            "FROM unnest(%s::text[]) AS r(ref) JOIN contact_link l "
            "ON l.tenant_id = %s AND l.integration_id = %s AND l.external_contact_id = r.ref",
            (wanted, tenant_id, integration_id),
        )
        links = dict(cur.fetchall())
    return opps, links


def _link(
    opps: dict[tuple[str, str], tuple[int, int]],
    links: dict[str, int],
    ref: tuple[str, str] | None,
    person: str | None,
) -> tuple[int | None, int | None]:
    """(contact, opportunity) an activity links to: its opportunity's contact, else its
    person's; (None, None) while neither is in the hub."""
    found = opps.get(ref) if ref else None
    if found is not None:
        return found[1], found[0]
    return (links.get(person) if person else None), None


def _upsert(
    cur: psycopg.Cursor[Any],
    tenant_id: int,
    integration_id: int,
    acts: list[InboundActivity],
    run_id: int | None,
) -> tuple[int, int]:
    opps, links = _resolve(
        cur,
        tenant_id,
        integration_id,
        (a.opportunity_ref for a in acts),
        (a.contact_ref for a in acts),
    )
    rows = []
    for a in acts:
        contact, opportunity = _link(opps, links, a.opportunity_ref, a.contact_ref)
        rows.append(
            (
                a.kind,
                _clean(a.external_id),
                _clean(a.parent),
                _clean(a.contact_ref),
                a.opportunity_ref[0] if a.opportunity_ref else None,
                _clean(a.opportunity_ref[1]) if a.opportunity_ref else None,
                contact,
                opportunity,
                _clean(a.author),
                _clean(a.subject),
                _clean(a.body),
                a.created_at,
                a.modified_at,
                a.deleted,
                orjson.dumps(a.payload, default=str).decode().replace("\\u0000", ""),
            )
        )
    cur.execute(
        "CREATE TEMP TABLE IF NOT EXISTS _inbound (kind text, external_id text, parent text, "
        "contact_ref text, opportunity_model text, opportunity_ref text, contact_id bigint, "
        "opportunity_id bigint, author text, subject text, body text, "
        "external_created_at timestamptz, external_modified_at timestamptz, "
        "is_deleted boolean, payload jsonb) ON COMMIT DROP"
    )
    cur.execute("TRUNCATE _inbound")
    with cur.copy(
        "COPY _inbound (kind, external_id, parent, contact_ref, opportunity_model, "
        "opportunity_ref, contact_id, opportunity_id, author, subject, body, "
        "external_created_at, external_modified_at, is_deleted, payload) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)
    cur.execute(
        """
        INSERT INTO crm_activity AS a (
            tenant_id, integration_id, kind, external_id, parent, contact_ref,
            opportunity_model, opportunity_ref, contact_id, opportunity_id, author, subject,
            body, external_created_at, external_modified_at, deleted_at, linked_at, payload,
            run_id)
        SELECT %(t)s, %(i)s, kind, external_id, parent, contact_ref, opportunity_model,
               opportunity_ref, contact_id, opportunity_id, author, subject, body,
               external_created_at, external_modified_at,
               CASE WHEN is_deleted THEN now() END,
               CASE WHEN contact_id IS NOT NULL THEN now() END, payload, %(r)s
        FROM _inbound
        ON CONFLICT (tenant_id, integration_id, kind, external_id) DO UPDATE SET
            parent = excluded.parent,
            contact_ref = excluded.contact_ref,
            opportunity_model = excluded.opportunity_model,
            opportunity_ref = excluded.opportunity_ref,
            contact_id = coalesce(excluded.contact_id, a.contact_id),
            opportunity_id = coalesce(excluded.opportunity_id, a.opportunity_id),
            linked_at = CASE WHEN excluded.contact_id IS DISTINCT FROM a.contact_id
                             AND excluded.contact_id IS NOT NULL THEN now() ELSE a.linked_at END,
            author = excluded.author, subject = excluded.subject, body = excluded.body,
            external_created_at = excluded.external_created_at,
            external_modified_at = excluded.external_modified_at,
            deleted_at = CASE WHEN excluded.deleted_at IS NULL THEN NULL
                              ELSE coalesce(a.deleted_at, excluded.deleted_at) END,
            payload = excluded.payload, run_id = excluded.run_id, updated_at = now()
        WHERE (a.external_modified_at IS NULL OR excluded.external_modified_at IS NULL
               OR excluded.external_modified_at >= a.external_modified_at)
          AND (a.parent, a.contact_ref, a.opportunity_model, a.opportunity_ref, a.author,
               a.subject, a.body, a.external_created_at, a.external_modified_at,
               a.deleted_at IS NULL, a.payload)
              IS DISTINCT FROM
              (excluded.parent, excluded.contact_ref, excluded.opportunity_model,
               excluded.opportunity_ref, excluded.author, excluded.subject, excluded.body,
               excluded.external_created_at, excluded.external_modified_at,
               excluded.deleted_at IS NULL, excluded.payload)
            OR (a.contact_id IS NULL AND excluded.contact_id IS NOT NULL)
        RETURNING a.contact_id IS NULL
        """,
        {"t": tenant_id, "i": integration_id, "r": run_id},
    )
    results = cur.fetchall()
    return len(results), sum(1 for (unlinked,) in results if unlinked)


def _delete_missing(
    cur: psycopg.Cursor[Any],
    tenant_id: int,
    integration_id: int,
    acts: list[InboundActivity],
    activity_sets: list[tuple[str, str]],
) -> int:
    """Mark deleted what a parent's complete list (``(parent, kind)``) no longer holds."""
    present = [(a.parent, a.kind, a.external_id) for a in acts]
    cur.execute(
        """
        UPDATE crm_activity a SET deleted_at = now(), updated_at = now()
        FROM unnest(%s::text[], %s::text[]) AS s(parent, kind)
        WHERE a.tenant_id = %s AND a.integration_id = %s AND a.deleted_at IS NULL
          AND a.parent = s.parent AND a.kind = s.kind
          AND (a.parent, a.kind, a.external_id) NOT IN (
              SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))
        """,
        (
            [p for p, _ in activity_sets],
            [k for _, k in activity_sets],
            tenant_id,
            integration_id,
            [p for p, _, _ in present],
            [k for _, k, _ in present],
            [e for _, _, e in present],
        ),
    )
    return cur.rowcount


def link_waiting(
    cur: psycopg.Cursor[Any],
    tenant_id: int,
    integration_id: int,
    opportunities: Iterable[tuple[str, str | None]],
) -> int:
    """Link the integration's waiting activities that hang under the records a batch just
    merged (``(external_id, external_contact_id)`` of its opportunities).

    Only those can have become linkable, so the look-up is the batch's size, not the number of
    waiting activities (the partial indexes ``ix_crm_activity_waiting_*`` hold waiting rows only).
    """
    refs: set[str] = set()
    people: set[str] = set()
    for external_id, contact in opportunities:
        refs.add(external_id)
        if contact:
            people.add(contact)
    cur.execute(
        "SELECT id, opportunity_model, opportunity_ref, contact_ref FROM crm_activity "
        "WHERE tenant_id = %(t)s AND integration_id = %(i)s AND contact_id IS NULL "
        "AND opportunity_ref = ANY(%(refs)s) "
        "UNION SELECT id, opportunity_model, opportunity_ref, contact_ref FROM crm_activity "
        "WHERE tenant_id = %(t)s AND integration_id = %(i)s AND contact_id IS NULL "
        "AND contact_ref = ANY(%(people)s)",
        {"t": tenant_id, "i": integration_id, "refs": sorted(refs), "people": sorted(people)},
    )
    waiting = cur.fetchall()
    if not waiting:
        return 0
    opps, links = _resolve(
        cur,
        tenant_id,
        integration_id,
        ((m, r) if m and r else None for _, m, r, _ in waiting),
        (p for _, _, _, p in waiting),
    )
    found = [(aid, *_link(opps, links, (m, r) if m and r else None, p)) for aid, m, r, p in waiting]
    found = [f for f in found if f[1] is not None]
    if found:
        cur.execute(
            "UPDATE crm_activity a SET contact_id = f.contact_id, opportunity_id = f.opp_id, "
            "linked_at = now(), updated_at = now() "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS f(id, contact_id, opp_id) "
            "WHERE a.id = f.id",
            ([f[0] for f in found], [f[1] for f in found], [f[2] for f in found]),
        )
    return len(found)
