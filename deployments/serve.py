"""Serve the deployments of ``prefect.yaml`` from one process (``crmsync serve``).

Reading the same file that ``prefect deploy --all`` uses keeps one definition of names,
schedules, descriptions, tags and default parameters for both ways of running.
"""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron, Interval

ROOT = Path(__file__).resolve().parent.parent


def load_spec(path: Path = ROOT / "prefect.yaml") -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(path.read_text())
    return spec


def resolve_entrypoint(entrypoint: str) -> Flow[Any, Any]:
    """``path/to/file.py:func`` → the flow object, as a worker would load it."""
    file, _, func = entrypoint.partition(":")
    module_name = file.removesuffix(".py").replace("/", ".")
    module = importlib.import_module(module_name)
    obj = getattr(module, func)
    if not isinstance(obj, Flow):
        raise TypeError(f"{entrypoint} is not a Prefect flow")
    return obj


def serve_all(limit: int = 8) -> None:
    deployments = []
    for d in load_spec()["deployments"]:
        flow = resolve_entrypoint(d["entrypoint"])
        schedules = [
            Cron(s["cron"], timezone=s.get("timezone", "UTC"))
            if "cron" in s
            else Interval(timedelta(seconds=s["interval"]))
            for s in d.get("schedules") or []
        ]
        deployment = flow.to_deployment(
            name=d["name"],
            description=d.get("description"),
            tags=d.get("tags"),
            parameters=d.get("parameters") or {},
            schedules=schedules or None,
            concurrency_limit=(d.get("concurrency_limit") or {}).get("limit"),
        )
        # Typed "or a coroutine" (Prefect's sync_compatible); called outside an event loop it
        # returns the deployment itself.
        assert isinstance(deployment, RunnerDeployment)
        deployments.append(deployment)
    serve(*deployments, limit=limit)


if importlib.util.find_spec("flows") is None:  # pragma: no cover
    raise ImportError("run from the repository root with the project installed")
