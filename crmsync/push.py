"""Push: hub activities → CRM notes, tasks and call logs, exactly once from the CRM's view.

The outbox (``activity``) is written by other hub components (:func:`record_activity`). Pushing
is two steps, both per tenant and both safe to run concurrently and repeatedly:

1. :func:`plan` gives every (activity, integration) pair its ledger rows: one per target the
   integration's settings ask for, each with a deterministic idempotency key, or one ``skipped``
   row when the settings push nothing. ``ON CONFLICT DO NOTHING`` makes re-planning harmless.
2. :func:`deliver` claims due rows (``FOR UPDATE SKIP LOCKED``; the claim itself is committed
   before the CRM is called, so a crash leaves a visible ``sending`` row that is re-claimed when
   stale), resolves the CRM parent record, and writes the note/task/call log with the key embedded
   in its text. A row that was ever attempted first asks the CRM for a record carrying its key, so
   an ambiguous failure (timeout or 5xx after the request was sent) never yields a second record.

Parent first (seed 004; seed 002 "There must be a ServiceTitan record in Hatch"): when the contact
has no record from that integration yet the row is ``deferred`` and retried after later pulls;
after ``orphan_after_seconds`` it becomes ``orphaned``. Failures are retried ``max_attempts``
times ``retry_delay_seconds`` apart, then the row is ``not_integrated`` (seed 003). Operators
requeue ``not_integrated``/``orphaned`` rows with :func:`requeue` (the retry-failed-pushes flow).

Pause and disable (seed 003, "first disabled"): a paused integration's activities are planned and
wait for resume; an integration never pushes what was recorded in the outbox while it was
disabled or before it was added (:data:`PUSHABLE`, kept by migration 0007's trigger), unless an
operator asks for a window of them with :func:`push_backlog`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from connectors.errors import ConnectorError, TransientError
from connectors.http import Exchange, record_exchanges
from crmsync import db
from crmsync.providers import get_provider
from crmsync.providers.base import PushActivity, PushTarget
from crmsync.settings import PushPolicy

Kind = Literal[
    "outbound_campaign_message", "outbound_manual_message", "inbound_message", "campaign_event"
]
Channel = Literal["sms", "email", "call", "voicemail"]
CampaignEvent = Literal["launched", "first_message_sent", "removed", "completed"]


class ActivityIn(BaseModel):
    """What another hub component records; validated before it reaches the outbox."""

    model_config = ConfigDict(extra="forbid")
    tenant_id: int
    contact_id: int
    kind: Kind
    channel: Channel | None = None
    campaign_event: CampaignEvent | None = None
    campaign_name: str | None = Field(default=None, max_length=500)
    body: str | None = Field(default=None, max_length=100_000)
    opportunity_id: int | None = None
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @model_validator(mode="after")
    def _shape(self) -> ActivityIn:
        if self.kind == "campaign_event":
            if self.campaign_event is None or self.channel is not None:
                raise ValueError("a campaign_event needs campaign_event and no channel")
        elif self.channel is None or self.campaign_event is not None:
            raise ValueError(f"a {self.kind} needs a channel and no campaign_event")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        return self


@dataclass(slots=True)
class PushCounts:
    planned: int = 0
    delivered: int = 0
    deferred: int = 0
    failed: int = 0
    not_integrated: int = 0
    orphaned: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


logger = logging.getLogger("crmsync.push")


def record_activity(activity: ActivityIn) -> int:
    """Add one activity to the outbox; the contact must belong to the same tenant.

    Background delivery is the default (seed 003: "Real-Time set to off (default) ... a
    background process"): the push worker or the next sweep delivers it. Integrations whose
    settings say ``real_time`` deliver it before this returns (:func:`deliver_real_time`).
    """
    with db.connect() as conn:
        row = conn.execute(
            """
            INSERT INTO activity (tenant_id, contact_id, opportunity_id, kind, channel,
                                  campaign_event, campaign_name, body, occurred_at)
            SELECT %s, c.id, %s, %s, %s, %s, %s, %s, %s FROM contact c
            WHERE c.id = %s AND c.tenant_id = %s
            RETURNING id
            """,
            (
                activity.tenant_id,
                activity.opportunity_id,
                activity.kind,
                activity.channel,
                activity.campaign_event,
                activity.campaign_name,
                activity.body,
                activity.occurred_at,
                activity.contact_id,
                activity.tenant_id,
            ),
        ).fetchone()
        if row is None:
            raise LookupError(
                f"contact {activity.contact_id} does not exist in tenant {activity.tenant_id}"
            )
        conn.commit()
        activity_id = int(row[0])
    try:
        deliver_real_time(activity.tenant_id, activity_id)
    except Exception:  # recorded is what the caller asked for; the outbox delivers it later
        logger.exception("real-time push of activity %s failed; left to the outbox", activity_id)
    return activity_id


_real_time_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="crmsync-real-time")


def deliver_real_time(tenant_id: int, activity_id: int) -> PushCounts | None:
    """Deliver one just-recorded activity to the tenant's integrations whose settings say
    ``real_time`` (enabled, not paused), waiting at most their ``real_time_timeout_seconds``.

    Seed 003: real time makes the caller wait for the CRM, and an unresponsive CRM would keep it
    waiting; here the wait is bounded. A CRM call still running at the timeout completes in the
    background and its ledger row stays claimed (``sending``) meanwhile, so neither the push
    worker nor a sweep writes the note a second time; a failed call is retried from the outbox
    like any other. None when no integration delivers in real time or the wait timed out.
    """
    with db.connect() as conn:
        integrations = conn.execute(
            f"""
            SELECT i.id, coalesce((i.settings->>'real_time_timeout_seconds')::float8, 5)
            FROM integration i JOIN activity a ON a.id = %s AND a.tenant_id = i.tenant_id
            WHERE i.tenant_id = %s AND i.enabled AND NOT i.paused AND {PUSHABLE}
              AND coalesce((i.settings->>'real_time')::boolean, false)
            ORDER BY i.id
            """,
            (activity_id, tenant_id),
        ).fetchall()
        if not integrations:
            return None
        rows = conn.execute(
            f"SELECT {_ACTIVITY_COLS} FROM activity a WHERE a.id = %s", (activity_id,)
        ).fetchall()
        for integration_id, _ in integrations:
            _plan_rows(conn, tenant_id, integration_id, rows)
    ids = [int(i) for i, _ in integrations]
    future = _real_time_pool.submit(
        deliver, tenant_id, activity_id=activity_id, integration_ids=ids
    )
    try:
        return future.result(timeout=max(float(t) for _, t in integrations))
    except FutureTimeout:
        logger.warning(
            "real-time push of activity %s still waiting for the CRM; it completes in the "
            "background",
            activity_id,
        )
        return None


def idempotency_key(activity_id: int, integration_id: int, target: str) -> str:
    digest = hashlib.sha256(f"{activity_id}:{integration_id}:{target}".encode()).hexdigest()
    return f"hatch-{digest[:20]}"


_KIND_TEXT = {
    "outbound_campaign_message": ("Campaign message", "sent to the contact"),
    "outbound_manual_message": ("Message", "sent to the contact by a team member"),
    "inbound_message": ("Message", "received from the contact"),
}
_CHANNEL_TEXT = {"sms": "Text", "email": "Email", "call": "Call", "voicemail": "Voicemail"}
_EVENT_TEXT = {
    "launched": "Contact added to campaign",
    "first_message_sent": "First campaign message sent",
    "removed": "Contact removed from campaign before it ended",
    "completed": "Contact completed campaign",
}


def render_text(activity: PushActivity, include_content: bool, key: str) -> str:
    """The note/task text a person reads in the CRM; the last line carries the key."""
    when = activity.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if activity.kind == "campaign_event":
        headline = f"Hatch: {_EVENT_TEXT.get(activity.campaign_event or '', 'Campaign event')}"
    else:
        label, direction = _KIND_TEXT[activity.kind]
        channel = _CHANNEL_TEXT.get(activity.channel or "", activity.channel or "")
        if activity.channel in ("call", "voicemail"):
            label = channel
            channel = ""
        what = f"{channel} {label.lower()}" if channel else label
        headline = f"Hatch: {what} {direction}"
    lines = [headline]
    if activity.campaign_name:
        lines.append(f"Campaign: {activity.campaign_name}")
    lines.append(f"When: {when}")
    if include_content and activity.body:
        lines.append(f"Content: {activity.body}")
    lines.append(f"[ref {key}]")
    return "\n".join(lines)


def _safe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


#: Which activities an integration pushes (seed 003, "first disabled"): those recorded in the
#: outbox (``created_at``, the database's clock, like the integration's stamps; not
#: ``occurred_at``, which the recording component may date back) since the integration was added
#: and outside the periods it was disabled. ``a`` is the activity, ``i`` the integration; plan()
#: and due_tenants() share it so the sweep never sees work that plan() would not do.
PUSHABLE = "a.created_at >= i.push_from AND NOT i.disabled_periods @> a.created_at"


def plan(tenant_id: int, limit: int = 5000) -> int:
    """Create ledger rows for activities not yet planned for each enabled integration.

    Only activities :data:`PUSHABLE` by the integration are planned: one recorded while it was
    disabled, or before it was added, is never pushed unless an operator asks for it
    (:func:`push_backlog`). A paused integration is planned as usual; its rows wait for resume.
    """
    planned = 0
    with db.connect() as conn:
        integrations = conn.execute(
            "SELECT id FROM integration WHERE tenant_id = %s AND enabled ORDER BY id", (tenant_id,)
        ).fetchall()
        for (integration_id,) in integrations:
            rows = conn.execute(
                f"""
                SELECT {_ACTIVITY_COLS} FROM activity a JOIN integration i ON i.id = %s
                WHERE a.tenant_id = %s AND {PUSHABLE} AND NOT EXISTS (
                    SELECT 1 FROM push_ledger l WHERE l.tenant_id = a.tenant_id
                    AND l.activity_id = a.id AND l.integration_id = i.id)
                ORDER BY a.id LIMIT %s
                """,
                (integration_id, tenant_id, limit),
            ).fetchall()
            planned += _plan_rows(conn, tenant_id, integration_id, rows)
    return planned


def push_backlog(tenant_id: int, integration_id: int, since: datetime, until: datetime) -> int:
    """Operator action: plan the integration's activities recorded in ``[since, until)`` that its
    cutoff left out (recorded while it was disabled or before it was added). Returns how many
    ledger rows were created; activities already planned are left as they are, so asking twice
    plans nothing more. The rows are delivered by the next push once the integration is enabled
    and not paused."""
    planned = 0
    with db.connect() as conn:
        if not conn.execute(
            "SELECT 1 FROM integration WHERE id = %s AND tenant_id = %s",
            (integration_id, tenant_id),
        ).fetchone():
            raise LookupError(f"tenant {tenant_id} has no integration {integration_id}")
        after = 0
        while True:
            rows = conn.execute(
                f"""
                SELECT {_ACTIVITY_COLS} FROM activity a
                WHERE a.tenant_id = %s AND a.created_at >= %s AND a.created_at < %s
                  AND a.id > %s AND NOT EXISTS (
                    SELECT 1 FROM push_ledger l WHERE l.tenant_id = a.tenant_id
                    AND l.activity_id = a.id AND l.integration_id = %s)
                ORDER BY a.id LIMIT 5000
                """,
                (tenant_id, since, until, after, integration_id),
            ).fetchall()
            if not rows:
                return planned
            planned += _plan_rows(conn, tenant_id, integration_id, rows)
            after = rows[-1][0]


def _plan_rows(
    conn: psycopg.Connection[Any], tenant_id: int, integration_id: int, rows: list[Any]
) -> int:
    """Ledger rows for these activities (``_ACTIVITY_COLS`` rows) and one integration."""
    from crmsync.sync import load_integration

    if not rows:
        return 0
    ctx = load_integration(integration_id)
    provider = get_provider(ctx.provider)
    keys: list[tuple[int, str, str, str]] = []
    for row in rows:
        act = PushActivity(*row)
        targets = provider.push_targets(ctx, act)
        if not targets:
            keys.append(
                (act.id, "none", idempotency_key(act.id, integration_id, "none"), "skipped")
            )
        for t in targets:
            keys.append(
                (act.id, t.name, idempotency_key(act.id, integration_id, t.name), "pending")
            )
    cur = conn.execute(
        """
        INSERT INTO push_ledger (tenant_id, activity_id, integration_id, target,
                                 idempotency_key, status)
        SELECT %s, v.activity_id, %s, v.target, v.key, v.status
        FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[])
             AS v(activity_id, target, key, status)
        ON CONFLICT DO NOTHING
        """,
        (
            tenant_id,
            integration_id,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [k[3] for k in keys],
        ),
    )
    conn.commit()
    return cur.rowcount


_ACTIVITY_COLS = (
    "a.id, a.tenant_id, a.contact_id, a.opportunity_id, a.kind, a.channel, a.campaign_event, "
    "a.campaign_name, a.body, a.occurred_at"
)


def deliver(
    tenant_id: int,
    *,
    recheck_deferred_before: datetime | None = None,
    run_id: int | None = None,
    policy: PushPolicy | None = None,
    now: datetime | None = None,
    activity_id: int | None = None,
    integration_ids: list[int] | None = None,
) -> PushCounts:
    """Deliver up to ``policy.batch_size`` due ledger rows of the tenant.

    ``recheck_deferred_before``: right after a pull, re-check deferred rows not looked at since
    that time, whatever their next check time (each row once per pull, however many batches).
    ``activity_id`` / ``integration_ids``: only that activity's rows, only those integrations'
    (real-time delivery).
    """
    from crmsync.sync import load_integration

    policy = policy or PushPolicy()
    counts = PushCounts()
    now = now or datetime.now(UTC)
    with db.connect() as conn:
        claimed = conn.execute(
            """
            UPDATE push_ledger l SET status = 'sending', attempts = l.attempts + 1,
                   updated_at = now()
            WHERE l.id IN (
                SELECT l2.id FROM push_ledger l2 JOIN integration i ON i.id = l2.integration_id
                WHERE l2.tenant_id = %(t)s AND i.enabled AND NOT i.paused
                  AND (%(activity)s::bigint IS NULL OR l2.activity_id = %(activity)s)
                  AND (%(integrations)s::bigint[] IS NULL
                       OR l2.integration_id = ANY(%(integrations)s))
                  AND (
                    (l2.status IN ('pending', 'failed') AND l2.next_attempt_at <= %(now)s)
                    OR (l2.status = 'deferred' AND (l2.next_attempt_at <= %(now)s
                                                   OR l2.updated_at < %(recheck)s))
                    OR (l2.status = 'sending' AND l2.updated_at < %(stale)s))
                ORDER BY l2.id LIMIT %(n)s FOR UPDATE OF l2 SKIP LOCKED)
            RETURNING l.id, l.integration_id, l.target, l.idempotency_key, l.attempts,
                      l.ambiguous, l.target_ref, l.status, l.activity_id
            """,
            {
                "t": tenant_id,
                "now": now,
                "recheck": recheck_deferred_before,
                "n": policy.batch_size,
                "stale": now - timedelta(seconds=policy.stale_sending_seconds),
                "activity": activity_id,
                "integrations": integration_ids,
            },
        ).fetchall()
        conn.commit()
        if not claimed:
            return counts
        activities = {
            row[0]: PushActivity(*row)
            for row in conn.execute(
                f"SELECT {_ACTIVITY_COLS} FROM activity a "
                "WHERE a.tenant_id = %s AND a.id = ANY(%s)",
                (tenant_id, [c[8] for c in claimed]),
            )
        }
        contexts: dict[int, Any] = {}
        for (
            ledger_id,
            integration_id,
            target,
            key,
            attempts,
            ambiguous,
            _ref,
            _status,
            activity_id,
        ) in claimed:
            if integration_id not in contexts:
                contexts[integration_id] = load_integration(integration_id)
            ctx = contexts[integration_id]
            activity = activities[activity_id]
            started_at, clock = datetime.now(UTC), time.monotonic()
            with record_exchanges() as exchanges:
                outcome = _deliver_one(
                    conn, ctx, activity, PushTarget(target), key, attempts, ambiguous, policy, now
                )
            kept = _Attempt(ctx, activity, attempts, started_at, clock, exchanges)
            _record(
                conn, ledger_id, outcome, policy, now, run_id, kept if outcome.attempted else None
            )
            setattr(
                counts,
                outcome.status if outcome.status != "pending" else "failed",
                getattr(counts, outcome.status if outcome.status != "pending" else "failed") + 1,
            )
            if outcome.error:
                counts.errors[f"{ctx.name}:{activity_id}:{target}"] = outcome.error
    return counts


_COUNTED = ("delivered", "deferred", "failed", "not_integrated", "orphaned")


@dataclass(slots=True)
class _Outcome:
    status: str
    crm_record_id: str | None = None
    target_ref: str | None = None
    error: str | None = None
    ambiguous: bool = False
    attempted: bool = True
    request: dict[str, Any] = field(default_factory=dict)
    found_existing: bool = False


@dataclass(slots=True)
class _Attempt:
    """What a push_attempt row is made of besides the outcome (see :func:`_keep_attempt`)."""

    ctx: Any
    activity: PushActivity
    number: int
    started_at: datetime
    clock: float
    exchanges: list[Exchange]


def _deliver_one(
    conn: psycopg.Connection[Any],
    ctx: Any,
    activity: PushActivity,
    target: PushTarget,
    key: str,
    attempts: int,
    ambiguous: bool,
    policy: PushPolicy,
    now: datetime,
) -> _Outcome:
    provider = get_provider(ctx.provider)
    settings_target = next(
        (t for t in provider.push_targets(ctx, activity) if t.name == target.name), None
    )
    if settings_target is None:
        return _Outcome("skipped", error="settings no longer push this target", attempted=False)
    request: dict[str, Any] = {
        "provider": ctx.provider,
        "integration": ctx.name,
        "target": target.name,
        "idempotency_key": key,
    }
    try:
        parent = provider.resolve_parent(ctx, conn, activity, settings_target)
    except Exception as exc:
        return _Outcome("failed", error=_safe(exc), request={**request, "step": "resolve_parent"})
    if parent is None:
        age = (now - activity.occurred_at).total_seconds()
        if age >= policy.orphan_after_seconds:
            return _Outcome(
                "orphaned", error="no record from this integration for the contact", attempted=False
            )
        return _Outcome("deferred", attempted=False)
    text = render_text(activity, settings_target.include_content, key)
    check_first = attempts > 1 or ambiguous
    request.update(
        parent=parent,
        check_first=check_first,
        include_content=settings_target.include_content,
        text_first_line=text.split("\n", 1)[0],
        text_chars=len(text),
    )
    try:
        if check_first:
            existing = provider.find_pushed(ctx, settings_target, parent, key)
            if existing is not None:
                return _Outcome(
                    "delivered",
                    crm_record_id=existing,
                    target_ref=parent,
                    request=request,
                    found_existing=True,
                )
        crm_id = provider.create_push(ctx, settings_target, parent, text)
        return _Outcome("delivered", crm_record_id=crm_id, target_ref=parent, request=request)
    except ConnectorError as exc:
        maybe_sent = isinstance(exc, TransientError) and exc.ambiguous
        return _Outcome(
            "failed", target_ref=parent, error=_safe(exc), ambiguous=maybe_sent, request=request
        )
    except Exception as exc:
        return _Outcome(
            "failed", target_ref=parent, error=_safe(exc), ambiguous=True, request=request
        )


def _record(
    conn: psycopg.Connection[Any],
    ledger_id: int,
    o: _Outcome,
    policy: PushPolicy,
    now: datetime,
    run_id: int | None = None,
    attempt: _Attempt | None = None,
) -> None:
    """Write the outcome to the ledger row and, for an attempt that reached for the CRM, keep the
    attempt (push_attempt), in one transaction."""
    status = o.status
    if status == "failed":
        (attempts,) = conn.execute(
            "SELECT attempts FROM push_ledger WHERE id = %s", (ledger_id,)
        ).fetchone() or (0,)
        if attempts >= policy.max_attempts:
            status = "not_integrated"
        o.status = status
    next_at = now
    if status == "failed":
        next_at = now + timedelta(seconds=policy.retry_delay_seconds)
    elif status == "deferred":
        next_at = now + timedelta(seconds=policy.defer_seconds)
    conn.execute(
        """
        UPDATE push_ledger SET status = %s, crm_record_id = coalesce(%s, crm_record_id),
            target_ref = coalesce(%s, target_ref), last_error = %s,
            ambiguous = ambiguous OR %s, next_attempt_at = %s,
            last_run_id = coalesce(%s, last_run_id),
            attempts = attempts - CASE WHEN %s THEN 0 ELSE 1 END,
            delivered_at = CASE WHEN %s = 'delivered' THEN now() ELSE delivered_at END,
            updated_at = now()
        WHERE id = %s
        """,
        (
            status,
            o.crm_record_id,
            o.target_ref,
            o.error,
            o.ambiguous,
            next_at,
            run_id,
            o.attempted,
            status,
            ledger_id,
        ),
    )
    if attempt is not None:
        _keep_attempt(conn, ledger_id, o, attempt, run_id)
    conn.commit()


def _keep_attempt(
    conn: psycopg.Connection[Any], ledger_id: int, o: _Outcome, a: _Attempt, run_id: int | None
) -> None:
    response = {
        "outcome": o.status,
        "crm_record_id": o.crm_record_id,
        "found_existing": o.found_existing,
        "exchanges": [asdict(e) for e in a.exchanges],
    }
    credentials = a.ctx.credentials
    conn.execute(
        """
        INSERT INTO push_attempt (tenant_id, ledger_id, activity_id, integration_id, attempt,
                                  outcome, started_at, ms, request, response, crm_record_id,
                                  error, run_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            a.activity.tenant_id,
            ledger_id,
            a.activity.id,
            a.ctx.id,
            a.number,
            o.status,
            a.started_at,
            round((time.monotonic() - a.clock) * 1000),
            Jsonb(redact(o.request, credentials)),
            Jsonb(redact(response, credentials)),
            o.crm_record_id,
            redact(o.error, credentials),
            run_id,
        ),
    )


