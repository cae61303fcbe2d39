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
    keys = sorted({k for a in acts for text in (a.body, a.subject) for k in _keys(text)})
    ids = sorted({a.external_id for a in acts})
    cur.execute(
        """
        SELECT idempotency_key, NULL FROM push_ledger
        WHERE tenant_id = %s AND idempotency_key = ANY(%s)
        UNION ALL
        SELECT NULL, crm_record_id FROM push_ledger
        WHERE tenant_id = %s AND integration_id = %s AND crm_record_id = ANY(%s)
        """,
        (tenant_id, keys, tenant_id, integration_id, ids),
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
    for a in acts:
        ours = a.external_id in own_ids or any(
            k in own_keys for text in (a.body, a.subject) for k in _keys(text)
        )
        (echoes if ours else kept).append(a)
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


def _upsert(
    cur: psycopg.Cursor[Any],
    tenant_id: int,
    integration_id: int,
    acts: list[InboundActivity],
    run_id: int | None,
) -> tuple[int, int]:
    rows = [
        (
            a.kind,
            _clean(a.external_id),
            _clean(a.parent),
            _clean(a.contact_ref),
            a.opportunity_ref[0] if a.opportunity_ref else None,
            _clean(a.opportunity_ref[1]) if a.opportunity_ref else None,
            _clean(a.author),
            _clean(a.subject),
            _clean(a.body),
            a.created_at,
            a.modified_at,
            a.deleted,
            orjson.dumps(a.payload, default=str).decode().replace("\\u0000", ""),
        )
        for a in acts
    ]
    cur.execute(
        "CREATE TEMP TABLE IF NOT EXISTS _inbound (kind text, external_id text, parent text, "
        "contact_ref text, opportunity_model text, opportunity_ref text, author text, "
        "subject text, body text, external_created_at timestamptz, "
        "external_modified_at timestamptz, is_deleted boolean, payload jsonb) ON COMMIT DROP"
    )
    cur.execute("TRUNCATE _inbound")
    with cur.copy(
        "COPY _inbound (kind, external_id, parent, contact_ref, opportunity_model, "
        "opportunity_ref, author, subject, body, external_created_at, external_modified_at, "
        "is_deleted, payload) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)
    cur.execute(
        """
        WITH resolved AS (
            SELECT i.*, coalesce(o.contact_id, l.contact_id) AS hub_contact, o.id AS hub_opp
            FROM _inbound i
            LEFT JOIN LATERAL (
                SELECT id, contact_id FROM opportunity
                WHERE tenant_id = %(t)s AND integration_id = %(i)s
                  AND model = i.opportunity_model AND external_id = i.opportunity_ref
                ORDER BY id DESC LIMIT 1
            ) o ON i.opportunity_ref IS NOT NULL
            LEFT JOIN contact_link l
              ON l.tenant_id = %(t)s AND l.integration_id = %(i)s
             AND l.external_contact_id = i.contact_ref
        )
        INSERT INTO crm_activity AS a (
            tenant_id, integration_id, kind, external_id, parent, contact_ref,
            opportunity_model, opportunity_ref, contact_id, opportunity_id, author, subject,
            body, external_created_at, external_modified_at, deleted_at, linked_at, payload,
            run_id)
        SELECT %(t)s, %(i)s, kind, external_id, parent, contact_ref, opportunity_model,
               opportunity_ref, hub_contact, hub_opp, author, subject, body,
               external_created_at, external_modified_at,
               CASE WHEN is_deleted THEN now() END,
               CASE WHEN hub_contact IS NOT NULL THEN now() END, payload, %(r)s
        FROM resolved
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


def link_waiting(cur: psycopg.Cursor[Any], tenant_id: int, integration_id: int) -> int:
    """Link the integration's waiting activities whose parent record is now in the hub.

    Cheap when nothing waits: the partial index ``ix_crm_activity_waiting`` holds only them.
    """
    cur.execute(
        """
        UPDATE crm_activity a
        SET contact_id = coalesce(o.contact_id, l.contact_id), opportunity_id = o.id,
            linked_at = now(), updated_at = now()
        FROM crm_activity w
        LEFT JOIN LATERAL (
            SELECT id, contact_id FROM opportunity
            WHERE tenant_id = %(t)s AND integration_id = %(i)s
              AND model = w.opportunity_model AND external_id = w.opportunity_ref
            ORDER BY id DESC LIMIT 1
        ) o ON w.opportunity_ref IS NOT NULL
        LEFT JOIN contact_link l
          ON l.tenant_id = %(t)s AND l.integration_id = %(i)s
         AND l.external_contact_id = w.contact_ref
        WHERE w.tenant_id = %(t)s AND w.integration_id = %(i)s AND w.contact_id IS NULL
          AND a.id = w.id AND coalesce(o.contact_id, l.contact_id) IS NOT NULL
        """,
        {"t": tenant_id, "i": integration_id},
    )
    return cur.rowcount
