"""The pure mapping of improveit360 Notes and Tasks to inbound activities (issue 15), one test
per rule of the table in :mod:`models.mappings.improveit360`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from models.mappings.improveit360 import ActivityParent, map_note, map_task, task_kind
from models.standard import MappingError

OPP = "a0O000000000001AAA"
CONTACT = "003000000000001AAA"
PROJECT = "a0P000000000001AAA"
PARENTS = {
    OPP: ActivityParent("opportunities", OPP, CONTACT),
    CONTACT: ActivityParent("contacts", None, CONTACT),
    PROJECT: ActivityParent("projects", OPP),
}


def sf(**fields: Any) -> dict[str, Any]:
    return {
        "Id": "002000000000001AAA",
        "IsDeleted": False,
        "CreatedById": "005000000000001AAA",
        "CreatedDate": "2026-11-01T10:00:00.000+0000",
        "LastModifiedDate": "2026-11-02T10:00:00.000+0000",
        "SystemModstamp": "2026-11-02T10:00:00.000+0000",
        **fields,
    }


@pytest.mark.parametrize(
    ("subtype", "kind"),
    [
        ("Call", "call"),
        ("Email", "email"),
        ("ListEmail", "email"),
        ("Task", "task"),
        (None, "task"),
    ],
)
def test_a_tasks_kind_comes_from_its_subtype(subtype: str | None, kind: str) -> None:
    assert task_kind({"TaskSubtype": subtype}) == kind


def test_a_task_without_a_subtype_falls_back_to_its_type() -> None:
    assert task_kind({"TaskSubtype": None, "Type": "Call"}) == "call"


def test_a_note_on_a_sales_opportunity_names_it_and_its_contact() -> None:
    act = map_note(sf(ParentId=OPP, Title="Measured", Body="3 windows"), PARENTS)
    assert (act.kind, act.parent, act.opportunity_ref, act.contact_ref) == (
        "note",
        f"opportunities:{OPP}",
        ("sales_opportunity", OPP),
        CONTACT,
    )
    assert (act.subject, act.body) == ("Measured", "3 windows")


def test_a_note_on_a_project_names_the_projects_sales_opportunity() -> None:
    act = map_note(sf(ParentId=PROJECT, Title="Permit"), PARENTS)
    assert act.parent == f"projects:{PROJECT}" and act.opportunity_ref == ("sales_opportunity", OPP)


def test_a_note_on_an_unknown_record_waits_with_no_reference() -> None:
    act = map_note(sf(ParentId="001000000000001AAA", Title="Account note"), PARENTS)
    assert act.parent == "records:001000000000001AAA"
    assert (act.contact_ref, act.opportunity_ref) == (None, None)


def test_a_tasks_contact_is_its_who_and_its_opportunity_its_what() -> None:
    act = map_task(sf(Id="00T1", WhatId=PROJECT, WhoId=CONTACT, Subject="Call Ann"), PARENTS)
    assert (act.parent, act.contact_ref, act.opportunity_ref) == (
        f"projects:{PROJECT}",
        CONTACT,
        ("sales_opportunity", OPP),
    )
    assert act.subject == "Call Ann"


def test_a_task_with_only_a_who_hangs_under_the_contact() -> None:
    act = map_task(sf(Id="00T1", WhoId=CONTACT, Description="notes"), PARENTS)
    assert (act.parent, act.contact_ref, act.opportunity_ref) == (
        f"contacts:{CONTACT}",
        CONTACT,
        None,
    )
    assert act.body == "notes"


def test_modified_at_is_the_later_of_system_modstamp_and_last_modified_date() -> None:
    act = map_note(sf(ParentId=OPP, Title="x", SystemModstamp="2026-11-05T00:00:00Z"), PARENTS)
    assert act.modified_at == datetime(2026, 11, 5, tzinfo=UTC)


def test_the_author_is_the_creators_name_else_its_id() -> None:
    named = map_note(sf(ParentId=OPP, Title="x", CreatedBy={"Name": "Dana (CSR)"}), PARENTS)
    assert named.author == "Dana (CSR)"
    assert map_note(sf(ParentId=OPP, Title="x"), PARENTS).author == "005000000000001AAA"


def test_a_record_in_the_recycle_bin_is_a_deletion() -> None:
    assert map_note(sf(ParentId=OPP, Title="x", IsDeleted=True), PARENTS).deleted is True


@pytest.mark.parametrize(
    ("mapper", "record", "reason"),
    [
        (map_note, sf(Title="x"), "ParentId is missing"),
        (map_note, sf(Id=None, ParentId=OPP), "Id is missing"),
        (map_task, sf(Id="00T1", Subject="x"), "neither WhatId nor WhoId"),
        (map_note, sf(ParentId=OPP, CreatedDate="yesterday"), "CreatedDate is not a timestamp"),
    ],
)
def test_a_malformed_record_is_a_mapping_error_naming_the_field(
    mapper: Any, record: dict[str, Any], reason: str
) -> None:
    with pytest.raises(MappingError, match=reason):
        mapper(record, PARENTS)
