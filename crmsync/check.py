"""Check a CRM connection before relying on it (issue 14): sign in, then read the first page of
every stream the integration's settings select, and say per stream whether it works.

``crmsync integrations check TENANT NAME`` checks a stored integration; ``crmsync tenants apply
FILE --check`` checks every integration of a tenants file without storing anything. Nothing here
writes to the hub: no cursor moves, no record is mapped or merged, no run is recorded. A failing
stream says why in the connector's words (a ServiceTitan 403 names the read scope the app lacks
and how to grant it), and one failing stream does not stop the others from being checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, SecretStr

from connectors.errors import ConnectorError
from crmsync.providers import get_provider
from crmsync.providers.base import IntegrationContext, StreamCursor
from crmsync.settings import get_settings

if TYPE_CHECKING:
    from crmsync.tenants import TenantsFile

ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class StreamCheck:
    stream: str
    records: int | None  # records on the first page; None when the read failed
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class IntegrationCheck:
    tenant: str
    integration: str
    provider: str
    sign_in_error: str | None = None  # set: no stream was read
    streams: list[StreamCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.sign_in_error is None and all(s.ok for s in self.streams)

    @property
    def label(self) -> str:
        return f"{self.tenant}/{self.integration}"


def check_context(ctx: IntegrationContext) -> IntegrationCheck:
    """Sign in with ``ctx``, then read one page of each of its streams from the start (a first
    sync's window: ``first_sync_days`` back), in the order a sync reads them."""
    provider = get_provider(ctx.provider)
    secrets = _secrets(ctx.credentials)
    try:
        provider.authenticate(ctx)
    except Exception as exc:
        return IntegrationCheck(ctx.tenant_slug, ctx.name, ctx.provider, _describe(exc, secrets))
    started_at = datetime.now(UTC)
    streams: list[StreamCheck] = []
    for stream in provider.streams(ctx):
        try:
            page = provider.fetch_page(ctx, stream, StreamCursor(None, None, None), started_at)
        except Exception as exc:
            streams.append(StreamCheck(stream, None, _describe(exc, secrets)))
            continue
        streams.append(StreamCheck(stream, len(page.records) + len(page.invalid)))
    return IntegrationCheck(ctx.tenant_slug, ctx.name, ctx.provider, None, streams)


def check_integration(tenant_slug: str, name: str) -> IntegrationCheck:
    """Check a stored integration with its stored (decrypted) credentials and settings;
    LookupError when the tenant has no integration of that name."""
    from crmsync import db, sync

    with db.connect() as conn:
        row = conn.execute(
            "SELECT i.id FROM integration i JOIN tenant t ON t.id = i.tenant_id "
            "WHERE t.slug = %s AND i.name = %s",
            (tenant_slug, name),
        ).fetchone()
    if row is None:
        raise LookupError(f"tenant {tenant_slug} has no integration {name!r}")
    return check_context(sync.load_integration(int(row[0])))


def check_file(spec: TenantsFile) -> list[IntegrationCheck]:
    """Check every integration of a loaded tenants file (``crmsync.tenants.load``), enabled or
    not, from the file's values alone: nothing is read from or written to the hub."""
    first_sync_days = get_settings().first_sync_days
    results = []
    number = 0
    for tenant in spec.tenants:
        for integ in tenant.integrations:
            number += 1
            provider = get_provider(integ.provider)
            ctx = IntegrationContext(
                id=-number,  # not a hub id: keeps each one's CRM client apart from stored ones
                tenant_id=0,
                tenant_slug=tenant.slug,
                name=integ.name,
                provider=integ.provider,
                base_url=integ.base_url,
                auth_url=integ.auth_url,
                credentials=provider.credentials_model.model_validate(integ.credentials),
                settings=provider.settings_model.model_validate(integ.settings),
                first_sync_days=first_sync_days,
            )
            results.append(check_context(ctx))
    return results


def _secrets(credentials: BaseModel) -> list[str]:
    """The credentials' secret values (``SecretStr`` fields; a client id stays readable)."""
    values = []
    for value in credentials.__dict__.values():
        if isinstance(value, SecretStr) and len(value.get_secret_value()) >= 4:
            values.append(value.get_secret_value())
    return values


def _describe(exc: BaseException, secrets: list[str]) -> str:
    """The error in one line: a connector's own message (built to be safe to show), else the
    exception's type and text; never a credential."""
    text = str(exc) if isinstance(exc, ConnectorError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    for secret in secrets:
        text = text.replace(secret, "***")
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"
