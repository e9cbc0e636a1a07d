"""Crashes: a worker process killed with SIGKILL mid-run, and the Temporal dev server restarted
on its database file while executions are in flight. Nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from local.stack import DEMO_CLIENT_SECRET, DEMO_PORTAL, LocalStack
from settings import Settings, StepPolicy
from simulators.driver import HubSpotDriver
from workflows.models import workflow_id
from workflows.runs import outcome

PORTAL = DEMO_PORTAL


@pytest.fixture(scope="module")
async def crash_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalStack]:
    state = tmp_path_factory.mktemp("crash")
    settings = Settings(
        task_queue="kleer-hubspot-crash-tests", http_timeout_s=2, create_settle_s=1,
        payload_key="crash-test-key",
        step_policy=StepPolicy(start_to_close_s=4, initial_retry_s=0.2, max_retry_s=1,
                               give_up_after_s=180),
    )
    async with LocalStack(settings=settings, run_worker=False, db_file=state / "temporal.db",
                          log_dir=state) as stack:
        yield stack


class WorkerProcess:
    """`python -m worker` in its own process, as an operator would run it."""

    def __init__(self, stack: LocalStack, log: Path) -> None:
        self.proc = stack.spawn_worker(log)

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no cleanup, in-flight activities are simply lost
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


async def _wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.1)


def _clients_for(stack: LocalStack, companies: list[str]) -> dict[str, list[dict]]:
    by_company: dict[str, list[dict]] = {c: [] for c in companies}
    for client in stack.kleer.records(1, "client"):
        company = client.get("foreign-id", "").split(":")[3:4]
        if company and company[0] in by_company:
            by_company[company[0]].append(client)
    return by_company


async def _fire(stack: LocalStack, driver: HubSpotDriver, companies: list[str]) -> list[str]:
    deliveries = await asyncio.gather(*(driver.execute(
        PORTAL, "COMPANY", int(c), {"name": f"Crash {c}"},
        action_url=stack.action_url("create-client")) for c in companies))
    assert all(d.status_code == 200 for d in deliveries)
    return [d.callback_id for d in deliveries]


async def _assert_each_once(stack: LocalStack, driver: HubSpotDriver, companies: list[str],
                            callbacks: list[str]) -> None:
    outs = [await driver.wait_for_completion(cb, timeout_s=120) for cb in callbacks]
    assert [o["result"] for o in outs] == ["created"] * len(companies), outs
    clients = _clients_for(stack, companies)
    for company, out in zip(companies, outs, strict=True):
        assert [str(c["id"]) for c in clients[company]] == [out["kleer_id"]], clients[company]
        record = stack.hubspot.get_object(PORTAL, "companies", company)
        assert record["properties"]["kleer_id"] == out["kleer_id"]
    for cb in callbacks:
        assert stack.hubspot.callbacks()[cb]["completions"] == 1
    # The write's last step completes the callback; the run closes (and logs its result) after
    # it: wait for that too before the test stops the worker.
    for company, cb in zip(companies, callbacks, strict=True):
        run = stack.client.get_workflow_handle(workflow_id("create-client", "COMPANY", company, cb))
        assert (await asyncio.wait_for(outcome(run), 60)).result == "created"


async def test_worker_killed_between_kleer_create_and_write_back(crash_stack, tmp_path):
    stack = crash_stack
    companies = [stack.hubspot.create_object(PORTAL, "companies", {"name": f"K{i}"})
                 for i in range(4)]
    # Write-backs hang, so the worker is certainly between "created in Kleer" and "written back".
    stack.hubspot.faults.add(method="PATCH", path_contains="/crm/v3/objects/companies/",
                             mode="latency", latency_ms=3000, count=len(companies))
    worker = WorkerProcess(stack, tmp_path / "worker1.log")
    try:
        async with HubSpotDriver(stack.action_url("create-client"), DEMO_CLIENT_SECRET,
                                 stack.hubspot_url) as driver:
            callbacks = await _fire(stack, driver, companies)
            await _wait_until(lambda: all(_clients_for(stack, companies).values()), 60,
                              "Kleer clients were not created")
            worker.kill()
            # Proof that the kill landed in the window: created in Kleer, not yet written back.
            written = [c for c in companies
                       if stack.hubspot.get_object(PORTAL, "companies", c)["properties"].get("kleer_id")]
            assert written == []
            worker = WorkerProcess(stack, tmp_path / "worker2.log")
            await _assert_each_once(stack, driver, companies, callbacks)
    finally:
        worker.stop()
        stack.hubspot.faults.clear()
    logs = "".join(p.read_text() for p in tmp_path.glob("worker*.log"))
    assert "created" in logs  # the workers logged their runs...
    for name, value in stack.worker_env().items():
        if name.endswith(("_TOKEN", "_API_KEY", "_SECRET", "ENCRYPTION_KEY")):
            assert value not in logs, f"{name} appears in a worker log"  # ...and no secret


async def test_temporal_restart_with_executions_in_flight(crash_stack, tmp_path):
    stack = crash_stack
    assert stack.temporal is not None and stack.temporal.db_file is not None
    companies = [stack.hubspot.create_object(PORTAL, "companies", {"name": f"R{i}"})
                 for i in range(5)]
    stack.kleer.faults.add(method="PUT", path_contains="/client", mode="latency", latency_ms=1500,
                           count=len(companies))
    worker = WorkerProcess(stack, tmp_path / "worker.log")
    try:
        async with HubSpotDriver(stack.action_url("create-client"), DEMO_CLIENT_SECRET,
                                 stack.hubspot_url) as driver:
            callbacks = await _fire(stack, driver, companies)
            await asyncio.to_thread(stack.temporal.stop)
            await asyncio.sleep(1)
            await asyncio.to_thread(stack.temporal.start)
            await _assert_each_once(stack, driver, companies, callbacks)
    finally:
        worker.stop()
        stack.kleer.faults.clear()
