"""The benchmark of issue 12, in one run: bursts, their calls and drain, quiet latency, the
acknowledgement under open-loop load, and CPU per HubSpot call.

    python -m bench.bench [--executions 5000] [--hubspot-limit 190] [--worker-processes 1]
                          [--json out.json]

One fresh LocalStack (Temporal dev server, HubSpot and Kleer simulators in this process), a
database every process shares (PostgreSQL on 127.0.0.1:5432, else --database sqlite), our API
in its own process (`kleer-hubspot api`) and `python -m worker` processes; phases:

1. quiet, batching on: each action alone on the idle stack, one execution at a time (calls per
   action, activities, end-to-end latency);
2. batching off (workers with HUBSPOT_MAX_BATCH=1): the same quiet runs, then a burst of the mix;
3. batching on: a burst of each action alone (calls per execution by action), then the burst of
   the mix (--executions): calls by endpoint and the fill of each batch kind from the
   simulators' call logs, drain time against max(HubSpot calls / paced limit, Kleer calls /
   paced limit), 429s; executions that did not complete are reported with why;
4. acknowledgement at fixed open-loop rates, our API beside a bare start_workflow endpoint
   (bench/ack.py, no worker running);
5. CPU per HubSpot call, before/after (bench/http_cpu.py).
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowExecutionStatus
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from bench.ack import ACK_ROUNDS, run_ack
from bench.calls import endpoint, items_of, tally, windowed
from bench.http_cpu import run_cpu_bench
from bench.noop import run_noop_baseline
from bench.report import BenchReport, Burst, Quiet, format_report, percentile
from bench.workers import (
    NO_SYNC_INTERVAL_S,
    HttpService,
    WorkerProcesses,
    api_process,
    bench_database,
    wait_for_pollers,
)
from bench.workload import DEFAULT_MIX, Execution, allocate, build_workload, parse_mix, seed_execution
from local.stack import (
    DEMO_CLIENT_SECRET,
    DEMO_HUBSPOT_TOKEN,
    DEMO_KLEER_COMPANY,
    DEMO_KLEER_KEY,
    DEMO_PORTAL,
    LocalStack,
)
from settings import PortalCredentials, Settings
from simulators.driver import DeliveryResult, HubSpotDriver
from simulators.hubspot import HubSpotState
from workflows.models import hubspot_task_queue, workflow_id

BENCH_TASK_QUEUE = "kleer-hubspot-bench"
DATABASE_SECRETS_KEY = "bench-database-secrets-key-not-a-secret"
POLL_S = 0.5  # completion timestamps come from the simulator, so polling only delays noticing
PROGRESS_EVERY_S = 15.0
DELIVERY_ATTEMPTS = 30  # HubSpot keeps re-sending 429s (Retry-After) far longer than 8 times
Say = Callable[[str], None]


@dataclass
class BenchConfig:
    executions: int = 5000  # the burst of the mix, batching on
    action_burst: int = 500  # a burst of each action alone, batching on (0 = none)
    # The burst of the mix with HUBSPOT_MAX_BATCH=1, and one with batching at the same N, for the
    # ratio (0 = neither). Small: without coalescing every HubSpot activity waits for its own turn
    # inside its 30 s start-to-close timeout, so N / paced limit must stay well under 30 s.
    off_executions: int = 300
    burst_timeout_s: float | None = None  # per burst; None = max(300 s, 0.5 s per execution)
    hubspot_limit: int = 190  # requests per 10 s per portal: HubSpot private apps, Pro/Enterprise
    hubspot_window_ms: int = 10_000
    kleer_limit: int = 50  # the Kleer simulator's limit per token, requests per second
    kleer_pace: float = 45.0  # KLEER_RATE_LIMIT: what the product paces Kleer at
    kleer_burst: int = 5  # KLEER_RATE_BURST (rate * 1 s + burst <= the simulator's 50 per 1 s)
    # HUBSPOT_BATCH_WINDOW_MS given to the product (default: the product's)
    batch_window_ms: float = Settings.hubspot_batch_window_s * 1000
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    concurrency: int = 200  # executions in flight at the driver (its HTTP pool holds 200)
    worker_processes: int = 1  # batches gather per process (README "Scaling out")
    database: str = "postgres"  # postgres | sqlite | none
    quiet_runs: int = 10  # measured runs per action and coalescing mode (after one warm-up)
    ack_rates: list[float] = field(default_factory=lambda: [25.0, 50.0, 100.0, 200.0])
    ack_duration_s: float = 45.0  # per rate and endpoint, in 4 alternating slices (bench/ack.py)
    cpu_calls: int = 1000  # 0 = no CPU micro-benchmark
    cpu_concurrency: list[int] = field(default_factory=lambda: [1, 8, 32])
    cpu_rounds: int = 2
    noop_executions: int = 0
    timeout_s: float = 3600.0
    ack_timeout_s: float = 10.0  # the driver's per-attempt timeout, like HubSpot's
    seed: int = 7
    log_dir: Path | None = None


class Deadline:
    """The overall time budget every phase draws from, so the script always stops by itself."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, reserve: float = 0.0) -> float:
        return max(0.0, self.end - time.monotonic() - reserve)


