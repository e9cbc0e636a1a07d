"""Extra `python -m worker` processes joining the bench's stack, and waiting until they poll.

Everything else of the embedded stack (API, simulators, in-process worker, driver) shares one
Python process and its GIL; extra worker processes show how far that, rather than Temporal or the
rate limit, is what bounds the run.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

REPO_ROOT = Path(__file__).resolve().parents[1]


class WorkerProcesses:
    """Start K worker subprocesses; `stop()` terminates exactly those (then kills stragglers)."""

    def __init__(self, count: int, env: dict[str, str], log_dir: Path) -> None:
        self.count, self.env, self.log_dir = count, env, log_dir
        self.procs: list[subprocess.Popen] = []

    def start(self) -> WorkerProcesses:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for index in range(self.count):
            with open(self.log_dir / f"worker-{index}.log", "ab") as log:  # the child keeps a dup
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "worker"], cwd=REPO_ROOT, env={**os.environ, **self.env},
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        return self

    def check_alive(self) -> None:
        dead = [p for p in self.procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"{len(dead)} worker process(es) exited (code {dead[0].returncode}); "
                               f"see {self.log_dir}")

    def stop(self, timeout_s: float = 10) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.procs = []


async def _poller_identities(client: Client, task_queue: str) -> set[str]:
    request = DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
    response = await client.workflow_service.describe_task_queue(request)
    return {poller.identity for poller in response.pollers}


async def wait_for_pollers(client: Client, task_queue: str, expected: int, timeout_s: float,
                           workers: WorkerProcesses | None = None) -> int:
    """Block until `expected` distinct workers poll the queue, so the burst starts at full strength."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = len(await _poller_identities(client, task_queue))
        if seen >= expected:
            return seen
        if workers is not None:
            workers.check_alive()
        if time.monotonic() >= deadline:
            raise TimeoutError(f"only {seen} of {expected} workers poll {task_queue} "
                               f"after {timeout_s:.0f} s")
        await asyncio.sleep(0.25)
