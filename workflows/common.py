"""The one shape every action runs: read -> skip? -> prerequisites -> validate -> write -> write back
-> sync back -> complete. Each action's workflow file only names its ActionSpec.

Deterministic: all I/O is in activities; ActionSpec.build() is pure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from actions.base import ActionContext, ActionSpec
    from actions.fields import InputError
    from actions.rows import product_ids
    from activities.hubspot import HubSpotActivities
    from activities.kleer import KleerActivities
    from activities.models import (
        Completion,
        FindProducts,
        KleerWrite,
        KleerWritten,
        ReadLineItems,
        ReadObject,
        ReadRecord,
        SyncLineItems,
        SyncMirror,
        WriteBack,
    )
    from kleer_api.models import KleerModel
    from workflows.models import (
        FAILED_ACTION,
        PORTAL_ID,
        RESULT,
        ActionExecution,
        ActionResult,
        StepPolicy,
        callbacks_task_queue,
        hubspot_task_queue,
    )

T = TypeVar("T")


def hubspot_queue(portal_id: int) -> str:
    return hubspot_task_queue(workflow.info().task_queue, portal_id)


def step_options(policy: StepPolicy, callback: bool = False) -> dict[str, Any]:
    """Transient faults (timeouts, 5xx, 429) are retried with backoff; a 429's Retry-After
    overrides the backoff (ApplicationError.next_retry_delay); final errors are non-retryable.
    The callback step outlives the others: HubSpot waits as long as the BLOCK answer said."""
    give_up = policy.callback_give_up_after_s if callback else policy.give_up_after_s
    return {
        "start_to_close_timeout": timedelta(seconds=policy.start_to_close_s),
        "schedule_to_close_timeout": timedelta(seconds=give_up),
        "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=policy.initial_retry_s),
                                    backoff_coefficient=2.0,
                                    maximum_interval=timedelta(seconds=policy.max_retry_s)),
    }


class FinalFailure(Exception):
    """Ends the action as FAIL_CONTINUE with a message the HubSpot user can act on."""

    def __init__(self, message: str, kleer_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.kleer_id = kleer_id


# In a bulk enrollment the portal's HubSpot queue has a backlog. Runs already under way go
# first (priority 1); a run's first call waits behind them (5). Runs then finish in the order
# they started, instead of all progressing in lockstep and finishing together at the end.
UNDER_WAY, NEW_RUN = Priority(priority_key=1), Priority(priority_key=5)


async def _step(
    activity: Callable[..., Awaitable[T]], arg: Any, policy: StepPolicy, failure: str = "",
    kleer_id: str = "", task_queue: str | None = None, priority: Priority = UNDER_WAY,
) -> T:
    try:
        return await workflow.execute_activity_method(activity, arg, task_queue=task_queue,
                                                      priority=priority, **step_options(policy))
    except ActivityError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
        if not (isinstance(cause, ApplicationError) and cause.non_retryable):
            message = f"gave up after retrying for {policy.give_up_after_s:.0f} s: {message}"
        raise FinalFailure(failure + message, kleer_id) from None


async def _hubspot_step(
    activity: Callable[..., Awaitable[T]], arg: Any, policy: StepPolicy, failure: str = "",
    kleer_id: str = "", priority: Priority = UNDER_WAY,
) -> T:
    """A HubSpot call: on the portal's rate-limited queue."""
    return await _step(activity, arg, policy, failure, kleer_id, hubspot_queue(arg.portal_id),
                       priority)


async def run_action(spec: ActionSpec, ex: ActionExecution) -> ActionResult:
    try:
        result = await _perform(spec, ex)
    except FinalFailure as failure:
        result = ActionResult(state="FAIL_CONTINUE", result="failed", kleer_id=failure.kleer_id,
                              error_message=failure.message)
    workflow.logger.info("action %s on %s %s: %s", spec.key, ex.object_type, ex.object_id,
                         result.result)
    workflow.metric_meter().create_counter(
        "kleer_executions_finished", "HubSpot action runs by result").add(
        1, {"action": spec.key, "result": result.result})
    if workflow.info().typed_search_attributes.get(PORTAL_ID) is not None:
        workflow.upsert_search_attributes([RESULT.value_set(result.result)])
    workflow.set_current_details(f"{result.result}: {result.error_message}" if result.error_message
                                 else f"{result.result} kleer_id={result.kleer_id}")
    callback = await workflow.execute_activity_method(
        HubSpotActivities.complete,
        Completion(portal_id=ex.portal_id, callback_id=ex.callback_id,
                   output_fields=result.output_fields()),
        task_queue=callbacks_task_queue(workflow.info().task_queue, ex.portal_id),
        **step_options(ex.policy, callback=True),
    )
    result = result.model_copy(update={"callback": callback})
    if result.result == "failed":
        # HubSpot has its FAIL_CONTINUE; the run itself ends FAILED so the UI's list and its
        # "Failed" filter show it. The ActionResult rides along as the failure's details.
        raise ApplicationError(result.error_message, result, type=FAILED_ACTION, non_retryable=True)
    return result


