"""Reading action runs from outside a workflow (CLI, tests, demo, bench).

A failed action ends its run FAILED (so the Temporal UI shows it as a failure) with the
`ActionResult` as the failure's details; `outcome()` gives the ActionResult either way.
"""

from __future__ import annotations

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from workflows.models import CALLBACK_ID, FAILED_ACTION, ActionResult


async def outcome(handle: WorkflowHandle) -> ActionResult:
    """Wait for the run to close; its ActionResult whether the action succeeded or failed."""
    try:
        return ActionResult.model_validate(await handle.result())
    except WorkflowFailureError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == FAILED_ACTION and cause.details:
            return ActionResult.model_validate(cause.details[0])
        raise


async def find_by_callback_id(client: Client, callback_id: str) -> list[str]:
    """Workflow ids of the runs of one HubSpot execution (the run and any replays), from
    visibility (search attribute HubSpotCallbackId)."""
    query = f"{CALLBACK_ID.name} = '{callback_id.replace(chr(39), '')}'"
    return [run.id async for run in client.list_workflows(query)]
