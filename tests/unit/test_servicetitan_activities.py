"""Issue 15: ServiceTitan notes as inbound activities (``models.mappings.servicetitan``), pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from models.integrations.servicetitan import ServiceTitanSettings
from models.mappings.servicetitan import map_crm_notes, map_job_note, map_job_notes, map_note
from models.standard import MappingError


def job_note(**kw: Any) -> dict[str, Any]:
    """A record of tenant-jpm-v2 ``export/job-notes`` (``Jpm.V2.ExportJobNotesResponse``)."""
    return {
        "id": 80000001,
        "active": True,
        "text": "Gate code 1234",
        "isPinned": False,
        "createdById": 42,
        "createdOn": "2026-12-01T10:00:00.1234567Z",
        "modifiedOn": "2026-12-02T11:00:00Z",
        "jobId": 40000270,
        **kw,
    }


def test_a_job_note_names_the_jobs_opportunity_by_the_exports_id() -> None:
    act = map_job_note(job_note())
    assert (act.kind, act.external_id, act.parent) == ("note", "80000001", "jobs:40000270")
    assert act.opportunity_ref == ("job", "40000270") and act.contact_ref is None
    assert (act.subject, act.body, act.author) == (None, "Gate code 1234", "42")
    assert act.created_at == datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert act.modified_at == datetime(2026, 12, 2, 11, tzinfo=UTC)
    assert act.deleted is False and act.payload["isPinned"] is False


def test_a_job_note_exported_inactive_is_a_deletion() -> None:
    assert map_job_note(job_note(active=False)).deleted is True


def test_customer_and_location_notes_name_the_customer_as_contact() -> None:
    note = {k: v for k, v in job_note().items() if k not in ("active", "jobId")}
    (on_customer,), _ = map_crm_notes([note], "customers", "10000264", "10000264", "customers")
    assert on_customer.parent == "customers:10000264" and on_customer.contact_ref == "10000264"
    assert on_customer.opportunity_ref is None and on_customer.deleted is False
    on_location = map_note(note, "locations", "20000148", "10000264")
    assert on_location.parent == "locations:20000148" and on_location.contact_ref == "10000264"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": None}, "id is missing"),
        ({"id": "abc"}, "id is missing"),
        ({"jobId": None}, "jobId is missing"),
        ({"modifiedOn": "yesterday"}, "modifiedOn is not a timestamp"),
        ({"modifiedOn": None}, "modifiedOn is missing"),
        ({"text": 12}, "text is not a string"),
    ],
)
def test_a_malformed_note_is_rejected_with_the_reason(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        map_job_note(job_note(**change))
    good, rejects = map_job_notes([job_note(id=1), job_note(**change)], "job_notes")
    assert [a.external_id for a in good] == ["1"]
    assert len(rejects) == 1 and reason in rejects[0].reason
    assert rejects[0].stream == "job_notes"


def test_inbound_activities_are_off_by_default_and_only_the_note_kind_exists() -> None:
    settings = ServiceTitanSettings()
    assert settings.inbound_activities.enabled is False
    assert ServiceTitanSettings.model_validate(
        {"inbound_activities": {"enabled": True, "kinds": ["note"]}}
    ).inbound_activities.wants("note")
    with pytest.raises(ValidationError, match="ServiceTitan has no email activities"):
        ServiceTitanSettings.model_validate({"inbound_activities": {"kinds": ["note", "email"]}})
