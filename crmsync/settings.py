"""Process settings, read from the environment (prefix ``CRMSYNC_``) and ``.env``.

``DATABASE_URL`` is read without the prefix because every hosting platform sets it that way.
With no ``DATABASE_URL`` the hub starts an embedded PostgreSQL in ``data_dir`` (see
:mod:`crmsync.db`), so a fresh clone runs without any server installed.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRMSYNC_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "CRMSYNC_DATABASE_URL"),
        description="PostgreSQL URL of the hub database; unset = embedded PostgreSQL in data_dir.",
    )
    data_dir: Path = Field(
        default=Path(".crmsync"),
        description="Local state: embedded PostgreSQL cluster, generated secret key, Prefect home.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "Fernet key(s) encrypting integration credentials at rest; comma-separated to rotate "
            "(first encrypts, all decrypt). Unset = a key generated once in data_dir/secret.key."
        ),
    )
    tenant_concurrency: int = Field(default=4, ge=1, le=64, description="Tenants synced at once.")
    first_sync_days: int = Field(
        default=90, ge=1, description="Look-back of a first sync (seed 002)."
    )
    http_timeout_seconds: float = Field(default=60, gt=0, description="Read timeout of CRM calls.")
    merge_chunk_records: int = Field(
        default=1000,
        ge=50,
        description="Records mapped and merged at once. A CRM page (ServiceTitan exports up to "
        "5,000 records) is split into parts of this size so a sync's memory does not follow the "
        "CRM's page size; only the page's last part commits its cursor.",
    )
    chunk_records: int = Field(
        default=5000,
        ge=1,
        description="Records one fetch-modified task run gathers across an integration's streams "
        "before map and merge take them (at least one page). A small tenant's changes fit in one "
        "chunk, so it costs one task run per DAG step; a first load costs one task triple per "
        "chunk.",
    )
    rate_budget: Literal["auto", "prefect", "off"] = Field(
        default="auto",
        description="Shared per-app request budgets via Prefect (auto: if PREFECT_API_URL is set).",
    )
    servicetitan_requests_per_second: float = Field(
        default=60, gt=0, description="ServiceTitan's per-app limit (seed 002: 60/s)."
    )
    notification_block: str | None = Field(
        default=None,
        description="Prefect notification block ('block-type-slug/name') for failure reports.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


class PushPolicy(BaseSettings):
    """Delivery policy of pushes (seed 003: "wait a few minutes and then try again ... after three
    failed attempts ... mark as not integrated"; seed 004: a parent record must exist first)."""

    model_config = SettingsConfigDict(env_prefix="CRMSYNC_PUSH_", extra="ignore")

    max_attempts: int = Field(default=3, ge=1, description="Failed attempts before not_integrated.")
    retry_delay_seconds: float = Field(default=180, ge=0, description="Wait between attempts.")
    defer_seconds: float = Field(default=300, ge=0, description="Re-check for a missing parent.")
    orphan_after_seconds: float = Field(
        default=86_400, ge=0, description="Grace period for the parent record to be synced."
    )
    stale_sending_seconds: float = Field(
        default=300, ge=1, description="A claim older than this is from a dead worker."
    )
    batch_size: int = Field(default=200, ge=1, le=5000)
    report_hours: float = Field(default=4, gt=0, description="Window of the failures report.")
