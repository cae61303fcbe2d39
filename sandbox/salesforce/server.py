"""Serve the emulator with uvicorn on loopback, in a daemon thread, for tests and demos."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sandbox import kit
from sandbox.salesforce.app import create_app
from sandbox.salesforce.state import OrgSpec, SalesforceEmulatorState

__all__ = ["RunningEmulator", "run_emulator", "serve_forever"]


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


class RunningEmulator(kit.ServedApp):
    """A served emulator: ``url`` is both the login URL and the orgs' ``instance_url``."""

    def __init__(
        self,
        switch: _SwitchableApp,
        specs: Sequence[OrgSpec],
        state_kwargs: dict[str, Any],
        **options: Any,
    ) -> None:
        self._switch = switch
        self._specs = list(specs)
        self._state_kwargs = state_kwargs
        super().__init__(
            switch,
            name="salesforce-emulator",
            on_stop=lambda: switch.state.release_held_requests(),
            **options,
        )

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
    options = {"host": host, "port": port, "startup_timeout": startup_timeout}
    with RunningEmulator(switch, spec_list, state_kwargs, **options) as running:
        yield running


def serve_forever(
    specs: Sequence[OrgSpec], *, host: str = "127.0.0.1", port: int = 8083, batch_size: int = 2000
) -> None:
    """Serve in the foreground (``python -m sandbox.salesforce``) until interrupted."""
    state = SalesforceEmulatorState(specs, batch_size=batch_size)
    kit.serve_forever(create_app(state), host=host, port=port)
