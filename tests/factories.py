"""Small builders for test data in the hub database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crmsync import crypto, db
from models.hub import Integration, Tenant
from models.standard import MappedOpportunity


def make_tenant(slug: str, name: str | None = None) -> int:
    with db.session() as s:
        t = Tenant(slug=slug, name=name or slug.title())
        s.add(t)
        s.commit()
        assert t.id is not None
        return t.id


def make_integration(
    tenant_id: int,
    name: str = "st-main",
    provider: str = "servicetitan",
    credentials: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    base_url: str | None = None,
    auth_url: str | None = None,
) -> int:
    creds = credentials or {
        "client_id": "cid.x",
        "client_secret": "cs1.x",
        "app_key": "ak1.x",
        "tenant_id": "1",
    }
    with db.session() as s:
        i = Integration(
            tenant_id=tenant_id,
            name=name,
            provider=provider,
            base_url=base_url,
            auth_url=auth_url,
            credentials=crypto.encrypt_json(creds),
            settings=settings or {},
        )
        s.add(i)
        s.commit()
        assert i.id is not None
        return i.id


def ts(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def opp(
    external_id: str,
    *,
    contact: str | None = "c1",
    email: str | None = None,
    phone: str | None = None,
    updated: datetime | None = None,
    created: datetime | None = None,
    model: str = "job",
    first: str | None = "Ann",
    last: str | None = "Lee",
    status: str | None = "Scheduled",
    details: dict[str, Any] | None = None,
) -> MappedOpportunity:
    return MappedOpportunity(
        model=model,
        external_id=external_id,
        external_contact_id=contact,
        external_created_at=created or ts(1),
        external_updated_at=updated or ts(2),
        email=email,
        first_name=first,
        last_name=last,
        phone=phone,
        status=status,
        details=details or {"id": external_id},
    )
