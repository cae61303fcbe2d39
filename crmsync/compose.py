"""One composer for every CRM: opportunities built from a declared record graph.

A CRM's opportunity is a *root* record (a ServiceTitan job, an improveit360 Sales Opportunity)
plus related records that arrive on streams of their own (the job's customer, contacts,
appointments, estimates; the opportunity's Contact, Account, Projects and their Activities).
Each CRM declares that graph (:class:`RecordGraph`); this module does, once for all of them, what
each provider used to write by hand:

* mirror every raw record in ``crm_record`` with the three keys look-ups use (its id, the
  customer it belongs to, the parent record it hangs under);
* find the roots a changed related record touches (a corrected phone re-composes every job of
  that customer, so details and External Updated At never go stale);
* load the related records of a set of roots from the mirror in one query per level, with the
  records of the same chunk that are not merged yet laid over them;
* fetch by id what the mirror lacks (where the CRM allows it), and mirror it with the batch;
* hand each root with its related records to the CRM's pure mapping function.

A link says which key of the related record equals which key of the root, e.g. an estimate's
``parent`` (its ``jobId``) equals the job's ``id``; a customer's ``id`` equals the job's
``customer`` (its ``customerId``). ``via`` links hang under another link's records (a Project
Activity under a Project of the opportunity).

A ``ref`` link looks records up by the ids a field of the root (or, with ``via``, of each record
of another link) holds, a single id or a list of them: a job's ``campaignId`` or ``tagTypeIds``,
an estimate's ``soldBy``, a location's ``zoneId``. That is how reference data (tag types,
campaigns, zones, employees, …), mirrored once from its own stream, joins every opportunity
without being fetched per opportunity. A changed reference record re-composes the opportunities
that point at it: one query per ref link finds them (the field in the mirrored payload, scalar or
list), and for a ``via`` ref one more level finds the roots of the records pointing at it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import psycopg

from crmsync.merge import MergeBatch, MirrorRow
from models.standard import MappedOpportunity, MappingError, RejectedRecord

Record = dict[str, Any]
Key = Literal["id", "customer", "parent"]
_COLUMN: dict[Key, str] = {"id": "external_id", "customer": "customer_ref", "parent": "parent_ref"}


def _none(_: Record) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class Resource:
    """How one stream's raw records are mirrored: their id, change stamp and look-up keys.

    ``modified`` raises ValueError for a stamp it cannot read; the record is then quarantined
    with ``"<stream> <id>: <field> is not a timestamp"`` instead of being mirrored.
    """

    name: str
    id: Callable[[Record], str | None]
    modified: Callable[[Record], datetime | None]
    customer: Callable[[Record], str | None] = _none
    parent: Callable[[Record], str | None] = _none
    modified_field: str = "modifiedOn"

    def key(self, which: Key, rec: Record) -> str | None:
        return {"id": self.id, "customer": self.customer, "parent": self.parent}[which](rec)


@dataclass(frozen=True, slots=True)
class Link:
    """Records of ``resource`` whose ``key`` equals the root's ``on`` key (or, with ``via``, the
    id of a record of that other link). ``many=False`` gives one record or None."""

    name: str
    resource: str
    key: Key
    on: Key = "id"
    many: bool = True
    via: str | None = None
    fetch_missing: bool = False
    ref: str | None = None
    """Field of the root (of each ``via`` record) holding the id or ids of this link's records,
    which are then matched on their ``id`` (``key`` must be ``"id"``); ``many=True`` gives them
    in the field's order, ``many=False`` the first."""


Related = Mapping[str, Any]
"""A root's related records by link name: a record or None (one), a list (many), or for a
``via`` link a dict from the via record's id to its list."""


@dataclass(frozen=True, slots=True)
class Root:
    """An opportunity model: its root resource, its links, and the pure mapping."""

    resource: str
    links: tuple[Link, ...]
    map: Callable[[Record, Related], MappedOpportunity]


