"""push attempts: every attempt of a push, kept for developers

Seed 003: "The Integration object with all details reported is available for developers". One
row per attempt that reached for the CRM: what was asked (target, parent record, idempotency key,
whether an earlier copy was looked for first, the text's first line and length) and what the CRM
answered (each HTTP exchange's method, path, status, time and, for errors, a masked body excerpt;
the CRM's record id). Never a token, a credential, a header or a request body. Shown by
``crmsync activity show ID``.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "push_attempt",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("ledger_id", sa.BigInteger(), nullable=False),
        sa.Column("activity_id", sa.BigInteger(), nullable=False),
        sa.Column("integration_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("ms", sa.Integer(), nullable=False),
        sa.Column(
            "request",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "response",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("crm_record_id", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["ledger_id"], ["push_ledger.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["activity_id"], ["activity.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["integration_id"], ["integration.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_push_attempt_activity", "push_attempt", ["tenant_id", "activity_id"], unique=False
    )
    op.create_index("ix_push_attempt_ledger", "push_attempt", ["ledger_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_push_attempt_ledger", table_name="push_attempt")
    op.drop_index("ix_push_attempt_activity", table_name="push_attempt")
    op.drop_table("push_attempt")
