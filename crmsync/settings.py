"""Process settings, read from the environment (prefix ``CRMSYNC_``) and ``.env``.

``DATABASE_URL`` is read without the prefix because every hosting platform sets it that way.
With no ``DATABASE_URL`` the hub starts an embedded PostgreSQL in ``data_dir`` (see
:mod:`crmsync.db`), so a fresh clone runs without any server installed.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
