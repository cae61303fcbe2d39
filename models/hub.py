"""SQLModel tables of the hub database (PostgreSQL only).

Every row carries ``tenant_id`` and every unique key starts with it (ARCHITECTURE §2.4), so no
query can match or merge across tenants. The hot merge path does not go through the ORM: it
uses set-based SQL in :mod:`crmsync.merge`; these classes define the schema (Alembic migrates it)
and serve the low-volume paths (tenant config, status, operator commands).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSTZMULTIRANGE
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(nullable: bool = False, default_now: bool = True) -> Any:
    return Field(
        default_factory=utcnow if default_now else None,
        sa_type=DateTime(timezone=True),  # type: ignore[call-overload]
        sa_column_kwargs={
            "nullable": nullable,
            **({"server_default": text("now()")} if default_now else {}),
        },
    )


def _pk() -> Any:
    return Field(
        default=None, sa_column=Column(BigInteger, Identity(always=False), primary_key=True)
    )


def _tenant_fk() -> Any:
    return Field(
        sa_column=Column(
            BigInteger, ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False, index=False
        )
    )


def _integration_fk(nullable: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(
            BigInteger, ForeignKey("integration.id", ondelete="CASCADE"), nullable=nullable
        ),
    )


def _jsonb(default: Any = dict) -> Any:
    return Field(
        default_factory=default,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )


class Tenant(SQLModel, table=True):
    __tablename__ = "tenant"

    id: int | None = _pk()
    slug: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    name: str = Field(sa_column=Column(Text, nullable=False))
    # Where the push failure summary is emailed (seed 003; migration 0008); None = no email.
    contact_email: str | None = Field(default=None, sa_column=Column(Text))
    # Caps the active integrations (crmsync.settings.PLAN_CAPS; migration 0010); None = no cap.
    plan: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Integration(SQLModel, table=True):
    """One CRM connection of a tenant. ``credentials`` is Fernet ciphertext (crmsync.crypto)."""

    __tablename__ = "integration"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_integration_tenant_name"),)

    id: int | None = _pk()
    tenant_id: int = _tenant_fk()
    name: str = Field(sa_column=Column(Text, nullable=False))
    provider: str = Field(sa_column=Column(Text, nullable=False))
    enabled: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    paused: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    base_url: str | None = Field(default=None, sa_column=Column(Text))
    auth_url: str | None = Field(default=None, sa_column=Column(Text))
    credentials: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    settings: dict[str, Any] = _jsonb()
    # Push cutoff (seed 003; migration 0007, whose trigger keeps both): activities recorded in
    # the outbox before ``push_from`` (when the integration was added) or in one of the
    # ``disabled_periods`` are never pushed by it.
    push_from: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()")),
    )
    disabled_periods: Any = Field(
        default=None,
        sa_column=Column(
            TSTZMULTIRANGE, nullable=False, server_default=text("'{}'::tstzmultirange")
        ),
    )
    # Why and since when it is paused (an operator, or crmsync.health after consecutive failed
    # syncs) and when it was last resumed; kept by migration 0011's trigger.
    paused_reason: str | None = Field(default=None, sa_column=Column(Text))
    paused_at: datetime | None = _ts(nullable=True, default_now=False)
    resumed_at: datetime | None = _ts(nullable=True, default_now=False)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Contact(SQLModel, table=True):
    """A person in the hub. Identity fields are filled from the first opportunity that creates it
    and completed (never overwritten) by later ones; placeholder emails are never stored here."""

    __tablename__ = "contact"
    __table_args__ = (
        Index("ix_contact_tenant_phone", "tenant_id", "phone"),
        Index("ix_contact_tenant_email", "tenant_id", "email"),
    )

    id: int | None = _pk()
    tenant_id: int = _tenant_fk()
    email: str | None = Field(default=None, sa_column=Column(Text))
    phone: str | None = Field(default=None, sa_column=Column(Text))
    first_name: str | None = Field(default=None, sa_column=Column(Text))
    last_name: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class ContactLink(SQLModel, table=True):
    """Which hub contact an integration's External Contact ID resolved to (first match rule)."""

    __tablename__ = "contact_link"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "integration_id", "external_contact_id"),
        Index("ix_contact_link_contact", "contact_id"),
    )

    tenant_id: int = _tenant_fk()
    integration_id: int = _integration_fk()
    external_contact_id: str = Field(sa_column=Column(Text, nullable=False))
    contact_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("contact.id", ondelete="CASCADE"), nullable=False)
    )


