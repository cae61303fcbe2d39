"""`crmsync tenants apply`: idempotent, env-expanded, precise errors, secrets encrypted."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from crmsync import crypto, db, tenants
from ops.cli import app

pytestmark = pytest.mark.usefixtures("clean_db")

GOOD = """\
tenants:
  - slug: acme-hvac
    name: Acme HVAC
    integrations:
      - name: st-main
        provider: servicetitan
        base_url: http://127.0.0.1:9001          # default: the vendor's production API
        auth_url: http://127.0.0.1:9001/connect/token
        credentials: {client_id: "${ST_CLIENT_ID}", client_secret: "${ST_SECRET}", app_key: "${ST_APP_KEY}", tenant_id: "1234"}
        settings: {opportunity_models: [job, membership], placeholder_emails: ["NoEmail@acme.com "]}
"""


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, secret_value: str) -> str:
    monkeypatch.setenv("ST_CLIENT_ID", "cid.acme")
    monkeypatch.setenv("ST_SECRET", secret_value)
    monkeypatch.setenv("ST_APP_KEY", "ak1.acme-app-key")
    return secret_value


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "tenants.yaml"
    p.write_text(text)
    return p


def test_applying_the_same_file_twice_changes_nothing_the_second_time(
    tmp_path: Path, env: str
) -> None:
    spec = tenants.load(write(tmp_path, GOOD))
    first = tenants.apply(spec)
    second = tenants.apply(spec)
    assert (first.tenants_created, first.integrations_created) == (1, 1)
    assert (second.tenants_created, second.integrations_created, second.integrations_updated) == (
        0,
        0,
        0,
    )
    assert second.unchanged == 1


def test_changed_settings_update_the_integration_in_place(tmp_path: Path, env: str) -> None:
    tenants.apply(tenants.load(write(tmp_path, GOOD)))
    result = tenants.apply(tenants.load(write(tmp_path, GOOD.replace("job, membership", "job"))))
    assert result.integrations_updated == 1
    with db.connect() as conn:
        assert conn.execute(
            "SELECT settings->'opportunity_models' FROM integration"
        ).fetchone() == (["job"],)


def test_credentials_are_encrypted_at_rest(tmp_path: Path, env: str) -> None:
    tenants.apply(tenants.load(write(tmp_path, GOOD)))
    with db.connect() as conn:
        (blob,) = conn.execute("SELECT credentials FROM integration").fetchone()  # type: ignore[misc]
        dump = conn.execute("SELECT i::text FROM integration i").fetchone()[0]  # type: ignore[index]
    assert env.encode() not in bytes(blob)
    assert env not in dump
    assert crypto.decrypt_json(bytes(blob))["client_secret"] == env


def test_placeholder_emails_are_normalised_when_applied(tmp_path: Path, env: str) -> None:
    tenants.apply(tenants.load(write(tmp_path, GOOD)))
    with db.connect() as conn:
        row = conn.execute("SELECT settings->'placeholder_emails' FROM integration").fetchone()
    assert row == (["noemail@acme.com"],)


def test_missing_environment_variable_is_an_error_naming_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ST_SECRET", raising=False)
    monkeypatch.setenv("ST_CLIENT_ID", "x")
    monkeypatch.setenv("ST_APP_KEY", "y")
    with pytest.raises(
        tenants.ConfigError, match=r"tenants.yaml:9: environment variable ST_SECRET is not set"
    ):
        tenants.load(write(tmp_path, GOOD))


def test_unknown_key_is_an_error_naming_the_line(tmp_path: Path, env: str) -> None:
    text = GOOD.replace(
        "        provider: servicetitan\n", "        provider: servicetitan\n        colour: blue\n"
    )
    with pytest.raises(
        tenants.ConfigError, match=r"tenants.yaml:7: tenants.0.integrations.0.colour: unknown key"
    ):
        tenants.load(write(tmp_path, text))


def test_unknown_setting_of_a_provider_is_an_error_naming_the_line(
    tmp_path: Path, env: str
) -> None:
    text = GOOD.replace("opportunity_models: [job, membership]", "opportunity_modles: [job]")
    with pytest.raises(
        tenants.ConfigError, match=r":10: .*settings.opportunity_modles: unknown key"
    ):
        tenants.load(write(tmp_path, text))


def test_invalid_credentials_error_never_echoes_the_secret(tmp_path: Path, env: str) -> None:
    text = GOOD.replace('tenant_id: "1234"', 'tenant_id: "not-a-number"')
    with pytest.raises(tenants.ConfigError) as info:
        tenants.load(write(tmp_path, text))
    assert "tenant_id" in str(info.value)
    assert env not in str(info.value)


def test_unknown_provider_is_an_error_naming_the_line(tmp_path: Path, env: str) -> None:
    with pytest.raises(
        tenants.ConfigError,
        match=r":6: unknown provider 'hubspot'; known: servicetitan, leadperfection, improveit360",
    ):
        tenants.load(write(tmp_path, GOOD.replace("provider: servicetitan", "provider: hubspot")))


def test_invalid_yaml_is_an_error_naming_the_line(tmp_path: Path) -> None:
    with pytest.raises(tenants.ConfigError, match=r"tenants.yaml:3: not valid YAML"):
        tenants.load(write(tmp_path, "tenants:\n  - slug: a\n   name: [b\n"))


def test_nothing_is_written_when_any_part_of_the_file_is_invalid(tmp_path: Path, env: str) -> None:
    text = GOOD + "  - slug: Bad Slug\n    name: x\n"
    with pytest.raises(tenants.ConfigError, match="slug"):
        tenants.load(write(tmp_path, text))
    with psycopg.connect(db.database_url()) as conn:
        assert conn.execute("SELECT count(*) FROM tenant").fetchone() == (0,)


def test_cli_apply_reports_errors_with_exit_code_2(tmp_path: Path, env: str) -> None:
    result = CliRunner().invoke(app, ["tenants", "apply", str(write(tmp_path, "tenants: 3\n"))])
    assert result.exit_code == 2
    assert "tenants.yaml:1: tenants" in result.output