def redact(value: Any, credentials: BaseModel) -> Any:
    """``value`` (text, or JSON-like lists and dicts of it) with every secret of the integration's
    credentials (its ``SecretStr`` fields) replaced by ``***``: an attempt is kept as the CRM
    answered it, and a CRM may echo what it was sent."""
    secrets = sorted(
        (
            v.get_secret_value()
            for _, v in credentials
            if isinstance(v, SecretStr) and len(v.get_secret_value()) >= 4
        ),
        key=len,
        reverse=True,
    )
    if not secrets:
        return value

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            for secret in secrets:
                item = item.replace(secret, "***")
            return item
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        return item

    return walk(value)


def requeue(
    tenant_id: int, integration_id: int | None = None, activity_ids: list[int] | None = None
) -> int:
    """Operator retry: ``not_integrated`` and ``orphaned`` rows get a fresh attempt budget.

    Rows that were ever attempted keep ``ambiguous`` set, so their next attempt still checks the
    CRM for an earlier copy before creating one.
    """
    with db.connect() as conn:
        cur = conn.execute(
            """
            UPDATE push_ledger SET status = 'pending', ambiguous = ambiguous OR attempts > 0,
                   attempts = 0, next_attempt_at = now(), updated_at = now()
            WHERE tenant_id = %s AND status IN ('not_integrated', 'orphaned')
              AND (%s::bigint IS NULL OR integration_id = %s)
              AND (%s::bigint[] IS NULL OR activity_id = ANY(%s))
            """,
            (tenant_id, integration_id, integration_id, activity_ids, activity_ids),
        )
        conn.commit()
        return cur.rowcount


