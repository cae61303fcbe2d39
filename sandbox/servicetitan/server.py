"""Serving the emulator over real HTTP on loopback, in a background thread (`sandbox.kit.serve`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sandbox.kit import ServedApp

from .app import create_app
from .data import TenantSpec
from .state import EmulatorState


class RunningEmulator(ServedApp):
    """A served emulator: `url` is the base for API calls and for `POST {url}/connect/token`."""

    def __init__(self, state: EmulatorState, **options: Any) -> None:
        self.state = state
        state.fault_book.release.clear()  # a stopped server released it
        super().__init__(
            create_app(state), name="st-emulator", on_stop=state.release_held_requests, **options
        )


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
    return RunningEmulator(
        state, host=host, port=port, startup_timeout=startup_timeout, log_level=log_level
    )


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
    with start_emulator(specs, port=port, host=host, state=state, **state_kwargs) as running:
        yield running
