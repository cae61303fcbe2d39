"""A tenant's plan caps its active integrations (seed 003: "The number of CRM Integrations per
user are limited and related to the user's current plan. Hover Lead counts only active
integrations").

Active means enabled and not paused: a disabled or paused integration does not count, whatever
its history. The caps are :data:`crmsync.settings.PLAN_CAPS`; a tenant without a plan has none.
Two ways make an integration active, and both are checked: ``crmsync tenants apply`` (an
integration enabled in the file, :mod:`crmsync.tenants` names the file, line and key) and
``crmsync integrations resume`` (:func:`check_resume`).
"""

from __future__ import annotations

from crmsync import db
from crmsync.settings import PLAN_CAPS


class PlanLimitError(ValueError):
    """Activating one more integration would exceed the tenant's plan."""


def cap_of(plan: str | None) -> int | None:
    """Active integrations the plan allows; None = unlimited (or no plan)."""
    return PLAN_CAPS.get(plan) if plan else None


def allows(plan: str, cap: int) -> str:
    """``plan 'starter' allows 1 active integration`` (the start of every refusal)."""
    return f"plan {plan!r} allows {cap} active integration{'' if cap == 1 else 's'}"


def check_resume(tenant_slug: str, integration: str) -> None:
    """PlanLimitError if resuming this paused integration exceeds the tenant's plan."""
    with db.connect() as conn:
        row = conn.execute(
            "SELECT t.id, t.plan, i.enabled AND i.paused FROM tenant t "
            "JOIN integration i ON i.tenant_id = t.id WHERE t.slug = %s AND i.name = %s",
            (tenant_slug, integration),
        ).fetchone()
        if row is None or not row[2]:
            return  # unknown (the caller says so) or resuming changes nothing that counts
        tenant_id, plan, _ = row
        cap = cap_of(plan)
        if cap is None:
            return
        active = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM integration WHERE tenant_id = %s AND enabled AND NOT paused "
                "ORDER BY name",
                (tenant_id,),
            )
        ]
    if len(active) >= cap:
        raise PlanLimitError(
            f"{allows(plan, cap)} and {tenant_slug} has {len(active)} ({', '.join(active)}): "
            f"pause one of them (crmsync integrations pause) or choose a larger plan before "
            f"resuming {integration}"
        )
