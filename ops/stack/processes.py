"""Process identity: a recorded pid is ours only while its kernel start time matches, so ``down``
never signals a process that merely reused the pid. Each process runs in a session (process group)
of its own, which is signalled as a whole."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from ops.stack.state import Proc

_HAS_PROC = Path("/proc/self/stat").exists()


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) from /proc; None when the pid does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data.rsplit(")", 1)[1].split()
    return fields[0], int(fields[19])


def _start_time(pid: int) -> int | None:
    stat = _stat(pid)
    return stat[1] if stat else None


def _reap(pid: int) -> None:
    """Collect an exited child of this process, so it stops counting as alive (zombie)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(proc: Proc) -> bool:
    """True while the recorded process runs: same pid *and* same start time, not a zombie."""
    _reap(proc.pid)
    if _HAS_PROC:
        stat = _stat(proc.pid)
        if stat is None or stat[0] in ("Z", "X"):
            return False
        return proc.started is None or stat[1] == proc.started
    try:
        os.kill(proc.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running(proc: Proc) -> bool:
    """The recorded process, or for a group the members it left behind, still run."""
    if is_alive(proc):
        return True
    if not proc.group:
        return False
    stat = _stat(proc.pid) if _HAS_PROC else None
    # The kernel does not hand out a pid again while a process group still carries it as its
    # id, so when the leader's pid is free (or it is our exited leader), a live group with that
    # id is the one we started; a pid now used by an unrelated process means ours is gone.
    leader_gone = stat is None or (stat[0] in ("Z", "X") and stat[1] == proc.started)
    return leader_gone and _group_exists(proc.pid)


def _signal(proc: Proc, name: str) -> None:
    sig = signal.Signals[name]
    with contextlib.suppress(ProcessLookupError):
        if proc.group:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)


def _stop(proc: Proc, timeout: float) -> str:
    """Graceful signal, wait, then the hard one; touches nothing but ``proc`` (and its group)."""
    if not _running(proc):
        return "not running"
    _signal(proc, proc.stop_signal)
    if _wait_gone(proc, timeout):
        return f"stopped ({proc.stop_signal})"
    if _running(proc):
        _signal(proc, proc.kill_signal)
    if _wait_gone(proc, 10):
        return f"killed ({proc.kill_signal} after {timeout:g} s)"
    return f"still running after {proc.kill_signal}"


def _wait_gone(proc: Proc, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _running(proc):
            return True
        time.sleep(0.1)
    return not _running(proc)


def _spawn(
    role: str, name: str, command: list[str], env: dict[str, str], log: Path, cwd: Path
) -> Proc:
    with log.open("ab") as out:
        out.write(f"\n--- {datetime.now(UTC).isoformat()} {' '.join(command)}\n".encode())
        out.flush()
        child = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group; survives the terminal of `crmsync up`
        )
    return Proc(
        role=role,
        name=name,
        pid=child.pid,
        started=_start_time(child.pid),
        log=str(log),
        command=command,
    )


def _tail(path: str | Path, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
