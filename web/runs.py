"""A portal's recent action runs, from Temporal's visibility (search attributes, never histories
of other portals): what the settings page lists, and the check before a replay."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from workflows.models import ACTION, OBJECT_ID, PORTAL_ID, RESULT
from workflows.runs import outcome

RECENT = 20
# Per-record child workflows (workflows/record.py) carry the portal id too, but no action: they
# are steps of a run, not runs. Outbound sync runs are shown in their own section.
RECORD_WORKFLOW = "KleerRecordWrite"
SYNC_WORKFLOW = "KleerOutboundSync"
ERROR_LOOKUP_TIMEOUT_S = 5.0


@dataclass
class Run:
    workflow_id: str
    run_id: str
    action: str
    object_id: str
    result: str  # created | updated | skipped | failed, or "" while running
    status: str  # Running, Completed, Failed, TimedOut, Terminated, Canceled...
    started: datetime | None
    error: str = ""
    ui_url: str | None = None

    @property
    def failed(self) -> bool:
        return self.result == "failed" or self.status in ("Failed", "TimedOut", "Terminated",
                                                         "Canceled")

    @property
    def replayable(self) -> bool:
        return self.failed and self.status != "Running"


def _status(execution: WorkflowExecution) -> str:
    status = execution.status
    if status is None:
        return "Unknown"
    names = {WorkflowExecutionStatus.TIMED_OUT: "TimedOut",
             WorkflowExecutionStatus.CONTINUED_AS_NEW: "ContinuedAsNew"}
    return names.get(status, status.name.title())


def ui_link(temporal_ui_url: str | None, namespace: str, workflow_id: str) -> str | None:
    if not temporal_ui_url:
        return None
    return (f"{temporal_ui_url.rstrip('/')}/namespaces/{quote(namespace, safe='')}/workflows/"
            f"{quote(workflow_id, safe='')}")


def portal_query(portal_id: int) -> str:
    return (f"{PORTAL_ID.name} = {int(portal_id)} AND WorkflowType != '{RECORD_WORKFLOW}' "
            f"AND WorkflowType != '{SYNC_WORKFLOW}'")


@dataclass
class SyncRun:
    workflow_id: str
    status: str
    started: datetime | None
    summary: str  # what it did (SyncSummary.line()), or why it failed
    ui_url: str | None = None


async def last_syncs(client: Client, portal_id: int, *, namespace: str,
                     temporal_ui_url: str | None, limit: int = 3) -> list[SyncRun]:
    """The portal's latest outbound sync runs with what each did."""
    from sync.models import SyncSummary

    found = [e async for e in client.list_workflows(
        f"WorkflowType = '{SYNC_WORKFLOW}' AND {PORTAL_ID.name} = {int(portal_id)}",
        limit=30, page_size=30)]
    found.sort(key=lambda e: e.start_time.timestamp() if e.start_time else 0.0, reverse=True)
    runs = []
    for execution in found[:limit]:
        status = _status(execution)
        summary = "running" if status == "Running" else ""
        if status == "Completed":
            try:
                handle = client.get_workflow_handle(execution.id, run_id=execution.run_id,
                                                    result_type=SyncSummary)
                async with asyncio.timeout(ERROR_LOOKUP_TIMEOUT_S):
                    summary = (await handle.result()).line()
            except Exception as exc:
                summary = f"(result unreadable: {type(exc).__name__})"
        elif status not in ("Running", "ContinuedAsNew"):
            summary = status
        runs.append(SyncRun(execution.id, status, execution.start_time, summary,
                            ui_link(temporal_ui_url, namespace, execution.id)))
    return runs


async def _error_of(client: Client, run: Run) -> str:
    """The failed action's message (the ActionResult in the failure's details, decoded with the
    client's data converter, so encrypted histories work too)."""
    handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
    try:
        async with asyncio.timeout(ERROR_LOOKUP_TIMEOUT_S):
            return (await outcome(handle)).error_message
    except Exception as exc:  # a timeout, a termination, a history we cannot decode
        cause = getattr(exc, "cause", None)
        message = getattr(cause, "message", None) or str(exc) or type(exc).__name__
        return f"{run.status}: {message}"[:500]


async def recent_runs(client: Client, portal_id: int, *, namespace: str,
                      temporal_ui_url: str | None, limit: int = RECENT) -> list[Run]:
    """The portal's latest runs (newest first by start time), with the error of failed ones."""
    runs: list[Run] = []
    async for execution in client.list_workflows(portal_query(portal_id), limit=limit * 3,
                                                 page_size=limit * 3):
        attributes = execution.typed_search_attributes
        action = attributes.get(ACTION)
        if action is None or attributes.get(PORTAL_ID) != portal_id:
            continue
        runs.append(Run(
            workflow_id=execution.id, run_id=execution.run_id, action=action,
            object_id=attributes.get(OBJECT_ID) or "", result=attributes.get(RESULT) or "",
            status=_status(execution), started=execution.start_time,
            ui_url=ui_link(temporal_ui_url, namespace, execution.id)))
    runs.sort(key=lambda r: r.started.timestamp() if r.started else 0.0, reverse=True)
    runs = runs[:limit]
    failed = [r for r in runs if r.failed and r.status != "Running"]
    for run, error in zip(failed, await asyncio.gather(*(_error_of(client, r) for r in failed)),
                          strict=True):
        run.error = error
    return runs


async def run_of_portal(client: Client, workflow_id: str, portal_id: int) -> bool:
    """Whether the workflow is an action run of this portal (checked before replaying it, so a
    session can only replay its own portals' runs)."""
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except Exception:
        return False
    attributes = description.typed_search_attributes
    return attributes.get(PORTAL_ID) == portal_id and attributes.get(ACTION) is not None
