"""Process settings, read from the environment (prefix ``CRMSYNC_``) and ``.env``.

``DATABASE_URL`` is read without the prefix because every hosting platform sets it that way.
With no ``DATABASE_URL`` the hub starts an embedded PostgreSQL in ``data_dir`` (see
:mod:`crmsync.db`), so a fresh clone runs without any server installed.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DATABASE_URL_EXAMPLE = "postgresql://user:password@host:5432/dbname"
_PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


class SettingsError(ValueError):
    """The environment's settings are invalid. The message names the variable and what a valid
    value looks like, never the value itself (a URL may carry a password)."""


def check_database_url(url: str) -> str:
    """``url`` when it is a PostgreSQL URL that names a database, else ValueError.

    ``postgresql://user[:password]@host[:port]/dbname``; ``postgres://`` and
    ``postgresql+psycopg://`` are accepted as well, and so are libpq's other forms of the same
    URL: several ``host:port`` pairs, no host (the local Unix socket) or a socket directory in
    ``?host=``.
    """
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ValueError("it has no postgresql:// scheme")
    if scheme not in _PG_SCHEMES:
        raise ValueError(f"its scheme is {scheme!r}, not postgresql")
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    hosts = [h for h in parts.netloc.rpartition("@")[2].split(",") if h]
    for host in hosts:  # none: libpq's default Unix socket, or ?host=/socket/dir
        name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if name and port and not port.isdigit():
            raise ValueError(f"its port {port!r} is not a number")
    if not parts.path.strip("/") and not query.get("dbname"):
        raise ValueError("it names no database")
    return url


class Settings(BaseSettings):
    # Invalid values stay out of error messages: DATABASE_URL and the secret key are secrets.
    model_config = SettingsConfigDict(
        env_prefix="CRMSYNC_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

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

    @field_validator("database_url")
    @classmethod
    def _postgresql_url(cls, url: str | None) -> str | None:
        return None if url is None else check_database_url(url)


_ENV_NAMES = {"database_url": "DATABASE_URL"}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings; SettingsError (one line per invalid variable) if any is invalid."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError("; ".join(_describe(e) for e in exc.errors())) from None


def _describe(error: object) -> str:
    assert isinstance(error, dict)
    # loc is the field name, or the environment variable of a field read through an alias.
    field = str(error["loc"][0]).lower().removeprefix("crmsync_") if error.get("loc") else "?"
    name = _ENV_NAMES.get(field, f"CRMSYNC_{field.upper()}")
    reason = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if field == "database_url":
        return (
            f"{name} is not a valid PostgreSQL URL ({reason}); a valid one looks like "
            f"{DATABASE_URL_EXAMPLE} (postgres:// and postgresql+psycopg:// work too)"
        )
    return f"{name}: {reason}"


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


#: Plans and the active integrations each allows (seed 003: "The number of CRM Integrations per
#: user are limited and related to the user's current plan. Hover Lead counts only active
#: integrations"): a tenant's ``plan`` in the tenants file; None = unlimited, no plan = no cap.
#: Active = enabled and not paused (crmsync.plans).
PLAN_CAPS: dict[str, int | None] = {"starter": 1, "pro": 3, "enterprise": None}
