"""Bursts on one portal: HubSpot calls are coalesced into batch calls, paced under the portal's
limit by a limiter every worker process shares (the database's), one bad record in a batch fails
only its own execution, and another portal is not held up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from temporalio.api.enums.v1 import EventType

from activities.batching import Coalescer
from activities.hubspot_calls import PortalCalls
from hubspot_api.client import HubSpotClient
from local.stack import (
    DEMO_CLIENT_SECRET,
    DEMO_HUBSPOT_TOKEN,
    DEMO_KLEER_COMPANY,
    DEMO_KLEER_KEY,
    LocalStack,
)
from service_errors import ServiceError
from settings import PortalCredentials, Settings, StepPolicy
from simulators.common import ServerThread
from simulators.driver import HubSpotDriver
from simulators.hubspot import HubSpotState, create_hubspot_app
from tests.conftest import DATABASE_SECRETS_KEY
from workflows.models import workflow_id

BUSY, QUIET = 12345, 888
LIMIT = 20  # per 10 s: paced at 1.8 calls/s for all processes together


@pytest.fixture(scope="module")
async def paced_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalStack]:
    state = tmp_path_factory.mktemp("paced")
    settings = Settings(
        task_queue="kleer-hubspot-pacing", http_timeout_s=3,
        # The limiter all processes share: a database (a SQLite file here).
        database_url=f"sqlite+aiosqlite:///{state / 'kleer.db'}",
        database_secrets_key=DATABASE_SECRETS_KEY,
        step_policy=StepPolicy(start_to_close_s=30, initial_retry_s=0.2, max_retry_s=2),
        portals={
            BUSY: PortalCredentials(BUSY, DEMO_HUBSPOT_TOKEN, DEMO_KLEER_COMPANY, DEMO_KLEER_KEY,
                                    hubspot_rate_limit=LIMIT),
            QUIET: PortalCredentials(QUIET, "quiet-token", 2, "quiet-key"),
        },
    )
    async with LocalStack(settings=settings, hubspot_rate_limit=(LIMIT, 10_000), run_worker=False,
                          log_dir=state) as stack:
        stack.hubspot.add_portal(QUIET, "quiet-token")
        stack.kleer.add_company(2, "quiet-key")
        yield stack


@pytest.fixture
async def two_workers(paced_stack, tmp_path):
    workers = [paced_stack.spawn_worker(tmp_path / f"worker-{n}.log") for n in range(2)]
    yield workers
    for worker in workers:
        worker.terminate()
        worker.wait()


async def _paths(hs: HubSpotState, quiet_s: float = 0.2) -> list[str]:
    """Paths the simulator logged, once nothing new arrived for `quiet_s`: it logs a call after
    answering it, so right after the answer the log may not have it yet."""
    seen = -1
    while len(hs.calls.list()) != seen:
        seen = len(hs.calls.list())
        await asyncio.sleep(quiet_s)
    return [c["path"] for c in hs.calls.list()]


async def _create_clients(stack: LocalStack, portal: int, prefix: str, n: int
                         ) -> tuple[list[str], list, list[dict]]:
    """`n` new companies of `portal` through Create Kleer Client at once: the companies, their
    deliveries and their callbacks' outputs."""
    companies = [stack.hubspot.create_object(portal, "companies", {"name": f"{prefix}{i}"})
                 for i in range(n)]
    async with HubSpotDriver(stack.action_url("create-client"), DEMO_CLIENT_SECRET,
                             stack.hubspot_url) as driver:
        deliveries = [await driver.execute(portal, "COMPANY", int(c), {"name": f"{prefix}{i}"},
                                           action_url=stack.action_url("create-client"))
                      for i, c in enumerate(companies)]
        outs = await asyncio.gather(*(driver.wait_for_completion(
            d.callback_id, timeout_s=120, poll_s=0.2) for d in deliveries))
    return companies, deliveries, list(outs)


async def _run(stack: LocalStack, driver: HubSpotDriver, portal: int, company: str) -> dict:
    delivery = await driver.execute(portal, "COMPANY", int(company), {"name": f"C{company}"},
                                    action_url=stack.action_url("create-client"))
    return await driver.wait_for_completion(delivery.callback_id, timeout_s=120, poll_s=0.1)


