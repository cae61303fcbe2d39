"""In-memory record store of one resource of one tenant, shaped for the two ways ServiceTitan reads.

- Export feeds (crm-apis.md §1.5) walk records in `(modifiedOn, id)` order from a continuation
  point. The store keeps that order as a sorted list of keys and finds the continuation point by
  bisection, so a 5000-record export page costs O(log n + 5000) whatever the tenant's size.
- List endpoints (§1.4) filter and page, by default in `id` order. The store keeps ids sorted, a
  few secondary indexes (`customerId`, `jobId`, `locationId`) for the per-parent filters connectors
  call once per record, and pages lazily so page k of an unfiltered list does not build the whole
  result.

Records are the stored dicts (export shape, timestamps as epoch milliseconds); routes project
them. An order key packs `(modifiedOn, id)` into one integer, `modifiedOn * 2**40 + id`, because
integer comparisons make sorting and bisecting several times faster than tuples.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

Record = dict[str, Any]

ID_LIMIT = 1 << 40
"""Ids must be below this (real ServiceTitan ids are far smaller) so order keys stay exact."""

BEFORE_EVERYTHING = -1
"""The position before every record (no record has a negative `modifiedOn`)."""

_PRIORITY_RANK = {"Low": 0, "Normal": 1, "High": 2, "Urgent": 3}


def order_key(modified_ms: int, record_id: int) -> int:
    return modified_ms * ID_LIMIT + record_id


def split_key(key: int) -> tuple[int, int]:
    """`(modifiedOn ms, id)` of an order key."""
    return divmod(key, ID_LIMIT)


def key_of(record: Record) -> int:
    return record["modifiedOn"] * ID_LIMIT + record["id"]


def _sort_value(record: Record, field: str) -> tuple[int, int]:
    if field == "ModifiedOn":
        return (record["modifiedOn"], record["id"])
    if field == "CreatedOn":
        return (record["createdOn"], record["id"])
    if field == "Priority":
        return (_PRIORITY_RANK.get(str(record.get("priority")), -1), record["id"])
    return (record["id"], 0)


class RecordStore:
    def __init__(self, resource: str, index_fields: Iterable[str] = ()) -> None:
        self.resource = resource
        self.by_id: dict[int, Record] = {}
        self.ids: list[int] = []
        self.order: list[int] = []
        self.index: dict[str, dict[Any, list[int]]] = {field: {} for field in index_fields}
        self._indexed = True

    def __len__(self) -> int:
        return len(self.by_id)

    def load(self, records: list[Record]) -> None:
        """Bulk insert of the initial data: one pass and one sort instead of per-record inserts.

        Secondary indexes are built on first use, not here: a large tenant starts faster, and
        most runs never filter most resources by parent.
        """
        by_id = self.by_id
        keys: list[int] = []
        for record in records:
            record_id = record["id"]
            if record_id in by_id or not 0 <= record_id < ID_LIMIT:
                raise ValueError(f"duplicate or out-of-range {self.resource} id {record_id}")
            by_id[record_id] = record
            keys.append(record["modifiedOn"] * ID_LIMIT + record_id)
        keys.sort()
        self.order = keys
        self.ids = sorted(by_id)
        self._indexed = False

    def _ensure_index(self) -> None:
        if self._indexed:
            return
        for record_field, mapping in self.index.items():
            mapping.clear()
            for record_id in self.ids:
                value = self.by_id[record_id].get(record_field)
                if value is not None:
                    bucket = mapping.get(value)
                    if bucket is None:
                        mapping[value] = [record_id]
                    else:
                        bucket.append(record_id)
        self._indexed = True

    def get(self, record_id: int) -> Record | None:
        return self.by_id.get(record_id)

    @property
    def max_mod(self) -> int | None:
        return split_key(self.order[-1])[0] if self.order else None

    @property
    def max_id(self) -> int | None:
        return self.ids[-1] if self.ids else None

    def put(self, record: Record) -> None:
        """Insert or replace a record, keeping the export order and indexes right."""
        record_id = record["id"]
        if not 0 <= record_id < ID_LIMIT:
            raise ValueError(f"{self.resource} id {record_id} out of range")
        self._ensure_index()
        old = self.by_id.get(record_id)
        if old is not None:
            del self.order[bisect_left(self.order, key_of(old))]
            self._index_remove(old)
        elif not self.ids or record_id > self.ids[-1]:
            self.ids.append(record_id)
        else:
            insort(self.ids, record_id)
        insort(self.order, key_of(record))
        self.by_id[record_id] = record
        for field, mapping in self.index.items():
            value = record.get(field)
            if value is not None:
                mapping.setdefault(value, []).append(record_id)

    def _index_remove(self, record: Record) -> None:
        for field, mapping in self.index.items():
            value = record.get(field)
            bucket = mapping.get(value)
            if bucket is not None and record["id"] in bucket:
                bucket.remove(record["id"])
                if not bucket:
                    del mapping[value]

    def ids_where(self, field: str, values: Iterable[Any]) -> set[int]:
        self._ensure_index()
        mapping = self.index[field]
        found: set[int] = set()
        for value in values:
            found.update(mapping.get(value, ()))
        return found

    # -- export ------------------------------------------------------------------------------

    def export_page(self, after: int, limit: int) -> tuple[list[Record], bool]:
        """Records strictly after order key `after`, and whether more follow."""
        start = bisect_right(self.order, after)
        keys = self.order[start : start + limit]
        by_id = self.by_id
        return [by_id[key % ID_LIMIT] for key in keys], start + limit < len(self.order)

    # -- lists -------------------------------------------------------------------------------

    def select(
        self,
        *,
        ids: list[int] | None,
        index_terms: dict[str, set[Any]],
        mod_range: tuple[int | None, int | None],
        predicate: Callable[[Record], bool],
        sort_field: str,
        descending: bool,
        page: int,
        page_size: int,
        include_total: bool,
    ) -> tuple[list[Record], bool, int | None]:
        """One page of matching records, whether more pages follow, and the total if asked.

        Picks the narrowest candidate set it can (explicit ids, an index, or a modifiedOn range of
        the export order) before applying the remaining filters.
        """
        by_id = self.by_id
        candidates: list[int]
        base_order: str
        if ids is not None:
            candidates = sorted({i for i in ids if i in by_id})
            base_order = "Id"
        elif index_terms:
            sets = [self.ids_where(field, values) for field, values in index_terms.items()]
            candidates = sorted(set.intersection(*sets))
            base_order = "Id"
        elif mod_range != (None, None) or sort_field == "ModifiedOn":
            low, high = mod_range
            start = 0 if low is None else bisect_left(self.order, low * ID_LIMIT)
            stop = len(self.order) if high is None else bisect_left(self.order, high * ID_LIMIT)
            if sort_field != "ModifiedOn" and (stop - start) * 4 > len(self.order):
                # A wide window in id order: scanning ids lazily beats sorting most of the store
                # (the predicate re-checks the window).
                candidates = self.ids
                base_order = "Id"
            else:
                candidates = [key % ID_LIMIT for key in self.order[start:stop]]
                base_order = "ModifiedOn"
        else:
            candidates = self.ids
            base_order = "Id"

        matching: Iterator[Record]
        if sort_field == base_order:
            ordered: Iterable[int] = reversed(candidates) if descending else candidates
            matching = (record for record in map(by_id.__getitem__, ordered) if predicate(record))
        else:
            found = [record for record in map(by_id.__getitem__, candidates) if predicate(record)]
            found.sort(key=lambda record: _sort_value(record, sort_field), reverse=descending)
            matching = iter(found)

        offset = (page - 1) * page_size
        if include_total:
            everything = list(matching)
            return (
                everything[offset : offset + page_size],
                offset + page_size < len(everything),
                len(everything),
            )
        window = list(islice(matching, offset, offset + page_size + 1))
        return window[:page_size], len(window) > page_size, None
