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


# -- seed 003: "The number of CRM Integrations per user are limited and related to the user's
# current plan. Hover Lead counts only active integrations."


def integration(name: str, enabled: bool = True) -> str:
    flag = "" if enabled else "        enabled: false\n"
    return f"      - name: {name}\n{flag}{ST}"


def plan_file(plan: str | None, *integrations: str, slug: str = "acme") -> str:
    head = f"tenants:\n  - slug: {slug}\n    name: {slug.title()}\n"
    if plan:
        head += f"    plan: {plan}\n"
    return head + "    integrations:\n" + "".join(integrations)


def active(slug: str = "acme") -> list[str]:
    with db.connect() as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT i.name FROM integration i JOIN tenant t ON t.id = i.tenant_id "
                "WHERE t.slug = %s AND i.enabled AND NOT i.paused ORDER BY i.name",
                (slug,),
            )
        ]


def pause(name: str, paused: bool = True) -> None:
    with db.connect() as conn:
        conn.execute("UPDATE integration SET paused = %s WHERE name = %s", (paused, name))
        conn.commit()


def test_plan_caps_are_a_small_table_starter_1_pro_3_enterprise_unlimited() -> None:
    from crmsync.settings import PLAN_CAPS

    assert PLAN_CAPS == {"starter": 1, "pro": 3, "enterprise": None}


def test_a_plan_refuses_to_activate_one_more_integration_than_its_cap(tmp_path: Path) -> None:
    path = write(tmp_path, plan_file("starter", integration("st-a"), integration("st-b")))
    spec = tenants.load(path)
    with pytest.raises(tenants.ConfigError) as err:
        tenants.apply(spec)
    message = str(err.value)
    assert message.startswith(f"{path}:9: tenants.0.integrations.1.enabled: ")
    assert "plan 'starter' allows 1 active integration" in message and "st-b" in message
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM tenant").fetchone() == (0,), "nothing written"


def test_disabled_and_paused_integrations_do_not_count_toward_the_plan(tmp_path: Path) -> None:
    first = plan_file("starter", integration("st-a"), integration("st-b", enabled=False))
    tenants.apply(tenants.load(write(tmp_path, first)))
    assert active() == ["st-a"]
    pause("st-a")
    swapped = plan_file("starter", integration("st-a"), integration("st-b"))
    tenants.apply(tenants.load(write(tmp_path, swapped)))
    assert active() == ["st-b"], "the paused one does not count"


def test_integrations_absent_from_the_file_still_count_toward_the_plan(tmp_path: Path) -> None:
    both = plan_file("pro", integration("st-a"), integration("st-b"))
    tenants.apply(tenants.load(write(tmp_path, both)))
    path = write(tmp_path, plan_file("starter", integration("st-c", enabled=False)))
    with pytest.raises(tenants.ConfigError) as err:
        tenants.apply(tenants.load(path))
    assert str(err.value).startswith(f"{path}:4: tenants.0.plan: ")
    assert "st-a (not in this file), st-b (not in this file)" in str(err.value)
    path = write(tmp_path, plan_file("starter", integration("st-b")))
    with pytest.raises(tenants.ConfigError) as err:
        tenants.apply(tenants.load(path))
    assert str(err.value).startswith(f"{path}:6: tenants.0.integrations.0.enabled: ")
    assert active() == ["st-a", "st-b"], "nothing changed"


def test_pro_allows_three_and_enterprise_any_number(tmp_path: Path) -> None:
    three = [integration(f"st-{i}") for i in range(3)]
    tenants.apply(tenants.load(write(tmp_path, plan_file("pro", *three))))
    with pytest.raises(tenants.ConfigError, match="plan 'pro' allows 3 active integrations"):
        tenants.apply(tenants.load(write(tmp_path, plan_file("pro", *three, integration("st-3")))))
    five = [integration(f"st-{i}") for i in range(5)]
    tenants.apply(tenants.load(write(tmp_path, plan_file("enterprise", *five))))
    assert len(active()) == 5
    tenants.apply(tenants.load(write(tmp_path, plan_file(None, *five, slug="noplan"))))
    assert len(active("noplan")) == 5, "no plan, no cap"


def test_an_unknown_plan_is_refused_with_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, plan_file("gold", integration("st-a")))
    with pytest.raises(tenants.ConfigError) as err:
        tenants.load(path)
    assert f"{path}:4: tenants.0.plan: unknown plan 'gold'" in str(err.value)
    assert "starter, pro, enterprise" in str(err.value)


def test_tenants_apply_command_reports_the_plan_cap_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ops.cli import app

    path = write(tmp_path, plan_file("starter", integration("st-a"), integration("st-b")))
    result = CliRunner().invoke(app, ["tenants", "apply", str(path)])
    assert result.exit_code == 2, result.output
    assert f"error: {path}:9: tenants.0.integrations.1.enabled:" in result.output


def test_resuming_an_integration_over_the_plan_cap_is_refused(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ops.cli import app

    first = plan_file("starter", integration("st-a"), integration("st-b", enabled=False))
    tenants.apply(tenants.load(write(tmp_path, first)))
    pause("st-a")
    swapped = plan_file("starter", integration("st-a"), integration("st-b"))
    tenants.apply(tenants.load(write(tmp_path, swapped)))
    result = CliRunner().invoke(app, ["integrations", "resume", "acme", "st-a"])
    assert result.exit_code == 2
    assert "plan 'starter' allows 1 active integration" in result.output
    assert active() == ["st-b"]
    pause("st-b")
    assert CliRunner().invoke(app, ["integrations", "resume", "acme", "st-a"]).exit_code == 0
    assert active() == ["st-a"]
