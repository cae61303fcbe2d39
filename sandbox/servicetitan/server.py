"""Serving the emulator over real HTTP on loopback, in a background thread.

Connectors are tested through their real HTTP stack (timeouts, broken connections, retries), so
tests run the app under uvicorn rather than through an in-process transport.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from .app import create_app
from .data import TenantSpec
from .state import EmulatorState


@dataclass
class RunningEmulator:
    """A served emulator: `url` is the base for API calls and for `POST {url}/connect/token`."""

    url: str
    port: int
    state: EmulatorState
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def start_emulator(
    specs: Iterable[TenantSpec] = (),
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    state: EmulatorState | None = None,
    startup_timeout: float = 10.0,
    log_level: str = "warning",
    **state_kwargs: Any,
) -> RunningEmulator:
    """Start uvicorn in a daemon thread and wait until it accepts connections.

    `port=0` picks a free port. Pass either `specs` (+ `EmulatorState` keyword arguments) or a
    ready `state`. Call `stop()` when done, or use `run_emulator`.
    """
    if state is None:
        state = EmulatorState(specs, **state_kwargs)
    elif state_kwargs or list(specs):
        raise ValueError("pass either a state or specs/state options, not both")
    config = uvicorn.Config(
        create_app(state),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        http="h11",
        ws="none",
        loop="asyncio",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"st-emulator-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"ServiceTitan emulator did not start on {host}:{port}")
        time.sleep(0.01)
    bound_port = port
    for listener in server.servers:
        for sock in listener.sockets:
            bound_port = sock.getsockname()[1]
            break
    return RunningEmulator(f"http://{host}:{bound_port}", bound_port, state, server, thread)


@contextmanager
def run_emulator(
    specs: Iterable[TenantSpec] = (),
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    state: EmulatorState | None = None,
    **state_kwargs: Any,
) -> Iterator[RunningEmulator]:
    """`with run_emulator([spec], port=0) as emu:` serves the emulator for the block's duration."""
    running = start_emulator(specs, port=port, host=host, state=state, **state_kwargs)
    try:
        yield running
    finally:
        running.stop()
