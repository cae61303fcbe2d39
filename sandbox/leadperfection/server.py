"""Serve the LP emulator with uvicorn on loopback, in a background thread or in the foreground.

Tests and the demo need real HTTP (timeouts, dropped connections and keep-alive only behave like
production over a socket), but also direct access to the state; :func:`run_emulator` gives both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sandbox import kit
from sandbox.leadperfection.app import create_app
from sandbox.leadperfection.data import LPClientSpec
from sandbox.leadperfection.state import LPEmulatorState


class RunningEmulator(kit.ServedApp):
    """A served emulator: ``url`` is the LP base URL (``{url}/token``, ``{url}/api/...``)."""

    def __init__(self, state: LPEmulatorState, **options: Any) -> None:
        self.state = state
        state.fault_book.release.clear()  # a stopped server released it
        super().__init__(
            create_app(state), name="lp-emulator", on_stop=state.release_held_requests, **options
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
    options = {"host": host, "port": port, "log_level": log_level}
    with RunningEmulator(state, startup_timeout=startup_timeout, **options) as running:
        yield running


def serve_forever(
    specs: Sequence[LPClientSpec], *, host: str = "127.0.0.1", port: int = 8081
) -> None:
    """Serve in the foreground (``python -m sandbox.leadperfection``) until interrupted."""
    kit.serve_forever(create_app(LPEmulatorState(specs)), host=host, port=port)
