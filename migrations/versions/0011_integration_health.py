"""integration health: why and when an integration was paused, and when it was resumed

Issue 12: after ``CRMSYNC_PAUSE_AFTER_FAILURES`` consecutive failed syncs ``crmsync.health``
pauses the integration and says why (``paused_reason``: the count and the last error). A trigger
keeps the stamps whichever way ``paused`` changes: pausing sets ``paused_at`` (and, for a pause
without a reason, "paused by an operator"); resuming (``crmsync integrations resume`` or SQL)
clears the reason and ``paused_at`` and sets ``resumed_at``, from which failed syncs are counted
again.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("integration", sa.Column("paused_reason", sa.Text(), nullable=True))
    op.add_column("integration", sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("integration", sa.Column("resumed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE integration SET paused_at = updated_at, "
        "paused_reason = 'paused by an operator' WHERE paused"
    )
    op.execute(
        """
        CREATE FUNCTION crmsync_integration_paused() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.paused AND NOT OLD.paused THEN
                NEW.paused_at := now();
                NEW.paused_reason := coalesce(NEW.paused_reason, 'paused by an operator');
            ELSIF OLD.paused AND NOT NEW.paused THEN
                NEW.paused_at := NULL;
                NEW.paused_reason := NULL;
                NEW.resumed_at := now();
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER integration_paused BEFORE UPDATE OF paused ON integration
            FOR EACH ROW EXECUTE FUNCTION crmsync_integration_paused();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS integration_paused ON integration")
    op.execute("DROP FUNCTION IF EXISTS crmsync_integration_paused()")
    op.drop_column("integration", "resumed_at")
    op.drop_column("integration", "paused_at")
    op.drop_column("integration", "paused_reason")
