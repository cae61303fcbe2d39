"""LeadPerfection integration settings and credentials (seed 001: setup and user options).

Validated when a tenants file is applied; the provider (``crmsync.providers.leadperfection``)
only reads them.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.leadperfection import DEFAULT_TIMEZONE
from models.integrations.common import InboundActivities, PlaceholderEmails, own_kinds
from models.mappings.leadperfection import ACTIVITY_KINDS


class LeadPerfectionCredentialsModel(BaseModel):
    """What the seed's setup asks for: the LP client id and the API user's credentials, plus the
    app key LP issues and the customer's server id (``https://{serverid}.leadperfection.com``;
    optional when the integration sets ``base_url``)."""

    model_config = ConfigDict(extra="forbid")
    serverid: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
        description="LP server id, e.g. api, apitest or a customer subdomain",
    )
    clientid: str = Field(min_length=1, description="LP client (company) code, e.g. wq55a")
    username: str = Field(min_length=1)
    password: SecretStr
    appkey: SecretStr

    @field_validator("password", "appkey")
    @classmethod
    def _not_blank(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value():
            raise ValueError("must not be empty")
        return v


class LeadPerfectionSettings(BaseModel):
    """Integration options: seed 001's push flags with its defaults, plus how to read LP."""

    model_config = ConfigDict(extra="forbid")
    timezone: str = Field(
        default=DEFAULT_TIMEZONE,
        description="IANA zone of LP's naive timestamps (the customer's wall clock)",
    )
    push_communications: bool = True
    push_to_call_logs: bool = False
    push_to_notes: bool = True
    push_to_production_notes: bool = False
    placeholder_emails: PlaceholderEmails = Field(default_factory=list)
    page_size: int = Field(default=500, ge=1, le=5000, description="GetLead PageSize")
    inbound_activities: InboundActivities = Field(
        default_factory=InboundActivities,
        validate_default=True,
        description="Prospect, lead and job notes and call history into the hub (issue 15); "
        "LP has kinds note and call, read from the GetLead pages the sync reads anyway",
    )
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

    @field_validator("inbound_activities")
    @classmethod
    def _lp_kinds(cls, v: InboundActivities) -> InboundActivities:
        """LP holds notes and call history only (crm-apis.md §2.5): a tenants file that names
        another kind is told so rather than left reading nothing (the default names every kind
        so that a CRM's own kinds are all read)."""
        return own_kinds(v, ACTIVITY_KINDS, "LeadPerfection")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v
