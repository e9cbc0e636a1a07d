"""One run of the outbound sync for one portal: clients, then agreements, then invoices, a page
at a time; continue-as-new keeps the history small on large portals.

Started by the portal's Temporal Schedule (sync/schedules.py) with overlap SKIP, so one run per
portal at a time; "run now" triggers the schedule.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from sync.activities import SyncActivities
    from sync.models import KINDS, PageDone, SyncPage, SyncRequest, SyncSummary

PAGE_SIZE = 500
HEARTBEAT_TIMEOUT = timedelta(seconds=20)
PAGES_PER_RUN = 40  # then continue as new: the history holds at most this many activities


@workflow.defn(name="KleerOutboundSync")
class OutboundSync:
    def __init__(self) -> None:
        self._summary = SyncSummary()

    @workflow.query
    def progress(self) -> SyncSummary:
        return self._summary

    @workflow.run
    async def run(self, req: SyncRequest) -> SyncSummary:
        self._summary = req.summary
        pages = 0
        for kind in KINDS[KINDS.index(req.kind):]:
            offset = req.offset if kind == req.kind else 0
            while True:
                if pages >= PAGES_PER_RUN:
                    workflow.continue_as_new(SyncRequest(portal_id=req.portal_id, kind=kind,
                                                         offset=offset, summary=self._summary))
                done: PageDone = await workflow.execute_activity_method(
                    SyncActivities.sync_page,
                    SyncPage(portal_id=req.portal_id, kind=kind, offset=offset, size=PAGE_SIZE,
                             run_id=workflow.info().first_execution_run_id),
                    start_to_close_timeout=timedelta(minutes=30),
                    # A page's activity heartbeats every few seconds: a killed worker's page is
                    # taken over by another worker within this long, not after 30 minutes.
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2),
                                             maximum_interval=timedelta(minutes=2),
                                             maximum_attempts=20),
                )
                pages += 1
                self._summary = self._summary.add(done.summary)
                workflow.set_current_details(self._summary.line())
                if done.done:
                    break
                offset = done.next_offset
        workflow.logger.info("outbound sync of portal %s: %s", req.portal_id, self._summary.line())
        return self._summary
