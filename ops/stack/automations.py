"""The automations ``up`` installs: failure notifications (when ``CRMSYNC_NOTIFICATION_BLOCK``
names a block) and the zombie-run detector that crashes runs whose heartbeats stopped."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from crmsync.settings import get_settings
from ops.stack.prefect_api import _client
from ops.stack.state import Echo, StackError, _write_state

AUTOMATION_NAME = "crmsync: notify on failed or crashed flow runs"
ZOMBIE_AUTOMATION_NAME = "crmsync: crash flow runs whose heartbeats stopped"
ZOMBIE_AFTER = timedelta(seconds=150)  # five missed heartbeats (workers.HEARTBEAT_SECONDS)


# Pieces of the body follow Prefect's own default notification template
# (server migration 4160a4841eed, "remove flow run notifications").
NOTIFICATION_SUBJECT = "crmsync: flow run {{ flow_run.name }} {{ flow_run.state.name }}"
NOTIFICATION_BODY = """\
Flow run {{ flow.name }}/{{ flow_run.name }} entered state `{{ flow_run.state.name }}` \
at {{ flow_run.state.timestamp }}.
Parameters: {{ flow_run.parameters }}
State message: {{ flow_run.state.message }}
Flow run URL: {{ flow_run|ui_url }}
"""


async def _ensure_automation(api_url: str, block: str) -> str:
    """Failed/Crashed flow runs → notification through ``block``; created or updated in place."""
    from prefect.automations import AutomationCore, EventTrigger, Posture, SendNotification
    from prefect.exceptions import ObjectNotFound

    slug, _, name = block.partition("/")
    if not slug or not name:
        raise StackError(f"CRMSYNC_NOTIFICATION_BLOCK={block!r}: expected 'block-type-slug/name'")
    async with _client(api_url) as client:
        try:
            document = await client.read_block_document_by_name(name=name, block_type_slug=slug)
        except ObjectNotFound:
            raise StackError(
                f"notification block {block!r} does not exist on this Prefect server; create it "
                "(UI: Blocks, or `prefect block create`), then run `crmsync up` again"
            ) from None
        automation = AutomationCore(
            name=AUTOMATION_NAME,
            description="Created by `crmsync up`: notify operators of failed or crashed runs.",
            enabled=True,
            trigger=EventTrigger(
                expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                match={"prefect.resource.id": "prefect.flow-run.*"},
                for_each={"prefect.resource.id"},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[
                SendNotification(
                    block_document_id=document.id,
                    subject=NOTIFICATION_SUBJECT,
                    body=NOTIFICATION_BODY,
                )
            ],
        )
        existing = await client.read_automations_by_name(AUTOMATION_NAME)
        if existing:
            await client.update_automation(existing[0].id, automation)
            for extra in existing[1:]:
                await client.delete_automation(extra.id)
            return "updated"
        await client.create_automation(automation)
        return "created"


async def _ensure_zombie_automation(api_url: str) -> str:
    """A flow run whose heartbeats stop (its worker was killed, its machine died) → Crashed.

    Without it a killed run stays Running for ever: the dispatcher waiting on it never ends, and
    the sync-all-tenants deployment (one run at a time, CANCEL_NEW) cancels every later round,
    so the whole fleet stops syncing. Prefect's documented recipe:
    https://docs.prefect.io/v3/advanced/detect-zombie-flows
    """
    from prefect.automations import AutomationCore, ChangeFlowRunState, EventTrigger, Posture
    from prefect.client.schemas.objects import StateType

    automation = AutomationCore(
        name=ZOMBIE_AUTOMATION_NAME,
        description="Created by `crmsync up`: a run with no heartbeat for "
        f"{int(ZOMBIE_AFTER.total_seconds())} s is Crashed, so Retry and the next round proceed.",
        enabled=True,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match={"prefect.resource.id": "prefect.flow-run.*"},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=ZOMBIE_AFTER,
        ),
        actions=[
            ChangeFlowRunState(
                name=None,
                force=False,
                state=StateType.CRASHED,
                message="No heartbeat: the process running this flow run died. "
                "Retry re-runs only what did not complete.",
            )
        ],
    )
    async with _client(api_url) as client:
        existing = await client.read_automations_by_name(ZOMBIE_AUTOMATION_NAME)
        if existing:
            await client.update_automation(existing[0].id, automation)
            return "updated"
        await client.create_automation(automation)
        return "created"


def _maybe_automation(state: dict[str, Any], data: Path, echo: Echo) -> None:
    block = get_settings().notification_block
    if not block:
        if not state.get("automation"):
            echo("no CRMSYNC_NOTIFICATION_BLOCK: failure notifications are not configured")
        return
    try:
        action = asyncio.run(_ensure_automation(state["local_api_url"], block))
    except StackError as exc:
        echo(f"warning: {exc}")
        return
    state["automation"] = {"name": AUTOMATION_NAME, "block": block}
    _write_state(state, data)
    echo(f"automation {AUTOMATION_NAME!r} {action} (notifies through {block})")