@dataclass(frozen=True, slots=True)
class RecordGraph:
    """What a CRM's opportunities are made of (built from an integration's settings)."""

    resources: Mapping[str, Resource]
    roots: tuple[Root, ...]
    fetch: Callable[[str, list[str]], Iterable[Record]] | None = None
    """Records of a resource by id, straight from the CRM (for ``fetch_missing`` links)."""

    def root(self, resource: str) -> Root | None:
        return next((r for r in self.roots if r.resource == resource), None)

    def links_to(self, resource: str) -> list[tuple[Root, Link]]:
        return [
            (root, link) for root in self.roots for link in root.links if link.resource == resource
        ]


@dataclass(slots=True)
class _Scope:
    tenant_id: int
    integration_id: int
    conn: psycopg.Connection[Any]


def mirror(graph: RecordGraph, stream: str, records: Iterable[Record], batch: MergeBatch) -> Record:
    """Mirror rows for a page's records into ``batch`` (unreadable stamps quarantined there);
    returns the mirrored records by id."""
    resource = graph.resources[stream]
    changed: Record = {}
    for rec in records:
        row = _mirror_row(resource, rec, batch.rejects)
        if row is not None:
            batch.mirror.append(row)
            changed[row.external_id] = rec
    return changed


def _mirror_row(resource: Resource, rec: Record, rejects: list[RejectedRecord]) -> MirrorRow | None:
    ext = resource.id(rec) or ""
    try:
        modified = resource.modified(rec)
    except ValueError:
        value = str(rec.get(resource.modified_field))[:40]
        reason = f"{resource.name} {ext}: {resource.modified_field} is not a timestamp: {value!r}"
        rejects.append(RejectedRecord(resource.name, ext, reason, rec))
        return None
    return MirrorRow(
        resource.name, ext, rec, modified, resource.customer(rec), resource.parent(rec)
    )


def map_page(
    graph: RecordGraph,
    conn: psycopg.Connection[Any],
    batch: MergeBatch,
    records: Iterable[Record],
    overlay: dict[str, dict[str, Record]],
) -> None:
    """Mirror the page, then compose every opportunity it creates or touches into ``batch``.

    ``overlay`` holds the raw records of the chunk's earlier pages (not merged yet) by resource
    and id; this page's records are added to it for the pages after it.
    """
    stream = batch.stream
    changed = mirror(graph, stream, records, batch)
    overlay.setdefault(stream, {}).update(changed)
    if not changed:
        return
    scope = _Scope(batch.tenant_id, batch.integration_id, conn)
    if graph.root(stream) is not None:
        touched = {stream: changed}
    else:
        touched = _dependants(graph, scope, stream, changed, overlay)
    for root_resource, roots in touched.items():
        root = graph.root(root_resource)
        if root is not None and roots:
            batch.opportunities += _compose(graph, scope, root, roots, overlay, batch)


def _dependants(
    graph: RecordGraph,
    scope: _Scope,
    stream: str,
    changed: Mapping[str, Record],
    overlay: Mapping[str, Mapping[str, Record]],
) -> dict[str, dict[str, Record]]:
    """Mirrored roots that embed the changed records of ``stream``."""
    resource = graph.resources[stream]
    out: dict[str, dict[str, Record]] = defaultdict(dict)
    for root, link in graph.links_to(stream):
        values = sorted({v for r in changed.values() if (v := resource.key(link.key, r))})
        if not values:
            continue
        if link.ref is not None:
            source = root.resource if link.via is None else _via_link(root, link).resource
            pointing = _load_by_ref(scope, source, link.ref, values)
            wanted = set(values)
            for ext, rec in overlay.get(source, {}).items():
                if wanted.intersection(ref_values(rec, link.ref)):
                    pointing[ext] = rec
            if link.via is None:
                out[root.resource].update(pointing)
            elif pointing:
                nested = _dependants(graph, scope, source, pointing, overlay)
                out[root.resource].update(nested.get(root.resource, {}))
            continue
        if link.via is None:
            out[root.resource].update(_load(scope, root.resource, link.on, values))
            continue
        via = next(v for v in root.links if v.name == link.via)
        unmerged = overlay.get(via.resource, {})
        parents = {
            **_load(scope, via.resource, link.on, values),
            **{k: unmerged[k] for k in values if k in unmerged},
        }
        if parents:
            nested = _dependants(graph, scope, via.resource, parents, overlay)
            out[root.resource].update(nested.get(root.resource, {}))
    return out


