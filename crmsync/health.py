"""Health rules per integration (issue 12), checked once after every tenant run.

What operators of hosted sync tools (Airbyte, Hightouch, Census) rely on, applied to a CRM
integration:

* **Pause after consecutive failures.** A sync of an integration failed when the run recorded an
  error for it: ``<integration>`` (it could not sign in, or its credentials could not be read) or
  ``<integration>:<stream>`` (a stream failed) among ``sync_run.errors``; it succeeded when the
  run synced it (``<integration>:<stream>`` among ``sync_run.counts``) without one. Runs that did
  not sync it (paused, disabled, a skipped run) neither break nor extend a streak. After
  ``CRMSYNC_PAUSE_AFTER_FAILURES`` (5) failed syncs in a row the integration is paused, with why
  (the count and the last error) and when (``paused_reason``, ``paused_at``); syncing and pushing
  stop until an operator runs ``crmsync integrations resume``, which clears both, and failures
  are counted again from then (``resumed_at``). 0 turns the rule off.
* **Rejected-records rate.** A sync whose integration rejected more than
  ``CRMSYNC_REJECTED_ALERT_RATE`` (0.2) of the records it fetched, when it fetched at least
  ``CRMSYNC_REJECTED_ALERT_MIN_FETCHED`` (20), raises a notification; it does not pause.

This module is plain SQL and decisions, no Prefect: :func:`check_run` returns the events, and
the tenant flow logs, publishes and sends them (``flows/health.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from crmsync import db


class HealthPolicy(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRMSYNC_", extra="ignore")

    pause_after_failures: int = Field(
        default=5, ge=0, description="Consecutive failed syncs that pause an integration; 0 = off."
    )
    rejected_alert_rate: float = Field(
        default=0.2, ge=0, le=1, description="Share of fetched records rejected that notifies."
    )
    rejected_alert_min_fetched: int = Field(
        default=20, ge=1, description="Fewer fetched records than this are not judged."
    )


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """Something an operator must hear about; ``message`` is one line naming the integration."""

    kind: Literal["paused", "rejected_rate"]
    tenant: str
    integration: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def _belongs(key: str, name: str) -> bool:
    return key == name or key.startswith(name + ":")


def check_run(run_id: int, policy: HealthPolicy | None = None) -> list[HealthEvent]:
    """Apply the health rules to the integrations a finished tenant run synced."""
    policy = policy or HealthPolicy()
    with db.connect() as conn:
        row = conn.execute(
            "SELECT r.tenant_id, t.slug, r.counts, r.errors FROM sync_run r "
            "JOIN tenant t ON t.id = r.tenant_id WHERE r.id = %s",
            (run_id,),
        ).fetchone()
        if row is None:
            return []
        tenant_id, slug, counts, errors = row
        integrations = conn.execute(
            "SELECT id, name, paused, coalesce(greatest(resumed_at, created_at), created_at) "
            "FROM integration WHERE tenant_id = %s ORDER BY name",
            (tenant_id,),
        ).fetchall()
        events: list[HealthEvent] = []
        for integration_id, name, paused, since in integrations:
            synced = [k for k in counts if _belongs(k, name)]
            failed = {k: v for k, v in errors.items() if _belongs(k, name)}
            if not synced and not failed:
                continue
            if failed and not paused and policy.pause_after_failures:
                event = _pause_if_failing(
                    conn, slug, integration_id, name, since, failed, policy.pause_after_failures
                )
                if event is not None:
                    events.append(event)
            event = _rejected_rate(slug, name, {k: counts[k] for k in synced}, policy)
            if event is not None:
                events.append(event)
        conn.commit()
    return events


def _pause_if_failing(
    conn: Any,
    slug: str,
    integration_id: int,
    name: str,
    since: Any,
    failed: dict[str, str],
    limit: int,
) -> HealthEvent | None:
    """Pause the integration when its last ``limit`` syncs since ``since`` all failed."""
    runs = conn.execute(
        """
        SELECT r.counts, r.errors FROM sync_run r
        WHERE r.tenant_id = (SELECT tenant_id FROM integration WHERE id = %(i)s)
          AND r.finished_at IS NOT NULL AND r.started_at >= %(since)s
          AND EXISTS (
            SELECT 1 FROM jsonb_object_keys(r.counts || r.errors) k
            WHERE k = %(name)s OR left(k, length(%(name)s) + 1) = %(name)s || ':')
        ORDER BY r.started_at DESC, r.id DESC LIMIT %(n)s
        """,
        {"i": integration_id, "since": since, "name": name, "n": limit},
    ).fetchall()
    streak = 0
    for _, run_errors in runs:
        if not any(_belongs(k, name) for k in run_errors):
            break
        streak += 1
    if streak < limit:
        return None
    key, error = next(iter(failed.items()))
    reason = f"{limit} consecutive failed syncs; last error ({key}): {error}"[:1000]
    cur = conn.execute(
        "UPDATE integration SET paused = true, paused_reason = %s, updated_at = now() "
        "WHERE id = %s AND NOT paused",
        (reason, integration_id),
    )
    if cur.rowcount != 1:
        return None  # paused meanwhile (an operator, or another check)
    return HealthEvent(
        "paused",
        slug,
        name,
        f"{slug}/{name} paused after {reason}; resume with "
        f"`crmsync integrations resume {slug} {name}` once it is fixed",
        {"failures": limit, "last_error": error, "error_key": key},
    )


def _rejected_rate(
    slug: str, name: str, counts: dict[str, dict[str, Any]], policy: HealthPolicy
) -> HealthEvent | None:
    fetched = sum(int(c.get("fetched", 0)) for c in counts.values())
    rejected = sum(int(c.get("rejected", 0)) for c in counts.values())
    if fetched < policy.rejected_alert_min_fetched:
        return None  # too few to judge
    if rejected <= policy.rejected_alert_rate * fetched:
        return None
    streams = ", ".join(
        f"{k.split(':', 1)[1]} {int(c.get('rejected', 0))}"
        for k, c in counts.items()
        if int(c.get("rejected", 0))
    )
    return HealthEvent(
        "rejected_rate",
        slug,
        name,
        f"{slug}/{name} rejected {rejected} of {fetched} fetched records "
        f"({rejected / fetched:.0%}, above {policy.rejected_alert_rate:.0%}; {streams}): see "
        f"`crmsync runs show` and the rejected-{slug} artifact",
        {"fetched": fetched, "rejected": rejected},
    )


def markdown(slug: str, run_id: int, events: list[HealthEvent]) -> str:
    """The events of one run as the markdown of the ``health-<slug>`` artifact."""
    lines = [f"# Integration health of {slug} after sync run {run_id}", ""]
    for event in events:
        title = "Paused" if event.kind == "paused" else "Rejected records"
        lines.append(f"- **{title}**: {event.message}")
    return "\n".join(lines) + "\n"
