"""One Temporal Schedule per portal runs the outbound sync (visible under Schedules in the UI).

`ensure` creates or updates a portal's schedule (idempotent, safe from several workers at once);
workers `reconcile` every portal they serve on start and every few minutes, so a newly installed
portal gets its schedule without anyone asking, and a disconnected one is paused. Pause, resume
and "run now" come from the CLI (`kleer-hubspot sync ...`) and the settings page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from codec import PublicText
from portals.services import PortalServices
from settings import Settings
from sync.models import SyncRequest
from sync.workflow import OutboundSync
from workflows.models import ACTION, PORTAL_ID

log = logging.getLogger(__name__)
SYNC_ACTION = "outbound-sync"


def schedule_id(portal_id: int) -> str:
    return f"kleer-sync-portal-{portal_id}"


def _schedule(settings: Settings, portal_id: int, paused: bool = False, note: str = "") -> Schedule:
    attributes = TypedSearchAttributes([SearchAttributePair(PORTAL_ID, portal_id),
                                        SearchAttributePair(ACTION, SYNC_ACTION)]) \
        if settings.search_attributes else TypedSearchAttributes.empty
    return Schedule(
        action=ScheduleActionStartWorkflow(
            OutboundSync.run, SyncRequest(portal_id=portal_id), id=schedule_id(portal_id),
            task_queue=settings.task_queue, typed_search_attributes=attributes,
            static_summary=PublicText(f"outbound sync · portal {portal_id}")),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(
            seconds=settings.sync_interval_s))]),
        # One run per portal at a time: a run still going when the next is due lets it pass.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(paused=paused, note=note or "Kleer -> HubSpot outbound sync"),
    )


async def ensure(client: Client, settings: Settings, portal_id: int) -> str:
    """created, updated (interval changed) or unchanged."""
    try:
        await client.create_schedule(schedule_id(portal_id), _schedule(settings, portal_id))
        return "created"
    except ScheduleAlreadyRunningError:
        pass
    handle = client.get_schedule_handle(schedule_id(portal_id))
    every = timedelta(seconds=settings.sync_interval_s)
    description = await handle.describe()
    if [i.every for i in description.schedule.spec.intervals] == [every]:
        return "unchanged"

    def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
        state = current.description.schedule.state
        return ScheduleUpdate(schedule=_schedule(settings, portal_id, state.paused, state.note or ""))

    await handle.update(update)
    return "updated"


@dataclass
class SyncStatus:
    portal_id: int
    exists: bool
    paused: bool = False
    note: str = ""
    interval_s: float = 0
    next_runs: list[str] | None = None
    recent: list[str] | None = None  # ids of the last runs


async def status(client: Client, portal_id: int) -> SyncStatus:
    try:
        description: ScheduleDescription = await client.get_schedule_handle(
            schedule_id(portal_id)).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return SyncStatus(portal_id, exists=False)
        raise
    schedule = description.schedule
    return SyncStatus(
        portal_id, exists=True, paused=schedule.state.paused, note=schedule.state.note or "",
        interval_s=sum(i.every.total_seconds() for i in schedule.spec.intervals),
        next_runs=[t.isoformat() for t in description.info.next_action_times[:3]],
        recent=[a.action.workflow_id for a in description.info.recent_actions[-5:]
                if hasattr(a.action, "workflow_id")])


async def pause(client: Client, portal_id: int, note: str = "paused by an operator") -> None:
    await client.get_schedule_handle(schedule_id(portal_id)).pause(note=note)


async def resume(client: Client, portal_id: int, note: str = "resumed by an operator") -> None:
    await client.get_schedule_handle(schedule_id(portal_id)).unpause(note=note)


async def run_now(client: Client, portal_id: int) -> None:
    """A run now (skipped if one is going: the schedule's overlap policy)."""
    await client.get_schedule_handle(schedule_id(portal_id)).trigger(
        overlap=ScheduleOverlapPolicy.SKIP)


async def reconcile(client: Client, settings: Settings, services: PortalServices) -> dict[int, str]:
    """Every portal this deployment serves gets its schedule; a disconnected portal's is paused
    (nothing can be written to it) and resumed once it is reconnected."""
    outcome: dict[int, str] = {}
    portals = {pid: "connected" for pid in settings.portals}
    if services.store is not None:
        portals.update({p.portal_id: p.status for p in await services.store.portals()})
    for portal_id, state in sorted(portals.items()):
        try:
            outcome[portal_id] = await ensure(client, settings, portal_id)
            current = await status(client, portal_id)
            disconnected = state == "disconnected"
            if disconnected and not current.paused:
                await pause(client, portal_id, "portal disconnected: reconnect the Kleer app")
                outcome[portal_id] += ", paused (disconnected)"
            elif not disconnected and current.paused and current.note.startswith("portal disconnected"):
                await resume(client, portal_id, "portal reconnected")
                outcome[portal_id] += ", resumed (reconnected)"
        except RPCError as exc:  # one portal's trouble must not stop the others
            log.warning("sync schedule of portal %s: %s", portal_id, exc)
            outcome[portal_id] = f"error: {exc}"
    return outcome