class Opportunity(SQLModel, table=True):
    """A CRM record in the hub's standard fields.

    ``match_key`` is what "the same opportunity" means for the provider: the External ID for
    ServiceTitan and improveit360, External ID + External Created At for LeadPerfection (seed 001).
    """

    __tablename__ = "opportunity"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "integration_id", "model", "match_key", name="uq_opportunity_match"
        ),
        Index("ix_opportunity_contact", "tenant_id", "contact_id"),
        Index("ix_opportunity_external_id", "tenant_id", "integration_id", "external_id"),
    )

    id: int | None = _pk()
    tenant_id: int = _tenant_fk()
    integration_id: int = _integration_fk()
    contact_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("contact.id", ondelete="CASCADE"), nullable=False)
    )
    model: str = Field(sa_column=Column(Text, nullable=False))
    match_key: str = Field(sa_column=Column(Text, nullable=False))
    external_id: str = Field(sa_column=Column(Text, nullable=False))
    external_contact_id: str | None = Field(default=None, sa_column=Column(Text))
    external_created_at: datetime | None = _ts(nullable=True, default_now=False)
    external_updated_at: datetime | None = _ts(nullable=True, default_now=False)
    email: str | None = Field(default=None, sa_column=Column(Text))
    first_name: str | None = Field(default=None, sa_column=Column(Text))
    last_name: str | None = Field(default=None, sa_column=Column(Text))
    phone: str | None = Field(default=None, sa_column=Column(Text))
    status: str | None = Field(default=None, sa_column=Column(Text))
    details: dict[str, Any] = _jsonb()
    # Change stamps of the CRM records the opportunity was composed of (record key →
    # microseconds since the epoch), compared by the merge's stale-write guard (migration 0006);
    # NULL on rows written before that revision.
    source_stamps: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class CrmRecord(SQLModel, table=True):
    """Mirror of raw CRM resources an opportunity is composed from (customers, contacts,
    appointments, estimates, jobs, memberships): lets a job be re-mapped when only a related
    record changed, and gives push the record ids behind an opportunity."""

    __tablename__ = "crm_record"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "integration_id", "resource", "external_id"),
        # Partial, so a look-up by customer can never be planned on the parent index (or the
        # reverse) and degrade into a scan of every row of the resource.
        Index(
            "ix_crm_record_customer",
            "tenant_id",
            "integration_id",
            "resource",
            "customer_ref",
            postgresql_where=text("customer_ref IS NOT NULL"),
        ),
        Index(
            "ix_crm_record_parent",
            "tenant_id",
            "integration_id",
            "resource",
            "parent_ref",
            postgresql_where=text("parent_ref IS NOT NULL"),
        ),
    )

    tenant_id: int = _tenant_fk()
    integration_id: int = _integration_fk()
    resource: str = Field(sa_column=Column(Text, nullable=False))
    external_id: str = Field(sa_column=Column(Text, nullable=False))
    customer_ref: str | None = Field(default=None, sa_column=Column(Text))
    parent_ref: str | None = Field(default=None, sa_column=Column(Text))
    modified_at: datetime | None = _ts(nullable=True, default_now=False)
    payload: dict[str, Any] = _jsonb()


class SyncCursor(SQLModel, table=True):
    """Where a stream resumes; written in the same transaction as the page it covers."""

    __tablename__ = "sync_cursor"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "integration_id", "stream"),)

    tenant_id: int = _tenant_fk()
    integration_id: int = _integration_fk()
    stream: str = Field(sa_column=Column(Text, nullable=False))
    cursor: str | None = Field(default=None, sa_column=Column(Text))
    window_start: datetime | None = _ts(nullable=True, default_now=False)
    last_success_at: datetime | None = _ts(nullable=True, default_now=False)
    updated_at: datetime = _ts()


class RejectedRecordRow(SQLModel, table=True):
    """A quarantined CRM record: raw payload + reason. Re-rejections update the same row."""

    __tablename__ = "rejected_record"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "integration_id", "stream", "external_key", name="uq_rejected_record"
        ),
    )

    id: int | None = _pk()
    tenant_id: int = _tenant_fk()
    integration_id: int = _integration_fk()
    run_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    stream: str = Field(sa_column=Column(Text, nullable=False))
    external_key: str = Field(sa_column=Column(Text, nullable=False))
    reason: str = Field(sa_column=Column(Text, nullable=False))
    payload: dict[str, Any] = _jsonb()
    times_seen: int = Field(default=1, sa_column_kwargs={"server_default": text("1")})
    first_seen_at: datetime = _ts()
    last_seen_at: datetime = _ts()


