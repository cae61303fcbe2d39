"""Checking a connection before activating it (issue 14 item 3), as an operator runs it: the
``crmsync`` command as a process, over real HTTP to the ServiceTitan emulator. Per stream the
first page is read (OK with its record count) or the error says why; a 403 names the read scope;
nothing is stored; exit 0 only when everything works."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmsync import db
from sandbox.servicetitan import TenantSpec, run_emulator
from tests.factories import make_integration, make_tenant
from tests.integration.test_cli import crmsync

pytestmark = pytest.mark.usefixtures("clean_db")
APP_KEY = "ak1.checktests"
PAGE = 15
STREAMS = ["customers", "customer_contacts", "appointments", "estimates", "jobs"]


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    specs = [
        TenantSpec(
            tenant_id=st_id,
            client_id=f"cid.{st_id}",
            client_secret=f"cs1.{st_id}",
            app_key=APP_KEY,
            customers=25,
            jobs=40,
            memberships=10,
            seed=st_id,
        )
        for st_id in (201, 202)
    ]
    with run_emulator(specs, port=0, export_page_size=PAGE) as emu:
        yield emu


def _credentials(st_id: int, secret: str | None = None) -> dict[str, str]:
    return {
        "client_id": f"cid.{st_id}",
        "client_secret": secret or f"cs1.{st_id}",
        "app_key": APP_KEY,
        "tenant_id": str(st_id),
    }


def _stored(emu: Any, slug: str, st_id: int, secret: str | None = None) -> None:
    make_integration(
        make_tenant(slug),
        credentials=_credentials(st_id, secret),
        settings={"opportunity_models": ["job"]},
        base_url=emu.url,
        auth_url=emu.url + "/connect/token",
    )


def _stream_lines(out: str) -> dict[str, str]:
    """Stream name → its line (``OK``/``FAILED``, the stream, the detail)."""
    lines: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("OK", "FAILED") and line.startswith("  "):
            lines[parts[1]] = line
    return lines


def _nothing_stored() -> bool:
    with db.connect() as conn:
        counts = [
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("sync_cursor", "sync_run", "crm_record", "opportunity", "contact")
        ]
    return counts == [0, 0, 0, 0, 0]


def test_integrations_check_reads_one_page_of_each_stream_and_reports_its_record_count(
    emulator: Any,
) -> None:
    _stored(emulator, "chk-ok", 201)
    code, out, err, _ = crmsync("integrations", "check", "chk-ok", "st-main")
    assert code == 0, out + err
    assert "chk-ok/st-main (servicetitan): signed in; 5 of 5 stream(s) OK" in out
    lines = _stream_lines(out)
    assert list(lines) == STREAMS, "the streams the settings select, in sync order"
    for line in lines.values():
        assert line.split()[0] == "OK", line
        records = int(line.split()[2])
        assert 0 < records <= PAGE, line  # one page, not the whole stream
    assert _nothing_stored(), "a check stores no cursor, record, run or opportunity"


def test_a_stream_without_its_read_scope_fails_naming_the_scope_and_the_others_still_read(
    emulator: Any,
) -> None:
    _stored(emulator, "chk-scope", 202)
    emulator.state.arm_fault("status", route="*/estimates/export", status=403, times=None)
    try:
        code, out, err, _ = crmsync("integrations", "check", "chk-scope", "st-main")
    finally:
        emulator.state.clear_faults()
    assert code == 1, out + err
    lines = _stream_lines(out)
    estimates = lines.pop("estimates")
    assert estimates.split()[0] == "FAILED"
    assert "ServiceTitan refused to export estimates (HTTP 403)" in estimates
    assert "'Sales & Estimates: Estimates'" in estimates and "Change API Scopes" in estimates
    assert {line.split()[0] for line in lines.values()} == {"OK"}, "the other streams read"
    assert "4 of 5 stream(s) OK" in out


def test_wrong_credentials_fail_at_sign_in_without_showing_the_secret(emulator: Any) -> None:
    _stored(emulator, "chk-auth", 201, secret="cs1.not-the-right-secret")
    code, out, err, _ = crmsync("integrations", "check", "chk-auth", "st-main")
    assert code == 1, out + err
    (line,) = out.strip().splitlines()
    assert line.startswith("FAILED  chk-auth/st-main (servicetitan): sign-in failed: ")
    assert "cs1.not-the-right-secret" not in out + err


def test_checking_an_integration_the_tenant_does_not_have_is_one_line_exit_2(
    emulator: Any,
) -> None:
    _stored(emulator, "chk-name", 201)
    code, out, err, _ = crmsync("integrations", "check", "chk-name", "st-other")
    assert code == 2 and out == ""
    assert err.strip() == "error: tenant chk-name has no integration 'st-other'"


def _tenants_file(path: Path, emu: Any, second_secret: str) -> Path:
    path.write_text(
        f"""\
tenants:
  - slug: file-one
    name: File One
    integrations:
      - name: st-main
        provider: servicetitan
        base_url: {emu.url}
        auth_url: {emu.url}/connect/token
        credentials: {{client_id: cid.201, client_secret: cs1.201, app_key: {APP_KEY}, tenant_id: "201"}}
        settings: {{opportunity_models: [job], job_resources: []}}
  - slug: file-two
    name: File Two
    integrations:
      - name: st-members
        provider: servicetitan
        enabled: false
        base_url: {emu.url}
        auth_url: {emu.url}/connect/token
        credentials: {{client_id: cid.202, client_secret: "{second_secret}", app_key: {APP_KEY}, tenant_id: "202"}}
        settings: {{opportunity_models: [membership]}}
"""
    )
    return path


def test_tenants_apply_check_checks_every_integration_of_the_file_and_stores_nothing(
    emulator: Any, tmp_path: Path
) -> None:
    good = _tenants_file(tmp_path / "good.yaml", emulator, "cs1.202")
    code, out, err, _ = crmsync("tenants", "apply", str(good), "--check")
    assert code == 0, out + err
    assert "file-one/st-main (servicetitan): signed in; 3 of 3 stream(s) OK" in out
    assert "file-two/st-members (servicetitan): signed in; 4 of 4 stream(s) OK" in out
    assert "2 integration(s) checked: 2 OK, 0 with errors; nothing stored" in out

    bad = _tenants_file(tmp_path / "bad.yaml", emulator, "cs1.wrong-secret")
    code, out, err, _ = crmsync("tenants", "apply", str(bad), "--check")
    assert code == 1, out + err
    assert "file-one/st-main (servicetitan): signed in; 3 of 3 stream(s) OK" in out
    assert "FAILED  file-two/st-members (servicetitan): sign-in failed: " in out
    assert "2 integration(s) checked: 1 OK, 1 with errors; nothing stored" in out
    assert "cs1.wrong-secret" not in out + err

    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM tenant").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM integration").fetchone() == (0,)
    assert _nothing_stored()
