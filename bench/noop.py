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
from temporalio.worker import Worker

NOOP_TASK_QUEUE = "kleer-bench-noop"


@dataclass
class NoopJob:
    key: str
    activities: int


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


@workflow.defn(name="BenchNoop")
class NoopWorkflow:
    @workflow.run
    async def run(self, job: NoopJob) -> int:
        for index in range(job.activities):
            await workflow.execute_activity_method(
                NoopActivities.step, NoopStep(job.key, index == job.activities - 1),
                start_to_close_timeout=timedelta(seconds=30))
        return job.activities


@dataclass
class NoopResult:
    workflows: int
    activities_per_workflow: int
    completed: int
    wall_s: float | None  # first start -> last workflow's last activity
    executions_per_s: float | None
    timed_out: bool


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
                            timeout_s: float) -> NoopResult:
    """Start `workflows` no-op workflows (bounded concurrency) and time until all have finished."""
    acts = NoopActivities()
    run = uuid.uuid4().hex[:8]
    jobs = [NoopJob(f"bench-noop-{run}-{i}", max(1, activities)) for i in range(workflows)]
    started: dict[str, float] = {}
    worker = Worker(client, task_queue=NOOP_TASK_QUEUE, workflows=[NoopWorkflow],
                    activities=[acts.step])
    deadline = time.monotonic() + timeout_s
    async with worker:
        try:
            await asyncio.wait_for(_start_all(client, jobs, concurrency, started), timeout_s)
            done = await _wait_finished(acts, workflows, deadline - time.monotonic())
        except TimeoutError:
            done = False
    wall = max(acts.finished.values()) - min(started.values()) if acts.finished else None
    rate = len(acts.finished) / wall if wall else None
    return NoopResult(workflows, max(1, activities), len(acts.finished), wall, rate, not done)