def failures_report(hours: float, tenant_id: int | None = None) -> tuple[str, int]:
    """Markdown summary of pushes that failed in the last ``hours``, per tenant and integration."""
    with db.connect() as conn:
        rows = conn.execute(
            """
            SELECT t.slug, i.name, l.status, count(*), max(l.updated_at),
                   (array_agg(l.last_error ORDER BY l.updated_at DESC))[1]
            FROM push_ledger l JOIN integration i ON i.id = l.integration_id
            JOIN tenant t ON t.id = l.tenant_id
            WHERE l.status IN ('failed', 'not_integrated', 'orphaned')
              AND l.updated_at >= now() - make_interval(secs => %s)
              AND (%s::bigint IS NULL OR l.tenant_id = %s)
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            """,
            (hours * 3600, tenant_id, tenant_id),
        ).fetchall()
    if not rows:
        return f"# Push failures, last {hours:g} h\n\nNo failed pushes.\n", 0
    lines = [
        f"# Push failures, last {hours:g} h",
        "",
        "| tenant | integration | status | pushes | last failure (UTC) | last error |",
        "| --- | --- | --- | ---: | --- | --- |",
    ]
    total = 0
    for slug, name, status, n, last, error in rows:
        total += n
        err = (error or "").replace("|", "\\|").replace("\n", " ")[:200]
        lines.append(f"| {slug} | {name} | {status} | {n} | {last:%Y-%m-%d %H:%M} | {err} |")
    return "\n".join(lines) + "\n", total


