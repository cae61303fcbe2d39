"""opportunity source stamps

The stale-write guard of the merge compares the change stamps of the CRM records an opportunity
was composed of (``source_stamps``: record key → microseconds since the epoch), not its External
Updated At, which may go down when a child record is deleted or its resource deselected. NULL on
rows written before this revision: they keep the External Updated At guard until their next
update stores stamps.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "opportunity",
        sa.Column("source_stamps", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("opportunity", "source_stamps")
