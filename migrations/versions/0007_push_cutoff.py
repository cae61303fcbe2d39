"""push cutoff: an integration pushes only what was recorded while it existed and was enabled

Seed 003: "when adding a bulk of leads ... it is recommended that the integration to the CRM to
be first disabled, otherwise all leads will be reported to the CRM at once". ``push_from`` is when
the integration was added; ``disabled_periods`` are the times it was disabled (the current one
open-ended while it is). ``crmsync.push.plan`` plans an activity for an integration only when the
activity's ``created_at`` (when it was recorded in the outbox, on the database's clock) is at or
after ``push_from`` and in no disabled period. A trigger keeps both columns, so every way of
adding or disabling an integration (tenants file, SQL by hand) obeys the same rule.

Existing rows: ``push_from`` is the integration's ``created_at``; an integration disabled now is
taken as disabled since its last update (``updated_at``, which the tenants file sets when it
changes ``enabled``).

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "integration",
        sa.Column(
            "push_from",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.add_column(
        "integration",
        sa.Column(
            "disabled_periods",
            postgresql.TSTZMULTIRANGE(),
            server_default=sa.text("'{}'::tstzmultirange"),
            nullable=False,
        ),
    )
    op.execute(
        """
        UPDATE integration SET push_from = created_at,
            disabled_periods = CASE WHEN enabled THEN '{}'::tstzmultirange
                ELSE tstzmultirange(tstzrange(updated_at, NULL)) END
        """
    )
    op.execute(
        """
        CREATE FUNCTION crmsync_integration_push_cutoff() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                NEW.push_from := coalesce(NEW.push_from, now());
                NEW.disabled_periods := CASE WHEN NEW.enabled THEN '{}'::tstzmultirange
                    ELSE tstzmultirange(tstzrange(NEW.push_from, NULL)) END;
            ELSIF NEW.enabled AND NOT OLD.enabled THEN
                NEW.disabled_periods :=
                    OLD.disabled_periods - tstzmultirange(tstzrange(now(), NULL));
            ELSIF OLD.enabled AND NOT NEW.enabled THEN
                NEW.disabled_periods :=
                    OLD.disabled_periods + tstzmultirange(tstzrange(now(), NULL));
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER integration_push_cutoff BEFORE INSERT OR UPDATE OF enabled ON integration
            FOR EACH ROW EXECUTE FUNCTION crmsync_integration_push_cutoff();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS integration_push_cutoff ON integration")
    op.execute("DROP FUNCTION IF EXISTS crmsync_integration_push_cutoff()")
    op.drop_column("integration", "disabled_periods")
    op.drop_column("integration", "push_from")
