"""Record leases: one execution at a time writes a Kleer record, across all workers.

Run as local activities by the action's workflow around its write (workflows/common.py). A lease
is a row in the database every process shares (storage/, `record_leases`), held by the
execution's workflow id until that run releases it. It has no expiry: a run that stalls keeps its
record (as a running child workflow did before), and a lease whose run has closed without
releasing it (terminated, timed out, reset) is taken over once Temporal says that run is closed.
A worker without a database answers "no-database" and the workflow uses the per-record child
workflow instead (workflows/record.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.errors import translate_errors
from activities.models import LeaseAnswer, LeaseRequest
from storage import Store


class LeaseActivities:
    def __init__(self, store: Store | None) -> None:
        self._store = store

    @activity.defn(name="record.take")
    @translate_errors
    async def take(self, req: LeaseRequest) -> LeaseAnswer:
        if self._store is None:
            return LeaseAnswer(state="no-database")
        lease = await self._store.take_record(req.key, req.holder)
        if lease.holder == req.holder:
            return LeaseAnswer(state="taken", holder=req.holder, lookup_first=not lease.first)
        if not await _closed(lease.holder):
            return LeaseAnswer(state="held", holder=lease.holder)
        if not await _take_over(self._store, req.key, lease.holder, req.holder):
            return LeaseAnswer(state="held", holder=lease.holder)  # released meanwhile: ask again
        # Whatever the closed run wrote, look for it before creating.
        return LeaseAnswer(state="taken", holder=req.holder, lookup_first=True)

    @activity.defn(name="record.release")
    @translate_errors
    async def release(self, req: LeaseRequest) -> None:
        if self._store is not None:
            await self._store.release_record(req.key, req.holder)


async def take_all(store: Store, keys: Sequence[str], holder: str) -> dict[str, str]:
    """For a writer of many records at once (the outbound sync's page, held by its workflow id):
    take each key's lease unless a running execution holds it, taking over those of closed
    runs. The holder of each key afterwards: `holder` where taken. Called from an activity."""
    holders = await store.take_records(keys, holder)
    for gone in {h for h in holders.values() if h != holder}:
        if not await _closed(gone):
            continue
        for key in [k for k, h in holders.items() if h == gone]:
            if await _take_over(store, key, gone, holder):
                holders[key] = holder
    return holders


async def _take_over(store: Store, key: str, gone: str, holder: str) -> bool:
    """Move the lease from `gone`, whose run is known closed; False if it was released first."""
    if not await store.take_over_record(key, gone, holder):
        return False
    activity.logger.warning("%s: took the lease over from %s, whose run closed without "
                            "releasing it", key, gone)
    return True


async def _closed(workflow_id: str) -> bool:
    """Whether the holder's run has closed (or never existed): it will not release the lease."""
    try:
        described = await activity.client().get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return True
        raise
    return described.status != WorkflowExecutionStatus.RUNNING
