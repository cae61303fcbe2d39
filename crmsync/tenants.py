"""Tenants as configuration: ``crmsync tenants apply FILE.yaml``.

The file is the source of truth for tenants and their integrations; applying it twice changes
nothing the second time. ``${VAR}`` in any value is replaced from the environment. Every error
names the file, the line and the key, and nothing is written unless the whole file is valid.
Credentials are validated by the provider's credentials model and stored encrypted; they are
never echoed back (the summary shows only whether they changed).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError
from sqlmodel import Session, col, select

from crmsync import crypto, db
from crmsync.plans import allows, cap_of
from crmsync.providers import PROVIDERS, UnknownProviderError, get_provider
from crmsync.settings import PLAN_CAPS
from models.hub import Integration, SyncCursor, Tenant, utcnow

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"


class ConfigError(ValueError):
    """A tenants file that cannot be applied; the message names file, line and key."""


class IntegrationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=_SLUG)
    provider: str
    enabled: bool = True
    base_url: str | None = None
    auth_url: str | None = None
    credentials: dict[str, Any]
    settings: dict[str, Any] = Field(default_factory=dict)


def _email(value: str) -> str:
    from models.normalize import normalize_email

    email = normalize_email(value)
    if email is None:
        raise ValueError("not an email address")
    return email


class TenantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: str = Field(pattern=_SLUG)
    name: str = Field(min_length=1)
    # Where the push failure summary is emailed (seed 003); none = artifact only.
    contact_email: Annotated[str, AfterValidator(_email)] | None = None
    # Caps the active integrations (seed 003; crmsync.settings.PLAN_CAPS); none = no cap.
    plan: str | None = None
    integrations: list[IntegrationSpec] = Field(default_factory=list)


class TenantsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenants: list[TenantSpec]
    # Where each key was read (file, line), for errors only apply() can find (plan caps).
    _src: str = PrivateAttr(default="<tenants>")
    _lines: dict[tuple[Any, ...], int] = PrivateAttr(default_factory=dict)


@dataclass
class _Located:
    value: Any
    lines: dict[tuple[Any, ...], int]


def _walk(
    node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int], src: str
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in out:
                raise ConfigError(f"{src}:{key_node.start_mark.line + 1}: duplicate key {key!r}")
            out[key] = _walk(value_node, (*path, key), lines, src)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), lines, src) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    value = (
        yaml.safe_load(yaml.serialize(node)) if node.tag != "tag:yaml.org,2002:str" else node.value
    )
    if isinstance(value, str) and "${" in value:

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                raise ConfigError(
                    f"{src}:{node.start_mark.line + 1}: environment variable {name} is not set "
                    f"(used by {'.'.join(map(str, path))})"
                )
            return os.environ[name]

        value = _VAR.sub(sub, value)
    return value


def _line(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _describe(
    src: str, lines: dict[tuple[Any, ...], int], prefix: tuple[Any, ...], err: ValidationError
) -> str:
    parts = []
    for e in err.errors():
        loc = (*prefix, *e["loc"])
        line = _line(lines, loc)
        where = ".".join(str(p) for p in loc)
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        parts.append(f"{src}:{line}: {where}: {msg}")
    return "\n".join(parts)


def load(path: Path) -> TenantsFile:
    """Parse and fully validate a tenants file (env vars, provider credentials and settings)."""
    src = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{src}: cannot read: {exc.strerror}") from None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark else "?"
        raise ConfigError(f"{src}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if node is None:
        raise ConfigError(f"{src}:1: the file is empty; expected a 'tenants:' list")
    lines: dict[tuple[Any, ...], int] = {}
    raw = _walk(node, (), lines, src)
    try:
        parsed = TenantsFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(src, lines, (), exc)) from None
    seen: set[str] = set()
    for ti, tenant in enumerate(parsed.tenants):
        if tenant.slug in seen:
            raise ConfigError(
                f"{src}:{lines.get(('tenants', ti, 'slug'))}: duplicate tenant slug {tenant.slug!r}"
            )
        seen.add(tenant.slug)
        if tenant.plan is not None and tenant.plan not in PLAN_CAPS:
            raise ConfigError(
                f"{src}:{lines.get(('tenants', ti, 'plan'))}: tenants.{ti}.plan: unknown plan "
                f"{tenant.plan!r}; plans: {', '.join(PLAN_CAPS)}"
            )
        names: set[str] = set()
        for ii, integ in enumerate(tenant.integrations):
            base = ("tenants", ti, "integrations", ii)
            if integ.name in names:
                raise ConfigError(
                    f"{src}:{lines.get((*base, 'name'))}: duplicate integration name {integ.name!r}"
                )
            names.add(integ.name)
            try:
                provider = get_provider(integ.provider)
            except UnknownProviderError as exc:
                raise ConfigError(f"{src}:{lines.get((*base, 'provider'))}: {exc}") from None
            for part, model in (
                ("credentials", provider.credentials_model),
                ("settings", provider.settings_model),
            ):
                try:
                    model.model_validate(getattr(integ, part))
                except ValidationError as exc:
                    msg = _describe(src, lines, (*base, part), exc)
                    # pydantic echoes input values: never let a credential reach the message.
                    if part == "credentials":
                        msg = "\n".join(m.split(" [type=")[0] for m in msg.splitlines())
                    raise ConfigError(_redact(msg, integ.credentials)) from None
    parsed._src, parsed._lines = src, lines
    return parsed


def _redact(message: str, credentials: dict[str, Any]) -> str:
    for value in credentials.values():
        if isinstance(value, str) and len(value) >= 4:
            message = message.replace(value, "***")
    return message


@dataclass
class ApplyResult:
    """What applying a file changed. Only real changes count: an integration whose provider,
    flags, URLs, settings and (decrypted) credentials all equal the file's is unchanged."""

    tenants_created: int = 0
    tenants_updated: int = 0
    tenants_unchanged: int = 0
    integrations_created: int = 0
    integrations_updated: int = 0
    integrations_unchanged: int = 0
    # "tenant/integration: what changed" for each updated integration (never a value)
    updates: list[str] = field(default_factory=list)
    # Integrations of the file with stored cursors (their next sync resumes from them) and
    # without (their next sync is a first sync over the last first_sync_days days).
    resuming: int = 0
    first_sync: int = 0

    @property
    def unchanged(self) -> int:
        """Integrations left as they were (the name of earlier releases)."""
        return self.integrations_unchanged


