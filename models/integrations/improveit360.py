"""improveit360 integration settings and credentials (seed 000: objects, OAuth, push options).

improveit360 is a managed package on Salesforce: the objects and lookup fields are the org's own,
so they are settings with the package's defaults. Validated when a tenants file is applied; the
provider (``crmsync.providers.improveit360``) only reads them.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.salesforce import (
    DEFAULT_API_VERSION,
    SalesforceCredentials,
    normalize_api_version,
    soql_identifier,
)
from models.integrations.common import IntegrationSettings
from models.mappings.improveit360 import FieldPaths

PushLocation = Literal["contact_note", "opportunity_task"]
CampaignEvent = Literal["launched", "first_message_sent", "removed", "completed"]
ALL_CAMPAIGN_EVENTS: tuple[CampaignEvent, ...] = (
    "launched",
    "first_message_sent",
    "removed",
    "completed",
)
_API_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,79}$"


class Improveit360CredentialsModel(BaseModel):
    """The connected app's consumer key/secret and exactly one grant (seed 000: "OAuth
    (Credentials)"): a refresh token from the customer's OAuth consent, or a username, password
    and security token (username-password flow, for sandboxes and service users)."""

    model_config = ConfigDict(extra="forbid")
    client_id: str = Field(min_length=1, description="Connected app consumer key")
    client_secret: SecretStr | None = Field(default=None, description="Consumer secret")
    refresh_token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None

    @model_validator(mode="after")
    def _one_grant(self) -> Improveit360CredentialsModel:
        has_refresh = bool(self.refresh_token and self.refresh_token.get_secret_value())
        has_password = bool(self.username) or bool(
            self.password and self.password.get_secret_value()
        )
        if has_refresh == has_password:
            raise ValueError(
                "configure exactly one grant: refresh_token (OAuth refresh-token flow) or "
                "username + password (+ security_token) for the username-password flow"
            )
        if has_password and not (self.username and self.password):
            raise ValueError("the username-password flow needs both username and password")
        if has_password and not self.client_secret:
            raise ValueError("the username-password flow needs client_secret")
        return self

    def connector_credentials(self) -> SalesforceCredentials:
        def plain(value: SecretStr | None) -> str | None:
            return value.get_secret_value() if value is not None else None

        return SalesforceCredentials(
            client_id=self.client_id,
            client_secret=plain(self.client_secret),
            refresh_token=plain(self.refresh_token),
            username=self.username,
            password=plain(self.password),
            security_token=plain(self.security_token),
        )


class Improveit360Objects(BaseModel):
    """Object API names in the customer's org. The defaults are the emulator's (the i360core__
    namespace is confirmed, the object names are our reading of the package); a real org that
    differs is matched by setting them."""

    model_config = ConfigDict(extra="forbid")
    sales_opportunity: str = Field(default="i360core__Sales_Opportunity__c", pattern=_API_NAME)
    sales_appointment: str = Field(default="i360core__Sales_Appointment__c", pattern=_API_NAME)
    project: str = Field(default="i360core__Project__c", pattern=_API_NAME)
    project_activity: str = Field(default="i360core__Project_Activity__c", pattern=_API_NAME)
    contact: str = Field(default="Contact", pattern=_API_NAME)
    account: str = Field(default="Account", pattern=_API_NAME)


class Improveit360StandardFields(BaseModel):
    """Field API names the links between objects and the hub's standard fields are read from."""

    model_config = ConfigDict(extra="forbid")
    opportunity_contact: str = Field(
        default="i360core__Contact__c",
        pattern=_API_NAME,
        description="Sales Opportunity → Contact lookup (External Contact ID)",
    )
    opportunity_account: str = Field(
        default="i360core__Account__c",
        pattern=_API_NAME,
        description="Sales Opportunity → Account lookup",
    )
    opportunity_status: str = Field(
        default="i360core__Status__c", pattern=_API_NAME, description="Status"
    )
    appointment_opportunity: str = Field(
        default="i360core__Sales_Opportunity__c",
        pattern=_API_NAME,
        description="Sales Appointment → Sales Opportunity lookup",
    )
    project_opportunity: str = Field(
        default="i360core__Sales_Opportunity__c",
        pattern=_API_NAME,
        description="Project → Sales Opportunity lookup",
    )
    activity_project: str = Field(
        default="i360core__Project__c",
        pattern=_API_NAME,
        description="Project Activity → Project lookup",
    )
    contact_first_name: str = Field(default="FirstName", pattern=_API_NAME)
    contact_last_name: str = Field(default="LastName", pattern=_API_NAME)
    contact_email: str = Field(default="Email", pattern=_API_NAME)
    contact_phones: list[str] = Field(
        default_factory=lambda: ["MobilePhone", "Phone"],
        description="Contact phone fields, most preferred first",
    )
    account_phones: list[str] = Field(default_factory=lambda: ["Phone"])

    @field_validator("contact_phones", "account_phones")
    @classmethod
    def _api_names(cls, v: list[str]) -> list[str]:
        for name in v:
            soql_identifier(name)
        return list(dict.fromkeys(v))

    def paths(self) -> FieldPaths:
        return FieldPaths(
            opportunity_contact=self.opportunity_contact,
            opportunity_status=self.opportunity_status,
            contact_first_name=self.contact_first_name,
            contact_last_name=self.contact_last_name,
            contact_email=self.contact_email,
            contact_phones=tuple(self.contact_phones),
            account_phones=tuple(self.account_phones),
        )


class Improveit360Settings(IntegrationSettings):
    """Integration options: seed 000's (objects, project activities, push events and where they
    go) plus what a real org needs to be matched without code changes."""

    crm: ClassVar[str] = "improveit360"
    objects: Improveit360Objects = Field(default_factory=Improveit360Objects)
    standard_fields: Improveit360StandardFields = Field(default_factory=Improveit360StandardFields)
    sync_project_activities: bool = Field(
        default=False, description="Seed 000: Project (and optionally Project Activities)"
    )
    api_version: str = Field(default=DEFAULT_API_VERSION, description="REST API version, e.g. 60.0")
    overlap_seconds: int = Field(default=300, ge=0, le=86_400)
    page_size: int = Field(
        default=2000, ge=1, le=50_000, description="Records per page (one SOQL query)"
    )
    min_remaining_api_calls: int | None = Field(
        default=None,
        ge=0,
        description="Stop before the org's daily API requests fall below this many",
    )
    # Push (seed 000 "Hatch → Improveit360"): where each trigger's events go, validated now and
    # used by the push feature: a Note under the Contact and/or a completed Task on the Sales
    # Opportunity.
    push_outgoing_campaign_messages: list[PushLocation] = Field(default_factory=list)
    push_outgoing_manual_messages: list[PushLocation] = Field(default_factory=list)
    push_incoming_messages: list[PushLocation] = Field(default_factory=list)
    push_campaign_events: list[PushLocation] = Field(default_factory=list)
    campaign_events: list[CampaignEvent] = Field(
        default_factory=lambda: list(ALL_CAMPAIGN_EVENTS),
        description="Seed 000: the campaign events that are pushed",
    )

    @field_validator("api_version")
    @classmethod
    def _version(cls, v: str) -> str:
        return normalize_api_version(v)

    @field_validator(
        "push_outgoing_campaign_messages",
        "push_outgoing_manual_messages",
        "push_incoming_messages",
        "push_campaign_events",
        "campaign_events",
    )
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))