async def _perform(spec: ActionSpec, ex: ActionExecution) -> ActionResult:
    ctx = await _read(spec, ex)
    existing = ctx.record.prop(spec.id_property)
    if spec.operation == "create" and existing:
        return ActionResult(state="SUCCESS", result="skipped", kleer_id=existing)
    if problem := spec.prerequisite_error(ctx):
        raise FinalFailure(problem)
    if spec.reads_line_items and (wanted := product_ids(ctx.line_items)):
        ctx.products = await _step(KleerActivities.find_products, FindProducts(
            portal_id=ex.portal_id, hubspot_product_ids=wanted), ex.policy)
    try:
        record = spec.build(ctx, ex.input_fields)
    except InputError as exc:
        raise FinalFailure(str(exc)) from None

    if spec.operation == "create":
        written = await _create(spec, ex, record)
    else:
        written = await _update(spec, ex, record, existing or "")
    if spec.sync is not None:
        await _sync_back(spec, ex, ctx, written)
    result = "created" if spec.operation == "create" else "updated"
    return ActionResult(state="SUCCESS", result=result, kleer_id=str(written.id))


async def _read(spec: ActionSpec, ex: ActionExecution) -> ActionContext:
    """The record with its associations; then, unless the action will skip, its company and
    line items (each read only when the action needs it)."""
    read = await _hubspot_step(HubSpotActivities.read_record, ReadRecord(
        portal_id=ex.portal_id, action=spec.key, object_id=ex.object_id), ex.policy,
        priority=NEW_RUN)
    ctx = ActionContext(portal_id=ex.portal_id, object_type=spec.object_type, record=read.record,
                        mappings=read.mappings)
    if spec.operation == "create" and ctx.record.prop(spec.id_property):
        return ctx
    if spec.needs_company and (company_id := ctx.record.primary_company_id()):
        ctx.company = await _hubspot_step(HubSpotActivities.read_company, ReadObject(
            portal_id=ex.portal_id, object_id=company_id), ex.policy)
    if spec.reads_line_items and (item_ids := ctx.record.associated_ids("line_items")):
        ctx.line_items = await _hubspot_step(HubSpotActivities.read_line_items, ReadLineItems(
            portal_id=ex.portal_id, ids=item_ids), ex.policy)
    return ctx


async def _create(spec: ActionSpec, ex: ActionExecution, record: KleerModel) -> KleerWritten:
    what = f"Kleer {spec.kleer_kind}"
    written = await _step(KleerActivities.create, KleerWrite(
        portal_id=ex.portal_id, kind=spec.kleer_kind, payload=record.payload(),
        foreign_id=getattr(record, "foreign_id", None),
    ), ex.policy, failure=f"{what} not created: ")
    kleer_id = str(written.id)
    await _hubspot_step(HubSpotActivities.write_back, WriteBack(
        portal_id=ex.portal_id, hubspot_type=spec.hubspot_type, object_id=ex.object_id,
        properties={spec.id_property: kleer_id},
    ), ex.policy, kleer_id=kleer_id,
        failure=f"{what} {kleer_id} was created, but writing {spec.id_property} back failed: ")
    return written


async def _update(spec: ActionSpec, ex: ActionExecution, record: KleerModel,
                  existing: str) -> KleerWritten:
    if not existing.isdigit():
        raise FinalFailure(f'{spec.id_property} "{existing}" is not a Kleer id (a number)')
    return await _step(KleerActivities.update, KleerWrite(
        portal_id=ex.portal_id, kind=spec.kleer_kind, payload=record.payload(),
        record_id=int(existing),
    ), ex.policy, failure=f"Kleer {spec.kleer_kind} {existing} not updated: ", kleer_id=existing)


async def _sync_back(spec: ActionSpec, ex: ActionExecution, ctx: ActionContext,
                     written: KleerWritten) -> None:
    """Mirror the Kleer record as the HubSpot invoice/subscription, then its line items."""
    assert spec.sync is not None
    kleer_id = str(written.id)
    associations = [("deals", ctx.record.id)]
    if ctx.company is not None:
        associations.append(("companies", ctx.company.id))
    failure = f"Kleer {spec.kleer_kind} {kleer_id} was saved, but syncing it to HubSpot failed: "
    mirror_id = await _hubspot_step(HubSpotActivities.sync_mirror, SyncMirror(
        portal_id=ex.portal_id, hubspot_type=spec.sync.hubspot_type, kleer_id=kleer_id,
        properties=spec.sync.properties(written.record), associations=associations,
        expect_new=spec.operation == "create",
    ), ex.policy, failure=failure, kleer_id=kleer_id)
    if line_items := spec.sync.line_items(written.record):
        await _hubspot_step(HubSpotActivities.sync_line_items, SyncLineItems(
            portal_id=ex.portal_id, hubspot_type=spec.sync.hubspot_type, mirror_id=mirror_id,
            line_items=line_items), ex.policy, failure=failure, kleer_id=kleer_id)
