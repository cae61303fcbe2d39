"""Calling a flow from a command, in this process (Prefect local mode or ``PREFECT_API_URL``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


def run_async(awaitable: Awaitable[Any]) -> Any:
    """Run an async flow call (a coroutine, typed by Prefect as an Awaitable) to completion."""

    async def wait() -> Any:
        return await awaitable

    return asyncio.run(wait())
