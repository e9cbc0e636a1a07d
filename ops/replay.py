"""Run a finished HubSpot execution again, with exactly the input it had.

For an execution that ended badly because of something since fixed (Kleer credentials, a missing
product, a bug), without asking the HubSpot user to re-enroll the record.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from settings import Settings
from workflows.models import ActionExecution, ActionResult
from workflows.runs import find_by_callback_id

MAX_REPLAYS = 1000


class ReplayError(RuntimeError):
    """The execution cannot be replayed (unknown, still running, unreadable input)."""


async def original_input(client: Client, wf_id: str) -> ActionExecution:
    """The `ActionExecution` the run started with: the first event of its history.

    Decoded with the client's data converter, so encrypted histories (codec.py) work too.
    """
    handle = client.get_workflow_handle(wf_id)
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            break
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        if payloads:
            [execution] = await client.data_converter.decode(payloads, [ActionExecution])
            return execution
        break
    raise ReplayError(f"workflow {wf_id} has no readable ActionExecution input")


async def resolve(client: Client, ref: str) -> str:
    """The workflow id of an execution, given its workflow id (as pasted from the UI) or its
    HubSpot callbackId (found through the HubSpotCallbackId search attribute)."""
    try:
        await client.get_workflow_handle(ref).describe()
        return ref
    except RPCError:
        pass
    originals = [w for w in await find_by_callback_id(client, ref) if "-replay-" not in w]
    if not originals:
        raise ReplayError(f"no workflow with id or callbackId {ref!r}")
    return originals[0]


async def replay(client: Client, settings: Settings, ref: str
                 ) -> WorkflowHandle[object, ActionResult]:
    """Start a new run of the execution's workflow, id `<original id>-replay-<n>` (next free n).

    HubSpot's callback is already closed (completed or expired) by then, so the replay does the
    Kleer and HubSpot work only: its callback completion is refused by HubSpot, and the workflow
    records that as `callback="closed: ..."` in its result instead of failing. The replay is as
    safe as any re-run: a record that already has its Kleer id is skipped, Kleer creates are
    matched by foreign-id, and the sync back upserts by kleer_id.

    Refuses while the original is still running: it may yet succeed, and two runs would race.
    """
    wf_id = await resolve(client, ref)
    description = await client.get_workflow_handle(wf_id).describe()
    if description.status == WorkflowExecutionStatus.RUNNING:
        raise ReplayError(f"workflow {wf_id} is still running: wait for it (or terminate it) "
                          "before replaying")
    # A replay starts with its search attributes (it is not acknowledging anything), so it is
    # listed from its first moment and does not set them again.
    execution = (await original_input(client, wf_id)).model_copy(update={"indexed": False})
    for n in range(1, MAX_REPLAYS + 1):
        try:
            return await client.start_workflow(
                description.workflow_type, execution, id=f"{wf_id}-replay-{n}",
                task_queue=settings.task_queue, result_type=ActionResult,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=execution.search_attributes() if settings.search_attributes
                else None,
                static_summary=f"replay {n} of {execution.summary()}",
            )
        except WorkflowAlreadyStartedError:
            continue  # taken by an earlier replay: try the next n
    raise ReplayError(f"workflow {wf_id} has been replayed {MAX_REPLAYS} times already")
