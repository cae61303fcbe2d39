"""tenant plan: caps the tenant's active integrations

Seed 003: "The number of CRM Integrations per user are limited and related to the user's current
plan. Hover Lead counts only active integrations." The tenants file sets the plan; its cap is
``crmsync.settings.PLAN_CAPS`` (starter 1, pro 3, enterprise unlimited). NULL = no plan, no cap.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tenant", sa.Column("plan", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("tenant", "plan")
