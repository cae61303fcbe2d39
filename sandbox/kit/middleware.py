"""One ASGI middleware in front of every emulator: it logs each request and applies armed faults.

It is plain ASGI rather than Starlette's BaseHTTPMiddleware because faults act on the raw
exchange: hold a finished answer, cut it half-way, or close the connection without one.

Request path: the body is read (and replayed to the app), the request is logged, faults are
planned; "before" latency, token expiry and an ending fault apply; `admit` (a vendor gateway's
own checks) may refuse; the app handles the request; "after" latency and endings apply to its
answer. Waits end early when the client goes away (nothing is sent then) or when held requests
are released. `/__emulator` control calls pass straight through, neither faulted nor logged.

What is vendor-specific comes in as hooks: `answer` builds the response for an ANSWER fault,
`drop` breaks the connection (`drop_mid_body` or `close_connection`), `expire` ends tokens,
`on_request` / `on_response` fill the emulator's own log fields.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .core import EmulatorCore
from .faults import DROP, HOLD, Fault, FaultPlan
from .requestlog import LoggedRequest

Dropper = Callable[[list[Message], Send, Receive], Awaitable[None]]

CURRENT_TRANSPORT: contextvars.ContextVar[asyncio.Transport | None] = contextvars.ContextVar(
    "emulator_transport", default=None
)
"""Set per connection by the server's protocol (serve.py), so `close_connection` can close it."""

_INCOMPLETE = "ASGI callable returned without completing response."


class _QuietDrops(logging.Filter):
    """uvicorn logs an error for each deliberately broken response; those are not errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _INCOMPLETE


_quiet = _QuietDrops()


def drop_mid_body(placeholder: bytes, content_type: bytes = b"application/json") -> Dropper:
    """Start the answer and stop half-way, so the client sees an incomplete read.

    uvicorn closes the connection when an app returns mid-body, as when a load balancer cuts a
    response. With no handled answer to cut (a "before" drop), a 200 carrying `placeholder` is
    started instead. The announced length always exceeds what is sent.
    """

    async def drop(held: list[Message], send: Send, receive: Receive) -> None:
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        if start is None:
            payload, status = placeholder, 200
            headers = [(b"content-type", content_type)]
        else:
            payload = b"".join(m.get("body", b"") for m in held if m["type"] != start["type"])
            status = start["status"]
            headers = [
                (k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"
            ]
        headers.append((b"content-length", str(len(payload) + 1024).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": payload[: len(payload) // 2], "more_body": True}
        )

    return drop


async def close_connection(held: list[Message], send: Send, receive: Receive) -> None:
    """Close the connection without a byte of answer, like a proxy or server that died.

    ASGI has no way to do that, so the server's protocol publishes the transport; in-process
    (no transport) this raises ConnectionResetError instead.
    """
    transport = CURRENT_TRANSPORT.get()
    if transport is None:
        raise ConnectionResetError("emulated drop_connection")
    transport.close()
    # Wait for uvicorn to notice, so that it does not try to answer on the closed connection.
    try:
        async with asyncio.timeout(2.0):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        pass


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then the client's own messages (a disconnect, eventually)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


@dataclass
class EmulatorMiddleware:
    """Request log and faults for `core`'s emulator (hooks: see the module docstring)."""

    app: ASGIApp
    _: KW_ONLY
    core: EmulatorCore[Any]
    answer: Callable[[Fault, Scope], ASGIApp]
    expire: Callable[[], object]
    drop: Dropper = close_connection
    entry_type: type[LoggedRequest] = LoggedRequest
    on_request: Callable[[Scope, bytes, Any], None] | None = None
    on_response: Callable[[Scope, Any], None] | None = None
    admit: Callable[[Scope, Any], ASGIApp | None] | None = None
    canonical_path: Callable[[str], str] | None = None
    control_prefix: str = "/__emulator"

    def __post_init__(self) -> None:
        logger = logging.getLogger("uvicorn.error")
        if _quiet not in logger.filters:
            logger.addFilter(_quiet)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if self.canonical_path is not None and self.canonical_path(path) != path:
            path = self.canonical_path(path)
            scope = {**scope, "path": path, "raw_path": path.encode()}
        if path.startswith(self.control_prefix):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        body = await _read_body(receive)
        query = scope.get("query_string", b"").decode("latin-1")
        entry = self.core.request_log.append(
            self.entry_type(scope["method"], path, query, self.core.timestamp())
        )
        if self.on_request is not None:
            self.on_request(scope, body, entry)
        plan = self.core.fault_book.plan(scope["method"], path)
        entry.faults = plan.kinds
        finished = False

        def finish() -> None:
            nonlocal finished
            if not finished and self.on_response is not None:
                self.on_response(scope, entry)
            finished = True

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
                finish()
            await send(message)

        try:
            await self._serve(scope, body, receive, logged_send, plan, entry)
        finally:
            finish()
            entry.duration_ms = round((time.perf_counter() - started) * 1000, 3)

    async def _serve(
        self,
        scope: Scope,
        body: bytes,
        receive: Receive,
        send: Send,
        plan: FaultPlan,
        entry: LoggedRequest,
    ) -> None:
        if plan.latency_before_ms and await self._pause(plan.latency_before_ms, receive):
            entry.status = "client_disconnected"
            return
        if plan.expire_tokens:
            self.expire()
        ending = plan.terminal
        if ending is not None and ending.phase == "before":
            entry.fault = ending.kind
            await self._end(ending, [], scope, receive, send, entry)
            return
        denial = self.admit(scope, entry) if self.admit is not None else None
        if denial is not None:
            await denial(scope, _replay(body, receive), send)
            return
        if ending is None and not plan.latency_after_ms:
            await self.app(scope, _replay(body, receive), send)
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, _replay(body, receive), hold)
        wait_ms = plan.latency_after_ms
        if ending is not None:
            entry.fault = ending.kind
            if self.core.fault_book.effect(ending) == HOLD:
                wait_ms += ending.latency_ms or 0
        if wait_ms and await self._pause(wait_ms, receive):
            entry.status = "client_disconnected"
            return
        if ending is None or self.core.fault_book.effect(ending) == HOLD:
            for message in held:
                await send(message)
        else:
            await self._end(ending, held, scope, receive, send, entry)

    async def _end(
        self,
        fault: Fault,
        held: list[Message],
        scope: Scope,
        receive: Receive,
        send: Send,
        entry: LoggedRequest,
    ) -> None:
        if self.core.fault_book.effect(fault) == DROP:
            await self.drop(held, send, receive)
            if entry.status is None:
                entry.status = "dropped"
        else:
            await self.answer(fault, scope)(scope, _replay(b"", receive), send)

    async def _pause(self, ms: int, receive: Receive) -> bool:
        """Wait `ms`; True if the client went away meanwhile (then there is no one to answer).

        The wait also ends, with False, when the fault book releases held requests.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ms / 1000
        release = self.core.fault_book.release
        pending: asyncio.Future[Message] | None = None
        try:
            while not release.is_set() and (remaining := deadline - loop.time()) > 0:
                if pending is None:
                    pending = asyncio.ensure_future(receive())
                done, _ = await asyncio.wait({pending}, timeout=min(remaining, 0.05))
                if done:
                    if pending.result()["type"] == "http.disconnect":
                        return True
                    pending = None
            return False
        finally:
            if pending is not None:
                pending.cancel()