def ref_values(rec: Mapping[str, Any], field_name: str) -> list[str]:
    """The ids a record's ``field_name`` holds (one id, a list of ids, or none) as text."""
    value = rec.get(field_name)
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def _via_link(root: Root, link: Link) -> Link:
    return next(v for v in root.links if v.name == link.via)


def _load_by_ref(
    scope: _Scope, resource: str, field_name: str, values: Sequence[str]
) -> dict[str, Record]:
    """Mirrored records of ``resource`` whose ``field_name`` holds one of ``values``: one query
    over the resource's rows (reference data changes rarely; no index serves a payload field)."""
    with scope.conn.cursor() as cur:
        cur.execute(
            "SELECT external_id, payload FROM crm_record WHERE tenant_id = %s "
            "AND integration_id = %s AND resource = %s AND (payload->>%s = ANY(%s) "
            "OR (jsonb_typeof(payload->%s) = 'array' AND EXISTS (SELECT 1 FROM "
            "jsonb_array_elements_text(payload->%s) AS e(v) WHERE e.v = ANY(%s))))",
            (
                scope.tenant_id,
                scope.integration_id,
                resource,
                field_name,
                list(values),
                field_name,
                field_name,
                list(values),
            ),
        )
        return {ext: payload for ext, payload in cur}


def _load(scope: _Scope, resource: str, key: Key, values: Sequence[str]) -> dict[str, Record]:
    with scope.conn.cursor() as cur:
        cur.execute(
            f"SELECT external_id, payload FROM crm_record WHERE tenant_id = %s "
            f"AND integration_id = %s AND resource = %s AND {_COLUMN[key]} = ANY(%s)",
            (scope.tenant_id, scope.integration_id, resource, list(values)),
        )
        return {ext: payload for ext, payload in cur}


@dataclass(slots=True)
class _Placed:
    """Related records by link name and by the key value they matched on."""

    by_link: dict[str, dict[str, dict[str, Record]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(dict))
    )

    def put(self, link: str, match: str, ext: str, rec: Record) -> None:
        self.by_link[link][match][ext] = rec