async def test_burst_on_two_workers_is_batched_and_paced_under_the_limit(paced_stack, two_workers):
    stack = paced_stack
    stack.hubspot.calls.clear()
    busy = [stack.hubspot.create_object(BUSY, "companies", {"name": f"B{i}"}) for i in range(40)]
    quiet = [stack.hubspot.create_object(QUIET, "companies", {"name": f"Q{i}"}) for i in range(2)]
    done: dict[str, float] = {}
    async with HubSpotDriver(stack.action_url("create-client"), DEMO_CLIENT_SECRET,
                             stack.hubspot_url) as driver:
        async def one(portal: int, company: str) -> dict:
            out = await _run(stack, driver, portal, company)
            done[f"{portal}:{company}"] = time.monotonic()
            return out

        burst = [asyncio.create_task(one(BUSY, c)) for c in busy]
        await asyncio.sleep(1)
        quiet_outs = await asyncio.gather(*(one(QUIET, c) for c in quiet))
        busy_done_by_then = sum(1 for k in done if k.startswith(f"{BUSY}:"))
        busy_outs = await asyncio.gather(*burst)
    assert [o["result"] for o in busy_outs + quiet_outs] == ["created"] * 42
    calls = [c for c in stack.hubspot.calls.list() if c["key"] == BUSY]
    # 40 executions x 3 calls alone would take 120 calls (a minute at this limit): batched they
    # need far fewer, and the quiet portal finished while the busy one was still at it.
    assert len(calls) < 40, len(calls)
    assert any("/batch/" in c["path"] or c["path"].endswith("/callbacks/complete") for c in calls)
    assert busy_done_by_then < len(busy), busy_done_by_then
    assert [c for c in calls if c["status"] == 429] == []
    # Two processes, one budget: never more than the limit in any rolling 10 s window.
    times = sorted(c["ts"] for c in calls)
    assert max(sum(1 for t in times if s <= t < s + 10) for s in times) <= LIMIT


async def test_one_bad_item_in_a_batch_fails_only_its_own_caller():
    """Per-item outcomes of every batch kind, over HTTP against the simulator: the callers'
    items go out in one call (the gate holds the first turn until all have queued)."""
    hs = HubSpotState()
    hs.add_portal(1, "t")
    with ServerThread(create_hubspot_app(hs)) as sim:
        client = HubSpotClient(sim.url, "t")
        everyone_queued = asyncio.Event()
        calls = PortalCalls(client, turn=everyone_queued.wait)
        companies = [hs.create_object(1, "companies", {"name": f"I{i}"}) for i in range(8)]
        gone = companies[5]
        hs.archive_object(1, "companies", gone)

        async def together(*coroutines):
            tasks = [asyncio.create_task(c) for c in coroutines]
            await asyncio.sleep(0.05)
            everyone_queued.set()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            everyone_queued.clear()
            return outcomes

        hs.calls.clear()
        reads = await together(*(calls.read("companies", c, ["name"]) for c in companies))
        assert await _paths(hs) == ["/crm/v3/objects/companies/batch/read"]
        assert isinstance(reads[5], ServiceError) and reads[5].status == 404
        assert [r.properties["name"] for i, r in enumerate(reads) if i != 5] == [
            f"I{i}" for i in range(8) if i != 5]

        hs.calls.clear()
        updates = await together(*(calls.update("companies", c, {"kleer_id": c}) for c in companies))
        assert await _paths(hs) == ["/crm/v3/objects/companies/batch/update"]
        assert isinstance(updates[5], ServiceError) and updates[5].status == 404
        assert [u for i, u in enumerate(updates) if i != 5] == [None] * 7

        hs.calls.clear()
        groups = [[{"properties": {"name": f"L{g}-{n}", "price": "10"}} for n in range(2)]
                  for g in range(6)]
        groups[4][1]["properties"]["price"] = "12,50"  # HubSpot refuses the whole batch (400)
        created = await together(*(calls.create("line_items", g) for g in groups))
        assert isinstance(created[4], ServiceError) and created[4].status == 400
        assert [c for i, c in enumerate(created) if i != 4] == [[]] * 5
        names = {r["properties"]["name"] for r in hs.find_objects(1, "line_items")}
        assert names == {f"L{g}-{n}" for g in range(6) if g != 4 for n in range(2)}
        await client.aclose()


async def test_a_busy_kind_lets_its_batch_gather_and_a_lone_item_goes_at_once():
    """The batch window: an item of a kind that has not sent lately goes at once; a trickle of
    items (a bulk enrollment's steady arrivals) goes out a batch per window, not a call each;
    a full batch does not wait for the window."""
    loop = asyncio.get_running_loop()
    sent: list[tuple[float, list[int]]] = []

    async def send(items: list[int]) -> list[int]:
        sent.append((loop.time(), list(items)))
        return items

    coalescer: Coalescer[int, int] = Coalescer(send, max_batch=10, window_s=0.3)
    started = loop.time()
    assert await coalescer.submit(0) == 0
    assert sent[0][0] - started < 0.05

    trickle = []
    for i in range(1, 21):  # one every 50 ms for a second
        trickle.append(asyncio.create_task(coalescer.submit(i)))
        await asyncio.sleep(0.05)
    assert await asyncio.gather(*trickle) == list(range(1, 21))
    calls = sent[1:]
    assert sorted(i for _, items in calls for i in items) == list(range(1, 21))
    assert len(calls) <= 5, [items for _, items in calls]  # without the window: 20 calls
    assert all(b - a >= 0.29 for (a, _), (b, _) in zip(calls, calls[1:], strict=False))

    sent.clear()
    full_at = loop.time()
    assert await asyncio.gather(*(coalescer.submit(i) for i in range(10))) == list(range(10))
    assert [items for _, items in sent] == [list(range(10))]
    assert sent[0][0] - full_at < 0.05


