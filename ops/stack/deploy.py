"""The deployments of ``prefect.yaml``, registered with ``prefect deploy --all``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from ops.stack.prefect_api import _deployment_names
from ops.stack.processes import _tail
from ops.stack.state import ROOT, Echo, StackError


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return spec


def _work_pool(spec: dict[str, Any]) -> str:
    pools = {str((d.get("work_pool") or {}).get("name")) for d in spec["deployments"]}
    if len(pools) != 1 or "None" in pools:
        raise StackError(f"prefect.yaml should name exactly one work pool, found {sorted(pools)}")
    return str(pools.pop())


def deploy(
    spec: dict[str, Any],
    env: dict[str, str],
    local_api: str,
    stack_dir: Path,
    timeout: float,
    t0: float,
    echo: Echo,
) -> None:
    """``prefect deploy --all``, then check every deployment of ``spec`` is registered."""
    # Deployed without CRMSYNC_HOME, `{{ $CRMSYNC_HOME }}` stays a template in the pull step
    # (Prefect resolves `$VAR`s at deploy time when set), so every worker machine runs flows
    # from its own checkout, wherever that is.
    deploy_env = {k: v for k, v in env.items() if k != "CRMSYNC_HOME"}
    deploy_log = stack_dir / "deploy.log"
    with deploy_log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
            cwd=ROOT,
            env=deploy_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=max(timeout, 300),
        )
    expected = {d["name"] for d in spec["deployments"]}
    missing = expected - asyncio.run(_deployment_names(local_api))
    if done.returncode != 0 or missing:
        raise StackError(
            f"prefect deploy --all failed (exit {done.returncode}, missing "
            f"{sorted(missing)}); end of {deploy_log}:\n{_tail(deploy_log)}"
        )
    echo(f"deployed {', '.join(sorted(expected))} ({time.monotonic() - t0:.1f} s)")
