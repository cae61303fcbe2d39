"""Screenshots of what operators see in the Prefect UI, taken with headless Chromium (issue 12).

    .venv/bin/python bench/ui_screenshots.py [--out DIR] [--idle-minutes 10] [--ui both]

Self-contained, like ``bench/proof_scale.py``: installs Debian's ``chromium`` when it is not on
PATH (``apt-get install -y chromium``), then starts a fresh hub database, a ServiceTitan and a
LeadPerfection emulator, and its own ``crmsync up`` stack (``ops.stack.up``: ``prefect server`` on
PostgreSQL, the ``crmsync-process`` pool with two workers, ``prefect deploy --all``), and plays an
operator's day with four tenants:

- ``alpine-hvac`` (A): ServiceTitan, notes pushed to the job; onboarded with a ``sync-tenant``
  Run, then messages recorded for its contacts, so its round run pushes them;
- ``birch-windows`` (B): LeadPerfection, whose seed holds prospects without a lead (rejected);
- ``cedar-plumbing`` (C): ServiceTitan ``st-main`` (onboarded like A, with messages to push), then
  ``st-east`` added with a wrong client secret and ``lp-main`` (the LeadPerfection client of B)
  added, reading LeadPerfection's notes and call history in (issue 15), so C's round run has
  pushes, rejections, CRM activities and a failed integration in one table;
- ``delta-roofing`` (D): one plain ServiceTitan integration.

Every schedule is paused while it sets the scene. ``sync-all-tenants`` runs as a deployment run
with the deployment's own parameters (as the 15-minute schedule starts it) and fails because of
C; the script stores C's right secret (``crmsync tenants apply`` of the corrected file) and
presses Retry the way the UI's button does (``POST /flow_runs/<id>/set_state`` with a Scheduled
state named AwaitingRetry, message "Retry from the UI", ``force=false``), waits for the round,
then resumes the schedules of ``push-pending`` and ``sync-all-tenants`` and lets the stack idle.

Screenshots (PNG, 1600x1000, into ``--out``, default ``.crmsync/screenshots/``), each taken
once the page shows the text it is expected to show, and checked not to be blank:

- ``tenant-artifact.png``: the ``sync-cedar-plumbing`` table artifact of C's failed run, as it
  opens (its first columns), and ``tenant-artifact-pushes.png``: the same table scrolled right
  to the pushes and error columns;
- ``rejected-artifact.png``: B's ``rejected-birch-windows`` markdown artifact;
- ``sync-tenant-form.png``: the Run form of the ``sync-tenant`` deployment;
- ``round-failed.png``: the round's flow run page before the Retry;
- ``round-after-retry.png``: the round's flow run page after the successful Retry, and
  ``round-after-retry-details.png``: its Details tab (where the state message is);
- ``runs-after-idle.png``: the runs list after ``--idle-minutes`` with the schedules resumed
  (the page stretched to show the whole list).

One headless Chromium is driven over the DevTools protocol (``websockets``): each page is
captured once it shows the text it should (``--screenshot`` with ``--virtual-time-budget`` also
renders these pages here, but cannot tell a rendered page from a half-loaded one, scroll a wide
table or stretch the viewport to a long list), then ``Page.captureScreenshot``.

Prefect 3.8.8 serves two UIs: the new one under ``/v2/`` (where the server's root URL sends a
browser without a saved preference) and the classic one at the root paths (``/runs/...``, the
links in Prefect's notifications, ``PREFECT_UI_URL``). ``--ui both`` (default) shoots each page
in both: the names above are the V2 UI, ``*-v1.png`` the classic one.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.harness import admin_url, free_port, fresh_database, wait_http  # noqa: E402

DATA_DIR = ROOT / ".crmsync" / "ui-screenshots"
DEFAULT_OUT = ROOT / ".crmsync" / "screenshots"
PREFECT_DB = "crmsync_prefect_screens"
WIDTH, HEIGHT = 1600, 1000
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)

A, B, C, D = "alpine-hvac", "birch-windows", "cedar-plumbing", "delta-roofing"
APP_KEY = "ak1.screens"
ST_IDS = {"alpine": 3001, "cedar": 3003, "cedar-east": 3004, "delta": 3005}
UI_PREFIX = {"v2": "/v2", "v1": ""}


# -- Chromium ---------------------------------------------------------------------------------


def ensure_chromium() -> str:
    """``chromium`` from PATH, installed from Debian's archive first when missing."""
    found = shutil.which("chromium")
    if found:
        print(f"chromium: {found}")
        return found
    apt = ["apt-get"]
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            raise SystemExit("chromium is not installed and this user cannot run apt-get")
        apt = ["sudo", "apt-get"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*apt, "install", "-y", "chromium"]
    print(f"chromium is not on PATH; running: {' '.join(install)}", flush=True)
    if subprocess.run(install, env=env).returncode != 0:
        print(f"running: {' '.join([*apt, 'update'])} and installing again", flush=True)
        subprocess.run([*apt, "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    found = shutil.which("chromium")
    if not found:
        raise SystemExit("apt-get installed chromium but it is not on PATH")
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"chromium: {found} ({version})")
    return found


class Chromium:
    """One headless Chromium with its DevTools port open; :meth:`shoot` waits for a page's text
    before it captures it, which a single-page app needs (``--screenshot`` fires on load, before
    the UI has fetched anything from the API)."""

    def __init__(self, exe: str) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="crmsync-chromium-"))
        self.log = (DATA_DIR / "chromium.log").open("wb")
        self.proc = subprocess.Popen(
            [
                exe,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile}",
                f"--window-size={WIDTH},{HEIGHT}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise SystemExit(f"chromium did not open its DevTools port; see {self.log.name}")
            time.sleep(0.2)
        self.port = int(port_file.read_text().split()[0])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _page_socket(self) -> str:
        import httpx

        targets = httpx.get(f"http://127.0.0.1:{self.port}/json/list", timeout=10).json()
        page = next(t for t in targets if t.get("type") == "page")
        return str(page["webSocketDebuggerUrl"])

    async def shoot(
        self, url: str, captures: Sequence[tuple[Path, Capture]], timeout: float = 90
    ) -> list[tuple[bool, str]]:
        """Open ``url`` once; for each capture wait until the page's text holds every
        ``wait_for`` string and stops changing, scroll or stretch as the capture asks, and save
        a PNG. Returns (found, the page's text) per capture."""
        import websockets

        async with websockets.connect(self._page_socket(), max_size=None) as ws:
            counter = 0

            async def cdp(method: str, **params: Any) -> dict[str, Any]:
                nonlocal counter
                counter += 1
                await ws.send(json.dumps({"id": counter, "method": method, "params": params}))
                while True:
                    message = json.loads(await ws.recv())
                    if message.get("id") == counter:
                        if "error" in message:
                            raise RuntimeError(f"{method}: {message['error']}")
                        result: dict[str, Any] = message.get("result", {})
                        return result

            async def evaluate(expression: str) -> Any:
                done = await cdp("Runtime.evaluate", expression=expression, returnByValue=True)
                return done.get("result", {}).get("value")

            async def settle(wait_for: Sequence[str]) -> tuple[bool, str]:
                deadline = time.monotonic() + timeout
                last, stable, found, text = None, 0, False, ""
                while True:
                    await asyncio.sleep(1)
                    text = str(await evaluate("document.body ? document.body.innerText : ''"))
                    found = all(w.lower() in text.lower() for w in wait_for)
                    stable = stable + 1 if found and text == last else 0
                    last = text
                    if stable >= 2 or time.monotonic() > deadline:
                        return found, text

            await cdp(
                "Emulation.setDeviceMetricsOverride",
                width=WIDTH,
                height=HEIGHT,
                deviceScaleFactor=1,
                mobile=False,
            )
            await cdp("Page.enable")
            await cdp("Page.navigate", url=url)
            results = []
            for path, capture in captures:
                found, text = await settle(capture.wait_for)
                if capture.scroll_to:
                    await evaluate(_SCROLL_TO % json.dumps(capture.scroll_to))
                height = HEIGHT
                for _ in range(4 if capture.full_page else 0):  # until the layout stops growing
                    needed = int(await evaluate(_CONTENT_HEIGHT))
                    if needed <= height or height >= 8000:
                        break
                    height = min(needed + 100, 8000)
                    await cdp(
                        "Emulation.setDeviceMetricsOverride",
                        width=WIDTH,
                        height=height,
                        deviceScaleFactor=1,
                        mobile=False,
                    )
                    await asyncio.sleep(1.5)
                await asyncio.sleep(0.5)  # let the last paint (charts, fonts) land
                shot = await cdp("Page.captureScreenshot", format="png")
                path.write_bytes(base64.b64decode(shot["data"]))
                if height != HEIGHT:
                    await cdp(
                        "Emulation.setDeviceMetricsOverride",
                        width=WIDTH,
                        height=HEIGHT,
                        deviceScaleFactor=1,
                        mobile=False,
                    )
                results.append((found, text))
            return results


# Scroll every scrolling ancestor so the element showing exactly this text (a table's column
# header) is the first one visible.
_SCROLL_TO = """(() => {
  const want = %s;
  const el = [...document.querySelectorAll('th, td, div, span')]
    .find(e => (e.innerText || '').trim() === want && e.children.length <= 1);
  if (!el) return false;
  el.scrollIntoView({inline: 'start', block: 'nearest'});
  return true;
})()"""
# The height the page needs to show everything its scrolling areas hold (the UIs scroll an
# inner pane, not the document).
_CONTENT_HEIGHT = """(() => {
  let h = document.scrollingElement.scrollHeight;
  for (const el of document.querySelectorAll('*')) {
    if (/(auto|scroll)/.test(getComputedStyle(el).overflowY) && el.scrollHeight > el.clientHeight + 4) {
      h = Math.max(h, Math.ceil(window.innerHeight + el.scrollHeight - el.clientHeight));
    }
  }
  return h;
})()"""


def png_is_blank(path: Path) -> bool:
    """Whether a PNG has (almost) one colour: every scanline the same after decompression (a
    blank page's rows filter to identical bytes). Enough to catch an unrendered page."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return True
    pos, idat, width = 8, b"", 0
    channels = 3
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, _ = struct.unpack(">II", body[:8])
            channels = {2: 3, 6: 4, 0: 1, 4: 2}.get(body[9], 3)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * channels
    rows = {raw[i + 1 : i + stride] for i in range(0, len(raw), stride)}
    return len(rows) < 10


# -- the scene --------------------------------------------------------------------------------


@dataclass
class Crms:
    st_url: str
    lp_url: str
    st_secrets: dict[str, str]
    lp: dict[str, str]


@contextlib.contextmanager
def emulators() -> Iterator[Crms]:
    """ServiceTitan (tenants of A, C's two integrations and D, one app key) and LeadPerfection,
    each as ``python -m sandbox.<crm>``."""
    st_secrets = {name: "cs1." + secrets.token_hex(8) for name in ST_IDS}
    st_port, lp_port = free_port(), free_port()
    st_args: list[str] = []
    for seed, (name, st_id) in enumerate(ST_IDS.items(), start=1):
        spec = f"jobs=12,customers=8,memberships=0,seed={seed}"
        st_args += ["--tenant", f"{st_id}:cid.{name}:{st_secrets[name]}:{APP_KEY}:{spec}"]
    lp = {
        "clientid": "wq55a",
        "username": "api.screens",
        "password": secrets.token_hex(8),
        "appkey": str(uuid.uuid4()),
    }
    logs = DATA_DIR / "emulators.log"
    with logs.open("ab") as log:
        st = subprocess.Popen(
            [sys.executable, "-m", "sandbox.servicetitan", "--port", str(st_port), *st_args],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        lp_proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox.leadperfection", "--port", str(lp_port)]
            + [f"--{k}={v}" for k, v in lp.items()]
            + ["--prospects", "40", "--seed", "5"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            crms = Crms(
                f"http://127.0.0.1:{st_port}", f"http://127.0.0.1:{lp_port}", st_secrets, lp
            )
            wait_http(crms.st_url, timeout=120)
            wait_http(crms.lp_url, "/token", timeout=120)
            print(f"emulators: ServiceTitan {crms.st_url}, LeadPerfection {crms.lp_url}")
            yield crms
        finally:
            for proc in (st, lp_proc):
                proc.terminate()
                proc.wait(10)


def tenants_yaml(crms: Crms, stage: str) -> str:
    """The tenants file: ``onboarding`` (A, B, D and C's st-main), ``broken`` (C's st-east with a
    wrong client secret, C's lp-main added) and ``fixed`` (st-east's right secret)."""

    def st(name: str, key: str, settings: str, secret: str | None = None) -> list[str]:
        return [
            f"      - name: {name}",
            "        provider: servicetitan",
            f"        base_url: {crms.st_url}",
            f"        auth_url: {crms.st_url}/connect/token",
            f"        credentials: {{client_id: cid.{key}, "
            f"client_secret: '{secret or crms.st_secrets[key]}', app_key: {APP_KEY}, "
            f"tenant_id: '{ST_IDS[key]}'}}",
            f"        settings: {settings}",
        ]

    def lp(settings: str) -> list[str]:
        creds = ", ".join(f"{k}: '{v}'" for k, v in crms.lp.items())
        return [
            "      - name: lp-main",
            "        provider: leadperfection",
            f"        base_url: {crms.lp_url}",
            f"        credentials: {{{creds}}}",
            f"        settings: {settings}",
        ]

    notes = (
        "{opportunity_models: [job], push_outgoing_manual_messages: job, "
        "push_outgoing_manual_messages_content: true}"
    )
    lines = ["tenants:", f"  - slug: {A}", "    name: Alpine HVAC", "    integrations:"]
    lines += st("st-main", "alpine", notes)
    lines += [f"  - slug: {B}", "    name: Birch Windows & Doors", "    integrations:"]
    lines += lp("{timezone: America/New_York, placeholder_emails: ['none@none.com']}")
    lines += [f"  - slug: {C}", "    name: Cedar Plumbing", "    integrations:"]
    lines += st("st-main", "cedar", notes)
    if stage != "onboarding":
        wrong = "cs1.wrong-secret" if stage == "broken" else None
        lines += st("st-east", "cedar-east", "{opportunity_models: [job]}", wrong)
        lines += lp(
            "{timezone: America/New_York, push_communications: false, "
            "inbound_activities: {enabled: true}}"
        )
    lines += [f"  - slug: {D}", "    name: Delta Roofing", "    integrations:"]
    lines += st("st-main", "delta", "{opportunity_models: [job]}")
    return "\n".join(lines) + "\n"


def apply_tenants(crms: Crms, stage: str) -> None:
    from crmsync import tenants

    path = DATA_DIR / f"tenants-{stage}.yaml"
    path.write_text(tenants_yaml(crms, stage))
    result = tenants.apply(tenants.load(path))
    print(
        f"crmsync tenants apply {path.name}: tenants {result.tenants_created} created, "
        f"integrations {result.integrations_created} created, {result.integrations_updated} "
        f"updated {'; '.join(getattr(result, 'updates', []))}"
    )


def record_messages(slug: str, count: int) -> int:
    """Outgoing manual SMS for ``count`` contacts of the tenant that have a ServiceTitan job."""
    from crmsync import db
    from crmsync.push import ActivityIn, record_activity

    with db.connect() as conn:
        rows = conn.execute(
            "SELECT DISTINCT c.tenant_id, c.id FROM contact c JOIN tenant t ON t.id = c.tenant_id "
            "JOIN opportunity o ON o.contact_id = c.id WHERE t.slug = %s ORDER BY c.id LIMIT %s",
            (slug, count),
        ).fetchall()
    for tenant_id, contact_id in rows:
        record_activity(
            ActivityIn(
                tenant_id=tenant_id,
                contact_id=contact_id,
                kind="outbound_manual_message",
                channel="sms",
                body="Hi, this is Hatch: your technician is on the way.",
            )
        )
    return len(rows)


# -- the operator's day on the stack ----------------------------------------------------------


@dataclass
class Capture:
    name: str
    description: str
    wait_for: tuple[str, ...]
    scroll_to: str | None = None  # a wide table scrolled to this column header
    full_page: bool = False  # the viewport stretched to show the whole page


async def wait_final(client: Any, run_id: Any, after: datetime, timeout: float) -> Any:
    """The flow run once it reaches a final state entered after ``after``."""
    deadline = time.monotonic() + timeout
    while True:
        run = await client.read_flow_run(run_id)
        state = run.state
        if state is not None and state.is_final() and state.timestamp > after:
            return run
        if time.monotonic() > deadline:
            raise SystemExit(f"flow run {run_id} not final after {timeout:g} s: {state}")
        await asyncio.sleep(2)


async def operators_day(crms: Crms, ui_url: str, browser: Chromium, args: Any) -> list[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterName,
        FlowRunFilterTags,
    )
    from prefect.deployments import run_deployment
    from prefect.states import State, StateType

    problems: list[str] = []
    out: Path = args.out
    uis = ["v2", "v1"] if args.ui == "both" else [args.ui]

    async def take(path: str, *captures: Capture) -> None:
        """Every capture of one UI page, in each UI."""
        for ui in uis:
            url = f"{ui_url}{UI_PREFIX[ui]}{path}"
            names = [
                c.name if ui == uis[0] else c.name.replace(".png", f"-{ui}.png") for c in captures
            ]
            results = await browser.shoot(
                url, [(out / n, c) for n, c in zip(names, captures, strict=True)]
            )
            for name, capture, (found, text) in zip(names, captures, results, strict=True):
                print(f"{out / name}\n    {ui} UI {url}\n    {capture.description}")
                if not found:
                    missing = [w for w in capture.wait_for if w.lower() not in text.lower()]
                    note = f"{name}: the page never showed {missing} (page text: {text[:300]!r})"
                    print(f"    WARNING {note}")
                    problems.append(note)
                if png_is_blank(out / name):
                    print(f"    WARNING {name} looks blank")
                    problems.append(f"{name}: blank PNG")

    async with get_client() as client:
        deployments = {d.name: d for d in await client.read_deployments()}
        for dep in deployments.values():
            await client.pause_deployment(dep.id)
        print(f"schedules paused: {', '.join(sorted(deployments))}")

        # Onboarding: an operator runs sync-tenant for A and C's first ServiceTitan integration.
        async def deployment_run(name: str, **parameters: Any) -> Any:
            return await run_deployment(  # type: ignore[misc]
                name, parameters=parameters, timeout=900, poll_interval=2
            )

        first = await asyncio.gather(
            *(deployment_run("sync-tenant/sync-tenant", tenant_slug=slug) for slug in (A, C))
        )
        for run in first:
            print(f"onboarding run {run.name}: {run.state.name} ({run.state.message or ''})")
        messages = {slug: record_messages(slug, n) for slug, n in ((A, 3), (C, 2))}
        print(f"messages recorded in the outbox: {messages}")
        apply_tenants(crms, "broken")

        # The round, as the schedule starts it (the deployment's own parameters).
        round_run = await deployment_run("sync-all-tenants/sync-all-tenants")
        print(f"round {round_run.name}: {round_run.state.name}: {round_run.state.message}")
        if round_run.state.is_completed():
            problems.append("the first round completed; expected it to fail because of C")

        async def tenant_run(slug: str) -> Any:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    name=FlowRunFilterName(any_=[f"sync-tenant-{slug}"]),
                    tags=FlowRunFilterTags(all_=[f"round:{round_run.id}"]),
                )
            )
            if not runs:
                raise SystemExit(f"no sync-tenant-{slug} run in round {round_run.name}")
            return runs[0]

        async def artifact(key: str, flow_run_id: Any) -> Any:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=[key]),
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                )
            )
            if not found:
                raise SystemExit(f"no artifact {key} on flow run {flow_run_id}")
            return found[0]

        c_run, b_run = await tenant_run(C), await tenant_run(B)
        c_table = await artifact(f"sync-{C}", c_run.id)
        b_rejected = await artifact(f"rejected-{B}", b_run.id)
        form = deployments["sync-tenant"]
        await take(
            f"/artifacts/artifact/{c_table.id}",
            Capture(
                "tenant-artifact.png",
                f"artifact sync-{C} of {c_run.name} ({c_run.state.name}) in round "
                f"{round_run.name}, as it opens: a row per stream of st-main and lp-main, the "
                "push-activity row and st-east's (sign-in) row, first columns",
                ("st-east", "push-activity"),
            ),
            Capture(
                "tenant-artifact-pushes.png",
                "the same table scrolled right to 'contacts created': the pushes "
                "delivered/deferred/failed columns and the start of the error column",
                ("st-east", "push-activity"),
                scroll_to="contacts created",
            ),
        )
        await take(
            f"/artifacts/artifact/{b_rejected.id}",
            Capture(
                "rejected-artifact.png",
                f"markdown artifact rejected-{B} of {b_run.name} ({b_run.state.name}: "
                f"{b_run.state.message}): the LeadPerfection records quarantined, with reasons",
                ("Rejected records of",),
            ),
        )
        await take(
            f"/deployments/deployment/{form.id}/run",
            Capture(
                "sync-tenant-form.png",
                "the Run form of the sync-tenant deployment: tenant_slug and lookback_days "
                "with their descriptions",
                ("Tenant slug as in the tenants file",),
            ),
        )
        await take(
            f"/runs/flow-run/{round_run.id}",
            Capture(
                "round-failed.png",
                f"the round {round_run.name} before the Retry: {round_run.state.message}",
                (round_run.name, "failed: cedar-plumbing"),
            ),
        )

        # The operator stores C's right secret and presses Retry on the round.
        apply_tenants(crms, "fixed")
        pressed = datetime.now(UTC)
        result = await client.set_flow_run_state(
            round_run.id,
            State(type=StateType.SCHEDULED, name="AwaitingRetry", message="Retry from the UI"),
            force=False,
        )
        print(f"Retry pressed on {round_run.name}: {result.status.value}")
        retried = await wait_final(client, round_run.id, pressed, 900)
        print(f"round {retried.name} after Retry: {retried.state.name}: {retried.state.message}")
        if not retried.state.is_completed():
            problems.append(f"the retried round ended {retried.state.name}")
        await take(
            f"/runs/flow-run/{round_run.id}",
            Capture(
                "round-after-retry.png",
                f"the round {retried.name} after the Retry, as it opens: "
                f"{retried.state.name} (run count {retried.run_count})",
                (round_run.name, "Completed"),
            ),
        )
        await take(
            f"/runs/flow-run/{round_run.id}?tab=Details",
            Capture(
                "round-after-retry-details.png",
                f"its Details tab, where the state message {retried.state.message!r} is",
                ("tenants synced",),
            ),
        )

        # The schedules back on; the fleet idles.
        for name in ("push-pending", "sync-all-tenants"):
            await client.resume_deployment(deployments[name].id)
        print(
            f"schedules of push-pending (every minute) and sync-all-tenants (*/15) resumed at "
            f"{datetime.now(UTC):%H:%M:%S} UTC; idling {args.idle_minutes:g} minute(s)",
            flush=True,
        )
        await asyncio.sleep(args.idle_minutes * 60)
        flows = {f.id: f.name for f in await client.read_flows()}
        tally: dict[str, int] = {}
        for run in await client.read_flow_runs(limit=200):
            key = f"{flows.get(run.flow_id, '?')} {run.state.name if run.state else '?'}"
            tally[key] = tally.get(key, 0) + 1
        print(
            "flow runs on the server: " + ", ".join(f"{k} x{v}" for k, v in sorted(tally.items()))
        )
        await take(
            "/runs",
            Capture(
                "runs-after-idle.png",
                f"the runs list after {args.idle_minutes:g} idle minute(s) with push-pending and "
                "sync-all-tenants scheduled, 4 tenants, nothing to push (the whole list: the "
                "page stretched to its content)",
                ("push-pending",),
                full_page=True,
            ),
        )
        return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNGs")
    ap.add_argument(
        "--idle-minutes",
        type=float,
        default=10,
        help="minutes the stack idles before the runs list",
    )
    ap.add_argument(
        "--ui",
        choices=("both", "v2", "v1"),
        default="both",
        help="Prefect 3.8.8's new UI (/v2/, the default landing), the classic one, or both",
    )
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    DATA_DIR.mkdir(parents=True, exist_ok=True)

    chromium = ensure_chromium()

    import psycopg

    from ops import stack

    admin = admin_url()
    with psycopg.connect(admin, autocommit=True) as conn:  # Prefect's own database, fresh
        conn.execute(f'DROP DATABASE IF EXISTS "{PREFECT_DB}" WITH (FORCE)')
    problems: list[str] = []
    with fresh_database(admin, "crmsync_screens") as hub_url:
        os.environ.update(
            DATABASE_URL=hub_url,
            CRMSYNC_DATA_DIR=str(DATA_DIR),
        )
        from crmsync.settings import get_settings

        get_settings.cache_clear()
        state: dict[str, Any] | None = None
        browser: Chromium | None = None
        try:
            with emulators() as crms:
                from crmsync import db

                db.upgrade()
                apply_tenants(crms, "onboarding")
                state = stack.up(
                    workers=args.workers,
                    port=free_port(),
                    data_dir=DATA_DIR,
                    database=PREFECT_DB,
                    echo=lambda *a: print("  stack:", *a),
                )
                browser = Chromium(chromium)
                from prefect.settings import PREFECT_API_URL, temporary_settings

                with temporary_settings(updates={PREFECT_API_URL: state["local_api_url"]}):
                    problems = asyncio.run(operators_day(crms, state["ui_url"], browser, args))
        finally:
            if browser is not None:
                browser.close()
            if state is not None:
                stack.down(data_dir=DATA_DIR, echo=lambda *_: None)
            from crmsync import db

            db.close_pools()
            db.engine().dispose()
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{PREFECT_DB}" WITH (FORCE)')
    if problems:
        print("\n".join(["", "problems:", *problems]))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