@dataclass(slots=True)
class TenantFailures:
    """One tenant's failed pushes in a report window (seed 003's summary "with the integrations
    and leads that have failed to integrate"): markdown for its artifact and its email."""

    tenant_id: int
    slug: str
    name: str
    contact_email: str | None
    failures: int
    markdown: str


def tenant_failures(
    hours: float, tenant_id: int | None = None, limit: int = 200
) -> list[TenantFailures]:
    """Per tenant with pushes that failed in the last ``hours`` (still retrying, not integrated
    or orphaned): a count per integration and every failed activity, newest first, with its
    contact, kind, integration and target, status, attempts and last error (at most ``limit``
    listed; the count says how many more). Tenants without failures are left out."""
    with db.connect() as conn:
        rows = conn.execute(
            """
            SELECT * FROM (
                SELECT t.id, t.slug, t.name, t.contact_email, l.activity_id, a.kind, a.channel,
                       a.campaign_event, c.id, c.first_name, c.last_name, c.email, c.phone,
                       i.name, l.target, l.status, l.attempts, l.last_error, l.updated_at,
                       row_number() OVER (PARTITION BY t.id ORDER BY l.updated_at DESC, l.id DESC)
                FROM push_ledger l JOIN integration i ON i.id = l.integration_id
                JOIN tenant t ON t.id = l.tenant_id
                JOIN activity a ON a.id = l.activity_id JOIN contact c ON c.id = a.contact_id
                WHERE l.status IN ('failed', 'not_integrated', 'orphaned')
                  AND l.updated_at >= now() - make_interval(secs => %s)
                  AND (%s::bigint IS NULL OR l.tenant_id = %s)) f
            ORDER BY 2, 20
            """,
            (hours * 3600, tenant_id, tenant_id),
        ).fetchall()
    by_tenant: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_tenant.setdefault(row[0], []).append(row)
    return [_tenant_summary(hours, group, limit) for group in by_tenant.values()]


