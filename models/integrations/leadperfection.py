"""LeadPerfection integration settings and credentials (seed 001: setup and user options).

Validated when a tenants file is applied; the provider (``crmsync.providers.leadperfection``)
only reads them.
"""

from __future__ import annotations

from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.leadperfection import DEFAULT_TIMEZONE
from models.integrations.common import IntegrationSettings
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


class LeadPerfectionSettings(IntegrationSettings):
    """Integration options: seed 001's push flags with its defaults, plus how to read LP."""

    crm: ClassVar[str] = "LeadPerfection"
    activity_kinds: ClassVar[tuple[str, ...]] = ACTIVITY_KINDS
    timezone: str = Field(
        default=DEFAULT_TIMEZONE,
        description="IANA zone of LP's naive timestamps (the customer's wall clock)",
    )
    push_communications: bool = True
    push_to_call_logs: bool = False
    push_to_notes: bool = True
    push_to_production_notes: bool = False
    page_size: int = Field(default=500, ge=1, le=5000, description="GetLead PageSize")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v
