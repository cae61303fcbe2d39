"""Serving an emulator over real HTTP on loopback, in a daemon thread.

Connectors are tested through their real HTTP stack (timeouts, broken connections, keep-alive
only behave like production over a socket), while the test thread drives the state directly.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .middleware import CURRENT_TRANSPORT


class TransportExposingH11(H11Protocol):
    """uvicorn's h11 protocol, publishing each connection's transport to the app, because ASGI
    gives an app no way to close a connection without answering (`close_connection`)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            CURRENT_TRANSPORT.set(transport)
            await inner(scope, receive, send)

        self.app = app


def uvicorn_config(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=TransportExposingH11,
        ws="none",
        loop="asyncio",
        lifespan="off",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=1,
    )


def serve_forever(app: Any, *, host: str, port: int) -> None:
    """Serve in the foreground (`python -m sandbox.<emulator>`) until interrupted."""
    uvicorn.Server(uvicorn_config(app, host=host, port=port)).run()


class ServedApp:
    """`app` served by uvicorn in a daemon thread; `url` is its base. `port=0` picks a free port.
    Serving starts on construction and ends with `stop()` or at the end of a `with` block.

    `on_stop` runs first on `stop()`, to release requests a fault is holding, so that stopping
    never waits for them.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "emulator",
        log_level: str = "warning",
        startup_timeout: float = 30.0,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP,
        # and without it every response waits ~40 ms for a delayed ACK (Nagle).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host: str = self._sock.getsockname()[0]
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://{self.host}:{self.port}"
        self._on_stop = on_stop
        self.server = uvicorn.Server(
            uvicorn_config(app, host=host, port=self.port, log_level=log_level)
        )
        self.thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self._sock]},
            name=f"{name}-{self.port}",
            daemon=True,
        )
        self.thread.start()
        deadline = time.monotonic() + startup_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.server.should_exit = True
                self._sock.close()
                raise RuntimeError(f"{name} did not start on {host}:{port}")
            time.sleep(0.005)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 5.0) -> None:
        if self._on_stop is not None:
            self._on_stop()
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(2)
        self._sock.close()