def _cell(value: Any, width: int = 200) -> str:
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")[:width]


def _tenant_summary(hours: float, rows: list[tuple[Any, ...]], limit: int) -> TenantFailures:
    tenant_id, slug, name, contact_email = rows[0][:4]
    per_integration: dict[str, int] = {}
    for row in rows:
        per_integration[row[13]] = per_integration.get(row[13], 0) + 1
    lines = [
        f"# Push failures of {name} ({slug}), last {hours:g} h",
        "",
        f"{len(rows)} push(es) failed to reach the CRM: "
        + ", ".join(f"{n} to {integ}" for integ, n in sorted(per_integration.items()))
        + ". Failed ones are retried; not integrated and orphaned ones wait for an operator "
        f"(`retry-failed-pushes` with tenant {slug}).",
        "",
        "| activity | contact | kind | integration | status | attempts | last error "
        "| last attempt (UTC) |",
        "| ---: | --- | --- | --- | --- | ---: | --- | --- |",
    ]
    for row in rows[:limit]:
        (activity_id, kind, channel, event, contact_id, first, last, email, phone) = row[4:13]
        integ, target, status, attempts, error, updated = row[13:19]
        who = " ".join(p for p in (first, last) if p) or email or phone or ""
        contact = f"#{contact_id} {who}".strip()
        what = f"{kind}: {event}" if kind == "campaign_event" else f"{kind} ({channel})"
        lines.append(
            f"| {activity_id} | {_cell(contact, 80)} | {what} | {_cell(integ)} ({target}) "
            f"| {status} | {attempts} | {_cell(error)} | {updated:%Y-%m-%d %H:%M} |"
        )
    if len(rows) > limit:
        lines += ["", f"… and {len(rows) - limit} more."]
    return TenantFailures(tenant_id, slug, name, contact_email, len(rows), "\n".join(lines) + "\n")


