"""The per-record write (workflows/record.py) on a real server with stand-in activities, for
paths the simulators cannot reach: what Kleer answers is chosen here."""

from __future__ import annotations

import uuid

from temporalio import activity
from temporalio.worker import Worker

from activities.models import KleerWrite, KleerWritten, SyncMirrorAndComplete, WriteBack
from tests.conftest import FAST, PORTAL
from workflows.models import RecordDone, RecordWork, hubspot_task_queue
from workflows.record import KleerRecordWrite
from workflows.runner import workflow_runner


async def test_a_mirror_that_cannot_be_built_still_gets_the_id_written_back(stack):
    """Since `write-back-with-mirror` a create's id is written back in the mirror's step. When
    the mirror cannot be built from what Kleer answered (here an agreement found by its marker,
    whose interval someone changed in Kleer to one HubSpot has no billing frequency for), that
    step never runs: the id is written back on its own before the run reports the failure."""
    calls: list[str] = []

    @activity.defn(name="kleer.create")
    async def create(req: KleerWrite) -> KleerWritten:
        calls.append("kleer.create")
        return KleerWritten(id=77, existed=True, record={
            "id": 77, "invoice-interval-months": 2,
            "recurring-rows": [{"description": "Support", "price": 100, "quantity": 1}]})

    @activity.defn(name="hubspot.write_back")
    async def write_back(req: WriteBack) -> None:
        calls.append(f"hubspot.write_back {req.properties}")

    @activity.defn(name="hubspot.sync_mirror_and_complete")
    async def sync_mirror_and_complete(req: SyncMirrorAndComplete) -> None:
        calls.append("hubspot.sync_mirror_and_complete")

    queue = f"record-write-test-{uuid.uuid4().hex[:8]}"
    converter = stack.client.data_converter
    async with Worker(stack.client, task_queue=queue, workflows=[KleerRecordWrite],
                      activities=[create], workflow_runner=workflow_runner(converter)), \
            Worker(stack.client, task_queue=hubspot_task_queue(queue),
                   activities=[write_back, sync_mirror_and_complete]):
        done = await stack.client.execute_workflow(
            KleerRecordWrite.run, RecordWork(
                action="create-agreement", portal_id=PORTAL, object_id=4242, payload={},
                foreign_id="marker", callback_id="cb-record-write", policy=FAST),
            id=f"{queue}-wf", task_queue=queue, result_type=RecordDone)
    assert calls == ["kleer.create", "hubspot.write_back {'kleer_agreement_id': '77'}"]
    assert done.kleer_id == "77" and not done.callback
    assert done.error_message.startswith(
        "Kleer agreement 77 was saved, but syncing it to HubSpot failed: Invoice Interval "
        "(Months) 2 has no HubSpot billing frequency"), done