def _stderr(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _delivered(delivery: DeliveryResult | None) -> bool:
    """200 with BLOCK: the API accepted the execution and a workflow will complete it; or, for a
    re-delivery that came after its run closed, that run's outcome (api.py)."""
    if delivery is None or delivery.status_code != 200 or not isinstance(delivery.response_json, dict):
        return False
    state = delivery.response_json.get("outputFields", {}).get("hs_execution_state")
    return state in ("BLOCK", "SUCCESS", "FAIL_CONTINUE")


def _outcome(callback: dict[str, Any]) -> str:
    fields = callback.get("outputFields") or {}
    return f"{fields.get('hs_execution_state')} {fields.get('result')}"


class Bench:
    """One run's stack, processes and driver."""

    def __init__(self, config: BenchConfig, stack: LocalStack, api: HttpService, log_dir: Path,
                 deadline: Deadline, say: Say) -> None:
        self.config, self.stack, self.api, self.log_dir = config, stack, api, log_dir
        self.deadline, self.say = deadline, say
        self.driver: HubSpotDriver | None = None
        self.workers: WorkerProcesses | None = None
        self.seen_pollers: set[str] = set()
        self.next_index = 0
        self.sets = 0

    # -- workers ----------------------------------------------------------------------------
    async def use_workers(self, batching: bool) -> None:
        """Replace the running worker processes by K new ones, batching on or off."""
        if self.workers is not None:
            self.workers.stop()
        self.sets += 1
        env = {**self.stack.worker_env(), **_worker_env(self.config),
               "HUBSPOT_MAX_BATCH": "100" if batching else "1"}
        self.workers = WorkerProcesses(self.config.worker_processes, env, self.log_dir,
                                       f"worker-set{self.sets}-{'on' if batching else 'off'}").start()
        before, now = set(self.seen_pollers), set()
        for queue in (BENCH_TASK_QUEUE, hubspot_task_queue(BENCH_TASK_QUEUE)):
            now |= await wait_for_pollers(self.stack.client, queue, self.config.worker_processes,
                                          min(90.0, self.deadline.left()), self.workers, before)
        self.seen_pollers |= now
        self.say(f"{self.config.worker_processes} worker process(es) polling, batching "
                 f"{'on' if batching else 'off (HUBSPOT_MAX_BATCH=1)'}")

    def stop_workers(self) -> None:
        if self.workers is not None:
            self.workers.stop()
            self.workers = None

    # -- one execution ------------------------------------------------------------------------
    async def execute(self, ex: Execution, api_url: str | None = None) -> DeliveryResult:
        assert self.driver is not None
        url = f"{api_url or self.api.url}/hubspot/actions/{ex.action}"
        return await self.driver.execute(DEMO_PORTAL, ex.object_type, ex.object_id, ex.inputs,
                                         action_url=url,
                                         max_attempts=DELIVERY_ATTEMPTS)

    async def quiet_calls(self, quiet_s: float = 0.3, limit_s: float = 5.0) -> tuple[int, int]:
        """Call-log lengths once no call arrived for `quiet_s` (the simulator logs a call after
        answering, so a completion can be visible a moment before its own call is logged)."""
        counts = (len(self.stack.hubspot.calls.list()), len(self.stack.kleer.calls.list()))
        give_up = time.monotonic() + limit_s
        while time.monotonic() < give_up:
            await asyncio.sleep(quiet_s)
            now = (len(self.stack.hubspot.calls.list()), len(self.stack.kleer.calls.list()))
            if now == counts:
                break
            counts = now
        return counts

    # -- quiet --------------------------------------------------------------------------------
    async def quiet(self, actions: list[str]) -> list[Quiet]:
        """Each action alone, one execution at a time, coalescing on and off interleaved (run by
        run, the order alternating) so both see the same machine: two worker processes, one
        per mode, each on its own task queue behind its own API process."""
        off_queue = f"{BENCH_TASK_QUEUE}-off"
        env = {**self.stack.worker_env(), **_worker_env(self.config)}
        on = WorkerProcesses(1, {**env, "HUBSPOT_MAX_BATCH": "100"}, self.log_dir, "worker-quiet-on")
        off = WorkerProcesses(1, {**env, "HUBSPOT_MAX_BATCH": "1", "TEMPORAL_TASK_QUEUE": off_queue},
                              self.log_dir, "worker-quiet-off")
        api_off = api_process({**_api_env(self.stack, self.config),
                               "TEMPORAL_TASK_QUEUE": off_queue}, self.log_dir, "api-quiet-off")
        try:
            on.start()
            off.start()
            await api_off.start()
            before = set(self.seen_pollers)
            for workers, queue in ((on, BENCH_TASK_QUEUE), (off, off_queue)):
                for q in (queue, hubspot_task_queue(queue)):
                    self.seen_pollers |= await wait_for_pollers(
                        self.stack.client, q, 1, min(90.0, self.deadline.left()), workers, before)
            out = []
            for action in actions:
                runs = {True: _QuietRuns(), False: _QuietRuns()}
                for run in range(self.config.quiet_runs + 1):
                    for batching in (True, False) if run % 2 else (False, True):
                        api = self.api.url if batching else api_off.url
                        measured = await self._alone(action, api)
                        if run:  # run 0 warms up: a worker fills its caches (association labels)
                            runs[batching].add(*measured)
                for batching in (True, False):
                    out.append(runs[batching].result(action, batching))
                self.say(f"  alone: {action} {out[-2].e2e_median_s:.3f} s with coalescing, "
                         f"{out[-1].e2e_median_s:.3f} s without")
            return out
        finally:
            api_off.stop()
            on.stop()
            off.stop()

    async def _alone(self, action: str, api_url: str) -> tuple[float, list, list, int, str]:
        ex = seed_execution(self.stack, action, 1_000_000 + self._index())
        before = await self.quiet_calls()
        sent_at = time.time()
        delivery = await self.execute(ex, api_url)
        callback = await self._wait_one(delivery.callback_id) if _delivered(delivery) else None
        if callback is None:
            raise RuntimeError(f"{action} alone did not complete: {delivery}")
        after = await self.quiet_calls()
        return (_epoch(callback["completedAt"]) - sent_at,
                self.stack.hubspot.calls.list()[before[0]:after[0]],
                self.stack.kleer.calls.list()[before[1]:after[1]],
                await self._activities_of(ex, delivery.callback_id), _outcome(callback))

    def _index(self) -> int:
        self.next_index += 1
        return self.next_index

    async def _wait_one(self, callback_id: str, timeout_s: float = 120) -> dict | None:
        give_up = time.monotonic() + min(timeout_s, self.deadline.left())
        while time.monotonic() < give_up:
            callback = self.stack.hubspot.completion(callback_id)
            if callback and callback["state"] == "completed":
                return callback
            await asyncio.sleep(0.01)
        return None

    async def _activities_of(self, ex: Execution, callback_id: str) -> int:
        """Activities scheduled by the run and its per-record child workflow."""
        wf_id = workflow_id(ex.action, ex.object_type, ex.object_id, callback_id)
        total = 0
        history = await self.stack.client.get_workflow_handle(wf_id).fetch_history()
        children = []
        for e in history.events:
            total += e.HasField("activity_task_scheduled_event_attributes")
            if e.HasField("start_child_workflow_execution_initiated_event_attributes"):
                children.append(e.start_child_workflow_execution_initiated_event_attributes.workflow_id)
        for child in set(children):
            history = await self.stack.client.get_workflow_handle(child).fetch_history()
            total += sum(1 for e in history.events
                         if e.HasField("activity_task_scheduled_event_attributes"))
        return total

    # -- bursts -------------------------------------------------------------------------------
    async def burst(self, label: str, counts: dict[str, int], batching: bool,
                    reserve_s: float) -> Burst:
        """Fire, wait for every callback (or the burst's time limit), then read the figures. Runs
        still going at the limit are described (why) and terminated, so they do not spill into
        the next phase."""
        started = time.monotonic()
        limit = self.config.burst_timeout_s or max(300.0, 0.5 * sum(counts.values()))
        reserve_s = max(reserve_s, self.deadline.left() - limit)
        executions = build_workload(self.stack, counts, self.config.seed,
                                    first_index=2_000_000 + self._index() * 100_000)
        seed_s = time.monotonic() - started
        self.say(f"burst '{label}' (batching {'on' if batching else 'off'}): "
                 f"{len(executions)} executions seeded in {seed_s:.1f} s, "
                 f"firing with {self.config.concurrency} in flight")
        await self.quiet_calls(quiet_s=1.0, limit_s=30)  # what came before has ended
        hubspot_mark = len(self.stack.hubspot.calls.list())
        kleer_mark = len(self.stack.kleer.calls.list())
        self.stack.hubspot.limiter.reset()  # the burst starts with a full rate-limit window
        self.stack.kleer.limiter.reset()
        sent = await self._fire(executions, reserve_s)
        delivered = {s.delivery.callback_id: s for s in sent if _delivered(s.delivery)}
        self.say(f"  delivered {len(delivered)}/{len(sent)}; waiting for the callbacks")
        done = await self._wait_callbacks(set(delivered), reserve_s)
        incomplete = await self._why_incomplete(sent, delivered, done)
        if len(done) < len(delivered):
            self.say(f"  NOT COMPLETED: {incomplete}")
            await self._terminate([s for cb, s in delivered.items() if cb not in done])
        acks = [s.delivery.ack_latency_s for s in sent
                if s.delivery is not None and s.delivery.ack_latency_s is not None]
        e2e = [_epoch(done[cb]["completedAt"]) - s.sent_at for cb, s in delivered.items()
               if cb in done]
        wall = (max(_epoch(cb["completedAt"]) for cb in done.values())
                - min(s.sent_at for s in sent)) if done else None
        hubspot_calls = self.stack.hubspot.calls.list()[hubspot_mark:]
        _dump_calls(self.log_dir / f"calls-{label}-{'on' if batching else 'off'}.jsonl",
                    hubspot_calls, self.stack.kleer.calls.list()[kleer_mark:])
        burst = Burst(
            label=label, batching=batching, executions=len(executions), by_action=counts,
            concurrency=self.config.concurrency, seed_s=seed_s, delivered=len(delivered),
            completed=len(done), outcomes=dict(Counter(_outcome(cb) for cb in done.values())),
            delivery_retries=sum(s.delivery.attempts - 1 for s in sent if s.delivery is not None),
            wall_s=wall, ack_p50_s=percentile(acks, 50), ack_p99_s=percentile(acks, 99),
            e2e_p50_s=percentile(e2e, 50), e2e_p99_s=percentile(e2e, 99),
            hubspot=tally(hubspot_calls),
            kleer=tally(self.stack.kleer.calls.list()[kleer_mark:]),
            hubspot_pace_per_s=_hubspot_pace(self.config, self.stack.settings),
            kleer_pace_per_s=self.config.kleer_pace, incomplete=incomplete,
            timed_out=len(done) < len(delivered),
            hubspot_windowed={str(ms): windowed(hubspot_calls, ms / 1000) for ms in WINDOWS_MS})
        self.say(f"  done: {burst.completed}/{burst.executions} in {_f(burst.wall_s)} s, HubSpot "
                 f"{_f(burst.hubspot_per_exec)}/exec, Kleer {_f(burst.kleer_per_exec)}/exec, "
                 f"drain/bound {_f(burst.drain_ratio)} ({burst.bound_by})")
        if self.workers is not None:
            self.workers.check_alive()
        return burst

    async def _fire(self, executions: list[Execution], reserve_s: float) -> list[Sent]:
        """Deliver every execution with at most `concurrency` in flight (HubSpot's retries)."""
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(ex: Execution) -> Sent:
            async with gate:
                sent_at = time.time()
                try:
                    return Sent(ex, sent_at, await self.execute(ex))
                except Exception as exc:  # one broken delivery must not abort the burst
                    return Sent(ex, sent_at, None, repr(exc))

        try:
            return await asyncio.wait_for(asyncio.gather(*(one(ex) for ex in executions)),
                                          self.deadline.left(reserve_s))
        except TimeoutError:
            raise TimeoutError("the burst could not be delivered within the time budget") from None

    async def _wait_callbacks(self, callback_ids: set[str], reserve_s: float
                              ) -> dict[str, dict[str, Any]]:
        done: dict[str, dict[str, Any]] = {}
        pending = set(callback_ids)
        next_progress = time.monotonic() + PROGRESS_EVERY_S
        while pending and self.deadline.left(reserve_s) > 0:
            newly = _completed(self.stack.hubspot, pending)
            done.update(newly)
            pending.difference_update(newly)
            if time.monotonic() >= next_progress:
                self.say(f"  {len(done)}/{len(callback_ids)} completed")
                next_progress += PROGRESS_EVERY_S
                if self.workers is not None:
                    self.workers.check_alive()
            if pending:
                await asyncio.sleep(POLL_S)
        return done

    async def _why_incomplete(self, sent: list[Sent], delivered: dict[str, Sent],
                              done: dict[str, dict]) -> dict[str, int]:
        """Why each execution did not complete: its delivery's last answer, or its run's state
        in Temporal (status, the pending activity's attempts and last failure)."""
        why: Counter[str] = Counter()
        for s in sent:
            if s.delivery is None or s.delivery.callback_id not in delivered:
                answer = s.error or f"{s.delivery.status_code} {str(s.delivery.response_json)[:80]}"
                why[f"not delivered: {answer}"] += 1
        for callback_id, s in list(delivered.items()):
            if callback_id in done:
                continue
            ex = s.execution
            why[await self._run_state(workflow_id(ex.action, ex.object_type, ex.object_id,
                                                  callback_id))] += 1
        return dict(why.most_common())

    async def _terminate(self, runs: list[Sent]) -> None:
        for s in runs:
            ex = s.execution
            handle = self.stack.client.get_workflow_handle(
                workflow_id(ex.action, ex.object_type, ex.object_id, s.delivery.callback_id))
            try:
                children = (await handle.describe()).raw_description.pending_children
                await handle.terminate("bench: burst time limit")
                for child in children:
                    await self.stack.client.get_workflow_handle(child.workflow_id).terminate(
                        "bench: burst time limit")
            except Exception:  # already closed
                pass

    async def _run_state(self, wf_id: str) -> str:
        try:
            desc = await self.stack.client.get_workflow_handle(wf_id).describe()
        except Exception as exc:
            return f"run not found ({type(exc).__name__})"
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return f"run {desc.status.name if desc.status else '?'} but callback not completed"
        raw = desc.raw_description
        pending = [f"{p.activity_type.name} attempt {p.attempt}"
                   + (f": {p.last_failure.message[:80]}" if p.last_failure.message else "")
                   for p in raw.pending_activities]
        children = [c.workflow_id for c in raw.pending_children]
        if not pending and children:
            return "running: waiting for its record workflow " + await self._child_state(children[0])
        return "running: " + ("; ".join(pending) if pending else "no activity pending (workflow task)")

    async def _child_state(self, wf_id: str) -> str:
        try:
            raw = (await self.stack.client.get_workflow_handle(wf_id).describe()).raw_description
        except Exception as exc:
            return f"(not found: {type(exc).__name__})"
        pending = [f"{p.activity_type.name} attempt {p.attempt}"
                   + (f": {p.last_failure.message[:80]}" if p.last_failure.message else "")
                   for p in raw.pending_activities]
        return "(" + ("; ".join(pending) or "no activity pending") + ")"


@dataclass
class _QuietRuns:
    e2e: list[float] = field(default_factory=list)
    hubspot: list[dict] = field(default_factory=list)
    kleer: list[dict] = field(default_factory=list)
    activities: list[int] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)

    def add(self, e2e: float, hubspot: list, kleer: list, activities: int, outcome: str) -> None:
        self.e2e.append(e2e)
        self.hubspot += hubspot
        self.kleer += kleer
        self.activities.append(activities)
        self.outcomes[outcome] += 1

    def result(self, action: str, batching: bool) -> Quiet:
        runs = len(self.e2e)
        hs, kl = tally(self.hubspot), tally(self.kleer)
        return Quiet(action, batching, runs, hs.total / runs, kl.total / runs,
                     sum(self.activities) / runs, self.e2e, dict(self.outcomes),
                     {k: v.calls / runs for k, v in hs.by_endpoint.items()},
                     {k: v.calls / runs for k, v in kl.by_endpoint.items()})


