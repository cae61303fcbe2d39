"""ServiceTitan integration settings and credentials (seed 002 "Configuration Options").

Validated when a tenants file is applied, so a mistake is reported with its file, line and key
before anything is stored; the provider (``crmsync.providers.servicetitan``) only reads them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from models.integrations.common import PlaceholderEmails

NoteTarget = Literal["none", "job", "customer", "location"]
OpportunityModel = Literal["job", "membership"]
JobResource = Literal["appointments", "estimates"]
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
        default_factory=lambda: list[JobResource](["appointments", "estimates"])
    )
    placeholder_emails: PlaceholderEmails = Field(default_factory=list)
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
