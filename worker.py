"""Temporal worker: runs the seven action workflows and their activities.

Start as many processes as you like (`kleer-hubspot worker`); they share the task queues:
- `<TEMPORAL_TASK_QUEUE>`: the workflows and the Kleer activities;
- `<TEMPORAL_TASK_QUEUE>-hubspot-<portalId>`, one per portal: the HubSpot activities, with a
  Temporal task-queue rate limit derived from the portal's HubSpot limit. The server enforces it
  across all workers, so N workers together stay under the portal's limit, and one portal's burst
  never queues ahead of another portal's calls;
- `<TEMPORAL_TASK_QUEUE>-hubspot-<portalId>-callbacks`: callback completions, batched per process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from temporalio.client import Client
from temporalio.worker import Worker

from activities.hubspot import HubSpotActivities
from activities.kleer import KleerActivities
from settings import ConfigError, Settings, check_role, load_settings
from telemetry import MetricsBindError, setup_logging
from temporal_client import TemporalUnavailable, connect_with_retry, run
from workflows import ALL_WORKFLOWS
from workflows.models import callbacks_task_queue, hubspot_task_queue

log = logging.getLogger(__name__)


class WorkerGroup:
    """The main worker plus one rate-limited HubSpot worker per configured portal."""

    def __init__(self, workers: list[Worker], holders: list) -> None:
        self.workers, self._holders = workers, holders

    async def run(self) -> None:
        await asyncio.gather(*(w.run() for w in self.workers))

    async def shutdown(self) -> None:
        await asyncio.gather(*(w.shutdown() for w in self.workers), return_exceptions=True)

    async def aclose(self) -> None:
        for holder in self._holders:
            await holder.aclose()


def build_worker(client: Client, settings: Settings) -> WorkerGroup:
    hubspot, kleer = HubSpotActivities(settings), KleerActivities(settings)
    workers = [Worker(
        client, task_queue=settings.task_queue, workflows=ALL_WORKFLOWS,
        activities=[kleer.create, kleer.update, kleer.find_products],
        max_concurrent_activities=settings.max_concurrent_activities,
        # A bulk enrollment keeps thousands of runs open at once; evicting them from the cache
        # means replaying their histories again and again (CPU, not progress).
        max_cached_workflows=settings.max_cached_workflows,
    )]
    hubspot_activities = [hubspot.read_record, hubspot.read_company, hubspot.read_line_items,
                          hubspot.write_back, hubspot.sync_mirror, hubspot.sync_line_items]
    for portal_id in sorted(settings.portals):
        rate, flush_s = settings.hubspot_pacing(portal_id)
        queue = hubspot_task_queue(settings.task_queue, portal_id)
        workers.append(Worker(
            client, task_queue=queue, activities=hubspot_activities,  # type: ignore[arg-type]
            max_task_queue_activities_per_second=rate,
            # Also paced here: the server's limiter lets a burst through when a queue wakes up.
            max_activities_per_second=rate,
            max_concurrent_activities=settings.max_concurrent_activities,
        ))
        workers.append(Worker(
            client, task_queue=callbacks_task_queue(settings.task_queue, portal_id),
            activities=[hubspot.complete],
            max_concurrent_activities=settings.max_concurrent_activities,
        ))
        log.info("portal %s: HubSpot calls paced at %.1f/s for all workers, callbacks batched "
                 "every %.1f s", portal_id, rate, flush_s)
    return WorkerGroup(workers, [hubspot, kleer])


async def run_worker(settings: Settings) -> None:
    client = await connect_with_retry(settings)
    group = build_worker(client, settings)
    log.info("worker on %s, task queue %s, %d portals", settings.temporal_address,
             settings.task_queue, len(settings.portals))
    try:
        await group.run()
    finally:
        await group.aclose()


def main() -> None:
    """`kleer-hubspot worker` / `python -m worker`: configuration checked first (exit status 2
    with one paragraph naming what is wrong), SIGINT/SIGTERM shut the worker down gracefully."""
    try:
        settings = load_settings()
        check_role(settings, "worker")  # every field-mappings file, before any run needs it
    except ConfigError as exc:
        print(f"worker: {exc.paragraph()}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(fmt=settings.log_format)
    try:
        run(run_worker(settings))
    except MetricsBindError as exc:
        print(f"worker: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except TemporalUnavailable as exc:
        print(f"worker: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except SystemExit as exc:
        if exc.code not in (128 + signal.SIGINT, 128 + signal.SIGTERM):
            raise
        log.info("worker stopped (%s)", signal.Signals(int(exc.code) - 128).name)


if __name__ == "__main__":
    main()
