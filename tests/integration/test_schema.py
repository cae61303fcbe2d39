"""The ORM classes of ``models/hub.py`` describe exactly the schema the migrations build."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import models.hub  # noqa: F401  (registers the tables)
from crmsync import db


def test_orm_models_match_the_migrated_schema() -> None:
    """Alembic's own comparison of ``models.hub`` with the database at the latest migration:
    a column added by a migration but not by the model (or the reverse) shows up here."""
    with db.engine().connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, SQLModel.metadata)
    assert diffs == []
