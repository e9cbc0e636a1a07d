"""The per-record write: every write to one Kleer record, one execution at a time.

Two executions can work on the same HubSpot record at once (a company enrolled in both client
actions, a deal in two workflows with Create Invoice) and on any workers. Only one of them writes
the record at a time; the next one then finds what the first one made by its marker instead of
creating a twin. Serialised with it: the id written back and the HubSpot mirror with its line
items, so two syncs of one record never interleave. Two ways, chosen by the action's run
(workflows/common.py `_write_record`):

- since `record-lease`, with a database: the run writes while it holds the record's lease, a row
  all workers share (activities/leases.py). No workflow of its own, which is what made the
  Temporal side of a bulk enrollment a third slower (bench/README.md).
- before that, or on a worker without a database: a child workflow, KleerRecordWrite below, whose
  id is the record's (`record_workflow_id`: portal, Kleer kind, HubSpot record); Temporal runs one
  workflow per id at a time.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from actions import ACTIONS
    from actions.base import ActionSpec
    from actions.fields import InputError
    from activities.errors import WRITE_BACK
    from activities.hubspot import HubSpotActivities
    from activities.kleer import KleerActivities
    from activities.models import (
        Completion,
        KleerWrite,
        KleerWritten,
        SyncLineItems,
        SyncMirror,
        SyncMirrorAndComplete,
        SyncMirrorWithLineItems,
        WriteBack,
        WriteBackAndComplete,
    )
    from workflows.models import ActionResult, RecordDone, RecordWork
    from workflows.steps import FinalFailure, hubspot_step, step


@workflow.defn(name="KleerRecordWrite")
class KleerRecordWrite:
    @workflow.run
    async def run(self, work: RecordWork) -> RecordDone:
        return await write_record(work)


async def write_record(work: RecordWork) -> RecordDone:
    """The write itself: in this child workflow, or in the action's own run while it holds the
    record's lease (workflows/common.py). With `work.callback_id`, the write's last HubSpot step
    also completes the execution's callback (RecordDone.callback says how that went)."""
    spec = ACTIONS[work.action]
    # A create that mirrors and completes writes its id back in the mirror's step (one step fewer).
    with_mirror = (spec.operation == "create" and spec.sync is not None
                   and work.callback_id is not None and workflow.patched("write-back-with-mirror"))
    try:
        write_back: WriteBack | None = None
        if spec.operation == "create":
            written, callback, write_back = await _create(spec, work, last=spec.sync is None,
                                                          defer_write_back=with_mirror)
        else:
            written, callback = await _update(spec, work), ""
        if spec.sync is not None:
            callback = await _sync_back(spec, work, written, write_back)
    except FinalFailure as failure:
        return RecordDone(kleer_id=failure.kleer_id, error_message=failure.message)
    return RecordDone(kleer_id=str(written.id), existed=written.existed, callback=callback)


def _completion(spec: ActionSpec, work: RecordWork, written: KleerWritten) -> Completion | None:
    """The callback's completion once this write has gone through, if the write tells HubSpot."""
    if work.callback_id is None:
        return None
    outcome = ActionResult.succeeded(spec.operation, str(written.id), written.existed)
    return Completion(portal_id=work.portal_id, callback_id=work.callback_id,
                      output_fields=outcome.output_fields())


async def _create(spec: ActionSpec, work: RecordWork, last: bool, defer_write_back: bool
                  ) -> tuple[KleerWritten, str, WriteBack | None]:
    """Create, then write the id back; `last`: nothing follows in HubSpot, so the write-back's
    step also completes the callback when the write carries it. `defer_write_back`: returned
    for the mirror's step to do instead."""
    what = f"Kleer {spec.kleer_kind}"
    written = await step(KleerActivities.create, KleerWrite(
        portal_id=work.portal_id, kind=spec.kleer_kind, payload=work.payload,
        foreign_id=work.foreign_id, lookup_first=work.lookup_first,
    ), work.policy, failure=f"{what} not created: ")
    kleer_id = str(written.id)
    write_back = WriteBack(portal_id=work.portal_id, hubspot_type=spec.hubspot_type,
                           object_id=work.object_id, properties={spec.id_property: kleer_id})
    if defer_write_back:
        return written, "", write_back
    if last and (complete := _completion(spec, work, written)) is not None:
        callback = await hubspot_step(HubSpotActivities.write_back_and_complete,
                                      WriteBackAndComplete(**write_back.model_dump(),
                                                           complete=complete),
                                      work.policy, kleer_id=kleer_id,
                                      failure=_write_back_failure(spec, kleer_id))
        return written, callback, None
    await _write_back(spec, work, write_back)
    return written, "", None