class SyncRun(SQLModel, table=True):
    """One tenant sync run: counts per integration and stream, final status, error summary."""

    __tablename__ = "sync_run"
    __table_args__ = (Index("ix_sync_run_tenant_started", "tenant_id", "started_at"),)

    id: int | None = _pk()
    tenant_id: int = _tenant_fk()
    flow_run_id: str | None = Field(default=None, sa_column=Column(Text))
    round_id: str | None = Field(default=None, sa_column=Column(Text, index=True))
    status: str = Field(default="running", sa_column=Column(Text, nullable=False))
    started_at: datetime = _ts()
    finished_at: datetime | None = _ts(nullable=True, default_now=False)
    counts: dict[str, Any] = _jsonb()
    errors: dict[str, Any] = _jsonb()


class Activity(SQLModel, table=True):
    """The hub's outbox: what happened with a contact, written by other hub components.

    ``kind`` ∈ outbound_campaign_message, outbound_manual_message, inbound_message,
    campaign_event; ``channel`` ∈ sms, email, call, voicemail (null for campaign events);
    ``campaign_event`` ∈ launched, first_message_sent, removed, completed (campaign events only).
    """

    __tablename__ = "activity"
    __table_args__ = (
        Index("ix_activity_tenant_id", "tenant_id", "id"),
        Index("ix_activity_contact", "tenant_id", "contact_id"),
    )

    id: int | None = _pk()
    tenant_id: int = _tenant_fk()
    contact_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("contact.id", ondelete="CASCADE"), nullable=False)
    )
    opportunity_id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, ForeignKey("opportunity.id", ondelete="SET NULL")),
    )
    kind: str = Field(sa_column=Column(Text, nullable=False))
    channel: str | None = Field(default=None, sa_column=Column(Text))
    campaign_event: str | None = Field(default=None, sa_column=Column(Text))
    campaign_name: str | None = Field(default=None, sa_column=Column(Text))
    body: str | None = Field(default=None, sa_column=Column(Text))
    occurred_at: datetime = _ts()
    created_at: datetime = _ts()


class PushLedger(SQLModel, table=True):
    """One row per (activity, integration, target): the exactly-once record of a push.

    ``idempotency_key`` is embedded in what is written to the CRM, so after an ambiguous failure
    the next attempt can find the record it may already have created. Statuses: pending,
    deferred (parent record not synced yet), sending (a CRM call may be in flight), failed (will
    be retried at ``next_attempt_at``), delivered, not_integrated (attempts exhausted), orphaned
    (the parent never arrived within the grace period), skipped (settings push nothing).
    """

    __tablename__ = "push_ledger"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "activity_id", "integration_id", "target", name="uq_push_target"
        ),
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_push_key"),
        Index("ix_push_ledger_due", "tenant_id", "status", "next_attempt_at"),
        # Inbound activities look their CRM ids up here (no echo, crmsync.activities).
        Index(
            "ix_push_ledger_crm_record",
            "tenant_id",
            "integration_id",
            "crm_record_id",
            postgresql_where=text("crm_record_id IS NOT NULL"),
        ),
    )

    id: int | None = _pk()
    tenant_id: int = _tenant_fk()
    activity_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("activity.id", ondelete="CASCADE"), nullable=False)
    )
    integration_id: int = _integration_fk()
    target: str = Field(sa_column=Column(Text, nullable=False))
    idempotency_key: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="pending", sa_column=Column(Text, nullable=False))
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    ambiguous: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    target_ref: str | None = Field(default=None, sa_column=Column(Text))
    crm_record_id: str | None = Field(default=None, sa_column=Column(Text))
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    next_attempt_at: datetime = _ts()
    last_run_id: int | None = Field(default=None, sa_column=Column(BigInteger, index=True))
    delivered_at: datetime | None = _ts(nullable=True, default_now=False)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class PushAttempt(SQLModel, table=True):
    """One attempt of a push ledger row, kept for developers (seed 003: "The Integration object
    with all details reported is available for developers"; migration 0009).

    ``request`` summarises what was asked (target, parent record, idempotency key, whether an
    earlier copy was looked for first, the text's first line and length); ``response`` holds each
    HTTP exchange (method, path, status, milliseconds, masked error excerpt) and the CRM's record
    id. Never a token, credential, header or request body (:func:`crmsync.push.redact`).
    """

    __tablename__ = "push_attempt"
    __table_args__ = (
        Index("ix_push_attempt_activity", "tenant_id", "activity_id"),
        Index("ix_push_attempt_ledger", "ledger_id"),
    )

    id: int | None = _pk()
    tenant_id: int = _tenant_fk()
    ledger_id: int = Field(
        sa_column=Column(
            BigInteger, ForeignKey("push_ledger.id", ondelete="CASCADE"), nullable=False
        )
    )
    activity_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("activity.id", ondelete="CASCADE"), nullable=False)
    )
    integration_id: int = _integration_fk()
    attempt: int = Field(sa_column=Column(Integer, nullable=False))
    outcome: str = Field(sa_column=Column(Text, nullable=False))
    started_at: datetime = _ts()
    ms: int = Field(sa_column=Column(Integer, nullable=False))
    request: dict[str, Any] = _jsonb()
    response: dict[str, Any] = _jsonb()
    crm_record_id: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    run_id: int | None = Field(default=None, sa_column=Column(BigInteger))


