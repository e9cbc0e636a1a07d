"""The one shape every action runs: read -> skip? -> prerequisites -> validate -> write (per
record, workflows/record.py) -> complete. Each action's workflow file only names its ActionSpec.

Deterministic: all I/O is in activities; ActionSpec.build() is pure.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from actions.base import ActionContext, ActionSpec
    from actions.fields import InputError
    from actions.rows import product_ids
    from activities.hubspot import HubSpotActivities
    from activities.kleer import KleerActivities
    from activities.leases import LeaseActivities
    from activities.models import (
        Completion,
        FindProducts,
        LeaseAnswer,
        LeaseRequest,
        ReadLineItems,
        ReadObject,
        ReadRecord,
    )
    from codec import PublicText
    from kleer_api.models import KleerModel
    from workflows.models import (
        FAILED_ACTION,
        OBJECT_ID,
        PORTAL_ID,
        RESULT,
        ActionExecution,
        ActionResult,
        RecordDone,
        RecordWork,
        hubspot_task_queue,
        record_workflow_id,
    )
    from workflows.record import KleerRecordWrite, write_record
    from workflows.steps import (
        NEW_RUN,
        FinalFailure,
        hubspot_priority,
        hubspot_step,
        local_step,
        step,
        step_options,
    )

# While another execution writes the same Kleer record, wait this long between tries (doubling).
WAIT_FOR_RECORD = (timedelta(seconds=0.5), timedelta(seconds=30))


async def run_action(spec: ActionSpec, ex: ActionExecution) -> ActionResult:
    _index(ex)
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
    if not result.callback:  # not already completed by the write's last step
        callback = await workflow.execute_activity_method(
            HubSpotActivities.complete,
            Completion(portal_id=ex.portal_id, callback_id=ex.callback_id,
                       output_fields=result.output_fields()),
            task_queue=hubspot_task_queue(workflow.info().task_queue),
            priority=hubspot_priority(ex.portal_id),
            **step_options(ex.policy, callback=True, hubspot=True),
        )
        result = result.model_copy(update={"callback": callback})
    if result.result == "failed":
        # HubSpot has its FAIL_CONTINUE; the run itself ends FAILED so the UI's list and its
        # "Failed" filter show it. The ActionResult rides along as the failure's details.
        raise ApplicationError(result.error_message, result, type=FAILED_ACTION, non_retryable=True)
    return result


def _index(ex: ActionExecution) -> None:
    """Set the run's search attributes (portal, action, object, callback) on its first workflow
    task, in the same task as its first step, when the API left them off the start so that the
    acknowledgement does not wait for the server's indexing. A run that got them at its start
    (earlier API versions, replays) keeps those."""
    if (ex.indexed and workflow.info().typed_search_attributes.get(PORTAL_ID) is None
            and workflow.patched("search-attributes-in-workflow")):
        workflow.upsert_search_attributes([pair.key.value_set(pair.value)
                                           for pair in ex.search_attributes()])


async def _perform(spec: ActionSpec, ex: ActionExecution) -> ActionResult:
    ctx = await _read(spec, ex)
    existing = ctx.record.prop(spec.id_property)
    if spec.skips(ctx.record):
        return ActionResult(state="SUCCESS", result="skipped", kleer_id=existing)
    if problem := spec.prerequisite_error(ctx):
        raise FinalFailure(problem)
    if spec.reads_line_items and (wanted := product_ids(ctx.line_items)):
        ctx.products = await step(KleerActivities.find_products, FindProducts(
            portal_id=ex.portal_id, hubspot_product_ids=wanted), ex.policy)
    try:
        record = spec.build(ctx, ex.input_fields)
    except InputError as exc:
        raise FinalFailure(str(exc)) from None
    if spec.operation == "update" and not (existing or "").isdigit():
        raise FinalFailure(f'{spec.id_property} "{existing}" is not a Kleer id (a number)')

    done = await _write_record(spec, ex, ctx, record, int(existing) if spec.operation == "update"
                               else None)
    if done.error_message:
        raise FinalFailure(done.error_message, done.kleer_id)
    return ActionResult.succeeded(spec.operation, done.kleer_id, done.existed).model_copy(
        update={"callback": done.callback})


async def _read(spec: ActionSpec, ex: ActionExecution) -> ActionContext:
    """The record with its associations and, unless the action will skip, its company and
    line items (each read only when the action needs it), in one step: each step is a round
    trip through Temporal, which bounds a bulk enrollment's pace (bench/)."""
    one_step = workflow.patched("read-related-in-one-step")
    read = await hubspot_step(HubSpotActivities.read_record, ReadRecord(
        portal_id=ex.portal_id, action=spec.key, object_id=ex.object_id, related=one_step),
        ex.policy, priority_key=NEW_RUN)
    ctx = ActionContext(portal_id=ex.portal_id, object_type=spec.object_type, record=read.record,
                        mappings=read.mappings, company=read.company, line_items=read.line_items)
    if one_step or spec.skips(ctx.record):
        return ctx
    if spec.needs_company and (company_id := ctx.record.primary_company_id()):
        ctx.company = await hubspot_step(HubSpotActivities.read_company, ReadObject(
            portal_id=ex.portal_id, object_id=company_id), ex.policy)
    if spec.reads_line_items and (item_ids := ctx.record.associated_ids("line_items")):
        ctx.line_items = await hubspot_step(HubSpotActivities.read_line_items, ReadLineItems(
            portal_id=ex.portal_id, ids=item_ids), ex.policy)
    return ctx