async def _write_back(spec: ActionSpec, work: RecordWork, write_back: WriteBack) -> None:
    kleer_id = write_back.properties[spec.id_property]
    await hubspot_step(HubSpotActivities.write_back, write_back, work.policy, kleer_id=kleer_id,
                       failure=_write_back_failure(spec, kleer_id))


def _write_back_failure(spec: ActionSpec, kleer_id: str) -> str:
    return (f"Kleer {spec.kleer_kind} {kleer_id} was created, but writing {spec.id_property} "
            "back failed: ")


async def _update(spec: ActionSpec, work: RecordWork) -> KleerWritten:
    assert work.record_id is not None
    return await step(KleerActivities.update, KleerWrite(
        portal_id=work.portal_id, kind=spec.kleer_kind, payload=work.payload,
        record_id=work.record_id,
    ), work.policy, failure=f"Kleer {spec.kleer_kind} {work.record_id} not updated: ",
        kleer_id=str(work.record_id))


async def _sync_back(spec: ActionSpec, work: RecordWork, written: KleerWritten,
                     write_back: WriteBack | None = None) -> str:
    """Mirror the Kleer record as the HubSpot invoice/subscription, then its line items; then,
    when the write carries the callback, complete it in the same step (which also writes the id
    back first, when given `write_back`). Returns what the completion answered ("" when this
    step did not complete it)."""
    assert spec.sync is not None
    kleer_id = str(written.id)
    failure = f"Kleer {spec.kleer_kind} {kleer_id} was saved, but syncing it to HubSpot failed: "
    try:
        properties = spec.sync.properties(written.record)
        line_items = spec.sync.line_items(written.record)
    except InputError as exc:  # e.g. an interval HubSpot has no billing frequency for
        if write_back is not None:  # deferred to the mirror's step, which will not run
            await _write_back(spec, work, write_back)
        raise FinalFailure(failure + str(exc), kleer_id) from None
    mirror = SyncMirror(
        portal_id=work.portal_id, hubspot_type=spec.sync.hubspot_type, kleer_id=kleer_id,
        properties=properties, associations=work.associations,
        expect_new=spec.operation == "create" and not written.existed)
    if (complete := _completion(spec, work, written)) is not None:
        synced = await hubspot_step(
            HubSpotActivities.sync_mirror_and_complete,
            SyncMirrorAndComplete(**mirror.model_dump(), line_items=line_items, complete=complete,
                                  write_back=write_back),
            work.policy, failure=failure, kleer_id=kleer_id,
            failures={WRITE_BACK: _write_back_failure(spec, kleer_id)})
        return synced.callback
    if line_items and workflow.patched("mirror-and-line-items-in-one-step"):
        await hubspot_step(HubSpotActivities.sync_mirror_and_line_items, SyncMirrorWithLineItems(
            **mirror.model_dump(), line_items=line_items), work.policy, failure=failure,
            kleer_id=kleer_id)
        return ""
    mirror_id = await hubspot_step(HubSpotActivities.sync_mirror, mirror, work.policy,
                                   failure=failure, kleer_id=kleer_id)
    if line_items:
        await hubspot_step(HubSpotActivities.sync_line_items, SyncLineItems(
            portal_id=work.portal_id, hubspot_type=spec.sync.hubspot_type, mirror_id=mirror_id,
            line_items=line_items), work.policy, failure=failure, kleer_id=kleer_id)
    return ""
