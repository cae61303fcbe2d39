"""tenant contact email: where the push failure summary is sent

Seed 003: "Hover Lead will report by email (using the email address that the user has signed in
with) a summary with the integrations and leads that have failed to integrate". The tenants file
sets it (``contact_email``); NULL = no email, the summary is still kept as an artifact.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tenant", sa.Column("contact_email", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("tenant", "contact_email")
