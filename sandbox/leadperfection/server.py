"""Serve the LP emulator with uvicorn on loopback, in a background thread or in the foreground.

Tests and the demo need real HTTP (timeouts, dropped connections and keep-alive only behave like
production over a socket), but also direct access to the state; :func:`run_emulator` gives both.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import uvicorn
from starlette.applications import Starlette

from sandbox.leadperfection.app import create_app
from sandbox.leadperfection.data import LPClientSpec
from sandbox.leadperfection.state import LPEmulatorState


@dataclass(frozen=True)
class RunningEmulator:
    """A served emulator: ``url`` is the LP base URL (``{url}/token``, ``{url}/api/...``)."""

    url: str
    host: str
    port: int
    state: LPEmulatorState


def _config(app: Starlette, sock: socket.socket, log_level: str) -> uvicorn.Config:
    host, port = sock.getsockname()[:2]
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )


@contextmanager
def run_emulator(
    specs: Sequence[LPClientSpec] | LPClientSpec,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    state: LPEmulatorState | None = None,
    start_time: datetime | None = None,
    freeze_clock: bool = False,
    log_level: str = "warning",
    startup_timeout: float = 30.0,
) -> Iterator[RunningEmulator]:
    """Run the emulator in a daemon thread for the duration of the ``with`` block.

    ``port=0`` binds a free port (read it from ``.url``). Pass ``state`` to serve an existing
    state (``specs`` is then ignored). On exit the server stops without waiting for requests
    a ``timeout_after_store`` fault is still holding.
    """
    if state is None:
        state = LPEmulatorState(specs, start_time=start_time, freeze_clock=freeze_clock)
    app = create_app(state)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(_config(app, sock, log_level))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="lp-emulator", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("LP emulator failed to start")
        time.sleep(0.01)
    bound_host, bound_port = sock.getsockname()[:2]
    try:
        yield RunningEmulator(f"http://{bound_host}:{bound_port}", bound_host, bound_port, state)
    finally:
        server.should_exit = True
        server.force_exit = True
        thread.join(timeout=10)
        sock.close()


def serve_forever(
    specs: Sequence[LPClientSpec], *, host: str = "127.0.0.1", port: int = 8081
) -> None:
    """Serve in the foreground (``python -m sandbox.leadperfection``) until interrupted."""
    state = LPEmulatorState(specs)
    uvicorn.run(create_app(state), host=host, port=port, access_log=False, lifespan="off")
