"""Shared normalizers: the canonical forms the merge layer matches and sorts on."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from models.normalize import (
    _e164,
    flatten_details,
    is_placeholder,
    normalize_email,
    normalize_phone,
    parse_timestamp,
    placeholder_matcher,
    sort_newest_first,
    split_name,
)

# --- normalize_email ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("jane@example.com", "jane@example.com", id="already-normal"),
        pytest.param("  Jane.Doe@Example.COM \t", "jane.doe@example.com", id="spaces-and-case"),
        pytest.param("A@B", "a@b", id="shortest-shape"),
    ],
)
def test_email_is_trimmed_and_lower_cased(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="whitespace"),
        pytest.param(42, id="not-a-string"),
        pytest.param("jane.example.com", id="no-at"),
        pytest.param("jane@@example.com", id="two-ats-adjacent"),
        pytest.param("jane@example@com", id="two-ats"),
        pytest.param("@example.com", id="nothing-before-at"),
        pytest.param("jane@", id="nothing-after-at"),
        pytest.param("  @  ", id="only-at-and-spaces"),
    ],
)
def test_email_without_exactly_one_at_with_text_on_both_sides_is_none(raw: object) -> None:
    assert normalize_email(raw) is None


# --- normalize_phone ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("(555) 123-4567", "+15551234567", id="parenthesised-area-code"),
        pytest.param("555.123.4567", "+15551234567", id="dots"),
        pytest.param("5551234567", "+15551234567", id="bare-digits"),
        pytest.param("+1 555 123 4567", "+15551234567", id="international-prefix"),
        pytest.param("1-555-123-4567", "+15551234567", id="national-prefix"),
        pytest.param("  (619) 555-7311  ", "+16195557311", id="surrounding-spaces"),
        pytest.param("(415) 555-2671 ext. 12", "+14155552671", id="extension-dropped"),
        pytest.param("415-555-2671 x12", "+14155552671", id="short-extension-dropped"),
        pytest.param("+44 20 7946 0958", "+442079460958", id="foreign-number"),
        pytest.param(4155552671, "+14155552671", id="integer"),
    ],
)
def test_phone_is_normalized_to_e164(raw: object, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="whitespace"),
        pytest.param("n/a", id="text"),
        pytest.param("12", id="too-short"),
        pytest.param("555-1234", id="local-number-without-area-code"),
        pytest.param("1234567890123456789", id="too-long"),
        pytest.param(True, id="boolean"),
        pytest.param(["5551234567"], id="list"),
    ],
)
def test_phone_that_is_not_a_possible_number_is_none(raw: object) -> None:
    assert normalize_phone(raw) is None


def test_phone_without_country_code_is_read_in_the_given_region() -> None:
    assert normalize_phone("020 7946 0958", region="GB") == "+442079460958"
    assert normalize_phone("020 7946 0958") is None


def test_repeated_phones_are_parsed_once() -> None:
    normalize_phone("(208) 555-0199")
    before = _e164.cache_info()
    assert normalize_phone("(208) 555-0199") == "+12085550199"
    after = _e164.cache_info()
    assert after.hits == before.hits + 1
    assert after.misses == before.misses


# --- parse_timestamp ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC), id="zulu"),
        pytest.param(
            "2024-05-01T12:00:00.1234567Z",
            datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
            id="servicetitan-seven-fraction-digits",
        ),
        pytest.param(
            "2024-05-01T12:00:00.5Z",
            datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC),
            id="one-fraction-digit",
        ),
        pytest.param(
            "2024-05-01T14:00:00+02:00",
            datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
            id="positive-offset",
        ),
        pytest.param(
            "2024-05-01T07:00:00.250-05:00",
            datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC),
            id="negative-offset-with-fraction",
        ),
        pytest.param(
            "2024-05-01T12:00:00", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC), id="naive-is-utc"
        ),
        pytest.param(
            " 2024-05-01T12:00:00Z ", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC), id="padded"
        ),
        pytest.param("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC), id="date-only"),
        pytest.param(
            datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
            datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
            id="aware-datetime",
        ),
    ],
)
def test_timestamp_is_parsed_to_aware_utc(raw: object, expected: datetime) -> None:
    parsed = parse_timestamp(raw)
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("raw", [None, "", "   "], ids=["none", "empty", "whitespace"])
def test_missing_timestamp_is_none(raw: object) -> None:
    assert parse_timestamp(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("yesterday", id="word"),
        pytest.param("2024-13-01T00:00:00Z", id="month-13"),
        pytest.param("01/05/2024", id="us-date"),
        pytest.param(1714564800, id="epoch-number"),
        pytest.param({"value": "2024-05-01"}, id="object"),
    ],
)
def test_unparseable_timestamp_raises_value_error(raw: object) -> None:
    with pytest.raises(ValueError, match="not a timestamp"):
        parse_timestamp(raw)


def test_naive_timestamp_can_be_read_in_another_zone() -> None:
    # LeadPerfection sends US Eastern wall-clock time with no offset.
    parsed = parse_timestamp("2025-04-16T17:00:07", naive_tz=ZoneInfo("America/New_York"))
    assert parsed == datetime(2025, 4, 16, 21, 0, 7, tzinfo=UTC)


# --- split_name -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("full", "expected"),
    [
        pytest.param("John Smith", ("John", "Smith"), id="two-words"),
        pytest.param("John Paul Smith", ("John", "Paul Smith"), id="three-words"),
        pytest.param("  John   Smith  ", ("John", "Smith"), id="extra-spaces"),
        pytest.param("Cher", ("Cher", None), id="one-word"),
    ],
)
def test_without_a_comma_first_name_is_the_first_word_and_last_name_the_rest(
    full: str, expected: tuple[str | None, str | None]
) -> None:
    assert split_name(full) == expected


@pytest.mark.parametrize(
    ("full", "expected"),
    [
        pytest.param("Smith, John", ("John", "Smith"), id="last-comma-first"),
        pytest.param("Smith,John", ("John", "Smith"), id="no-space-after-comma"),
        pytest.param("Smith, John, Jr", ("John, Jr", "Smith"), id="two-commas"),
        pytest.param("Van Der Berg, Anna Maria", ("Anna Maria", "Van Der Berg"), id="many-words"),
        pytest.param(", John", ("John", None), id="nothing-before-comma"),
        pytest.param("Smith,", (None, "Smith"), id="nothing-after-comma"),
    ],
)
def test_with_a_comma_first_name_is_after_the_first_comma_and_last_name_before_it(
    full: str, expected: tuple[str | None, str | None]
) -> None:
    assert split_name(full) == expected


@pytest.mark.parametrize("full", [None, "", "   ", ","], ids=["none", "empty", "blank", "comma"])
def test_empty_name_gives_no_names(full: str | None) -> None:
    assert split_name(full) == (None, None)


# --- flatten_details ------------------------------------------------------------------------


def _flat(prefix: str, value: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    flatten_details(prefix, value, out)
    return out


def test_nested_objects_are_joined_with_colons() -> None:
    customer = {"id": 7, "address": {"city": "Austin", "geo": {"lat": 30.2}}, "name": "A B"}
    assert _flat("customer", customer) == {
        "customer:id": 7,
        "customer:address:city": "Austin",
        "customer:address:geo:lat": 30.2,
        "customer:name": "A B",
    }


def test_empty_prefix_puts_fields_at_top_level() -> None:
    job = {"id": 1, "jobStatus": "Scheduled", "jobGeneratedLeadSource": {"jobId": None}}
    assert _flat("", job) == {
        "id": 1,
        "jobStatus": "Scheduled",
        "jobGeneratedLeadSource:jobId": None,
    }


@pytest.mark.parametrize(
    ("items", "expected_ids"),
    [
        pytest.param(
            [
                {"id": 1, "createdOn": "2024-01-01T00:00:00Z"},
                {"id": 2, "createdOn": "2024-03-01T00:00:00Z"},
                {"id": 3, "createdOn": "2024-02-01T00:00:00Z"},
            ],
            [2, 3, 1],
            id="out-of-order",
        ),
        pytest.param(
            [
                {"id": 5, "createdOn": "2024-01-01T00:00:00Z"},
                {"id": 9, "createdOn": "2024-01-01T00:00:00.000Z"},
                {"id": 7, "createdOn": "2024-01-01T00:00:00Z"},
            ],
            [9, 7, 5],
            id="ties-broken-by-id-descending",
        ),
        pytest.param(
            [
                {"id": 1, "createdOn": "2024-01-01T11:00:00+02:00"},
                {"id": 2, "createdOn": "2024-01-01T09:30:00.1234567Z"},
            ],
            [2, 1],
            id="compared-as-instants-not-strings",
        ),
        pytest.param(
            [
                {"id": 1, "createdOn": None},
                {"id": 2, "createdOn": "not a date"},
                {"id": 3, "createdOn": "2020-01-01T00:00:00Z"},
            ],
            [3, 2, 1],
            id="missing-or-unparseable-sort-as-oldest",
        ),
    ],
)
def test_lists_of_records_are_indexed_from_one_newest_created_first(
    items: list[dict[str, Any]], expected_ids: list[int]
) -> None:
    flat = _flat("estimates", items)
    assert [flat[f"estimates:{index}:id"] for index in range(1, len(items) + 1)] == expected_ids
    assert f"estimates:{len(items) + 1}:id" not in flat


def test_lists_whose_items_have_no_created_date_keep_their_order() -> None:
    fields = [{"typeId": 3, "name": "b"}, {"typeId": 1, "name": "a"}]
    assert _flat("customFields", fields) == {
        "customFields:1:typeId": 3,
        "customFields:1:name": "b",
        "customFields:2:typeId": 1,
        "customFields:2:name": "a",
    }


@pytest.mark.parametrize(
    "value",
    [
        pytest.param([3, 1, 2], id="scalars"),
        pytest.param([], id="empty"),
        pytest.param([{"a": 1}, 2], id="mixed"),
    ],
)
def test_lists_that_are_not_all_records_stay_json_lists(value: list[Any]) -> None:
    assert _flat("job", {"tagTypeIds": value}) == {"job:tagTypeIds": value}


def test_nested_lists_inside_list_items_are_indexed_too() -> None:
    estimates = [{"id": 1, "items": [{"sku": {"name": "Filter"}}], "status": {"name": "Open"}}]
    assert _flat("estimates", estimates) == {
        "estimates:1:id": 1,
        "estimates:1:items:1:sku:name": "Filter",
        "estimates:1:status:name": "Open",
    }


def test_flattening_leaves_the_input_unchanged_and_json_serialisable() -> None:
    record = {
        "id": 1,
        "address": {"city": "Austin"},
        "contacts": [
            {"id": 2, "createdOn": "2024-01-01T00:00:00Z", "settings": {"x": True}},
            {"id": 3, "createdOn": "2024-02-01T00:00:00Z", "tags": [1, 2]},
        ],
    }
    before = copy.deepcopy(record)
    flat = _flat("", record)
    assert record == before
    assert orjson.loads(orjson.dumps(flat)) == flat


def test_sorting_newest_first_returns_a_new_list() -> None:
    items = [{"id": 1, "createdOn": "2024-01-01T00:00:00Z"}]
    result = sort_newest_first(items)
    assert result == items
    assert result is not items


# --- placeholder emails ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "patterns"),
    [
        pytest.param("noemail@acme.com", ["noemail@acme.com"], id="exact-address"),
        pytest.param(" NoEmail@Acme.com ", ["noemail@acme.com"], id="email-case-and-spaces"),
        pytest.param("noemail@acme.com", ["  NoEmail@ACME.com\t"], id="pattern-case-and-spaces"),
        pytest.param("NoEmail@Anything.Example", ["noemail@*"], id="any-domain"),
        pytest.param("office@example.com", ["*@example.com"], id="any-local-part"),
        pytest.param("None@None.com", ["none@none.com"], id="none-at-none"),
        pytest.param("no1@acme.com", ["no?@acme.com"], id="question-mark-one-character"),
        pytest.param("a@b.com", ["x@y.com", "*@B.COM"], id="any-of-several"),
    ],
)
def test_placeholder_patterns_match_addresses_and_globs_case_and_whitespace_insensitively(
    email: str, patterns: list[str]
) -> None:
    assert is_placeholder(email, patterns)


@pytest.mark.parametrize(
    ("email", "patterns"),
    [
        pytest.param("jane@acme.com", ["noemail@*"], id="other-local-part"),
        pytest.param("xnoemail@acme.com", ["noemail@*"], id="anchored-at-the-start"),
        pytest.param("noemail@acme.com.evil", ["*@acme.com"], id="anchored-at-the-end"),
        pytest.param("office@notexample.com", ["*@example.com"], id="whole-domain"),
        pytest.param("none@nonexcom", ["none@none.com"], id="dot-is-literal"),
        pytest.param("no12@acme.com", ["no?@acme.com"], id="question-mark-only-one"),
        pytest.param("a@[b].com", ["a@b.com"], id="brackets-are-literal"),
    ],
)
def test_placeholder_patterns_never_match_a_real_address(email: str, patterns: list[str]) -> None:
    assert not is_placeholder(email, patterns)


def test_no_email_or_no_patterns_is_never_a_placeholder() -> None:
    assert not is_placeholder(None, ["*"])
    assert not is_placeholder("", ["*@*"])
    assert not is_placeholder("a@b.com", [])
    assert not is_placeholder("a@b.com", ["", "   "])


def test_placeholder_patterns_are_compiled_once_per_set() -> None:
    patterns = frozenset({"noemail@*", "*@example.com"})
    matcher = placeholder_matcher(patterns)
    assert placeholder_matcher(frozenset(patterns)) is matcher
    assert matcher("NoEmail@x.com") and not matcher("jane@x.com")


@pytest.mark.parametrize("provider", ["servicetitan", "leadperfection", "improveit360"])
def test_every_provider_keeps_placeholder_patterns_trimmed_and_lower_cased(provider: str) -> None:
    from crmsync.providers import get_provider

    settings: Any = get_provider(provider).settings_model(
        placeholder_emails=[" NoEmail@* ", "*@Example.com", "none@none.com", "NONE@none.com"]
    )
    assert settings.placeholder_emails == ["*@example.com", "noemail@*", "none@none.com"]