class SyncLineage(SQLModel, table=True):
    """Per-record lineage: which CRM records a run created, updated or rejected."""

    __tablename__ = "sync_lineage"
    __table_args__ = (Index("ix_sync_lineage_run", "run_id"),)

    id: int | None = _pk()
    tenant_id: int = _tenant_fk()
    run_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("sync_run.id", ondelete="CASCADE"), nullable=False)
    )
    integration_id: int = _integration_fk()
    stream: str = Field(sa_column=Column(Text, nullable=False))
    model: str | None = Field(default=None, sa_column=Column(Text))
    external_id: str = Field(sa_column=Column(Text, nullable=False))
    action: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = _ts()


class CrmActivity(SQLModel, table=True):
    """A note, task, call or email made in a CRM (issue 15, seed 004; migration 0012).

    One row per CRM activity: ``(tenant_id, integration_id, kind, external_id)`` is unique, so a
    re-read updates the row (when its ``external_modified_at`` is not older) instead of adding
    one. ``contact_id`` stays NULL while the CRM record it hangs under (``contact_ref``,
    ``opportunity_model``/``opportunity_ref``) has not reached the hub; the merge links it when
    it does (:func:`crmsync.activities.link_waiting`). ``deleted_at`` marks a deletion the CRM
    reported. Activities crmsync wrote itself never get a row (they are echoes of the push
    ledger), and no row is ever pushed to a CRM: inbound activities are not in ``activity``.
    """

    __tablename__ = "crm_activity"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "integration_id", "kind", "external_id", name="uq_crm_activity"
        ),
        Index("ix_crm_activity_contact", "tenant_id", "contact_id"),
        # Waiting rows only: the link step looks them up by the records a batch merged.
        Index(
            "ix_crm_activity_waiting_opportunity",
            "tenant_id",
            "integration_id",
            "opportunity_ref",
            postgresql_where=text("contact_id IS NULL"),
        ),
        Index(
            "ix_crm_activity_waiting_contact",
            "tenant_id",
            "integration_id",
            "contact_ref",
            postgresql_where=text("contact_id IS NULL"),
        ),
    )

    id: int | None = _pk()
    tenant_id: int = _tenant_fk()
    integration_id: int = _integration_fk()
    kind: str = Field(sa_column=Column(Text, nullable=False))
    external_id: str = Field(sa_column=Column(Text, nullable=False))
    parent: str = Field(sa_column=Column(Text, nullable=False))
    contact_ref: str | None = Field(default=None, sa_column=Column(Text))
    opportunity_model: str | None = Field(default=None, sa_column=Column(Text))
    opportunity_ref: str | None = Field(default=None, sa_column=Column(Text))
    contact_id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, ForeignKey("contact.id", ondelete="SET NULL")),
    )
    opportunity_id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, ForeignKey("opportunity.id", ondelete="SET NULL")),
    )
    author: str | None = Field(default=None, sa_column=Column(Text))
    subject: str | None = Field(default=None, sa_column=Column(Text))
    body: str | None = Field(default=None, sa_column=Column(Text))
    external_created_at: datetime | None = _ts(nullable=True, default_now=False)
    external_modified_at: datetime | None = _ts(nullable=True, default_now=False)
    deleted_at: datetime | None = _ts(nullable=True, default_now=False)
    linked_at: datetime | None = _ts(nullable=True, default_now=False)
    payload: dict[str, Any] = _jsonb()
    run_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
