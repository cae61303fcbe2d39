"""Calls to the stack's Prefect API: the work pool, the registered deployments, online workers."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def _client(api_url: str) -> Any:
    from prefect.client.orchestration import PrefectClient

    return PrefectClient(api=api_url)


async def _ensure_work_pool(api_url: str, pool: str) -> bool:
    """Create the process pool with Prefect's default job template; True when created."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    async with _client(api_url) as client:
        try:
            await client.read_work_pool(pool)
            return False
        except ObjectNotFound:
            await client.create_work_pool(
                WorkPoolCreate(
                    name=pool,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="crmsync flow runs, one process each (crmsync up)",
                )
            )
            return True


async def _deployment_names(api_url: str) -> set[str]:
    from prefect.client.schemas.sorting import DeploymentSort

    async with _client(api_url) as client:
        deployments = await client.read_deployments(limit=200, sort=DeploymentSort.NAME_ASC)
    return {d.name for d in deployments}


async def _online_workers(api_url: str, pool: str, since: datetime | None = None) -> set[str]:
    """Names of the pool's ONLINE workers (that sent a heartbeat after ``since``)."""
    async with _client(api_url) as client:
        workers = await client.read_workers_for_work_pool(pool, limit=200, offset=0)
    return {
        w.name
        for w in workers
        if str(w.status).upper().endswith("ONLINE")
        and (
            since is None or (w.last_heartbeat_time is not None and w.last_heartbeat_time >= since)
        )
    }
