"""Serve the emulator with uvicorn on loopback, in a daemon thread, for tests and demos."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from sandbox.salesforce.app import CURRENT_TRANSPORT, create_app
from sandbox.salesforce.state import OrgSpec, SalesforceEmulatorState

__all__ = [
    "RunningEmulator",
    "TransportExposingH11",
    "run_emulator",
    "serve_forever",
    "uvicorn_config",
]


class TransportExposingH11(H11Protocol):
    """uvicorn's h11 protocol, publishing each connection's transport to the app.

    ASGI gives an app no way to close a connection without answering; ``drop_connection``
    needs exactly that, to look like a proxy or server that died mid-request.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            CURRENT_TRANSPORT.set(transport)
            await inner(scope, receive, send)

        self.app = app


def uvicorn_config(app: Any, *, host: str = "127.0.0.1", port: int = 0) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=TransportExposingH11,
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )


class _SwitchableApp:
    """Serves whichever state is current, so one server can start each test from fresh data."""

    def __init__(self, state: SalesforceEmulatorState) -> None:
        self.state = state
        self.app = create_app(state)

    def swap(self, state: SalesforceEmulatorState) -> None:
        old = self.state
        self.state, self.app = state, create_app(state)
        old.release_held_requests()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class RunningEmulator:
    """A served emulator: ``url`` is both the login URL and the orgs' ``instance_url``."""

    def __init__(
        self,
        url: str,
        host: str,
        port: int,
        switch: _SwitchableApp,
        specs: Sequence[OrgSpec],
        state_kwargs: dict[str, Any],
    ) -> None:
        self.url = url
        self.host = host
        self.port = port
        self._switch = switch
        self._specs = list(specs)
        self._state_kwargs = state_kwargs

    @property
    def state(self) -> SalesforceEmulatorState:
        return self._switch.state

    def reset(
        self, specs: Sequence[OrgSpec] | OrgSpec | None = None, **state_kwargs: Any
    ) -> SalesforceEmulatorState:
        """Serve a fresh state (same specs and options unless given) on the same URL.

        Lets a module-scoped server give every test untouched data, sessions, counters and
        faults without paying for a server restart.
        """
        if specs is None:
            chosen = self._specs
        else:
            chosen = [specs] if isinstance(specs, OrgSpec) else list(specs)
        state = SalesforceEmulatorState(chosen, **{**self._state_kwargs, **state_kwargs})
        self._switch.swap(state)
        return state


@contextmanager
def run_emulator(
    specs: Sequence[OrgSpec] | OrgSpec,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    batch_size: int = 2000,
    start_time: datetime | None = None,
    freeze_clock: bool = False,
    max_open_cursors: int = 10,
    fault_seed: int = 0,
    state: SalesforceEmulatorState | None = None,
    startup_timeout: float = 30.0,
) -> Iterator[RunningEmulator]:
    """Serve ``specs`` (or a ready ``state``) until the block exits; ``port=0`` picks a free port.

    On exit the server stops without waiting for requests a ``latency`` or
    ``timeout_after_store`` fault is still holding.
    """
    spec_list = [specs] if isinstance(specs, OrgSpec) else list(specs)
    state_kwargs: dict[str, Any] = {
        "batch_size": batch_size,
        "start_time": start_time,
        "freeze_clock": freeze_clock,
        "max_open_cursors": max_open_cursors,
        "fault_seed": fault_seed,
    }
    if state is None:
        state = SalesforceEmulatorState(spec_list, **state_kwargs)
    switch = _SwitchableApp(state)
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP, and
    # without it every response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(switch, host=host, port=bound_port))
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name=f"salesforce-emulator-{bound_port}",
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the Salesforce emulator did not start")
        time.sleep(0.005)
    try:
        yield RunningEmulator(
            f"http://{host}:{bound_port}", host, bound_port, switch, spec_list, state_kwargs
        )
    finally:
        switch.state.release_held_requests()
        server.should_exit = True
        thread.join(timeout=5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=2)
        sock.close()


def serve_forever(
    specs: Sequence[OrgSpec], *, host: str = "127.0.0.1", port: int = 8083, batch_size: int = 2000
) -> None:
    """Serve in the foreground (``python -m sandbox.salesforce``) until interrupted."""
    state = SalesforceEmulatorState(specs, batch_size=batch_size)
    uvicorn.Server(uvicorn_config(create_app(state), host=host, port=port)).run()
