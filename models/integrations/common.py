"""What every CRM's integration settings share."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from models.normalize import normalize_email


def _placeholders(v: list[str]) -> list[str]:
    return sorted({e for e in (normalize_email(x) for x in v) if e})


PlaceholderEmails = Annotated[list[str], AfterValidator(_placeholders)]
"""Addresses or glob patterns (``noemail@*``) that never merge two contacts (seed 002),
trimmed and lower-cased once, when the settings are read."""


ActivityKind = Literal["note", "task", "call", "email"]
ACTIVITY_KINDS: tuple[ActivityKind, ...] = ("note", "task", "call", "email")


class InboundActivities(BaseModel):
    """Activities made in the CRM, read into the hub (issue 15, seed 004 "bidirectionally").

    Off unless a tenant turns it on: reading every note costs requests the tenant's CRM rate
    budget pays for, and campaigns that do not use them should not pay it. ``kinds`` narrows
    what is read to the kinds the CRM has (each provider says which it serves). The first sync
    reads the same ``first_sync_days`` as the records.
    """

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    kinds: list[ActivityKind] = Field(
        default_factory=lambda: list[ActivityKind](["note", "task", "call", "email"]),
        min_length=1,
    )

    def wants(self, kind: str) -> bool:
        return self.enabled and kind in self.kinds


class IntegrationSettings(BaseModel):
    """The settings every CRM's integration has; each CRM's settings model adds its own.

    ``crm`` names the CRM in messages and ``activity_kinds`` the kinds of activity it has: the
    default ``inbound_activities.kinds`` (every kind) is narrowed to them, so stored settings
    name what is really read and read back unchanged, and a kind the CRM does not have, named
    in a tenants file, is refused with the kinds it may be.
    """

    model_config = ConfigDict(extra="forbid")
    crm: ClassVar[str]
    activity_kinds: ClassVar[tuple[str, ...]] = ACTIVITY_KINDS

    placeholder_emails: PlaceholderEmails = Field(default_factory=list)
    inbound_activities: InboundActivities = Field(
        default_factory=InboundActivities,
        validate_default=True,
        description="Issue 15: activities made in the CRM (of the kinds it has) read into the "
        "hub; off by default",
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
    def _own_kinds(cls, v: InboundActivities) -> InboundActivities:
        own = cls.activity_kinds
        if set(v.kinds) >= set(ACTIVITY_KINDS):
            return v.model_copy(update={"kinds": list(own)})
        foreign = sorted(set(v.kinds) - set(own))
        if foreign:
            raise ValueError(
                f"{cls.crm} has no {', '.join(foreign)} activities; kinds may be {', '.join(own)}"
            )
        return v