async def _write_record(spec: ActionSpec, ex: ActionExecution, ctx: ActionContext,
                        record: KleerModel, record_id: int | None) -> RecordDone:
    """Write the Kleer record, one execution at a time per record (workflows/record.py): if
    another execution's write to it runs, wait for it; if one ran before, look for what it made
    before creating. Under the record's lease in the database, or (runs started before
    `record-lease`, workers without a database) in the record's own child workflow."""
    associations = [("deals", ctx.record.id)]
    if ctx.company is not None:
        associations.append(("companies", ctx.company.id))
    work = RecordWork(action=spec.key, portal_id=ex.portal_id, object_id=ex.object_id,
                      payload=record.payload(), foreign_id=getattr(record, "foreign_id", None),
                      record_id=record_id, associations=associations, policy=ex.policy)
    if workflow.patched("complete-in-last-write"):
        # The write's last HubSpot step completes the callback once the write went through:
        # one round trip through Temporal fewer per execution (the dev server bounds a burst).
        work = work.model_copy(update={"callback_id": ex.callback_id})
    child_id = record_workflow_id(ex.portal_id, spec.kleer_kind, ex.object_type, ex.object_id)
    if workflow.patched("record-lease"):
        lease = LeaseRequest(key=child_id, holder=workflow.info().workflow_id)
        taken = await _take_lease(lease, ex)
        if taken is not None:
            try:
                return await write_record(work.model_copy(
                    update={"lookup_first": taken.lookup_first}))
            finally:
                await _release_lease(lease, ex)
    attributes = None
    if workflow.info().typed_search_attributes.get(PORTAL_ID) is not None:
        attributes = TypedSearchAttributes([SearchAttributePair(PORTAL_ID, ex.portal_id),
                                            SearchAttributePair(OBJECT_ID, str(ex.object_id))])
    reuse, wait = WorkflowIDReusePolicy.REJECT_DUPLICATE, WAIT_FOR_RECORD[0]
    while True:
        try:
            child = await workflow.start_child_workflow(
                KleerRecordWrite.run, work, id=child_id, id_reuse_policy=reuse,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                # Ids only, so it stays readable in the UI's list (codec.PublicText).
                static_summary=PublicText(f"Kleer {spec.kleer_kind} of {ex.object_type} "
                                          f"{ex.object_id} · portal {ex.portal_id} · for "
                                          f"{ex.workflow_id}"),
                search_attributes=attributes,
            )
            return await child
        except WorkflowAlreadyStartedError:
            if reuse == WorkflowIDReusePolicy.REJECT_DUPLICATE:
                # Another execution wrote (or is writing) this record: look before creating.
                reuse = WorkflowIDReusePolicy.ALLOW_DUPLICATE
                work = work.model_copy(update={"lookup_first": True})
                continue
            await workflow.sleep(wait)
            wait = min(wait * 2, WAIT_FOR_RECORD[1])


async def _take_lease(lease: LeaseRequest, ex: ActionExecution) -> LeaseAnswer | None:
    """Wait until this run holds the record's lease (activities/leases.py); None when the worker
    has no database (the child workflow serialises instead)."""
    wait = WAIT_FOR_RECORD[0]
    while True:
        answer = await local_step(LeaseActivities.take, lease, ex.policy,
                                  failure="could not reserve the Kleer record for this execution: ")
        if answer.state == "no-database":
            return None
        if answer.state == "taken":
            return answer
        workflow.set_current_details(f"waiting: {answer.holder} is writing {lease.key}")
        await workflow.sleep(wait)
        wait = min(wait * 2, WAIT_FOR_RECORD[1])


async def _release_lease(lease: LeaseRequest, ex: ActionExecution) -> None:
    """Best effort: a lease this run fails to release is taken over by the next execution once
    this run has closed."""
    try:
        await local_step(LeaseActivities.release, lease, ex.policy)
    except FinalFailure as failure:
        workflow.logger.warning("record lease %s not released (%s); the next execution takes it "
                                "over once this run has closed", lease.key, failure.message)