def describe_activity(activity_id: int) -> dict[str, Any] | None:
    """Everything about one activity a developer may ask (seed 003: "The Integration object with
    all details reported is available for developers"): the activity, its ledger rows and every
    attempt with its request summary and the CRM's answers. None when there is no such
    activity."""
    with db.connect() as conn:
        cur = conn.execute(
            """
            SELECT a.id, t.slug AS tenant, a.contact_id, a.opportunity_id, a.kind, a.channel,
                   a.campaign_event, a.campaign_name, a.occurred_at, a.created_at,
                   length(a.body) AS body_chars
            FROM activity a JOIN tenant t ON t.id = a.tenant_id WHERE a.id = %s
            """,
            (activity_id,),
        )
        head = cur.fetchone()
        if head is None:
            return None
        out: dict[str, Any] = dict(zip([d.name for d in cur.description or []], head, strict=True))
        for name, sql in (
            (
                "pushes",
                """
                SELECT l.id, i.name AS integration, l.target, l.status, l.attempts, l.target_ref,
                       l.crm_record_id, l.idempotency_key, l.next_attempt_at, l.delivered_at,
                       l.last_error
                FROM push_ledger l JOIN integration i ON i.id = l.integration_id
                WHERE l.activity_id = %s ORDER BY l.id
                """,
            ),
            (
                "attempts",
                """
                SELECT p.ledger_id, i.name AS integration, p.attempt, p.outcome, p.started_at,
                       p.ms, p.request, p.response, p.crm_record_id, p.error, p.run_id
                FROM push_attempt p JOIN integration i ON i.id = p.integration_id
                WHERE p.activity_id = %s ORDER BY p.id
                """,
            ),
        ):
            cur = conn.execute(sql, (activity_id,))
            names = [d.name for d in cur.description or []]
            out[name] = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return out