async def test_hubspot_steps_waiting_for_their_turn_longer_than_the_step_timeout_are_not_retried(
        tmp_path):
    """Without coalescing (HUBSPOT_MAX_BATCH=1) every HubSpot step waits for its own turn, longer
    than the 2 s step timeout here: the steps heartbeat while they wait, so none times out and
    is sent again at the back of the queue (a livelock at 1,000 executions; bench/results)."""
    settings = Settings(
        task_queue="kleer-hubspot-waiting", http_timeout_s=3, hubspot_max_batch=1,
        step_policy=StepPolicy(start_to_close_s=2, initial_retry_s=0.2, max_retry_s=2),
        portals={BUSY: PortalCredentials(BUSY, DEMO_HUBSPOT_TOKEN, DEMO_KLEER_COMPANY,
                                         DEMO_KLEER_KEY, hubspot_rate_limit=LIMIT)},
    )
    async with LocalStack(settings=settings, hubspot_rate_limit=(LIMIT, 10_000), run_worker=False,
                          log_dir=tmp_path) as stack:
        worker = stack.spawn_worker(tmp_path / "worker.log")
        try:
            started = time.monotonic()
            companies, deliveries, outs = await _create_clients(stack, BUSY, "W", 8)
            took = time.monotonic() - started
        finally:
            worker.terminate()
            worker.wait()
        assert [o["result"] for o in outs] == ["created"] * 8
        # 8 executions x 3 HubSpot calls at 1.8 calls/s: the last steps waited far past 2 s.
        assert took > 8, took
        retried = []  # a step retried after a timeout shows as a started attempt > 1
        for company, delivery in zip(companies, deliveries, strict=True):
            handle = stack.client.get_workflow_handle(
                workflow_id("create-client", "COMPANY", company, delivery.callback_id))
            history = await handle.fetch_history()
            retried += [e.activity_task_started_event_attributes.attempt for e in history.events
                        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                        and e.activity_task_started_event_attributes.attempt > 1]
        assert retried == []
        calls = [c for c in stack.hubspot.calls.list() if c["key"] == BUSY]
        assert len(calls) == 24, len(calls)  # each step's call made once


async def test_waiters_for_one_key_ask_the_shared_limiter_in_turn():
    """Thirty calls waiting for one key's turns: each asks the (shared, database) limiter about
    once, instead of all of them polling it at every turn; every one gets its turn, in order."""
    from pacing import LocalLimiter, Pacer, RateLimit

    class Counting(LocalLimiter):
        asks = 0

        async def acquire(self, key: str, rate_per_s: float, burst: int, reserve: int = 0) -> float:
            Counting.asks += 1
            return await super().acquire(key, rate_per_s, burst, reserve)

    pacer, order = Pacer(Counting()), []

    async def call(i: int) -> None:
        await pacer.wait("hubspot:1", RateLimit(100.0, 1))
        order.append(i)

    started = time.monotonic()
    await asyncio.gather(*(call(i) for i in range(30)))
    assert order == list(range(30))
    assert time.monotonic() - started >= 29 / 100 * 0.9  # still paced
    assert Counting.asks <= 2 * 30, Counting.asks  # without the queue: hundreds (each re-asks)


async def test_a_worker_without_hubspot_calls_leaves_them_to_the_others(paced_stack, tmp_path):
    """WORKER_HUBSPOT_CALLS=false: the process runs workflows and Kleer calls but never polls the
    HubSpot queue, so a portal's HubSpot calls (and their batches) stay in the other process."""
    stack = paced_stack
    calling = stack.spawn_worker(tmp_path / "calling.log")
    silent = stack.spawn_worker(tmp_path / "silent.log", {"WORKER_HUBSPOT_CALLS": "false"})
    try:
        companies, deliveries, outs = await _create_clients(stack, QUIET, "S", 6)
        assert silent.poll() is None and calling.poll() is None  # both still running
    finally:
        for worker in (calling, silent):
            worker.terminate()
            worker.wait()
    assert [o["result"] for o in outs] == ["created"] * 6
    by_queue: dict[str, set[str]] = {}  # task queue -> identities that started its activities
    for company, delivery in zip(companies, deliveries, strict=True):
        # With a database the run writes under the record's lease: all its activities are its own.
        for wf in (workflow_id("create-client", "COMPANY", company, delivery.callback_id),):
            events = (await stack.client.get_workflow_handle(wf).fetch_history()).events
            queue = {e.event_id: e.activity_task_scheduled_event_attributes.task_queue.name
                     for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED}
            for e in events:
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                    started = e.activity_task_started_event_attributes
                    by_queue.setdefault(queue[started.scheduled_event_id], set()).add(
                        started.identity.split("@")[0])
    hubspot_queue = f"{stack.settings.task_queue}-hubspot"
    assert by_queue[hubspot_queue] == {str(calling.pid)}, by_queue
    assert stack.settings.task_queue in by_queue  # the Kleer calls ran too (on either process)

