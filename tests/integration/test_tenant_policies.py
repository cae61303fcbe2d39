"""What a tenants file says about a tenant beyond its integrations (seed 003): the address its
push failure summary is emailed to."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmsync import db, tenants

pytestmark = pytest.mark.usefixtures("clean_db")

ST = (
    "        provider: servicetitan\n"
    '        credentials: {client_id: "cid.x", client_secret: "cs1.x", app_key: "ak1.x",'
    ' tenant_id: "1"}\n'
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tenants.yaml"
    path.write_text(text)
    return path


def contact_email(slug: str) -> str | None:
    with db.connect() as conn:
        row = conn.execute("SELECT contact_email FROM tenant WHERE slug = %s", (slug,)).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def tenant_file(extra: str = "") -> str:
    return f"tenants:\n  - slug: acme\n    name: Acme\n{extra}    integrations:\n      - name: st\n{ST}"


def test_tenants_file_contact_email_is_stored_for_the_failure_summary(tmp_path: Path) -> None:
    spec = tenants.load(write(tmp_path, tenant_file("    contact_email: ' Owner@Acme.Example '\n")))
    assert tenants.apply(spec).tenants_created == 1
    assert contact_email("acme") == "owner@acme.example"
    assert tenants.apply(spec).tenants_updated == 0, "applying it again changes nothing"
    changed = tenants.load(write(tmp_path, tenant_file("    contact_email: ops@acme.example\n")))
    assert tenants.apply(changed).tenants_updated == 1
    assert contact_email("acme") == "ops@acme.example"
    assert tenants.apply(tenants.load(write(tmp_path, tenant_file()))).tenants_updated == 1
    assert contact_email("acme") is None, "removed from the file: no more email"


def test_tenants_file_refuses_a_contact_email_that_is_not_an_address(tmp_path: Path) -> None:
    path = write(tmp_path, tenant_file("    contact_email: owner-at-acme\n"))
    with pytest.raises(tenants.ConfigError) as err:
        tenants.load(path)
    assert f"{path}:4: tenants.0.contact_email" in str(err.value)
    assert "not an email address" in str(err.value)