def due_tenants(
    *,
    tenant_id: int | None = None,
    recheck_deferred: bool = False,
    policy: PushPolicy | None = None,
    now: datetime | None = None,
) -> list[tuple[int, str]]:
    """Tenants with push work, as (id, slug): an activity an enabled integration would plan
    (:data:`PUSHABLE`) and has not planned yet, or a ledger row whose time has come (any
    deferred row with ``recheck_deferred``, as after a pull). One query, so a sweep over an idle
    fleet costs one round trip and starts nothing: no flow or task run per idle tenant."""
    policy = policy or PushPolicy()
    now = now or datetime.now(UTC)
    with db.connect() as conn:
        rows = conn.execute(
            f"""
            SELECT t.id, t.slug FROM tenant t
            WHERE (%(tenant)s::bigint IS NULL OR t.id = %(tenant)s) AND (EXISTS (
                SELECT 1 FROM integration i JOIN activity a ON a.tenant_id = i.tenant_id
                WHERE i.tenant_id = t.id AND i.enabled AND {PUSHABLE}
                AND NOT EXISTS (
                    SELECT 1 FROM push_ledger l WHERE l.tenant_id = a.tenant_id
                    AND l.activity_id = a.id AND l.integration_id = i.id))
            OR EXISTS (
                SELECT 1 FROM push_ledger l JOIN integration i ON i.id = l.integration_id
                WHERE l.tenant_id = t.id AND i.enabled AND NOT i.paused AND (
                    (l.status IN ('pending', 'failed', 'deferred')
                     AND l.next_attempt_at <= %(now)s)
                    OR (l.status = 'deferred' AND %(recheck)s)
                    OR (l.status = 'sending' AND l.updated_at < %(stale)s))))
            ORDER BY t.slug
            """,
            {
                "tenant": tenant_id,
                "recheck": recheck_deferred,
                "now": now,
                "stale": now - timedelta(seconds=policy.stale_sending_seconds),
            },
        ).fetchall()
    return [(int(i), str(s)) for i, s in rows]


def push_tenant(
    tenant_id: int, *, include_deferred: bool = False, run_id: int | None = None
) -> PushCounts:
    """Plan, then deliver every due push of the tenant, batch after batch.

    ``include_deferred``: right after a pull, re-check each deferred row once (its parent record
    may have just arrived). Failures are recorded per row, never raised, so one bad CRM call
    never blocks the rest of the outbox.
    """
    total = PushCounts(planned=plan(tenant_id))
    started = datetime.now(UTC) if include_deferred else None
    batch_size = PushPolicy().batch_size
    while True:
        counts = deliver(tenant_id, recheck_deferred_before=started, run_id=run_id)
        for k in _COUNTED:
            setattr(total, k, getattr(total, k) + getattr(counts, k))
        total.errors.update(counts.errors)
        if sum(getattr(counts, k) for k in _COUNTED) < batch_size:
            return total
