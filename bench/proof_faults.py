"""Proof under faults (issue 5): kill -9 a worker mid-tenant on the production-like stack.

    .venv/bin/python bench/proof_faults.py                       # 6 tenants, 2 workers
    .venv/bin/python bench/proof_faults.py --pg-restart          # + restart the hub's PostgreSQL
    .venv/bin/python bench/proof_faults.py --pg-restart --no-kill

What it does, in a private data dir (its own stack.json, Prefect database and hub database, so it
collides with nothing):

1. ``crmsync up``-style stack (``ops.stack.up``): Prefect server on PostgreSQL, the process
   pool with ``--workers`` workers, every deployment registered; schedules switched off so only
   the rounds below run. The hub database is a fresh database on 127.0.0.1:5432, or with
   ``--pg-restart`` a private cluster (``start_private_postgres``) that may be restarted while
   Prefect's own database stays on 5432.
2. A ServiceTitan emulator with N tenants (latency on the jobs export, so a tenant stays
   mid-stream for a few seconds), and 2N hub tenants: ``f-<i>`` (faulted) and ``ref-<i>`` (the
   same CRM tenant, synced undisturbed later).
3. A ``sync-all-tenants`` deployment run over the ``f-*`` tenants with ``dispatch=deployment``.
   With ``--pg-restart``: as soon as a tenant has committed its first jobs page, the hub cluster
   stops (fast), stays down ``--down-for`` seconds and starts again. Then, as soon as a tenant is
   mid-stream, the worker running it is killed with SIGKILL together with every process under it
   (a process worker runs each flow run in a child process with a session of its own, which
   would otherwise live on).
4. It waits for the stack's zombie automation to mark the killed runs Crashed (no heartbeat for
   ``ops.stack.ZOMBIE_AFTER``; a PASS line says whether it did), marks any left Crashed,
   starts a replacement worker (recorded in stack.json, so ``down`` stops it), waits for the round to end and presses Retry on it (state AwaitingRetry,
   as the UI does); the retried round re-runs only the tenants that did not complete.
5. A reference round over the ``ref-*`` tenants without faults, then a per-tenant comparison of
   every stored opportunity field: same rows, none missing, none duplicated. ``down()`` always.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T = TypeVar("T")
LOCAL_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ST_BASE = 880_000
APP_KEY = "ak1.faults"
T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_pg_answers() -> bool:
    import psycopg

    try:
        with psycopg.connect(LOCAL_ADMIN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


# --------------------------------------------------------------------------- processes


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (children first found, then theirs)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _ppid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def owning_worker(pid: int, workers: dict[int, str]) -> int | None:
    """The worker pid among ``pid``'s ancestors (the flow-run process's parent, normally)."""
    current: int | None = pid
    while current and current > 1:
        if current in workers:
            return current
        current = _ppid(current)
    return None


# --------------------------------------------------------------------------- Prefect API


class Api:
    def __init__(self, url: str) -> None:
        self.url = url

    def run(self, fn: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        from prefect.client.orchestration import PrefectClient

        async def go() -> T:
            async with PrefectClient(api=self.url) as client:
                return await fn(client)

        return asyncio.run(go())

    def flow_run(self, run_id: Any) -> Any:
        return self.run(lambda c: c.read_flow_run(run_id))

    def state_of(self, run_id: Any) -> str:
        run = self.flow_run(run_id)
        return f"{run.state.name} ({run.state.type.value})" if run.state else "?"

    def running_flow_runs(self) -> list[Any]:
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType

        active = [StateType.RUNNING, StateType.PENDING]  # Pending: process started, not yet run
        flt = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=active)))
        return self.run(lambda c: c.read_flow_runs(flow_run_filter=flt, limit=200))

    def switch_off_schedules(self) -> list[str]:
        async def go(client: Any) -> list[str]:
            off = []
            for d in await client.read_deployments(limit=200, offset=0):
                for s in d.schedules or []:
                    if s.active:
                        await client.update_deployment_schedule(d.id, s.id, active=False)
                        off.append(d.name)
            return off

        return self.run(go)

    def start(self, deployment: str, parameters: dict[str, Any]) -> Any:
        async def go(client: Any) -> Any:
            dep = await client.read_deployment_by_name(deployment)
            return await client.create_flow_run_from_deployment(dep.id, parameters=parameters)

        return self.run(go)

    def wait_final(self, run_id: Any, timeout: float, sweep: bool = False) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.flow_run(run_id)
            if run.state and run.state.is_final():
                return run
            if sweep:
                self.crash_zombies()
            time.sleep(1)
        raise TimeoutError(f"flow run {run_id} not final after {timeout:g} s")

    def crash_zombies(self) -> None:
        """Mark Crashed the active runs whose process is gone from this host: what a zombie
        automation (missing heartbeats) would do, minutes later."""
        from prefect.states import Crashed

        for r in self.running_flow_runs():
            pid = str(r.infrastructure_pid or "").rsplit(":", 1)[-1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                msg = "its process is gone (worker killed); marked by proof_faults"
                outcome = self.set_state(r.id, Crashed(message=msg), True)
                say(f"zombie {r.name} ({r.state.name if r.state else '?'}) -> Crashed: {outcome}")

    def set_state(self, run_id: Any, state: Any, force: bool) -> str:
        result = self.run(lambda c: c.set_flow_run_state(run_id, state, force=force))
        return f"{result.status.value}" + (f" ({result.details})" if result.details else "")


# --------------------------------------------------------------------------- hub


def q(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Hub query; waits out a hub restart (this process polls through it)."""
    import psycopg

    from crmsync import db

    for attempt in range(60):
        try:
            with db.connect() as conn:
                return conn.execute(sql, params).fetchall()
        except psycopg.OperationalError:
            if attempt == 59:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def snapshot(slug: str) -> list[tuple[Any, ...]]:
    return q(
        "SELECT o.model, o.external_id, o.external_updated_at, o.email, o.phone, o.first_name, "
        "o.last_name, o.status, o.details FROM opportunity o JOIN tenant t ON t.id = o.tenant_id "
        "WHERE t.slug = %s ORDER BY o.model, o.external_id",
        slug,
    )