def apply(spec: TenantsFile) -> ApplyResult:
    """Create or update every tenant and integration in ``spec`` in one transaction.

    Integrations present in the database but absent from the file are left alone (disable them
    with ``enabled: false``): deleting a CRM connection would delete its synced data.
    """
    result = ApplyResult()
    with db.session() as s:
        for t in spec.tenants:
            tenant = s.exec(select(Tenant).where(Tenant.slug == t.slug)).first()
            if tenant is None:
                tenant = Tenant(
                    slug=t.slug, name=t.name, contact_email=t.contact_email, plan=t.plan
                )
                s.add(tenant)
                s.flush()
                result.tenants_created += 1
            elif (tenant.name, tenant.contact_email, tenant.plan) != (
                t.name,
                t.contact_email,
                t.plan,
            ):
                tenant.name, tenant.contact_email, tenant.plan = t.name, t.contact_email, t.plan
                tenant.updated_at = utcnow()
                result.tenants_updated += 1
            else:
                result.tenants_unchanged += 1
            assert tenant.id is not None  # flushed above when new
            for i in t.integrations:
                provider = get_provider(i.provider)
                creds = provider.credentials_model.model_validate(i.credentials)
                settings = provider.settings_model.model_validate(i.settings)
                plain_creds = _plain(creds)
                settings_json = settings.model_dump(mode="json")
                row = s.exec(
                    select(Integration).where(
                        Integration.tenant_id == tenant.id, Integration.name == i.name
                    )
                ).first()
                if row is None:
                    s.add(
                        Integration(
                            tenant_id=tenant.id,
                            name=i.name,
                            provider=i.provider,
                            enabled=i.enabled,
                            base_url=i.base_url,
                            auth_url=i.auth_url,
                            credentials=crypto.encrypt_json(plain_creds),
                            settings=settings_json,
                        )
                    )
                    result.integrations_created += 1
                    result.first_sync += 1
                    continue
                stored = select(SyncCursor).where(
                    SyncCursor.integration_id == row.id, col(SyncCursor.cursor).is_not(None)
                )
                if s.exec(stored).first():
                    result.resuming += 1
                else:
                    result.first_sync += 1
                changed = [
                    name
                    for name, differs in (
                        ("provider", row.provider != i.provider),
                        ("enabled", row.enabled != i.enabled),
                        ("base_url", row.base_url != i.base_url),
                        ("auth_url", row.auth_url != i.auth_url),
                        ("settings", row.settings != settings_json),
                        ("credentials", crypto.decrypt_json(row.credentials) != plain_creds),
                    )
                    if differs
                ]
                if changed:
                    row.provider, row.enabled = i.provider, i.enabled
                    row.base_url, row.auth_url = i.base_url, i.auth_url
                    row.settings = settings_json
                    row.credentials = crypto.encrypt_json(plain_creds)
                    row.updated_at = utcnow()
                    result.integrations_updated += 1
                    result.updates.append(f"{t.slug}/{i.name}: {', '.join(changed)}")
                else:
                    result.integrations_unchanged += 1
        s.flush()
        _check_plans(s, spec)
        s.commit()
    return result


def _check_plans(s: Session, spec: TenantsFile) -> None:
    """Seed 003: a tenant's plan caps its active (enabled, not paused) integrations, those the
    file does not mention included. The one that goes over is the first beyond the cap, counting
    those outside the file first, then the file's in order; its ``enabled`` key is named, or the
    tenant's ``plan`` key when it is not in the file. Raised before anything is committed."""
    for ti, t in enumerate(spec.tenants):
        cap = cap_of(t.plan)
        if t.plan is None or cap is None:
            continue
        rows = s.exec(
            select(Integration).join(Tenant).where(Tenant.slug == t.slug).order_by(Integration.name)
        ).all()
        active = {r.name for r in rows if r.enabled and not r.paused}
        if len(active) <= cap:
            continue
        in_file = [(ii, i.name) for ii, i in enumerate(t.integrations) if i.name in active]
        outside = sorted(active - {name for _, name in in_file})
        names = [f"{n} (not in this file)" for n in outside] + [n for _, n in in_file]
        key: tuple[Any, ...] = ("tenants", ti, "plan")
        if cap >= len(outside):
            key = ("tenants", ti, "integrations", in_file[cap - len(outside)][0], "enabled")
        raise ConfigError(
            f"{spec._src}:{_line(spec._lines, key)}: {'.'.join(map(str, key))}: "
            f"{allows(t.plan, cap)}; this file would leave {len(active)} active "
            f"({', '.join(names)}): set enabled: false on some, pause them "
            "(crmsync integrations pause) or choose a larger plan"
        )


def _plain(model: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in model:
        out[key] = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    return out


__all__ = ["PROVIDERS", "ApplyResult", "ConfigError", "TenantsFile", "apply", "load"]
