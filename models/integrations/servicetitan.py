"""ServiceTitan integration settings and credentials (seed 002 "Configuration Options").

Validated when a tenants file is applied, so a mistake is reported with its file, line and key
before anything is stored; the provider (``crmsync.providers.servicetitan``) only reads them.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from models.integrations.common import IntegrationSettings
from models.mappings.servicetitan import ACTIVITY_KINDS

NoteTarget = Literal["none", "job", "customer", "location"]
NoteSource = Literal["job", "customer", "location"]
OpportunityModel = Literal["job", "membership"]
JobResource = Literal[
    "appointments",
    "appointment_assignments",
    "estimates",
    "cancel_reasons",
    "tag_types",
    "campaigns",
    "zones",
    "employees",
    "technicians",
    "invoices",
    "business_units",
    "job_types",
]
"""Optional resources of a Job opportunity (seed 002, "Selecting Object Resources"; the README's
ServiceTitan table says what each adds to the details and which scope it needs)."""
MembershipResource = Literal[
    "membership_types",
    "recurring_services",
    "recurring_service_events",
    "employees",
    "technicians",
    "zones",
    "tag_types",
    "business_units",
]
"""Optional resources of a Membership opportunity (seed 002's Memberships scopes)."""
DEFAULT_JOB_RESOURCES: tuple[JobResource, ...] = ("appointments", "estimates")
"""Seed 002: "defaulted the configuration with the most commonly used optional resources".
Estimates drive the sales follow-up (Rehash) and appointments the appointment and Speed to Lead
removal rules the seed's "Recommended targeting" describes; both feed External Updated At."""
DEFAULT_MEMBERSHIP_RESOURCES: tuple[MembershipResource, ...] = ("membership_types",)
"""A membership's type (its plan name) is what membership campaigns segment on; the rest of the
membership resources are per-visit detail, off until chosen."""
ASSIGNMENTS_RULE = (
    "appointment_assignments can only be selected together with appointments (seed 002: "
    '"Appointment Assignments - Can only be enabled if Appointments is selected")'
)
PROD_API = "https://api.servicetitan.io"
PROD_AUTH = "https://auth.servicetitan.io/connect/token"


class ServiceTitanCredentialsModel(BaseModel):
    """What an operator pastes from ServiceTitan's My Apps / API Application Access screens."""

    model_config = ConfigDict(extra="forbid")
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    app_key: SecretStr
    tenant_id: str = Field(pattern=r"^\d+$", description="numeric ServiceTitan tenant id")

    @field_validator("tenant_id", mode="before")
    @classmethod
    def _tenant_as_text(cls, v: object) -> object:
        return str(v) if isinstance(v, int) else v


class ServiceTitanSettings(IntegrationSettings):
    """Integration options of seed 002 ("Configuration Options"), with the seed's defaults."""

    crm: ClassVar[str] = "ServiceTitan"
    activity_kinds: ClassVar[tuple[str, ...]] = ACTIVITY_KINDS
    opportunity_models: list[OpportunityModel] = Field(
        default_factory=lambda: list[OpportunityModel](["job"]), min_length=1
    )
    job_resources: list[JobResource] = Field(
        default_factory=lambda: list(DEFAULT_JOB_RESOURCES),
        description="optional Job resources; required ones (job, customer, contacts) are always on",
    )
    membership_resources: list[MembershipResource] = Field(
        default_factory=lambda: list(DEFAULT_MEMBERSHIP_RESOURCES),
        description="optional Membership resources; required ones (membership, customer, "
        "contacts) are always on",
    )
    note_sources: list[NoteSource] = Field(
        default_factory=lambda: list[NoteSource](["job", "customer", "location"]),
        min_length=1,
        description="Issue 15: which notes are read. Job notes come from an export (cheap); "
        "customer and location notes have no export, so each customer or location a sync "
        "touches costs one request — on a first sync, every customer changed in the window",
    )
    note_sweep_customers: int = Field(
        default=20,
        ge=0,
        le=1000,
        description="Issue 15: customers whose notes are re-read each sync although nothing of "
        "theirs changed, in turn, so a note on a quiet customer still arrives (0: none)",
    )
    push_outgoing_campaign_messages: NoteTarget = "none"
    push_outgoing_campaign_messages_content: bool = False
    push_incoming_messages: NoteTarget = "none"
    push_incoming_messages_content: bool = False
    push_outgoing_manual_messages: NoteTarget = "none"
    push_outgoing_manual_messages_content: bool = False
    push_campaign_events: NoteTarget = "none"

    @field_validator("job_resources")
    @classmethod
    def _assignments_need_appointments(cls, v: list[JobResource]) -> list[JobResource]:
        if "appointment_assignments" in v and "appointments" not in v:
            raise ValueError(ASSIGNMENTS_RULE)
        return list(dict.fromkeys(v))

    @field_validator("membership_resources")
    @classmethod
    def _unique(cls, v: list[MembershipResource]) -> list[MembershipResource]:
        return list(dict.fromkeys(v))
