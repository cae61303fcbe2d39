"""improveit360 mapping and settings: one test per rule of the standard-field table in
:mod:`models.mappings.improveit360` (seed 000 has none of its own), plus the integration's
credentials and settings models. Records are shaped as Salesforce's query API returns them
(``attributes`` already dropped by the connector)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from connectors.salesforce import decode_cursor, encode_cursor
from crmsync.providers.improveit360 import Improveit360CredentialsModel, Improveit360Settings
from models.mappings.improveit360 import (
    MODEL,
    PLACEHOLDER_EMAIL_DETAIL,
    FieldPaths,
    map_sales_opportunity,
    newest_first,
)
from models.standard import MappingError
from sandbox.salesforce import build_schema

NS = "i360core__"
Record = dict[str, Any]


def sf(day: int, hour: int = 12, second: int = 0) -> str:
    return f"2026-11-{day:02d}T{hour:02d}:00:{second:02d}.000+0000"


def at(day: int, hour: int = 12, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, 0, second, tzinfo=UTC)


def _opp(**overrides: Any) -> Record:
    rec: Record = {
        "Id": "a0OOp0000000001AAA",
        "Name": "SO-0000001",
        "IsDeleted": False,
        "CreatedDate": sf(1),
        "LastModifiedDate": sf(2),
        "SystemModstamp": sf(2),
        f"{NS}Contact__c": "003Op0000000001AAA",
        f"{NS}Account__c": "001Op0000000001AAA",
        f"{NS}Status__c": "Appointment Set",
        f"{NS}Source__c": "Home Show",
        f"{NS}Estimated_Value__c": 12000.0,
    }
    rec.update(overrides)
    return rec


def _contact(**overrides: Any) -> Record:
    rec: Record = {
        "Id": "003Op0000000001AAA",
        "AccountId": "001Op0000000001AAA",
        "FirstName": "Jane",
        "LastName": "Public",
        "Name": "Jane Public",
        "Email": "  Jane.Public@Example.COM ",
        "Phone": "(614) 555-0100",
        "MobilePhone": "614.555.0111",
        "CreatedDate": sf(1),
        "LastModifiedDate": sf(1),
    }
    rec.update(overrides)
    return rec


def _account(**overrides: Any) -> Record:
    rec: Record = {
        "Id": "001Op0000000001AAA",
        "Name": "Jane Public",
        "Phone": "+1 614 555 0199",
        "BillingCity": "Columbus",
        "CreatedDate": sf(1),
        "LastModifiedDate": sf(1),
    }
    rec.update(overrides)
    return rec


def _child(ident: str, created: str, modified: str, **fields: Any) -> Record:
    return {
        "Id": ident,
        "IsDeleted": False,
        "CreatedDate": created,
        "LastModifiedDate": modified,
        **fields,
    }


def mapped(**kwargs: Any) -> Any:
    args: dict[str, Any] = {
        "opportunity": _opp(),
        "contact": _contact(),
        "account": _account(),
    }
    args.update(kwargs)
    return map_sales_opportunity(**args)


# -- standard fields -------------------------------------------------------------------------------


def test_external_id_is_the_sales_opportunity_id_and_the_model_is_sales_opportunity() -> None:
    opp = mapped()
    assert (opp.model, opp.external_id) == (MODEL, "a0OOp0000000001AAA")


def test_external_contact_id_is_the_sales_opportunitys_contact_lookup() -> None:
    assert mapped().external_contact_id == "003Op0000000001AAA"
    assert mapped(contact=None).external_contact_id == "003Op0000000001AAA"
    assert mapped(opportunity=_opp(**{f"{NS}Contact__c": None})).external_contact_id is None


def test_external_created_at_is_the_created_date_in_utc() -> None:
    assert mapped(
        opportunity=_opp(CreatedDate="2026-11-01T07:30:00.000-0500")
    ).external_created_at == (datetime(2026, 11, 1, 12, 30, tzinfo=UTC))


def test_external_updated_at_is_the_latest_last_modified_of_opportunity_and_related() -> None:
    appointments = [
        _child("a0AOp0000000001AAA", sf(3), sf(9)),
        _child("a0AOp0000000002AAA", sf(5), sf(6)),
    ]
    projects = [_child("a0POp0000000001AAA", sf(4), sf(7))]
    assert mapped().external_updated_at == at(2)
    assert mapped(appointments=appointments).external_updated_at == at(9), "not only appointments:1"
    assert mapped(projects=projects).external_updated_at == at(7)
    assert mapped(
        opportunity=_opp(LastModifiedDate=sf(20)), projects=projects
    ).external_updated_at == at(20)


def test_project_activities_move_external_updated_at_only_when_they_sync() -> None:
    project = _child("a0POp0000000001AAA", sf(4), sf(4))
    activity = _child("a0QOp0000000001AAA", sf(4), sf(15), **{f"{NS}Project__c": project["Id"]})
    synced = mapped(projects=[project], project_activities={project["Id"]: [activity]})
    not_synced = mapped(projects=[project], project_activities=None)
    assert synced.external_updated_at == at(15)
    assert synced.details["projects:1:activities:1:Id"] == activity["Id"]
    assert not_synced.external_updated_at == at(4)
    assert not any(":activities:" in key for key in not_synced.details)


def test_email_is_the_contacts_email_trimmed_and_lower_cased() -> None:
    assert mapped().email == "jane.public@example.com"
    assert mapped(contact=_contact(Email="not an email")).email is None
    assert mapped(contact=None).email is None


def test_placeholder_email_is_kept_and_flagged_so_it_never_matches() -> None:
    opp = mapped(
        contact=_contact(Email="None@None.com"), placeholder_emails=frozenset({"none@none.com"})
    )
    assert opp.email == "none@none.com"
    assert opp.details[PLACEHOLDER_EMAIL_DETAIL] is True
    assert (
        PLACEHOLDER_EMAIL_DETAIL
        not in mapped(placeholder_emails=frozenset({"none@none.com"})).details
    )


def test_first_and_last_name_are_the_contacts() -> None:
    assert (mapped().first_name, mapped().last_name) == ("Jane", "Public")
    only_last = mapped(contact=_contact(FirstName=None, LastName="Public"))
    assert (only_last.first_name, only_last.last_name) == (None, "Public")


def test_without_contact_names_the_contact_then_account_name_is_split_by_the_seed_rule() -> None:
    nameless = _contact(FirstName=" ", LastName=None, Name="Smith, John")
    opp = mapped(contact=nameless)
    assert (opp.first_name, opp.last_name) == ("John", "Smith")
    opp = mapped(contact=None, account=_account(Name="Mary Ann Lee"))
    assert (opp.first_name, opp.last_name) == ("Mary", "Ann Lee")


def test_phone_is_the_contacts_mobile_else_phone_else_the_accounts_in_e164() -> None:
    assert mapped().phone == "+16145550111"
    assert mapped(contact=_contact(MobilePhone=None)).phone == "+16145550100"
    assert mapped(contact=_contact(MobilePhone="n/a", Phone="555-1234")).phone == "+16145550199"
    assert mapped(contact=None, account=_account(Phone=None)).phone is None


def test_status_is_the_sales_opportunity_status() -> None:
    assert mapped().status == "Appointment Set"
    assert mapped(opportunity=_opp(**{f"{NS}Status__c": None})).status is None


def test_field_paths_from_the_settings_are_used_for_a_differently_named_org() -> None:
    paths = FieldPaths(
        opportunity_contact="acme__Customer__c",
        opportunity_status="acme__Stage__c",
        contact_email="acme__Email__c",
        contact_phones=("acme__Cell__c",),
        account_phones=(),
    )
    opp = map_sales_opportunity(
        {"Id": "a0X", "acme__Customer__c": "003X", "acme__Stage__c": "Sold"},
        {"Id": "003X", "acme__Email__c": "x@y.example", "acme__Cell__c": "6145550123"},
        None,
        paths=paths,
    )
    assert (opp.external_contact_id, opp.status, opp.email, opp.phone) == (
        "003X",
        "Sold",
        "x@y.example",
        "+16145550123",
    )


# -- details ---------------------------------------------------------------------------------------


def test_details_hold_the_opportunity_fields_and_the_related_records_under_their_resource() -> None:
    appointment = _child("a0AOp0000000001AAA", sf(3), sf(3), **{f"{NS}Result__c": "Sold"})
    project = _child("a0POp0000000001AAA", sf(4), sf(4), **{f"{NS}Status__c": "Ordered"})
    details = mapped(appointments=[appointment], projects=[project]).details
    assert details[f"{NS}Source__c"] == "Home Show" and details["Name"] == "SO-0000001"
    assert details["contact:Email"] == "  Jane.Public@Example.COM "
    assert details["account:BillingCity"] == "Columbus"
    assert details[f"appointments:1:{NS}Result__c"] == "Sold"
    assert details[f"projects:1:{NS}Status__c"] == "Ordered"
    orjson.dumps(details)  # JSON-serialisable


def test_lists_are_sorted_newest_created_first_with_ties_broken_by_id() -> None:
    old = _child("a0AOp0000000001AAA", sf(3), sf(3))
    new = _child("a0AOp0000000002AAA", sf(8), sf(8))
    tie_low = _child("a0AOp0000000003AAA", sf(5), sf(5))
    tie_high = _child("a0AOp0000000004AAA", sf(5), sf(5))
    details = mapped(appointments=[old, tie_low, new, tie_high]).details
    order = [details[f"appointments:{i}:Id"] for i in range(1, 5)]
    assert order == [new["Id"], tie_high["Id"], tie_low["Id"], old["Id"]]
    assert newest_first([old, {"Id": "x", "CreatedDate": "garbage"}])[-1]["Id"] == "x"


def test_deleted_related_records_are_left_out() -> None:
    kept = _child("a0AOp0000000001AAA", sf(3), sf(3))
    deleted = {**_child("a0AOp0000000002AAA", sf(4), sf(30)), "IsDeleted": True}
    opp = mapped(appointments=[kept, deleted])
    assert opp.details["appointments:1:Id"] == kept["Id"] and "appointments:2:Id" not in opp.details
    assert opp.external_updated_at == at(3)


def test_a_missing_id_or_an_unparseable_timestamp_is_a_mapping_error_naming_the_field() -> None:
    with pytest.raises(MappingError, match="Id is missing"):
        mapped(opportunity=_opp(Id=None))
    with pytest.raises(MappingError, match="CreatedDate is not a timestamp"):
        mapped(opportunity=_opp(CreatedDate="yesterday"))
    bad = _child("a0AOp0000000001AAA", sf(3), "soon")
    with pytest.raises(MappingError, match="appointments:1:LastModifiedDate"):
        mapped(appointments=[bad])


# -- credentials and settings ----------------------------------------------------------------------


def test_credentials_accept_a_refresh_token_or_a_username_and_password() -> None:
    refresh = Improveit360CredentialsModel.model_validate({"client_id": "c", "refresh_token": "r"})
    assert refresh.connector_credentials().grant == "refresh_token"
    password = Improveit360CredentialsModel.model_validate(
        {
            "client_id": "c",
            "client_secret": "s",
            "username": "u",
            "password": "p",
            "security_token": "t",
        }
    )
    assert password.connector_credentials().grant == "password"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"client_id": "c"}, "exactly one grant"),
        (
            {"client_id": "c", "refresh_token": "r", "username": "u", "password": "p"},
            "exactly one grant",
        ),
        ({"client_id": "c", "client_secret": "s", "username": "u"}, "both username and password"),
        ({"client_id": "c", "username": "u", "password": "p"}, "needs client_secret"),
        ({"client_id": "c", "refresh_token": "r", "app_key": "x"}, "Extra inputs"),
    ],
)
def test_credentials_need_exactly_one_grant_with_a_clear_message(
    values: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Improveit360CredentialsModel.model_validate(values)


def test_settings_defaults_name_objects_and_fields_the_emulated_org_has() -> None:
    settings = Improveit360Settings()
    schema = build_schema()
    objects = settings.objects
    fields = settings.standard_fields
    expected = {
        objects.sales_opportunity: [
            fields.opportunity_contact,
            fields.opportunity_account,
            fields.opportunity_status,
        ],
        objects.sales_appointment: [fields.appointment_opportunity],
        objects.project: [fields.project_opportunity],
        objects.project_activity: [fields.activity_project],
        objects.contact: [
            fields.contact_first_name,
            fields.contact_last_name,
            fields.contact_email,
            *fields.contact_phones,
        ],
        objects.account: list(fields.account_phones),
    }
    for sobject, names in expected.items():
        obj = schema.get(sobject)
        assert obj is not None, sobject
        for name in (*names, "SystemModstamp", "LastModifiedDate", "CreatedDate"):
            assert obj.field(name) is not None, f"{sobject}.{name}"
    assert settings.sync_project_activities is False and settings.api_version == "60.0"


def test_settings_reject_unknown_keys_and_anything_but_api_names() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        Improveit360Settings.model_validate({"objects": {"sales_oportunity": "X__c"}})
    with pytest.raises(ValidationError, match="pattern"):
        Improveit360Settings.model_validate({"objects": {"project": "X__c WHERE Id != null"}})
    with pytest.raises(ValidationError, match="API name"):
        Improveit360Settings.model_validate({"standard_fields": {"contact_phones": ["Phone, Id"]}})
    with pytest.raises(ValidationError, match="API version"):
        Improveit360Settings.model_validate({"api_version": "latest"})


def test_push_options_of_seed_000_are_validated_now() -> None:
    settings = Improveit360Settings.model_validate(
        {
            "push_outgoing_campaign_messages": ["contact_note", "opportunity_task", "contact_note"],
            "push_incoming_messages": ["opportunity_task"],
            "campaign_events": ["launched", "completed"],
        }
    )
    assert settings.push_outgoing_campaign_messages == ["contact_note", "opportunity_task"]
    assert settings.push_outgoing_manual_messages == [] and settings.push_campaign_events == []
    with pytest.raises(ValidationError):
        Improveit360Settings.model_validate({"push_incoming_messages": ["job_note"]})
    with pytest.raises(ValidationError):
        Improveit360Settings.model_validate({"campaign_events": ["opened"]})


def test_settings_round_trip_through_their_stored_json() -> None:
    settings = Improveit360Settings.model_validate(
        {
            "api_version": "v61.0",
            "placeholder_emails": [" None@None.com", "none@none.com", "bad"],
            "objects": {"project": "acme__Job__c"},
            "min_remaining_api_calls": 500,
        }
    )
    assert settings.api_version == "61.0" and settings.placeholder_emails == ["none@none.com"]
    stored = settings.model_dump(mode="json")
    assert Improveit360Settings.model_validate(stored) == settings


def test_cursor_holds_the_system_modstamp_the_id_and_the_run_it_was_read_in() -> None:
    run = datetime(2026, 11, 20, 14, 0, 0, 123456, tzinfo=UTC)
    cursor = encode_cursor(at(19, 8, 7), "a0OOp0000000001AAA", run)
    assert cursor == "2026-11-19T08:00:07Z|a0OOp0000000001AAA|2026-11-20T14:00:00.123456+00:00"
    assert decode_cursor(cursor) == (at(19, 8, 7), "a0OOp0000000001AAA", run.isoformat())
    with pytest.raises(ValueError):
        decode_cursor("eyJjb250aW51ZUZyb20iOjF9")


def test_source_stamps_name_every_record_the_opportunity_is_composed_of_deleted_ones_included() -> (
    None
):
    kept = _child("a0AOp0000000001AAA", sf(3), sf(3))
    deleted = {
        **_child("a0AOp0000000002AAA", sf(4), sf(5)),
        "IsDeleted": True,
        "SystemModstamp": sf(30),
    }
    project = _child("a0POp0000000001AAA", sf(2), sf(6))
    activity = _child("a0XOp0000000001AAA", sf(2), sf(7), SystemModstamp=sf(8))
    opp = mapped(
        appointments=[kept, deleted],
        projects=[project],
        project_activities={project["Id"]: [activity]},
    )
    assert opp.source_stamps == {
        "opportunities:a0OOp0000000001AAA": at(2),
        "contacts:003Op0000000001AAA": at(1),
        "accounts:001Op0000000001AAA": at(1),
        "appointments:a0AOp0000000001AAA": at(3),
        "appointments:a0AOp0000000002AAA": at(30),
        "projects:a0POp0000000001AAA": at(6),
        "project_activities:a0XOp0000000001AAA": at(8),
    }
    assert "project_activities:a0XOp0000000001AAA" not in mapped(projects=[project]).source_stamps


def test_placeholder_email_patterns_flag_the_email_in_details() -> None:
    patterns = frozenset({"*@none.com"})
    flagged = mapped(contact=_contact(Email=" Nobody@NONE.com"), placeholder_emails=patterns)
    assert flagged.details[PLACEHOLDER_EMAIL_DETAIL] is True
    assert PLACEHOLDER_EMAIL_DETAIL not in mapped(placeholder_emails=patterns).details
