"""The bench's own processes: `python -m worker` processes, the API (`kleer-hubspot api`) and the
bare start endpoint (bench/bare.py), each started with the stack's environment and stopped by
the bench (only the processes it started, by their pid); and the database they share.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from local.temporal_server import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_DSN = "postgresql://root@127.0.0.1:5432/test"
# No outbound sync while a bench measures: its schedule's interval fires on boundaries counted
# from the epoch (15 min: at :00, :15, ...), and a sync's batch reads landed in a burst's call
# counts (the smoke test's batching-off burst saw batch calls with many items). Once in 30 days.
NO_SYNC_INTERVAL_S = 30 * 24 * 3600


def _stop(procs: list[subprocess.Popen], timeout_s: float = 10) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class WorkerProcesses:
    """Start K worker subprocesses; `stop()` terminates exactly those (then kills stragglers)."""

    def __init__(self, count: int, env: dict[str, str], log_dir: Path, name: str = "worker") -> None:
        self.count, self.env, self.log_dir, self.name = count, env, log_dir, name
        self.procs: list[subprocess.Popen] = []

    def start(self) -> WorkerProcesses:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for index in range(self.count):
            with open(self.log_dir / f"{self.name}-{index}.log", "ab") as log:  # the child dups it
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
        _stop(self.procs, timeout_s)
        self.procs = []


class HttpService:
    """An HTTP server in its own process on a free loopback port, ready once /healthz answers."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.args = [a.replace("{port}", str(self.port)) for a in args]
        self.env, self.log = env, log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout_s: float = 60) -> HttpService:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=REPO_ROOT, env={**os.environ, **self.env},
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.args[:4]} exited ({self.proc.returncode}); see {self.log}")
                try:
                    if (await http.get(self.url + "/healthz")).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"{self.args[:4]} not up after {timeout_s:.0f} s; see {self.log}")
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            _stop([self.proc])
            self.proc = None


def api_process(env: dict[str, str], log_dir: Path, name: str = "api") -> HttpService:
    """Our API as an operator runs it: `kleer-hubspot api` (uvicorn, one process)."""
    return HttpService([sys.executable, "-m", "cli", "api", "--host", "127.0.0.1", "--port",
                        "{port}"], env, log_dir / f"{name}.log")


def bare_process(env: dict[str, str], log_dir: Path, name: str = "bare") -> HttpService:
    return HttpService([sys.executable, "-m", "bench.bare", "--port", "{port}"], env,
                       log_dir / f"{name}.log")


async def _poller_identities(client: Client, task_queue: str) -> set[str]:
    request = DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
    response = await client.workflow_service.describe_task_queue(request)
    return {poller.identity for poller in response.pollers}


async def wait_for_pollers(client: Client, task_queue: str, expected: int, timeout_s: float,
                           workers: WorkerProcesses | None = None,
                           alive: set[str] | None = None) -> set[str]:
    """Block until `expected` workers poll the queue that are not in `alive` (the identities of
    workers stopped before: the server lists a poller for a minute after it went away)."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = await _poller_identities(client, task_queue) - (alive or set())
        if len(seen) >= expected:
            return seen
        if workers is not None:
            workers.check_alive()
        if time.monotonic() >= deadline:
            raise TimeoutError(f"only {len(seen)} of {expected} workers poll {task_queue} "
                               f"after {timeout_s:.0f} s")
        await asyncio.sleep(0.25)


@asynccontextmanager
async def bench_database(kind: str, log_dir: Path) -> AsyncIterator[str | None]:
    """The DATABASE_URL every process shares (its limiter above all): a fresh PostgreSQL database
    on 127.0.0.1:5432 (dropped afterwards), a SQLite file, or None ("none": each process paces
    alone, which only holds with one worker process)."""
    if kind == "none":
        yield None
        return
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{log_dir / 'kleer-bench.db'}"
        return
    import asyncpg

    name = f"kleer_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://root@127.0.0.1:5432/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
