"""Secrets: credentials appear nowhere but encrypted in the integration row — not in logs,
artifacts, flow/task results, errors, the Prefect database or the hub database."""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path
from typing import Any

import pytest

from crmsync import db, push
from flows.sync import sync_all_tenants, sync_tenant
from sandbox.servicetitan import TenantSpec, run_emulator
from tests.factories import make_integration, make_tenant

pytestmark = [pytest.mark.usefixtures("clean_db", "prefect_api"), pytest.mark.slow]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        if record.exc_info:
            self.lines.append(logging.Formatter().formatException(record.exc_info))


def test_credentials_never_leave_the_encrypted_column() -> None:
    good_secret = "cs1." + secrets.token_hex(16)
    bad_secret = "cs1." + secrets.token_hex(16)
    app_key = "ak1." + secrets.token_hex(16)
    spec = TenantSpec(
        tenant_id=401,
        client_id="cid.401",
        client_secret=good_secret,
        app_key=app_key,
        customers=10,
        jobs=12,
        memberships=0,
        seed=4,
    )
    handler = _Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        with run_emulator([spec], port=0, export_page_size=5) as emu:
            for slug, secret_value in (("good", good_secret), ("bad", bad_secret)):
                make_integration(
                    make_tenant(slug),
                    credentials={
                        "client_id": "cid.401",
                        "client_secret": secret_value,
                        "app_key": app_key,
                        "tenant_id": "401",
                    },
                    settings={"opportunity_models": ["job"], "push_campaign_events": "customer"},
                    base_url=emu.url,
                    auth_url=emu.url + "/connect/token",
                )
            summary = asyncio.run(sync_tenant("good"))
            with db.connect() as conn:
                (contact,) = conn.execute("SELECT min(contact_id) FROM opportunity").fetchone()  # type: ignore[misc]
                (tenant_id,) = conn.execute("SELECT id FROM tenant WHERE slug = 'good'").fetchone()  # type: ignore[misc]
            push.record_activity(
                push.ActivityIn(
                    tenant_id=tenant_id,
                    contact_id=contact,
                    kind="campaign_event",
                    campaign_event="launched",
                )
            )
            emu.state.arm_fault("expire_token", times=1)
            second = asyncio.run(sync_tenant("good"))
            state = asyncio.run(sync_all_tenants(return_state=True))  # type: ignore[call-overload]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)

    needles = [good_secret, bad_secret, app_key]
    haystacks: dict[str, str] = {
        "logs": "\n".join(handler.lines),
        "flow results": repr(summary) + repr(second) + repr(state) + str(state.message),
        "hub database": _dump_hub(),
        "prefect database": _dump_prefect(),
        "artifacts": _dump_artifacts(),
        "persisted results": _dump_result_storage(),
    }
    assert second["counts"]["push"]["delivered"] == 1, "the run must really have used the secrets"
    assert "bad" in (state.message or ""), "and the failing integration must have failed"
    for where, text in haystacks.items():
        for needle in needles:
            assert needle not in text, f"a credential leaked into the {where}"
    assert len(haystacks["prefect database"]) > 1000 and len(haystacks["logs"]) > 100
    assert haystacks["artifacts"] != "[]", "the artifacts must have been read"


def _dump_hub() -> str:
    with db.connect() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        ]
        return "\n".join(
            str(conn.execute(f'SELECT string_agg(t::text, chr(10)) FROM "{t}" t').fetchone()[0])  # type: ignore[index]
            for t in tables
        )


def _dump_prefect() -> str:
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    url = str(PREFECT_API_DATABASE_CONNECTION_URL.value() or "")
    path = Path(url.split("///", 1)[-1]) if "sqlite" in url else None
    if path is None or not path.exists():
        pytest.fail(f"cannot locate the Prefect database from {url!r}")
    data = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    return data.decode("utf-8", errors="replace")


def _dump_artifacts() -> str:
    from prefect.client.orchestration import get_client

    async def read() -> list[Any]:
        async with get_client() as client:
            from prefect.client.schemas.sorting import ArtifactSort

            # Every artifact: a task-run filter, even an empty one, would keep only artifacts
            # made inside task runs, and the run tables are made by the tenant flow itself.
            return await client.read_artifacts(limit=200, sort=ArtifactSort.CREATED_DESC)

    return repr([(a.key, a.data, a.description) for a in asyncio.run(read())])


def _dump_result_storage() -> str:
    import os

    home = Path(os.environ["PREFECT_HOME"])
    return "\n".join(
        p.read_bytes().decode("utf-8", errors="replace")
        for p in home.rglob("*")
        if p.is_file() and p.suffix not in (".db", ".db-wal", ".db-shm")
    )
