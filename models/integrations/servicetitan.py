"""ServiceTitan integration settings and credentials (seed 002 "Configuration Options").

Validated when a tenants file is applied, so a mistake is reported with its file, line and key
before anything is stored; the provider (``crmsync.providers.servicetitan``) only reads them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from models.integrations.common import InboundActivities, PlaceholderEmails, own_kinds
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


class ServiceTitanSettings(BaseModel):
    """Integration options of seed 002 ("Configuration Options"), with the seed's defaults."""

    model_config = ConfigDict(extra="forbid")
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
    placeholder_emails: PlaceholderEmails = Field(default_factory=list)
    inbound_activities: InboundActivities = Field(
        default_factory=InboundActivities,
        validate_default=True,
        description="Issue 15: job, customer and location notes into the hub (kind note); off "
        "by default",
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
    # Seed 003 points 1-2: background delivery by default; real time on request.
    real_time: bool = Field(
        default=False,
        description="Deliver a push before record_activity returns (seed 003 'Real-Time')",
    )
    real_time_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="How long record_activity waits for a real-time push; a slower CRM call "
        "completes in the background, a failed one is retried from the outbox",
    )

    @field_validator("job_resources")
    @classmethod
    def _assignments_need_appointments(cls, v: list[JobResource]) -> list[JobResource]:
        if "appointment_assignments" in v and "appointments" not in v:
            raise ValueError(ASSIGNMENTS_RULE)
        return list(dict.fromkeys(v))

    @field_validator("inbound_activities")
    @classmethod
    def _st_kinds(cls, v: InboundActivities) -> InboundActivities:
        """ServiceTitan holds notes only (job, customer and location notes; tenant-jpm-v2,
        tenant-crm-v2): a tenants file naming another kind is told so rather than left reading
        nothing (the default names every kind so that a CRM's own kinds are all read)."""
        return own_kinds(v, ACTIVITY_KINDS, "ServiceTitan")

    @field_validator("membership_resources")
    @classmethod
    def _unique(cls, v: list[MembershipResource]) -> list[MembershipResource]:
        return list(dict.fromkeys(v))
