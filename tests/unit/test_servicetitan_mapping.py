"""ServiceTitan mapping, one test per sentence of seed 002's "Standard Field Mapping" and
"Available Resource Fields" sections. Records are shaped as the v2 API returns them."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from models.mappings.servicetitan import (
    PLACEHOLDER_EMAIL_DETAIL,
    Extras,
    map_job,
    map_membership,
)
from models.standard import MappedOpportunity, MappingError

Record = dict[str, Any]


def _job(**overrides: Any) -> Record:
    job: Record = {
        "id": 17,
        "jobNumber": "17",
        "customerId": 500,
        "locationId": 600,
        "jobStatus": "Scheduled",
        "businessUnitId": 1101,
        "jobTypeId": 2201,
        "priority": "Normal",
        "summary": "<p>No cooling</p>",
        "customFields": [],
        "jobGeneratedLeadSource": None,
        "createdOn": "2024-03-01T10:00:00.1234567Z",
        "createdById": 7,
        "modifiedOn": "2024-03-05T10:00:00Z",
        "tagTypeIds": [3],
        "total": None,
    }
    job.update(overrides)
    return job


def _membership(**overrides: Any) -> Record:
    membership: Record = {
        "id": 88,
        "customerId": 500,
        "status": "Active",
        "followUpStatus": "NotAttempted",
        "billingFrequency": "Monthly",
        "createdOn": "2024-02-01T08:00:00Z",
        "modifiedOn": "2024-02-10T08:00:00Z",
        "customFields": [],
    }
    membership.update(overrides)
    return membership


def _customer(**overrides: Any) -> Record:
    customer: Record = {
        "id": 500,
        "active": True,
        "name": "Jane Q Public",
        "type": "Residential",
        "address": {"street": "1 Main St", "city": "Austin", "state": "TX", "zip": "78701"},
        "customFields": [],
        "createdOn": "2023-01-01T00:00:00Z",
        "modifiedOn": "2023-06-01T00:00:00Z",
    }
    customer.update(overrides)
    return customer


def _contact(ident: int, kind: str, value: str, created: str, **extra: Any) -> Record:
    return {
        "id": ident,
        "type": kind,
        "value": value,
        "memo": None,
        "phoneSettings": None,
        "createdOn": created,
        "modifiedOn": created,
        **extra,
    }


def _appointment(ident: int, created: str, modified: str, status: str = "Scheduled") -> Record:
    return {
        "id": ident,
        "jobId": 17,
        "appointmentNumber": f"17-{ident}",
        "status": status,
        "createdOn": created,
        "modifiedOn": modified,
    }


def _estimate(ident: int, created: str, modified: str, status: str = "Open") -> Record:
    return {
        "id": ident,
        "jobId": 17,
        "status": {"value": 0, "name": status},
        "createdOn": created,
        "modifiedOn": modified,
        "items": [],
    }


def _map_job(
    *,
    job: Record | None = None,
    customer: Record | None = None,
    contacts: list[Record] | None = None,
    appointments: list[Record] | None = None,
    estimates: list[Record] | None = None,
    placeholder_emails: frozenset[str] = frozenset(),
) -> MappedOpportunity:
    return map_job(
        job if job is not None else _job(),
        customer,
        contacts or [],
        appointments or [],
        estimates or [],
        placeholder_emails=placeholder_emails,
    )


def _both_models(
    customer: Record | None,
    contacts: list[Record],
    placeholder_emails: frozenset[str] = frozenset(),
) -> list[MappedOpportunity]:
    return [
        map_job(_job(), customer, contacts, [], [], placeholder_emails=placeholder_emails),
        map_membership(_membership(), customer, contacts, placeholder_emails=placeholder_emails),
    ]


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# --- Available Resource Fields ---


def test_details_hold_the_base_record_fields_at_top_level() -> None:
    job = _map_job(customer=_customer())
    assert job.details["id"] == 17
    assert job.details["jobStatus"] == "Scheduled"
    assert job.details["modifiedOn"] == "2024-03-05T10:00:00Z"
    assert job.details["tagTypeIds"] == [3]
    membership = map_membership(_membership(), _customer(), [])
    assert membership.details["id"] == 88
    assert membership.details["followUpStatus"] == "NotAttempted"


def test_details_hold_the_customer_under_the_customer_prefix() -> None:
    for opportunity in _both_models(_customer(), []):
        assert opportunity.details["customer:id"] == 500
        assert opportunity.details["customer:name"] == "Jane Q Public"
        assert opportunity.details["customer:address:city"] == "Austin"
        assert "customer:address" not in opportunity.details


def test_details_list_customer_contacts_newest_created_first_with_a_one_based_index() -> None:
    contacts = [
        _contact(1, "Email", "old@example.com", "2023-01-01T00:00:00Z"),
        _contact(2, "Email", "new@example.com", "2023-05-01T00:00:00Z"),
        _contact(3, "Phone", "5125550100", "2023-03-01T00:00:00Z"),
    ]
    for opportunity in _both_models(_customer(), contacts):
        details = opportunity.details
        assert [details[f"customer:contacts:{i}:id"] for i in (1, 2, 3)] == [2, 3, 1]
        assert details["customer:contacts:1:value"] == "new@example.com"
        assert "customer:contacts:4:id" not in details


@pytest.mark.parametrize(
    ("appointments", "expected_ids"),
    [
        pytest.param(
            [
                _appointment(1, "2024-03-02T00:00:00Z", "2024-03-02T00:00:00Z"),
                _appointment(3, "2024-03-09T00:00:00Z", "2024-03-09T00:00:00Z"),
                _appointment(2, "2024-03-04T00:00:00Z", "2024-03-20T00:00:00Z"),
            ],
            [3, 2, 1],
            id="out-of-order",
        ),
        pytest.param(
            [_appointment(4, "2024-03-02T00:00:00Z", "2024-03-02T00:00:00Z")],
            [4],
            id="single",
        ),
    ],
)
def test_details_list_appointments_newest_created_first_with_a_one_based_index(
    appointments: list[Record], expected_ids: list[int]
) -> None:
    details = _map_job(appointments=appointments).details
    ids = [details[f"appointments:{i}:id"] for i in range(1, len(expected_ids) + 1)]
    assert ids == expected_ids
    assert f"appointments:{len(expected_ids) + 1}:id" not in details


def test_details_list_estimates_newest_created_first_with_nested_fields_flattened() -> None:
    estimates = [
        _estimate(10, "2024-03-02T00:00:00Z", "2024-03-03T00:00:00Z", "Dismissed"),
        _estimate(11, "2024-03-06T00:00:00Z", "2024-03-06T00:00:00Z", "Sold"),
    ]
    details = _map_job(estimates=estimates).details
    assert details["estimates:1:id"] == 11
    assert details["estimates:1:status:name"] == "Sold"
    assert details["estimates:2:status:name"] == "Dismissed"
    assert details["estimates:2:items"] == []


def test_details_are_json_serialisable_and_inputs_are_left_unchanged() -> None:
    inputs = (
        _job(customFields=[{"typeId": 1, "name": "Source", "value": "Web"}]),
        _customer(),
        [_contact(1, "MobilePhone", "(512) 555-0100", "2023-01-01T00:00:00Z")],
        [_appointment(1, "2024-03-02T00:00:00Z", "2024-03-02T00:00:00Z")],
        [_estimate(2, "2024-03-02T00:00:00Z", "2024-03-02T00:00:00Z")],
    )
    before = copy.deepcopy(inputs)
    opportunity = map_job(*inputs)
    assert inputs == before
    assert orjson.loads(orjson.dumps(opportunity.details)) == opportunity.details


def test_models_are_named_job_and_membership() -> None:
    job, membership = _both_models(_customer(), [])
    assert (job.model, membership.model) == ("job", "membership")


# --- Email ---


@pytest.mark.parametrize(
    ("contacts", "expected"),
    [
        pytest.param([], None, id="no-contacts"),
        pytest.param(
            [_contact(1, "Phone", "5125550100", "2023-01-01T00:00:00Z")], None, id="only-phone"
        ),
        pytest.param(
            [_contact(1, "Email", "  Jane.Public@Example.COM ", "2023-01-01T00:00:00Z")],
            "jane.public@example.com",
            id="spaces-and-upper-case-normalized",
        ),
        pytest.param(
            [
                _contact(1, "Email", "older@example.com", "2023-01-01T00:00:00Z"),
                _contact(2, "Email", "newer@example.com", "2023-02-01T00:00:00Z"),
            ],
            "newer@example.com",
            id="first-in-list-order-is-the-newest-created",
        ),
        pytest.param(
            [
                _contact(1, "MobilePhone", "5125550100", "2023-03-01T00:00:00Z"),
                _contact(2, "Email", "jane@example.com", "2023-01-01T00:00:00Z"),
            ],
            "jane@example.com",
            id="skips-other-types",
        ),
        pytest.param(
            [_contact(1, "email", "jane@example.com", "2023-01-01T00:00:00Z")],
            "jane@example.com",
            id="type-compared-case-insensitively",
        ),
        pytest.param(
            [
                _contact(1, "Email", "not an address", "2023-02-01T00:00:00Z"),
                _contact(2, "Email", "jane@example.com", "2023-01-01T00:00:00Z"),
            ],
            "jane@example.com",
            id="unusable-value-falls-through-to-next-email",
        ),
        pytest.param(
            [
                _contact(1, "Email", "deleted@example.com", "2023-02-01T00:00:00Z", active=False),
                _contact(2, "Email", "jane@example.com", "2023-01-01T00:00:00Z", active=True),
            ],
            "jane@example.com",
            id="inactive-contact-ignored",
        ),
    ],
)
def test_email_is_the_value_of_the_first_customer_contact_whose_type_is_email(
    contacts: list[Record], expected: str | None
) -> None:
    for opportunity in _both_models(_customer(), contacts):
        assert opportunity.email == expected


def test_inactive_contacts_are_left_out_of_customer_contacts() -> None:
    contacts = [
        _contact(1, "Email", "deleted@example.com", "2023-02-01T00:00:00Z", active=False),
        _contact(2, "Email", "jane@example.com", "2023-01-01T00:00:00Z"),
    ]
    details = _map_job(customer=_customer(), contacts=contacts).details
    assert details["customer:contacts:1:id"] == 2
    assert "customer:contacts:2:id" not in details


@pytest.mark.parametrize(
    ("value", "flagged"),
    [
        pytest.param(" NoEmail@Tenant.Example ", True, id="placeholder"),
        pytest.param("jane@example.com", False, id="real-email"),
    ],
)
def test_placeholder_email_is_kept_on_the_opportunity_and_flagged_in_details(
    value: str, flagged: bool
) -> None:
    contacts = [_contact(1, "Email", value, "2023-01-01T00:00:00Z")]
    placeholders = frozenset({"noemail@tenant.example"})
    for opportunity in _both_models(_customer(), contacts, placeholders):
        assert opportunity.email == value.strip().lower()
        assert (PLACEHOLDER_EMAIL_DETAIL in opportunity.details) is flagged
        if flagged:
            assert opportunity.details[PLACEHOLDER_EMAIL_DETAIL] is True


# --- External ID / Contact ID / Created At ---


@pytest.mark.parametrize(
    ("ident", "expected"),
    [pytest.param(17, "17", id="integer"), pytest.param("abc-1", "abc-1", id="string")],
)
def test_external_id_is_the_base_record_id(ident: object, expected: str) -> None:
    assert _map_job(job=_job(id=ident)).external_id == expected
    assert map_membership(_membership(id=ident), None, []).external_id == expected


@pytest.mark.parametrize(
    ("customer", "expected"),
    [
        pytest.param(_customer(id=501), "501", id="customer-id"),
        pytest.param(None, "500", id="missing-customer-falls-back-to-customerId"),
    ],
)
def test_external_contact_id_is_the_customer_id(customer: Record | None, expected: str) -> None:
    for opportunity in _both_models(customer, []):
        assert opportunity.external_contact_id == expected


def test_external_contact_id_is_none_without_customer_or_customer_id() -> None:
    opportunity = _map_job(job=_job(customerId=None))
    assert opportunity.external_contact_id is None


def test_external_created_at_is_created_on() -> None:
    job, membership = _both_models(None, [])
    assert job.external_created_at == datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert membership.external_created_at == datetime(2024, 2, 1, 8, 0, tzinfo=UTC)


def test_external_created_at_is_none_when_created_on_is_missing() -> None:
    assert _map_job(job=_job(createdOn=None)).external_created_at is None


# --- External Updated At ---

_JOB_MODIFIED = "2024-03-05T10:00:00Z"


@pytest.mark.parametrize(
    ("appointments", "estimates", "expected"),
    [
        pytest.param([], [], _JOB_MODIFIED, id="missing-appointments-and-estimates"),
        pytest.param(
            [_appointment(1, "2024-03-02T00:00:00Z", "2024-03-03T00:00:00Z")],
            [_estimate(2, "2024-03-02T00:00:00Z", "2024-03-04T00:00:00Z")],
            _JOB_MODIFIED,
            id="job-modified-on-newest",
        ),
        pytest.param(
            [_appointment(1, "2024-03-02T00:00:00Z", "2024-03-03T00:00:00Z")],
            [_estimate(2, "2024-03-02T00:00:00Z", "2024-03-09T12:00:00Z")],
            "2024-03-09T12:00:00Z",
            id="estimate-newer-than-job-modified-on",
        ),
        pytest.param(
            [_appointment(1, "2024-03-02T00:00:00Z", "2024-03-08T00:00:00.5Z")],
            [],
            "2024-03-08T00:00:00.5Z",
            id="appointment-newer-estimates-missing",
        ),
        pytest.param(
            [
                _appointment(1, "2024-03-02T00:00:00Z", "2024-03-30T00:00:00Z"),
                _appointment(2, "2024-03-04T00:00:00Z", "2024-03-06T00:00:00Z"),
            ],
            [],
            "2024-03-06T00:00:00Z",
            id="only-the-newest-created-appointment-counts",
        ),
        pytest.param(
            [],
            [_estimate(2, "2024-03-02T00:00:00Z", "2024-03-05T12:00:00+02:00")],
            "2024-03-05T10:00:00Z",
            id="compared-as-instants",
        ),
    ],
)
def test_job_external_updated_at_is_the_most_recent_of_modified_on_appointment_and_estimate(
    appointments: list[Record], estimates: list[Record], expected: str
) -> None:
    opportunity = _map_job(appointments=appointments, estimates=estimates)
    assert opportunity.external_updated_at == _ts(expected)


def test_job_external_updated_at_ignores_a_missing_job_modified_on() -> None:
    opportunity = _map_job(
        job=_job(modifiedOn=None),
        appointments=[_appointment(1, "2024-03-02T00:00:00Z", "2024-03-03T00:00:00Z")],
    )
    assert opportunity.external_updated_at == _ts("2024-03-03T00:00:00Z")


def test_membership_external_updated_at_is_modified_on() -> None:
    opportunity = map_membership(_membership(), _customer(), [])
    assert opportunity.external_updated_at == _ts("2024-02-10T08:00:00Z")


# --- First / Last name ---


@pytest.mark.parametrize(
    ("name", "first"),
    [
        pytest.param("Jane Q Public", "Jane", id="three-words"),
        pytest.param("Cher", "Cher", id="one-word"),
    ],
)
def test_first_name_is_the_first_word_when_customer_name_has_no_comma(
    name: str, first: str
) -> None:
    for opportunity in _both_models(_customer(name=name), []):
        assert opportunity.first_name == first


@pytest.mark.parametrize(
    ("name", "last"),
    [
        pytest.param("Jane Q Public", "Q Public", id="three-words"),
        pytest.param("Cher", None, id="one-word"),
    ],
)
def test_last_name_is_everything_after_the_first_word_when_customer_name_has_no_comma(
    name: str, last: str | None
) -> None:
    for opportunity in _both_models(_customer(name=name), []):
        assert opportunity.last_name == last


@pytest.mark.parametrize(
    ("name", "first"),
    [
        pytest.param("Public, Jane", "Jane", id="one-comma"),
        pytest.param("Public, Jane, Jr", "Jane, Jr", id="two-commas"),
        pytest.param("Acme Property Mgmt,", None, id="nothing-after-comma"),
    ],
)
def test_first_name_is_text_after_the_first_comma_when_customer_name_has_a_comma(
    name: str, first: str | None
) -> None:
    for opportunity in _both_models(_customer(name=name), []):
        assert opportunity.first_name == first


@pytest.mark.parametrize(
    ("name", "last"),
    [
        pytest.param("Public, Jane", "Public", id="one-comma"),
        pytest.param("Van Der Berg, Anna, Jr", "Van Der Berg", id="two-commas"),
    ],
)
def test_last_name_is_text_before_the_first_comma_when_customer_name_has_a_comma(
    name: str, last: str
) -> None:
    for opportunity in _both_models(_customer(name=name), []):
        assert opportunity.last_name == last


# --- Phone ---


@pytest.mark.parametrize(
    ("contacts", "expected"),
    [
        pytest.param([], None, id="no-contacts"),
        pytest.param(
            [_contact(1, "Email", "jane@example.com", "2023-01-01T00:00:00Z")],
            None,
            id="only-email",
        ),
        pytest.param(
            [_contact(1, "Phone", "(512) 555-0100", "2023-01-01T00:00:00Z")],
            "+15125550100",
            id="only-phone",
        ),
        pytest.param(
            [
                _contact(1, "MobilePhone", "512.555.0111", "2023-02-01T00:00:00Z"),
                _contact(2, "Phone", "5125550100", "2023-01-01T00:00:00Z"),
            ],
            "+15125550111",
            id="mobile-before-phone-in-list-order",
        ),
        pytest.param(
            [
                _contact(1, "Phone", "5125550100", "2023-05-01T00:00:00Z"),
                _contact(2, "MobilePhone", "512-555-0111", "2023-01-01T00:00:00Z"),
            ],
            "+15125550111",
            id="mobile-wins-even-when-phone-comes-first",
        ),
        pytest.param(
            [
                _contact(1, "MobilePhone", "5125550111", "2023-01-01T00:00:00Z"),
                _contact(2, "MobilePhone", "5125550122", "2023-02-01T00:00:00Z"),
            ],
            "+15125550122",
            id="first-mobile-is-the-newest-created",
        ),
        pytest.param(
            [
                _contact(1, "mobilePhone", "5125550111", "2023-01-01T00:00:00Z"),
                _contact(2, "PHONE", "5125550100", "2023-02-01T00:00:00Z"),
            ],
            "+15125550111",
            id="type-compared-case-insensitively",
        ),
        pytest.param(
            [
                _contact(1, "MobilePhone", "call office", "2023-03-01T00:00:00Z"),
                _contact(2, "MobilePhone", "5125550122", "2023-02-01T00:00:00Z"),
                _contact(3, "Phone", "5125550100", "2023-04-01T00:00:00Z"),
            ],
            "+15125550122",
            id="unparseable-mobile-falls-through-to-next-mobile",
        ),
        pytest.param(
            [
                _contact(1, "MobilePhone", "555-0111", "2023-03-01T00:00:00Z"),
                _contact(2, "Phone", "5125550100 x12", "2023-02-01T00:00:00Z"),
            ],
            "+15125550100",
            id="unparseable-mobile-falls-through-to-phone",
        ),
        pytest.param(
            [_contact(1, "Fax", "5125550199", "2023-03-01T00:00:00Z")], None, id="fax-ignored"
        ),
    ],
)
def test_phone_is_the_first_mobile_phone_contact_else_the_first_phone_contact(
    contacts: list[Record], expected: str | None
) -> None:
    for opportunity in _both_models(_customer(), contacts):
        assert opportunity.phone == expected


# --- Status ---


def test_status_is_the_job_status_or_the_membership_status() -> None:
    assert _map_job(job=_job(jobStatus="Completed")).status == "Completed"
    assert map_membership(_membership(status="Expired"), None, []).status == "Expired"
    assert _map_job(job=_job(jobStatus=None)).status is None


# --- Missing customer and rejected records ---


def test_missing_customer_is_not_an_error_and_leaves_names_empty() -> None:
    for opportunity in _both_models(None, []):
        assert opportunity.first_name is None
        assert opportunity.last_name is None
        assert opportunity.email is None
        assert opportunity.phone is None
        assert opportunity.external_contact_id == "500"
        assert not any(key.startswith("customer:") for key in opportunity.details)


@pytest.mark.parametrize(
    ("ident", "message"),
    [
        pytest.param(None, "job: id is missing", id="none"),
        pytest.param("", "job: id is missing", id="empty"),
    ],
)
def test_job_without_id_is_rejected(ident: object, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        _map_job(job=_job(id=ident))


def test_job_with_no_id_field_is_rejected() -> None:
    job = _job()
    del job["id"]
    with pytest.raises(MappingError, match="job: id is missing"):
        _map_job(job=job)


def test_membership_without_id_is_rejected() -> None:
    with pytest.raises(MappingError, match="membership: id is missing"):
        map_membership(_membership(id=None), None, [])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"job": _job(modifiedOn="yesterday")},
            "job 17: modifiedOn is not a timestamp: 'yesterday'",
            id="job-modifiedOn",
        ),
        pytest.param(
            {"job": _job(createdOn=20240301)},
            "job 17: createdOn is not a timestamp: 20240301",
            id="job-createdOn",
        ),
        pytest.param(
            {"appointments": [_appointment(1, "2024-03-02T00:00:00Z", "soon")]},
            "job 17: appointments:1:modifiedOn is not a timestamp: 'soon'",
            id="appointment-modifiedOn",
        ),
        pytest.param(
            {"estimates": [_estimate(1, "2024-03-02T00:00:00Z", "13/03/2024")]},
            "job 17: estimates:1:modifiedOn is not a timestamp: '13/03/2024'",
            id="estimate-modifiedOn",
        ),
    ],
)
def test_job_with_an_unparseable_timestamp_is_rejected_naming_the_field(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(MappingError) as raised:
        _map_job(**kwargs)
    assert str(raised.value) == message


@pytest.mark.parametrize("field", ["createdOn", "modifiedOn"])
def test_membership_with_an_unparseable_timestamp_is_rejected_naming_the_field(
    field: str,
) -> None:
    with pytest.raises(MappingError) as raised:
        map_membership(_membership(**{field: "never"}), None, [])
    assert str(raised.value) == f"membership 88: {field} is not a timestamp: 'never'"


# --- deleted children and source stamps (the merge's stale-write guard) ---


def test_deleted_appointments_and_estimates_are_left_out_of_details_and_external_updated_at() -> (
    None
):
    kept = _estimate(1, "2024-03-02T00:00:00Z", "2024-03-06T00:00:00Z")
    deleted = {**_estimate(2, "2024-03-03T00:00:00Z", "2024-03-09T00:00:00Z"), "active": False}
    gone = {**_appointment(3, "2024-03-04T00:00:00Z", "2024-03-10T00:00:00Z"), "active": False}
    opp = _map_job(appointments=[gone], estimates=[kept, deleted])
    assert opp.details["estimates:1:id"] == 1 and "estimates:2:id" not in opp.details
    assert not any(key.startswith("appointments:") for key in opp.details)
    assert opp.external_updated_at == _ts("2024-03-06T00:00:00Z")


def test_source_stamps_name_every_record_the_opportunity_is_composed_of_deleted_ones_included() -> (
    None
):
    contacts = [
        _contact(1, "Email", "jane@example.com", "2023-02-01T00:00:00Z"),
        _contact(
            2,
            "Email",
            "old@example.com",
            "2023-01-01T00:00:00Z",
            active=False,
            modifiedOn="2024-04-01T00:00:00Z",
        ),
    ]
    appointment = _appointment(3, "2024-03-04T00:00:00Z", "2024-03-07T00:00:00Z")
    kept = _estimate(1, "2024-03-02T00:00:00Z", "2024-03-06T00:00:00Z")
    deleted = {**_estimate(2, "2024-03-03T00:00:00Z", "2024-03-09T00:00:00Z"), "active": False}
    job = _map_job(
        customer=_customer(),
        contacts=contacts,
        appointments=[appointment],
        estimates=[kept, deleted],
    )
    assert job.source_stamps == {
        "jobs:17": _ts("2024-03-05T10:00:00Z"),
        "customers:500": _ts("2023-06-01T00:00:00Z"),
        "customer_contacts:1": _ts("2023-02-01T00:00:00Z"),
        "customer_contacts:2": _ts("2024-04-01T00:00:00Z"),
        "appointments:3": _ts("2024-03-07T00:00:00Z"),
        "estimates:1": _ts("2024-03-06T00:00:00Z"),
        "estimates:2": _ts("2024-03-09T00:00:00Z"),
    }
    membership = map_membership(_membership(), None, contacts[:1])
    assert membership.source_stamps == {
        "memberships:88": _ts("2024-02-10T08:00:00Z"),
        "customer_contacts:1": _ts("2023-02-01T00:00:00Z"),
    }


def test_placeholder_email_patterns_flag_the_email_in_details() -> None:
    contacts = [_contact(1, "Email", " NoEmail@Somewhere.Example ", "2023-01-01T00:00:00Z")]
    for opportunity in _both_models(_customer(), contacts, frozenset({"noemail@*"})):
        assert opportunity.email == "noemail@somewhere.example"
        assert opportunity.details[PLACEHOLDER_EMAIL_DETAIL] is True
    real = [_contact(1, "Email", "jane@example.com", "2023-01-01T00:00:00Z")]
    for opportunity in _both_models(_customer(), real, frozenset({"noemail@*"})):
        assert PLACEHOLDER_EMAIL_DETAIL not in opportunity.details


# -- seed 002 "Selecting Object Resources": one test per optional resource (issue 14) ------------


def _stamp(day: int) -> str:
    return f"2024-03-{day:02d}T09:00:00Z"


def _extras_job(extras: Extras, **job: Any) -> MappedOpportunity:
    appointments = [
        {"id": 31, "jobId": 17, "createdOn": _stamp(2), "modifiedOn": _stamp(2)},
        {"id": 32, "jobId": 17, "createdOn": _stamp(3), "modifiedOn": _stamp(3)},
    ]
    estimates = [
        {"id": 41, "jobId": 17, "soldBy": 901, "createdOn": _stamp(2), "modifiedOn": _stamp(2)},
        {"id": 42, "jobId": 17, "soldBy": 902, "createdOn": _stamp(4), "modifiedOn": _stamp(4)},
    ]
    return map_job(_job(**job), _customer(), [], appointments, estimates, extras=extras)


def test_appointment_assignments_hang_under_their_appointment_newest_assigned_first() -> None:
    assigned = [
        {"id": 1, "appointmentId": 32, "technicianName": "Ana", "assignedOn": _stamp(3),
         "modifiedOn": _stamp(3), "active": True},
        {"id": 2, "appointmentId": 32, "technicianName": "Ben", "assignedOn": _stamp(4),
         "modifiedOn": _stamp(4), "active": True},
        {"id": 3, "appointmentId": 32, "technicianName": "Gone", "assignedOn": _stamp(5),
         "modifiedOn": _stamp(5), "active": False},
    ]  # fmt: skip
    opp = _extras_job(Extras(assignments={"32": assigned}))
    assert opp.details["appointments:1:id"] == 32
    assert opp.details["appointments:1:assignments:1:technicianName"] == "Ben"
    assert opp.details["appointments:1:assignments:2:technicianName"] == "Ana"
    assert "appointments:1:assignments:3:technicianName" not in opp.details
    assert "appointments:2:assignments:1:id" not in opp.details
    assert opp.source_stamps["appointment_assignments:3"] is not None, "deleted one still stamped"


def test_cancel_reasons_list_the_jobs_canceled_logs_newest_first_with_the_reason_name() -> None:
    logs = [
        {"id": 71, "jobId": 17, "reasonId": 9101, "memo": "first", "createdOn": _stamp(3),
         "active": True},
        {"id": 72, "jobId": 17, "reasonId": 9102, "memo": "again", "createdOn": _stamp(6),
         "active": True},
    ]  # fmt: skip
    reasons = {
        "71": [{"id": 9101, "name": "Customer rescheduled", "modifiedOn": _stamp(1)}],
        "72": [{"id": 9102, "name": "Price too high", "modifiedOn": _stamp(1)}],
    }
    opp = _extras_job(Extras(cancel_logs=logs, cancel_reasons=reasons))
    assert opp.details["cancelReasons:1:name"] == "Price too high"
    assert opp.details["cancelReasons:1:memo"] == "again"
    assert opp.details["cancelReasons:2:name"] == "Customer rescheduled"
    assert opp.source_stamps["job_canceled_logs:72"] == datetime(2024, 3, 6, 9, tzinfo=UTC)
    assert "cancel_reasons:9102" in opp.source_stamps


def test_tag_types_of_the_job_and_of_its_customer_show_their_names() -> None:
    tags = [
        {"id": 5501, "name": "Warranty", "createdOn": _stamp(1), "modifiedOn": _stamp(1)},
        {"id": 5502, "name": "VIP", "createdOn": _stamp(2), "modifiedOn": _stamp(2)},
    ]
    opp = _extras_job(Extras(tag_types=tags, customer_tag_types={"500": [tags[0]]}))
    assert opp.details["tagTypes:1:name"] == "VIP"
    assert opp.details["tagTypes:2:name"] == "Warranty"
    assert opp.details["customer:tagTypes:1:name"] == "Warranty"
    assert {"tag_types:5501", "tag_types:5502"} <= set(opp.source_stamps)


def test_campaign_of_the_job_is_a_single_record_under_campaign() -> None:
    campaign = {"id": 3301, "name": "Google Ads", "active": True, "modifiedOn": _stamp(1),
                "category": {"id": 3401, "name": "Paid Search", "active": True}}  # fmt: skip
    opp = _extras_job(Extras(campaign=campaign), campaignId=3301)
    assert opp.details["campaign:name"] == "Google Ads"
    assert opp.details["campaign:category:name"] == "Paid Search"
    assert "campaigns:3301" in opp.source_stamps


def test_zone_is_the_zone_of_the_jobs_own_location() -> None:
    locations = [
        {"id": 600, "customerId": 500, "name": "Home", "zoneId": 6601, "modifiedOn": _stamp(1)},
        {"id": 601, "customerId": 500, "name": "Cabin", "zoneId": 6602, "modifiedOn": _stamp(1)},
    ]
    zones = {
        "600": [{"id": 6601, "name": "North", "modifiedOn": _stamp(1)}],
        "601": [{"id": 6602, "name": "South", "modifiedOn": _stamp(1)}],
    }
    opp = _extras_job(Extras(locations=locations, zone=zones), locationId=600)
    assert opp.details["location:name"] == "Home"
    assert opp.details["zone:name"] == "North"
    assert "zones:6602" not in opp.source_stamps


def test_sold_by_resolves_estimates_and_job_to_employees_or_technicians() -> None:
    employee = {"id": 901, "name": "Olivia Grant", "role": "CSR", "modifiedOn": _stamp(1),
                "permissions": [{"id": 1, "value": "true"}]}  # fmt: skip
    technician = {"id": 902, "name": "Ben Carter", "modifiedOn": _stamp(1)}
    opp = _extras_job(
        Extras(
            sold_by_employee=employee,
            estimate_sold_by_employee={"41": [employee]},
            estimate_sold_by_technician={"42": [technician]},
        ),
        soldById=901,
    )
    assert opp.details["estimates:1:id"] == 42
    assert opp.details["estimates:1:soldByTechnician:name"] == "Ben Carter"
    assert opp.details["estimates:2:soldByEmployee:name"] == "Olivia Grant"
    assert opp.details["soldByEmployee:role"] == "CSR"
    assert not any("permissions" in key for key in opp.details)
    assert {"employees:901", "technicians:902"} <= set(opp.source_stamps)


def test_invoices_list_newest_first_with_their_items_from_the_item_feed() -> None:
    invoices = [
        {"id": 81, "total": "100.00", "balance": "100.00", "createdOn": _stamp(2),
         "modifiedOn": _stamp(2), "active": True, "items": [{"id": 999}], "job": {"id": 17}},
        {"id": 82, "total": "50.00", "balance": "0.00", "createdOn": _stamp(5),
         "modifiedOn": _stamp(5), "active": True, "items": None, "job": {"id": 17}},
    ]  # fmt: skip
    items = {
        "81": [
            {"id": 811, "skuName": "Fee", "createdOn": _stamp(2), "modifiedOn": _stamp(2)},
            {"id": 812, "skuName": "Part", "createdOn": _stamp(3), "modifiedOn": _stamp(3)},
        ]
    }
    opp = _extras_job(Extras(invoices=invoices, invoice_items=items))
    assert opp.details["invoices:1:id"] == 82 and opp.details["invoices:1:balance"] == "0.00"
    assert opp.details["invoices:2:items:1:skuName"] == "Part"
    assert opp.details["invoices:2:items:2:skuName"] == "Fee"
    assert not any(key.startswith("invoices:2:items:") and "999" in str(v)
                   for key, v in opp.details.items()), "inline items are replaced by the feed"  # fmt: skip
    assert {"invoices:81", "invoice_items:812"} <= set(opp.source_stamps)


def test_business_unit_and_job_type_are_single_records() -> None:
    opp = _extras_job(
        Extras(
            business_unit={"id": 1101, "name": "HVAC - Service", "modifiedOn": _stamp(1)},
            job_type={"id": 2201, "name": "No Cool", "modifiedOn": _stamp(1)},
        )
    )
    assert opp.details["businessUnit:name"] == "HVAC - Service"
    assert opp.details["jobType:name"] == "No Cool"


def test_membership_type_and_recurring_services_and_events_on_membership_details() -> None:
    extras = Extras(
        membership_type={"id": 4401, "name": "Comfort Club", "modifiedOn": _stamp(1)},
        recurring_services=[
            {"id": 73, "name": "Spring visit", "createdOn": _stamp(1), "modifiedOn": _stamp(1)}
        ],
        recurring_service_events=[
            {"id": 741, "status": "Contacted", "createdOn": _stamp(2), "modifiedOn": _stamp(2)},
            {
                "id": 742,
                "status": "NotAttempted",
                "createdOn": _stamp(3),
                "modifiedOn": _stamp(3),
                "active": True,
            },
        ],
        sold_by_technician={"id": 902, "name": "Ben Carter", "modifiedOn": _stamp(1)},
    )
    opp = map_membership(_membership(soldById=902), _customer(), [], extras=extras)
    assert opp.details["membershipType:name"] == "Comfort Club"
    assert opp.details["recurringServices:1:name"] == "Spring visit"
    assert opp.details["recurringServiceEvents:1:status"] == "NotAttempted"
    assert opp.details["soldByTechnician:name"] == "Ben Carter"
    assert {"membership_types:4401", "recurring_service_events:742"} <= set(opp.source_stamps)


def test_selector_resources_never_change_external_updated_at() -> None:
    plain = _extras_job(Extras())
    later = "2030-01-01T00:00:00Z"
    full = _extras_job(
        Extras(
            campaign={"id": 1, "name": "x", "modifiedOn": later},
            invoices=[{"id": 81, "createdOn": later, "modifiedOn": later, "active": True}],
        )
    )
    assert full.external_updated_at == plain.external_updated_at
    assert full.source_stamps["invoices:81"] == datetime(2030, 1, 1, tzinfo=UTC)
