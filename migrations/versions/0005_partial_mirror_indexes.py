"""partial indexes on crm_record's customer and parent references

With both indexes sharing the (tenant, integration, resource) prefix, the planner sometimes chose
the parent index for a customer look-up and filtered every contact of the integration: each
page of a first load got slower than the last. Partial indexes make the wrong choice impossible
and drop the NULL entries.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_crm_record_customer", table_name="crm_record")
    op.drop_index("ix_crm_record_parent", table_name="crm_record")
    op.create_index(
        "ix_crm_record_customer",
        "crm_record",
        ["tenant_id", "integration_id", "resource", "customer_ref"],
        postgresql_where="customer_ref IS NOT NULL",
    )
    op.create_index(
        "ix_crm_record_parent",
        "crm_record",
        ["tenant_id", "integration_id", "resource", "parent_ref"],
        postgresql_where="parent_ref IS NOT NULL",
    )


def downgrade() -> None:
    op.drop_index("ix_crm_record_customer", table_name="crm_record")
    op.drop_index("ix_crm_record_parent", table_name="crm_record")
    op.create_index(
        "ix_crm_record_customer",
        "crm_record",
        ["tenant_id", "integration_id", "resource", "customer_ref"],
    )
    op.create_index(
        "ix_crm_record_parent",
        "crm_record",
        ["tenant_id", "integration_id", "resource", "parent_ref"],
    )
