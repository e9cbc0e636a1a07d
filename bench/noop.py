"""The Temporal no-op ceiling: workflows that run K activities doing nothing.

Same number of workflows and activities per workflow as the real burst, started straight through
the Temporal client on their own task queue with a worker in this process. What it can do per
second is what Temporal (dev server + Python SDK on this machine) allows at best, so our
executions/s divided by it is the share of the ceiling our code reaches.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker, WorkflowRunner

from workflows.runner import workflow_runner

NOOP_TASK_QUEUE = "kleer-bench-noop"


@dataclass
class NoopJob:
    key: str
    activities: int
    child_activities: int = 0  # run in a child workflow before the last activity (0 = no child)
    lease_activities: int = 0  # run between two local activities, as under a record lease


@dataclass
class NoopStep:
    key: str
    last: bool


class NoopActivities:
    """Records when each workflow's last activity ran: the analogue of our callback completion."""

    def __init__(self) -> None:
        self.finished: dict[str, float] = {}

    @activity.defn(name="BenchNoopStep")
    async def step(self, step: NoopStep) -> None:
        if step.last:
            self.finished[step.key] = time.time()

    @activity.defn(name="BenchNoopLocal")
    async def local(self, key: str) -> None:
        """Stands for the record lease's take and release (activities/leases.py)."""


async def _steps(key: str, count: int, last: bool) -> None:
    for index in range(count):
        await workflow.execute_activity_method(
            NoopActivities.step, NoopStep(key, last and index == count - 1),
            start_to_close_timeout=timedelta(seconds=30))


@workflow.defn(name="BenchNoopChild")
class NoopChildWorkflow:
    @workflow.run
    async def run(self, job: NoopJob) -> int:
        await _steps(job.key, job.child_activities, last=False)
        return job.child_activities


@workflow.defn(name="BenchNoop")
class NoopWorkflow:
    """Like an action run: its activities, with the middle ones in a child workflow (as
    workflows/record.py did the per-record writes before `record-lease`) when child_activities
    > 0, or between two local activities (the record lease's take and release) when
    lease_activities > 0."""

    @workflow.run
    async def run(self, job: NoopJob) -> int:
        own = job.activities - job.child_activities - job.lease_activities
        await _steps(job.key, own - 1, last=False)
        if job.child_activities:
            await workflow.execute_child_workflow(NoopChildWorkflow.run, job,
                                                  id=f"{job.key}-child")
        if job.lease_activities:
            local = timedelta(seconds=10)
            await workflow.execute_local_activity_method(NoopActivities.local, job.key,
                                                         start_to_close_timeout=local)
            await _steps(job.key, job.lease_activities, last=False)
            await workflow.execute_local_activity_method(NoopActivities.local, job.key,
                                                         start_to_close_timeout=local)
        await _steps(job.key, 1, last=True)
        return job.activities


@dataclass
class NoopResult:
    workflows: int
    activities_per_workflow: int
    child_activities: int
    completed: int
    wall_s: float | None  # first start -> last workflow's last activity
    executions_per_s: float | None
    timed_out: bool
    lease_activities: int = 0


async def _start_all(client: Client, jobs: list[NoopJob], concurrency: int,
                     started: dict[str, float]) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def start(job: NoopJob) -> None:
        async with gate:
            started[job.key] = time.time()
            await client.start_workflow(NoopWorkflow.run, job, id=job.key,
                                        task_queue=NOOP_TASK_QUEUE)

    await asyncio.gather(*(start(job) for job in jobs))


async def _wait_finished(acts: NoopActivities, total: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while len(acts.finished) < total:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def run_noop_baseline(client: Client, workflows: int, activities: int, concurrency: int,
                            timeout_s: float, child_activities: int = 0,
                            lease_activities: int = 0, runner: WorkflowRunner | None = None
                            ) -> NoopResult:
    """Start `workflows` no-op workflows (bounded concurrency) and time until all have finished.
    `runner`: the workflow runner; by default the one our worker uses (workflows/runner.py)."""
    acts = NoopActivities()
    run = uuid.uuid4().hex[:8]
    activities = max(1 + child_activities + lease_activities, activities)
    jobs = [NoopJob(f"bench-noop-{run}-{i}", activities, child_activities, lease_activities)
            for i in range(workflows)]
    started: dict[str, float] = {}
    worker = Worker(client, task_queue=NOOP_TASK_QUEUE, workflows=[NoopWorkflow, NoopChildWorkflow],
                    activities=[acts.step, acts.local],
                    workflow_runner=runner or workflow_runner(client.data_converter))
    deadline = time.monotonic() + timeout_s
    async with worker:
        try:
            await asyncio.wait_for(_start_all(client, jobs, concurrency, started), timeout_s)
            done = await _wait_finished(acts, workflows, deadline - time.monotonic())
        except TimeoutError:
            done = False
    wall = max(acts.finished.values()) - min(started.values()) if acts.finished else None
    rate = len(acts.finished) / wall if wall else None
    return NoopResult(workflows, activities, child_activities, len(acts.finished), wall, rate,
                      not done, lease_activities)