def _compose(
    graph: RecordGraph,
    scope: _Scope,
    root: Root,
    roots: Mapping[str, Record],
    overlay: Mapping[str, Mapping[str, Record]],
    batch: MergeBatch,
) -> list[MappedOpportunity]:
    root_res = graph.resources[root.resource]
    placed = _Placed()
    direct = [link for link in root.links if link.via is None]
    wanted = {
        link.name: sorted(
            {v for r in roots.values() for v in ref_values(r, link.ref)}
            if link.ref is not None
            else {v for r in roots.values() if (v := root_res.key(link.on, r))}
        )
        for link in direct
    }
    _place(graph, scope, direct, wanted, overlay, placed)
    for link in direct:
        if link.fetch_missing and graph.fetch is not None and link.ref is None:
            _fetch_missing(graph, link, wanted[link.name], placed, batch)
    nested = [link for link in root.links if link.via is not None]
    if nested:
        wanted = {}
        for link in nested:
            via_placed = placed.by_link[link.via or ""].values()
            if link.ref is not None:
                ref = link.ref
                wanted[link.name] = sorted(
                    {v for per in via_placed for r in per.values() for v in ref_values(r, ref)}
                )
            else:
                wanted[link.name] = sorted({k for per in via_placed for k in per})
        _place(graph, scope, nested, wanted, overlay, placed)

    out: list[MappedOpportunity] = []
    for ext, rec in roots.items():
        related: dict[str, Any] = {}
        via_records: dict[str, list[Record]] = {}
        for link in root.links:
            if link.via is not None:
                continue
            by_match = placed.by_link[link.name]
            if link.ref is not None:
                items = [
                    next(iter(by_match[v].values()))
                    for v in ref_values(rec, link.ref)
                    if v in by_match
                ]
                found_first = items[0] if items else None
                related[link.name] = items if link.many else found_first
                via_records[link.name] = items
                continue
            match = root_res.key(link.on, rec)
            found = by_match.get(match, {}) if match else {}
            items = list(found.values())
            related[link.name] = items if link.many else (items[-1] if items else None)
            via_records[link.name] = items
        for link in nested:
            via_link = _via_link(root, link)
            via_res = graph.resources[via_link.resource]
            by_match = placed.by_link[link.name]
            if link.ref is not None:
                ref = link.ref
                related[link.name] = {
                    via_res.id(r) or "": [
                        next(iter(by_match[v].values()))
                        for v in ref_values(r, ref)
                        if v in by_match
                    ]
                    for r in via_records[via_link.name]
                }
                continue
            if via_link.ref is None:
                parents = placed.by_link[link.via or ""]
                via_match = root_res.key(via_link.on, rec)
                via_ids = list(parents.get(via_match, {})) if via_match else []
            else:
                via_ids = [via_res.id(r) or "" for r in via_records[via_link.name]]
            related[link.name] = {v: list(by_match.get(v, {}).values()) for v in via_ids}
        try:
            out.append(root.map(rec, related))
        except MappingError as exc:
            batch.rejects.append(RejectedRecord(batch.stream, ext, str(exc), rec))
    return out


def _place(
    graph: RecordGraph,
    scope: _Scope,
    links: Sequence[Link],
    wanted: Mapping[str, Sequence[str]],
    overlay: Mapping[str, Mapping[str, Record]],
    placed: _Placed,
) -> None:
    """Mirror rows first (one UNION ALL query), the chunk's unmerged records over them."""
    parts: list[str] = []
    params: list[Any] = []
    for link in links:
        if not wanted[link.name]:
            continue
        parts.append(
            f"SELECT %s, external_id, {_COLUMN[link.key]}, payload FROM crm_record "
            f"WHERE tenant_id = %s AND integration_id = %s AND resource = %s "
            f"AND {_COLUMN[link.key]} = ANY(%s)"
        )
        params += [link.name, scope.tenant_id, scope.integration_id, link.resource]
        params.append(list(wanted[link.name]))
    if parts:
        with scope.conn.cursor() as cur:
            cur.execute(" UNION ALL ".join(parts), params)
            for name, ext, match, payload in cur:
                placed.put(name, match, ext, payload)
    for link in links:
        values = set(wanted[link.name])
        resource = graph.resources[link.resource]
        for ext, rec in overlay.get(link.resource, {}).items():
            match = resource.key(link.key, rec)
            if match in values:
                placed.put(link.name, match, ext, rec)


def _fetch_missing(
    graph: RecordGraph, link: Link, wanted: Sequence[str], placed: _Placed, batch: MergeBatch
) -> None:
    """Fetch by id the records of a one-link the mirror lacks, and mirror them with the batch."""
    missing = [v for v in wanted if v not in placed.by_link[link.name]]
    if not missing or graph.fetch is None:
        return
    resource = graph.resources[link.resource]
    for rec in graph.fetch(link.resource, missing):
        ext = resource.id(rec)
        if not ext:
            continue
        row = _mirror_row(resource, rec, [])
        if row is None:
            continue
        batch.mirror.append(row)
        match = resource.key(link.key, rec)
        if match:
            placed.put(link.name, match, ext, rec)
