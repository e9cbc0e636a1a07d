"""Temporal worker: runs the seven action workflows and their activities.

Start as many processes as you like (`kleer-hubspot worker`); they share two task queues:
- `<TEMPORAL_TASK_QUEUE>`: the workflows and the Kleer activities;
- `<TEMPORAL_TASK_QUEUE>-hubspot`: the HubSpot activities of every portal, each portal under its
  own fairness key, so one portal's burst never queues ahead of another portal's calls.
A process started with WORKER_HUBSPOT_CALLS=false polls only the first: HubSpot batches gather
within a process, so a few processes making a portal's HubSpot calls fill them best.
Portals installed while a worker runs need nothing: the queues are not per portal. HubSpot and
Kleer calls are paced under each portal's (each API token's) limit by a limiter all processes
share (pacing/): the database's when one is configured.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import signal
import socket
import sys
import time

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.hubspot import HubSpotActivities
from activities.kleer import KleerActivities
from activities.leases import LeaseActivities
from pacing import LocalLimiter, Pacer
from portals.directory import PortalDirectory
from portals.services import PortalServices, open_services
from settings import ConfigError, Settings, check_role, load_settings
from storage.db import safe_url
from sync import schedules
from sync.activities import SyncActivities
from telemetry import MetricsBindError, setup_logging
from temporal_client import TemporalUnavailable, connect_with_retry, run
from workflows import ALL_WORKFLOWS
from workflows.models import hubspot_task_queue
from workflows.runner import workflow_runner

log = logging.getLogger(__name__)

LEASES_MARK = " leases="
SINCE = re.compile(r" since=(\d+(?:\.\d+)?)$")  # when the worker started, in its identity
RECENT_POLLER_S = 120  # a running worker polls again at least every minute (long polls)
LEASE_STORE_RECHECK_S = 30.0  # how soon two workers started at one moment find each other


def lease_store(settings: Settings) -> str:
    """Which database holds this worker's record leases ("none": child workflows instead), as a
    digest: every worker of a task queue must agree on it (docs/guarantees.md §2)."""
    if not settings.database_url:
        return "none"
    return hashlib.sha256(safe_url(settings.database_url).encode()).hexdigest()[:12]


def worker_identity(settings: Settings, started: float) -> str:
    """The SDK's default (pid@host), plus when this worker started and its lease store, for
    `check_one_lease_store`."""
    return (f"{os.getpid()}@{socket.gethostname()} since={started:.3f}{LEASES_MARK}"
            f"{lease_store(settings)}")


async def check_one_lease_store(client: Client, settings: Settings, started: float) -> None:
    """Refuse to run beside a running worker of the same task queue whose record leases live
    in another database, or in none: executions on the two would each think they write a record
    alone, and two executions for one record could both create it. Of two such workers the one
    that started later gives way (`started`: when this one did); one that started earlier is
    left to run, and finds this one wrong on its own check."""
    response = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=settings.task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
    mine, now = lease_store(settings), time.time()
    for poller in response.pollers:
        head, marked, theirs = poller.identity.rpartition(LEASES_MARK)
        if not marked or theirs == mine:
            continue  # the same store, or a worker from before the mark
        if now - poller.last_access_time.ToSeconds() > RECENT_POLLER_S:
            continue  # gone (the server lists pollers for a while after they stop)
        if (since := SINCE.search(head)) and float(since.group(1)) > started:
            continue  # started after this one: that one gives way
        ours = f"DATABASE_URL {safe_url(settings.database_url)}" if settings.database_url \
            else "no DATABASE_URL"
        raise ConfigError(
            f"worker {poller.identity!r} polls task queue {settings.task_queue!r} with another "
            f"record-lease store than this one ({ours}); every worker of a task queue must have "
            "the same DATABASE_URL, or all none (README \"Scaling out\"): stop it or fix this "
            "worker's environment")


class WorkerGroup:
    """The workflow/Kleer worker and the HubSpot worker, with what their activities hold."""

    def __init__(self, workers: list[Worker], holders: list, started: float) -> None:
        self.workers, self._holders, self.started = workers, holders, started
        self._jobs: list = []
        self._tasks: list[asyncio.Task] = []
        self.failure: Exception | None = None  # why `stop` ended the run, raised by `run`
        self._stopping: asyncio.Task | None = None

    def background(self, job) -> None:  # a coroutine that runs while the workers run
        self._jobs.append(job)

    async def run(self) -> None:
        self._tasks = [asyncio.create_task(job) for job in self._jobs]
        try:
            await asyncio.gather(*(w.run() for w in self.workers))
        finally:
            for task in self._tasks:
                task.cancel()
        if self._stopping is not None:
            await self._stopping  # not cancelled with the jobs: the shutdown runs to its end
        if self.failure is not None:
            raise self.failure

    def stop(self, failure: Exception) -> None:
        """Stop polling (running tasks finish, as on SIGTERM); `run` then raises `failure`."""
        self.failure = failure
        self._stopping = asyncio.create_task(self._shutdown_workers())

    async def _shutdown_workers(self) -> None:
        await asyncio.gather(*(w.shutdown() for w in self.workers), return_exceptions=True)

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*(w.shutdown() for w in self.workers), return_exceptions=True)

    async def aclose(self) -> None:
        for holder in self._holders:
            await holder.aclose()


def build_worker(client: Client, settings: Settings, services: PortalServices | None = None,
                 started: float | None = None) -> WorkerGroup:
    """`services`: the process's database, OAuth and pacing (portals/services.py); without them,
    portals come from the environment and calls are paced in this process only. `started`: when
    this worker started (in its identity: of two workers with other lease stores the later
    one gives way); now by default."""
    services = services or PortalServices(PortalDirectory(settings), Pacer(LocalLimiter()))
    started = time.time() if started is None else started
    hubspot = HubSpotActivities(settings, services.directory, services.pacer)
    kleer = KleerActivities(settings, services.directory, services.pacer)
    sync = SyncActivities(settings, services)
    leases = LeaseActivities(services.store)  # local activities of the action runs
    workers = [Worker(
        client, task_queue=settings.task_queue, workflows=ALL_WORKFLOWS,
        workflow_runner=workflow_runner(client.data_converter),
        identity=worker_identity(settings, started),
        activities=[kleer.create, kleer.update, kleer.find_products, sync.sync_page,
                    leases.take, leases.release],
        max_concurrent_activities=settings.max_concurrent_activities,
        # A bulk enrollment keeps thousands of runs open at once; evicting them from the cache
        # means replaying their histories again and again (CPU, not progress).
        max_cached_workflows=settings.max_cached_workflows,
    )]
    if settings.worker_hubspot_calls:  # WORKER_HUBSPOT_CALLS=false: left to other processes
        workers.append(Worker(
            client, task_queue=hubspot_task_queue(settings.task_queue),
            identity=worker_identity(settings, started),
            activities=[hubspot.read_record, hubspot.read_company, hubspot.read_line_items,
                        hubspot.write_back, hubspot.sync_mirror, hubspot.sync_line_items,
                        hubspot.sync_mirror_and_line_items, hubspot.write_back_and_complete,
                        hubspot.sync_mirror_and_complete, hubspot.complete],
            # Mostly waiting: for a batch to fill or for the portal's turn under its rate limit.
            max_concurrent_activities=settings.hubspot_max_concurrent_activities,
        ))
    group = WorkerGroup(workers, [hubspot, kleer, sync], started)
    if services.store is not None:  # the sync keeps its state in the database
        group.background(reconcile_schedules(client, settings, services))
    return group


async def reconcile_schedules(client: Client, settings: Settings, services: PortalServices) -> None:
    """Every portal served gets its outbound-sync schedule (sync/schedules.py), now and every
    SYNC_RECONCILE seconds: portals installed later are picked up without a restart."""
    while True:
        try:
            changed = {p: o for p, o in (await schedules.reconcile(client, settings, services)).items()
                       if o != "unchanged"}
            if changed:
                log.info("outbound sync schedules: %s", changed)
        except Exception:  # the database or Temporal briefly away: the next round tries again
            log.exception("reconciling outbound sync schedules failed")
        await asyncio.sleep(settings.sync_reconcile_s)


async def watch_lease_store(client: Client, settings: Settings, group: WorkerGroup,
                            every_s: float = LEASE_STORE_RECHECK_S) -> None:
    """Check the other workers' lease store again while this one runs: two workers started at
    one moment both pass the check at start (neither polls yet). The later one then stops."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await check_one_lease_store(client, settings, group.started)
        except ConfigError as exc:
            log.error("stopping: %s", exc.paragraph())
            group.stop(exc)
            return
        except Exception:  # Temporal briefly away: the next round asks again
            log.warning("could not check the other workers' record-lease store", exc_info=True)


async def run_worker(settings: Settings) -> None:
    services = await open_services(settings)
    try:
        client = await connect_with_retry(settings)
        started = time.time()
        await check_one_lease_store(client, settings, started)
        group = build_worker(client, settings, services, started)
        group.background(watch_lease_store(client, settings, group))
        log.info("worker on %s, task queue %s%s, %d portals from the environment%s",
                 settings.temporal_address, settings.task_queue,
                 "" if settings.worker_hubspot_calls else " (no HubSpot calls: "
                 "WORKER_HUBSPOT_CALLS=false)", len(settings.portals),
                 ", installed portals from the database" if services.store else "")
        try:
            await group.run()
        finally:
            await group.aclose()
    finally:
        await services.aclose()


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
    except ConfigError as exc:  # found once Temporal answered (check_one_lease_store, at start
        # or later by watch_lease_store)
        print(f"worker: {exc.paragraph()}", file=sys.stderr)
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
