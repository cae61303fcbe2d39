"""What ``up`` records: the processes it started, in ``<data_dir>/stack/stack.json``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmsync.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]  # the checkout: prefect.yaml, the flows' code

Echo = Callable[[str], None]


class StackError(RuntimeError):
    """The stack could not be started or inspected; the message says what to do."""


@dataclass
class Proc:
    """One process ``up`` started (or, for the private PostgreSQL cluster, adopted)."""

    role: str  # postgres | server | services | worker
    name: str
    pid: int
    started: int | None  # /proc/<pid>/stat start time (clock ticks); None without /proc
    log: str
    group: bool = True  # started in its own session: signal the whole process group
    stop_signal: str = "SIGTERM"
    kill_signal: str = "SIGKILL"
    command: list[str] = field(default_factory=list)


def _data_dir(data_dir: Path | None) -> Path:
    return (data_dir or get_settings().data_dir).resolve()


def stack_file(data_dir: Path | None = None) -> Path:
    return _data_dir(data_dir) / "stack" / "stack.json"


def _read_state(data_dir: Path | None) -> dict[str, Any] | None:
    path = stack_file(data_dir)
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise StackError(f"{path} is not valid JSON ({exc}); inspect it, then remove it") from None
    return state


def _write_state(state: dict[str, Any], data_dir: Path) -> None:
    path = stack_file(data_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def _procs(state: dict[str, Any]) -> list[Proc]:
    return [Proc(**p) for p in state.get("processes", [])]