@dataclass
class Sent:
    execution: Execution
    sent_at: float  # wall clock, comparable with the simulator's completedAt
    delivery: DeliveryResult | None
    error: str = ""


def _completed(state: HubSpotState, callback_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The completed ones among `callback_ids`, copying only those (in process, never HTTP)."""
    out = {}
    with state.lock:
        for callback_id in callback_ids:
            callback = state.find_callback(callback_id)
            if callback is not None and callback["state"] == "completed":
                out[callback_id] = {"completedAt": callback["completedAt"],
                                    "outputFields": dict(callback["outputFields"] or {})}
    return out


WINDOWS_MS = (100, 250, 500)


def _dump_calls(path: Path, hubspot: list[dict], kleer: list[dict]) -> None:
    """The burst's calls (time, service, endpoint, items, status) for analysis afterwards."""
    with path.open("w") as out:
        for service, calls in (("hubspot", hubspot), ("kleer", kleer)):
            for c in calls:
                out.write(json.dumps({"ts": c["ts"], "service": service,
                                      "endpoint": endpoint(c["method"], c["path"]),
                                      "items": items_of(c), "status": c["status"]}) + "\n")


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _hubspot_pace(config: BenchConfig, settings: Settings) -> float:
    return config.hubspot_limit / (config.hubspot_window_ms / 1000) * settings.hubspot_rate_share


def _worker_env(config: BenchConfig) -> dict[str, str]:
    return {"KLEER_RATE_LIMIT": f"{config.kleer_pace:g}", "KLEER_RATE_BURST": str(config.kleer_burst),
            f"PORTAL_{DEMO_PORTAL}_HUBSPOT_RATE_LIMIT": str(config.hubspot_limit)}


def _api_env(stack: LocalStack, config: BenchConfig) -> dict[str, str]:
    env = {**stack.worker_env(), **_worker_env(config)}
    env.pop("HUBSPOT_MAX_BATCH", None)
    return env


# -- the run ----------------------------------------------------------------------------------

def _stack(config: BenchConfig, log_dir: Path, database_url: str | None) -> LocalStack:
    portal = PortalCredentials(DEMO_PORTAL, DEMO_HUBSPOT_TOKEN, DEMO_KLEER_COMPANY, DEMO_KLEER_KEY,
                               hubspot_rate_limit=config.hubspot_limit,
                               hubspot_rate_window_s=config.hubspot_window_ms / 1000)
    settings = Settings(hubspot_client_secret=DEMO_CLIENT_SECRET, task_queue=BENCH_TASK_QUEUE,
                        portals={DEMO_PORTAL: portal}, database_url=database_url,
                        database_secrets_key=DATABASE_SECRETS_KEY if database_url else None,
                        kleer_rate_limit=config.kleer_pace, kleer_rate_burst=config.kleer_burst,
                        hubspot_batch_window_s=config.batch_window_ms / 1000,
                        sync_interval_s=NO_SYNC_INTERVAL_S)
    return LocalStack(settings=settings, run_worker=False, log_dir=log_dir,
                      hubspot_rate_limit=(config.hubspot_limit, config.hubspot_window_ms))


def _reserve(config: BenchConfig) -> float:
    """Seconds kept for the phases after the bursts (acknowledgement ladder, CPU)."""
    ack = len(config.ack_rates) * 2 * (config.ack_duration_s + ACK_ROUNDS * 8)
    cpu = 0 if not config.cpu_calls else 20 + 4 * len(config.cpu_concurrency) * config.cpu_rounds
    return ack + cpu


async def _bursts_and_quiet(b: Bench, report: BenchReport) -> None:
    c = b.config
    actions = list(c.mix)
    reserve = _reserve(c)
    if c.quiet_runs:
        report.quiet = await b.quiet(actions)
    same_n = f"mix@{c.off_executions}"
    if c.off_executions:
        await b.use_workers(batching=False)
        report.bursts.append(await b.burst(same_n, allocate(c.mix, c.off_executions), False,
                                           reserve))
    await b.use_workers(batching=True)
    if c.off_executions:
        report.bursts.append(await b.burst(same_n, allocate(c.mix, c.off_executions), True,
                                           reserve))
    if c.action_burst:
        for action in actions:
            report.bursts.append(await b.burst(action, {action: c.action_burst}, True, reserve))
    if c.executions:
        report.bursts.append(await b.burst("mix", allocate(c.mix, c.executions), True, reserve))
    b.stop_workers()


async def run_bench(config: BenchConfig, say: Say = _stderr) -> BenchReport:
    """The whole benchmark on a fresh embedded stack; returns the report (printing is the caller's)."""
    deadline = Deadline(config.timeout_s)
    report = BenchReport(_config_dict(config))
    with tempfile.TemporaryDirectory(prefix="kleer-bench-") as tmp:
        log_dir = config.log_dir or Path(tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        say(f"starting the stack (logs in {log_dir}, database {config.database})")
        async with bench_database(config.database, log_dir) as database_url, \
                _stack(config, log_dir, database_url) as stack:
            stack.kleer.set_rate_limit(config.kleer_limit, 1000)
            report.config["hubspot_pace_per_s"] = _hubspot_pace(config, stack.settings)
            api = await api_process(_api_env(stack, config), log_dir).start()
            bench = Bench(config, stack, api, log_dir, deadline, say)
            try:
                async with HubSpotDriver(f"{api.url}/hubspot/actions/create-client",
                                         DEMO_CLIENT_SECRET, stack.hubspot_url,
                                         timeout_s=config.ack_timeout_s) as driver:
                    bench.driver = driver
                    await _bursts_and_quiet(bench, report)
            finally:
                bench.stop_workers()
                api.stop()
            if config.noop_executions and deadline.left() > 60:
                activities = _mix_activities(report, config)
                # Own activities only; 2 in a child workflow (the per-record write before
                # record-lease); 2 between two local activities (under a record lease).
                for child, lease in ((0, 0), (2, 0), (0, 2)):
                    say(f"no-op ceiling: {config.noop_executions} workflows x {activities} "
                        f"activities, {child} of them in a child workflow, {lease} under a lease")
                    report.noop.append(await run_noop_baseline(
                        stack.client, config.noop_executions, activities, config.concurrency,
                        deadline.left(), child_activities=child, lease_activities=lease))
            if config.ack_rates:
                say(f"acknowledgement at {', '.join(f'{r:g}' for r in config.ack_rates)}/s "
                    f"({config.ack_duration_s:g} s each, in {ACK_ROUNDS} rotating slices), ours "
                    "beside the bare endpoint")
                report.ack = await run_ack(_api_env(stack, config), DEMO_CLIENT_SECRET,
                                           config.ack_rates, config.ack_duration_s, log_dir, say)
    if config.cpu_calls:
        say("CPU per HubSpot call (bench/http_cpu.py)")
        cpu = await asyncio.to_thread(run_cpu_bench, config.cpu_calls, 4,
                                      tuple(config.cpu_concurrency), config.cpu_rounds)
        report.cpu = cpu.to_dict()
    return report


def _mix_activities(report: BenchReport, config: BenchConfig) -> int:
    """Activities of an average execution of the mix (run and child), from the runs alone."""
    weights = {q.action: (config.mix[q.action], q.activities) for q in report.quiet if q.batching}
    total = sum(w for w, _ in weights.values())
    return max(3, round(sum(w * a for w, a in weights.values()) / total)) if total else 6


def _config_dict(config: BenchConfig) -> dict[str, Any]:
    out = asdict(config)
    out["log_dir"] = str(config.log_dir) if config.log_dir else None
    out["quiet_actions"] = list(config.mix)
    return out


# -- command line -----------------------------------------------------------------------------

def _floats(text: str) -> list[float]:
    return [float(x) for x in re.split(r"[,\s]+", text.strip()) if x]


def parse_args(argv: list[str] | None = None) -> tuple[BenchConfig, Path | None, Path | None, bool]:
    """The run's config, where to write the JSON and text reports, and --verbose."""
    p = argparse.ArgumentParser(prog="python -m bench.bench", description=__doc__.split("\n")[0])
    d = BenchConfig()
    p.add_argument("--executions", "-n", type=int, default=d.executions,
                   help="the burst of the mix with batching on (0 = none)")
    p.add_argument("--action-burst", type=int, default=d.action_burst,
                   help="executions in the burst of each action alone (0 = none)")
    p.add_argument("--off-executions", type=int, default=d.off_executions,
                   help="bursts of the mix with HUBSPOT_MAX_BATCH=1 and with batching, at this N "
                        "(0 = none)")
    p.add_argument("--burst-timeout", type=float, default=None,
                   help="seconds per burst (default: max(300, 0.5 per execution))")
    p.add_argument("--hubspot-limit", type=int, default=d.hubspot_limit, metavar="MAX_PER_10S")
    p.add_argument("--kleer-limit", type=int, default=d.kleer_limit, metavar="MAX_PER_S",
                   help="the Kleer simulator's limit per token")
    p.add_argument("--kleer-pace", type=float, default=d.kleer_pace,
                   help="KLEER_RATE_LIMIT given to the product")
    p.add_argument("--kleer-burst", type=int, default=d.kleer_burst, help="KLEER_RATE_BURST")
    p.add_argument("--batch-window-ms", type=float, default=d.batch_window_ms,
                   help="HUBSPOT_BATCH_WINDOW_MS given to the product")
    p.add_argument("--mix", default=",".join(f"{k.removeprefix('create-')}={v:g}"
                                            for k, v in d.mix.items()))
    p.add_argument("--concurrency", type=int, default=d.concurrency,
                   help="executions in flight at the driver")
    p.add_argument("--worker-processes", type=int, default=d.worker_processes, metavar="K")
    p.add_argument("--database", choices=("postgres", "sqlite", "none"), default=d.database)
    p.add_argument("--quiet-runs", type=int, default=d.quiet_runs)
    p.add_argument("--ack-rates", default=",".join(f"{r:g}" for r in d.ack_rates),
                   help="open-loop rates per second, comma separated ('' = no ack phase)")
    p.add_argument("--ack-duration", type=float, default=d.ack_duration_s)
    p.add_argument("--cpu-calls", type=int, default=d.cpu_calls, help="0 = no CPU micro-benchmark")
    p.add_argument("--cpu-concurrency", default=",".join(map(str, d.cpu_concurrency)))
    p.add_argument("--cpu-rounds", type=int, default=d.cpu_rounds)
    p.add_argument("--noop-executions", type=int, default=d.noop_executions)
    p.add_argument("--timeout", type=float, default=d.timeout_s, help="overall budget, seconds")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--log-dir", type=Path, default=None, help="keep every process's log here")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    p.add_argument("--text", type=Path, default=None, help="also write the printed report here")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    config = BenchConfig(
        executions=args.executions, action_burst=args.action_burst,
        off_executions=args.off_executions, burst_timeout_s=args.burst_timeout,
        hubspot_limit=args.hubspot_limit,
        kleer_limit=args.kleer_limit, kleer_pace=args.kleer_pace, kleer_burst=args.kleer_burst,
        batch_window_ms=args.batch_window_ms,
        mix=parse_mix(args.mix), concurrency=args.concurrency,
        worker_processes=args.worker_processes, database=args.database,
        quiet_runs=args.quiet_runs, ack_rates=_floats(args.ack_rates),
        ack_duration_s=args.ack_duration, cpu_calls=args.cpu_calls,
        cpu_concurrency=[int(x) for x in _floats(args.cpu_concurrency)],
        cpu_rounds=args.cpu_rounds, noop_executions=args.noop_executions,
        timeout_s=args.timeout, seed=args.seed, log_dir=args.log_dir)
    if config.worker_processes < 1:
        p.error("--worker-processes must be at least 1")
    if config.worker_processes > 1 and config.database == "none":
        p.error("several worker processes share the limiter through a database: "
                "--database postgres or sqlite")
    return config, args.json, args.text, args.verbose


def _quiet_temporal() -> None:
    """Keep the output readable; must run before the first Temporal client is created."""
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    Runtime.set_default(Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet))))


def main(argv: list[str] | None = None) -> int:
    config, json_path, text_path, verbose = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not verbose:
        _quiet_temporal()
    command = "python -m bench.bench " + " ".join(sys.argv[1:] if argv is None else argv)
    report = asyncio.run(asyncio.wait_for(run_bench(config), config.timeout_s + 300))
    report.config["command"] = command
    text = format_report(report)
    print(text)
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    if text_path is not None:
        text_path.write_text(f"$ {command}\n\n{text}\n")
    complete = all(b.completed == b.executions for b in report.bursts)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
