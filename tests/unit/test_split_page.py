"""Splitting a CRM page into parts for map + merge (crmsync.providers.base.split_page)."""

from __future__ import annotations

from crmsync.providers.base import FetchedPage, split_page


def _page(n: int, invalid: int = 0) -> FetchedPage:
    return FetchedPage(
        "jobs",
        [{"id": i} for i in range(n)],
        next_cursor="token-2",
        has_more=True,
        invalid=[({"id": "bad"}, "no id")] * invalid,
    )


def test_only_the_last_part_of_a_split_page_commits_its_cursor() -> None:
    parts = split_page(_page(2500), 1000)
    assert [len(p.records) for p in parts] == [1000, 1000, 500]
    assert [p.commits_cursor for p in parts] == [False, False, True]
    assert all(p.next_cursor == "token-2" and p.has_more for p in parts)


def test_split_parts_keep_every_record_once_and_in_order() -> None:
    parts = split_page(_page(2001), 1000)
    assert [r["id"] for p in parts for r in p.records] == list(range(2001))


def test_quarantined_records_of_a_split_page_are_counted_once() -> None:
    parts = split_page(_page(1500, invalid=3), 1000)
    assert [len(p.invalid) for p in parts] == [3, 0]


def test_a_page_no_larger_than_the_part_size_is_not_split() -> None:
    page = _page(1000)
    assert split_page(page, 1000) == [page]
    assert split_page(page, 1000)[0].commits_cursor