def mid_stream(round_id: str, exclude: set[str]) -> list[tuple[str, str, int]]:
    """(slug, flow run id, jobs stored) of tenants of the round that committed a jobs page
    and have not finished."""
    rows = q(
        "SELECT t.slug, r.flow_run_id, (SELECT count(*) FROM opportunity o "
        "WHERE o.tenant_id = t.id AND o.model = 'job') FROM sync_run r "
        "JOIN tenant t ON t.id = r.tenant_id WHERE r.round_id = %s AND r.finished_at IS NULL "
        "AND EXISTS (SELECT 1 FROM sync_cursor c WHERE c.tenant_id = t.id AND c.stream = 'jobs')",
        round_id,
    )
    return [(s, f, n) for s, f, n in rows if s not in exclude]


def first_sync_jobs(emu: Any, st_id: int) -> int:
    """Jobs a 90-day first sync must bring (as tests/integration/test_sync_flow.py counts)."""
    from models.normalize import parse_timestamp

    cutoff = (emu.state.now() - timedelta(days=90)).date()
    return sum(
        1
        for r in emu.state.get_records(st_id, "jobs")
        if parse_timestamp(r["modifiedOn"]).date() >= cutoff  # type: ignore[union-attr]
    )


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tenants", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=150, help="jobs per CRM tenant (page size 15)")
    ap.add_argument("--worker-limit", type=int, default=4, help="flow runs per worker at once")
    ap.add_argument("--latency-ms", type=int, default=400, help="per jobs export page")
    ap.add_argument("--concurrency", type=int, default=6, help="sync-all-tenants max_concurrency")
    ap.add_argument("--batch-size", type=int, default=1, help="sync-all-tenants batch_size")
    ap.add_argument("--pg-restart", action="store_true", help="restart the hub PostgreSQL mid-run")
    ap.add_argument("--down-for", type=float, default=2.0, help="seconds the hub stays down")
    ap.add_argument("--no-kill", action="store_true", help="do not kill a worker")
    ap.add_argument(
        "--observe",
        type=float,
        default=240.0,
        help="seconds to wait for the zombie automation to crash the killed runs",
    )
    ap.add_argument("--keep", action="store_true", help="keep the data dir (logs) afterwards")
    args = ap.parse_args()
    if not local_pg_answers():
        raise SystemExit("needs the PostgreSQL on 127.0.0.1:5432 (Prefect's database, the hub's)")

    # Everything private to this run, before crmsync reads its settings.
    work = Path(tempfile.mkdtemp(prefix="crmsync-faults-"))
    data = work / "data"
    from cryptography.fernet import Fernet

    os.environ["CRMSYNC_DATA_DIR"] = str(data)
    os.environ["CRMSYNC_SECRET_KEY"] = Fernet.generate_key().decode()
    os.environ["CRMSYNC_RATE_BUDGET"] = "off"
    os.environ["PREFECT_HOME"] = str(work / "prefect-client")
    os.environ.pop("PREFECT_API_URL", None)
    tag = uuid.uuid4().hex[:8]
    prefect_db = f"crmsync_prefect_faults_{tag}"
    hub_db = f"crmsync_faults_{tag}"

    import psycopg

    from ops import stack

    hub_pg: stack.Proc | None = None
    hub_pgdata = work / "hub-pg"
    if args.pg_restart:
        admin, hub_pg = stack.start_private_postgres(hub_pgdata, work / "hub-pg.log")
    else:
        admin = LOCAL_ADMIN
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{hub_db}"')
    base, _, query = admin.partition("?")
    os.environ["DATABASE_URL"] = (
        base.rsplit("/", 1)[0] + f"/{hub_db}" + ("?" + query if query else "")
    )
    say(f"work dir {work}; hub {'private cluster' if hub_pg else '5432'} db {hub_db}")

    from sandbox.servicetitan import TenantSpec, run_emulator

    specs = [
        TenantSpec(
            tenant_id=ST_BASE + i,
            client_id=f"cid.{ST_BASE + i}",
            client_secret=f"cs1.{ST_BASE + i}",
            app_key=APP_KEY,
            customers=30,
            jobs=args.jobs,
            memberships=0,
            seed=i + 1,
        )
        for i in range(args.tenants)
    ]
    results: list[tuple[str, bool, str]] = []
    notes: list[str] = []
    api: Api | None = None
    try:
        with run_emulator(specs, port=0, export_page_size=15) as emu:
            from crmsync import db, tenants

            db.upgrade()
            lines = ["tenants:"]
            for prefix in ("f", "ref"):
                for i in range(args.tenants):
                    st = ST_BASE + i
                    lines += [
                        f"  - slug: {prefix}-{i}",
                        f"    name: {prefix} {i}",
                        "    integrations:",
                        "      - name: st",
                        "        provider: servicetitan",
                        f"        base_url: {emu.url}",
                        f"        auth_url: {emu.url}/connect/token",
                        f"        credentials: {{client_id: cid.{st}, client_secret: cs1.{st}, "
                        f"app_key: {APP_KEY}, tenant_id: '{st}'}}",
                        "        settings: {opportunity_models: [job]}",
                    ]
            path = work / "tenants.yaml"
            path.write_text("\n".join(lines) + "\n")
            tenants.apply(tenants.load(path))
            faulted = [f"f-{i}" for i in range(args.tenants)]
            refs = [f"ref-{i}" for i in range(args.tenants)]
            expected = {i: first_sync_jobs(emu, ST_BASE + i) for i in range(args.tenants)}

            state = stack.up(
                workers=args.workers,
                port=free_port(),
                data_dir=data,
                prefect_pg=LOCAL_ADMIN,
                worker_limit=args.worker_limit or None,
                database=prefect_db,
                timeout=180,
                echo=lambda line: say(f"up: {line}"),
            )
            api = Api(state["local_api_url"])
            say(f"schedules switched off: {api.switch_off_schedules()}")

            # ---- the faulted round
            emu.state.arm_fault(
                "latency", route="*/export/jobs", times=None, latency_ms=args.latency_ms
            )
            params = {
                "tenants": faulted,
                "dispatch": "deployment",
                "max_concurrency": args.concurrency,
                "batch_size": args.batch_size,
            }
            round_run = api.start("sync-all-tenants/sync-all-tenants", params)
            round_id = str(round_run.id)
            say(f"round {round_id} started: {params}")
            restarted = args.pg_restart is False
            killed_slug: str | None = None
            killed_runs: list[Any] = []
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not (restarted and (killed_slug or args.no_kill)):
                run = api.flow_run(round_run.id)
                if run.state and run.state.is_final():
                    break
                busy = mid_stream(round_id, exclude=set())
                if busy and not restarted:
                    slug, _, stored = busy[0]
                    say(f"hub restart while {slug} is mid-stream ({stored}/{args.jobs} jobs)")
                    assert hub_pg is not None
                    assert stack._stop(hub_pg, 30).startswith("stopped")
                    time.sleep(args.down_for)
                    _, hub_pg = stack.start_private_postgres(hub_pgdata, work / "hub-pg.log")
                    say(f"hub PostgreSQL back (down {args.down_for:g} s)")
                    restarted = True
                    continue
                if busy and restarted and not args.no_kill and killed_slug is None:
                    workers = {
                        p["pid"]: p["name"]
                        for p in json.loads(stack.stack_file(data).read_text())["processes"]
                        if p["role"] == "worker"
                    }
                    dispatcher_pid = int(
                        str(api.flow_run(round_run.id).infrastructure_pid or "0").rsplit(":")[-1]
                    )
                    dispatcher_on = owning_worker(dispatcher_pid, workers)
                    # In the first half of its jobs stream, on a worker without the dispatcher
                    # if there is one: the other worker and the round carry on.
                    early = [
                        (slug, fr_id, stored)
                        for slug, fr_id, stored in busy
                        if 0 < stored <= expected[int(slug.split("-")[1])] // 2
                    ]
                    for slug, fr_id, stored in early:
                        fr = api.flow_run(uuid.UUID(fr_id))
                        pid = int(str(fr.infrastructure_pid or "0").rsplit(":", 1)[-1] or 0)
                        worker = owning_worker(pid, workers) if pid else None
                        if worker is None:
                            continue
                        if worker == dispatcher_on and len(early) > 1 and len(workers) > 1:
                            others = {
                                owning_worker(
                                    int(
                                        str(
                                            api.flow_run(uuid.UUID(f)).infrastructure_pid or "0"
                                        ).rsplit(":", 1)[-1]
                                    ),
                                    workers,
                                )
                                for _, f, _ in early
                            }
                            if others - {dispatcher_on, None}:
                                continue
                        # Which flow runs live on that worker, asked before the kill, while
                        # /proc still shows the process tree.
                        on_worker = [
                            r
                            for r in api.running_flow_runs()
                            if owning_worker(
                                int(str(r.infrastructure_pid or "0").rsplit(":", 1)[-1] or 0),
                                workers,
                            )
                            == worker
                        ]
                        victims = [worker, *descendants(worker)]
                        for victim in victims:
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(victim, signal.SIGKILL)
                        killed_slug, killed_runs = slug, on_worker
                        killed_worker = workers[worker]
                        say(
                            f"SIGKILL worker {killed_worker} (pid {worker}) and "
                            f"{len(victims) - 1} processes under it {victims[1:]}, while {slug} was mid-stream "
                            f"({stored}/{expected[int(slug.split('-')[1])]} jobs stored); "
                            f"dispatcher {'on it too' if worker == dispatcher_on else 'elsewhere'}"
                        )
                        break
                time.sleep(0.1)
            if not restarted:
                results.append(("hub restart landed mid-stream", False, "no tenant mid-stream"))
            elif args.pg_restart:
                results.append(("hub restart landed mid-stream", True, ""))
            if not args.no_kill:
                if killed_slug is None:
                    results.append(("worker kill landed mid-tenant", False, "never mid-stream"))
                    raise RuntimeError("the worker kill never landed")
                # Verified afterwards by the hub: runs of the killed processes left unfinished.
                cut = q(
                    "SELECT t.slug, (SELECT count(*) FROM opportunity o WHERE o.tenant_id = t.id) "
                    "FROM sync_run r JOIN tenant t ON t.id = r.tenant_id "
                    "WHERE r.round_id = %s AND r.finished_at IS NULL ORDER BY 1",
                    round_id,
                )
                time.sleep(2)  # the other worker's runs may still finish; ours cannot
                cut = [
                    row
                    for row in cut
                    if row
                    in q(
                        "SELECT t.slug, (SELECT count(*) FROM opportunity o "
                        "WHERE o.tenant_id = t.id) FROM sync_run r JOIN tenant t "
                        "ON t.id = r.tenant_id WHERE r.round_id = %s AND r.finished_at IS NULL",
                        round_id,
                    )
                ]
                notes.append(f"killed mid-run (hub run unfinished; slug, jobs stored): {cut}")
                landed = any(slug == killed_slug for slug, _ in cut)
                results.append(("worker kill landed mid-tenant", landed, killed_slug))

                # ---- what Prefect shows for the runs of the killed processes
                say(
                    "flow runs of killed processes: "
                    f"{[(r.name, r.infrastructure_pid) for r in killed_runs]}"
                )
                t_kill = time.monotonic()
                # The stack's zombie automation (no heartbeat for ZOMBIE_AFTER) should crash them.
                while time.monotonic() - t_kill < args.observe:
                    time.sleep(5)
                    shown = {r.name: api.state_of(r.id) for r in killed_runs}
                    if not any("RUNNING" in s for s in shown.values()):
                        break
                shown = {r.name: api.state_of(r.id) for r in killed_runs}
                crashed_by_automation = all("CRASHED" in s for s in shown.values())
                results.append(
                    (
                        "Prefect marks the killed runs Crashed (zombie automation)",
                        crashed_by_automation,
                        f"{time.monotonic() - t_kill:.0f} s after the kill",
                    )
                )
                say(
                    f"after {args.observe:g} s Prefect shows: {shown}; round: "
                    f"{api.state_of(round_run.id)}"
                )
                notes.append(
                    f"killed runs {time.monotonic() - t_kill:.0f} s after SIGKILL: {shown} "
                    f"(heartbeats every {stack.HEARTBEAT_SECONDS} s; the zombie automation "
                    f"crashes a run after {int(stack.ZOMBIE_AFTER.total_seconds())} s without one)"
                )
                # ---- recovery: mark them Crashed (what a zombie automation or operator does)
                api.crash_zombies()
                sync_run_rows = q(
                    "SELECT r.id, r.status, r.finished_at IS NULL FROM sync_run r "
                    "JOIN tenant t ON t.id = r.tenant_id WHERE t.slug = %s",
                    killed_slug,
                )
                notes.append(f"hub sync_run rows of {killed_slug} after the kill: {sync_run_rows}")
                # ---- a replacement worker under the same name
                st = json.loads(stack.stack_file(data).read_text())
                old = next(p for p in st["processes"] if p["name"] == killed_worker)
                env = {
                    **os.environ,
                    **stack._hub_env(),
                    "PREFECT_API_URL": state["local_api_url"],
                    "PREFECT_CLI_PROMPT": "false",
                }
                since = datetime.now(UTC) - timedelta(seconds=1)
                fresh = stack._spawn(
                    "worker", killed_worker, old["command"], env, Path(old["log"]), stack.ROOT
                )
                st["processes"] = [
                    asdict(fresh) if p["name"] == killed_worker else p for p in st["processes"]
                ]
                stack._write_state(st, data)
                stack._wait_workers(
                    state["local_api_url"], state["work_pool"], {killed_worker}, [fresh], since, 120
                )
                say(f"replacement worker {killed_worker} (pid {fresh.pid}) online")

            first = api.wait_final(round_run.id, 300, sweep=not args.no_kill)
            say(f"round ended: {first.state.name}: {first.state.message}")
            if not first.state.is_completed():
                # ---- Retry, as the UI's button does
                from prefect.states import AwaitingRetry

                outcome = api.set_state(
                    round_run.id, AwaitingRetry(message="Retry (proof_faults)"), False
                )
                say(f"Retry round: {outcome}")
                time.sleep(2)
                first = api.wait_final(round_run.id, 300)
                say(
                    f"retried round ended: {first.state.name} (run_count {first.run_count}): "
                    f"{first.state.message}"
                )
            results.append(
                ("round completed (after Retry if needed)", first.state.is_completed(), "")
            )
            runs = q(
                "SELECT t.slug, r.status, count(*) FROM sync_run r JOIN tenant t "
                "ON t.id = r.tenant_id WHERE r.round_id = %s GROUP BY 1, 2 ORDER BY 1, 2",
                round_id,
            )
            notes.append(f"sync_run rows of the round (slug, status, n): {runs}")

            # ---- the undisturbed reference round
            emu.state.clear_faults()
            ref_run = api.start(
                "sync-all-tenants/sync-all-tenants",
                {**params, "tenants": refs},
            )
            ref = api.wait_final(ref_run.id, 600)
            say(f"reference round: {ref.state.name}: {ref.state.message}")
            results.append(("reference round completed", ref.state.is_completed(), ""))

            print(
                "\n tenant | faulted rows | reference rows | CRM jobs | duplicates | same | result"
            )
            print("-" * 84)
            for i in range(args.tenants):
                got, want = snapshot(f"f-{i}"), snapshot(f"ref-{i}")
                keys = [r[:2] for r in got]
                dups = len(keys) - len(set(keys))
                ok = got == want and len(got) == expected[i] and dups == 0
                mark = " (killed)" if f"f-{i}" == killed_slug else ""
                print(
                    f" f-{i}{mark:<9} | {len(got):>12} | {len(want):>14} | {expected[i]:>8} | "
                    f"{dups:>10} | {got == want!s:>5} | {'PASS' if ok else 'FAIL'}"
                )
                results.append((f"f-{i} equals its reference", ok, ""))
    finally:
        if api is not None or stack.stack_file(data).exists():
            with contextlib.suppress(Exception):
                stack.down(data_dir=data, echo=lambda line: say(f"down: {line}"))
        with contextlib.suppress(Exception):
            from crmsync import db

            db.engine().dispose()
        with contextlib.suppress(psycopg.Error), psycopg.connect(LOCAL_ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{prefect_db}" WITH (FORCE)')
            if hub_pg is None:
                c.execute(f'DROP DATABASE IF EXISTS "{hub_db}" WITH (FORCE)')
        if hub_pg is not None:
            say(f"hub cluster: {stack._stop(hub_pg, 30)}")
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)

    print()
    for line in notes:
        print(f"note: {line}")
    print("\n check                                         | result")
    print("-" * 60)
    for name, ok, detail in results:
        print(f" {name:<45} | {'PASS' if ok else 'FAIL'} {detail}")
    passed = all(ok for _, ok, _ in results)
    print(f"\nOVERALL: {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
