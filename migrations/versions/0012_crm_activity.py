"""crm activity: notes, tasks, calls and emails read from the CRMs

Issue 15 (seed 004 "bidirectionally"): one row per CRM activity, unique per integration, kind
and CRM id; linked to the hub contact (and opportunity) when the record it hangs under is in the
hub, waiting unlinked until then (partial indexes ``ix_crm_activity_waiting_*`` hold only the
waiting rows, by the record they wait for); ``deleted_at`` for deletions the CRM reports. The
push ledger gets an index on the CRM ids it recorded, which every page of activities looks up
(no echo).

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, default_now: bool = False) -> sa.Column:  # type: ignore[type-arg]
    if default_now:
        return sa.Column(
            name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        )
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    op.create_table(
        "crm_activity",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("integration_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("parent", sa.Text(), nullable=False),
        sa.Column("contact_ref", sa.Text(), nullable=True),
        sa.Column("opportunity_model", sa.Text(), nullable=True),
        sa.Column("opportunity_ref", sa.Text(), nullable=True),
        sa.Column("contact_id", sa.BigInteger(), nullable=True),
        sa.Column("opportunity_id", sa.BigInteger(), nullable=True),
        sa.Column("author", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        _ts("external_created_at"),
        _ts("external_modified_at"),
        _ts("deleted_at"),
        _ts("linked_at"),
        sa.Column(
            "payload",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        _ts("created_at", default_now=True),
        _ts("updated_at", default_now=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["integration_id"], ["integration.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["opportunity_id"], ["opportunity.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "tenant_id", "integration_id", "kind", "external_id", name="uq_crm_activity"
        ),
    )
    op.create_index("ix_crm_activity_contact", "crm_activity", ["tenant_id", "contact_id"])
    for name, column in (("opportunity", "opportunity_ref"), ("contact", "contact_ref")):
        op.create_index(
            f"ix_crm_activity_waiting_{name}",
            "crm_activity",
            ["tenant_id", "integration_id", column],
            postgresql_where=sa.text("contact_id IS NULL"),
        )

    op.create_index(
        "ix_push_ledger_crm_record",
        "push_ledger",
        ["tenant_id", "integration_id", "crm_record_id"],
        postgresql_where=sa.text("crm_record_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_push_ledger_crm_record", table_name="push_ledger")
    op.drop_index("ix_crm_activity_waiting_contact", table_name="crm_activity")
    op.drop_index("ix_crm_activity_waiting_opportunity", table_name="crm_activity")
    op.drop_index("ix_crm_activity_contact", table_name="crm_activity")
    op.drop_table("crm_activity")
