"""What every CRM's integration settings share."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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


def own_kinds(v: InboundActivities, own: tuple[str, ...], crm: str) -> InboundActivities:
    """``v`` with ``kinds`` narrowed to the kinds ``crm`` has: the default (every kind) becomes
    ``own``, so stored settings name what is really read and read back unchanged; a kind the
    CRM does not have, named in a tenants file, is refused with the kinds it may be."""
    if set(v.kinds) >= set(ACTIVITY_KINDS):
        return v.model_copy(update={"kinds": list(own)})
    foreign = sorted(set(v.kinds) - set(own))
    if foreign:
        raise ValueError(
            f"{crm} has no {', '.join(foreign)} activities; kinds may be {', '.join(own)}"
        )
    return v
