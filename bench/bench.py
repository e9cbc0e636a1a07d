"""Throughput benchmark: a burst of signed HubSpot executions through the whole embedded stack.

    python -m bench.bench [--executions N] [--hubspot-limit MAX_PER_10S] [--mix ...]
                          [--worker-processes K] [--json out.json]

Phases, all in one run on a fresh LocalStack (free ports, Temporal dev server, simulators):
1. calibration: each action of the mix alone, sequentially, diffing the simulators' call logs,
   so calls per execution are known per action (the burst's logs cannot attribute calls);
2. burst: N executions on freshly seeded records, fired through the HubSpotDriver with many in
   flight; figures come from the driver's answers and the simulators' in-process state;
3. baseline: the same number of no-op workflows with as many activities as an average execution,
   straight through the Temporal client, to put our executions/s against Temporal's ceiling.
The product throttles nothing here on purpose of this script: it reports what happens (429s,
drain time vs the rate limit), whatever throttling the product has at the time.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from bench.noop import NoopResult, run_noop_baseline
from bench.report import BenchReport, Burst, Calibration, CallTotals, endpoint, format_report, percentile
from bench.workers import WorkerProcesses, wait_for_pollers
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
from simulators.common import CallLog
from simulators.driver import DeliveryResult, HubSpotDriver
from simulators.hubspot import HubSpotState
from workflows.models import workflow_id

BENCH_TASK_QUEUE = "kleer-hubspot-bench"
POLL_S = 0.5  # completion timestamps come from the simulator, so polling only delays noticing
PROGRESS_EVERY_S = 10.0
Say = Callable[[str], None]


@dataclass
class BenchConfig:
    executions: int = 2000
    hubspot_limit: int = 190  # requests per 10 s per portal: HubSpot private apps, Pro/Enterprise
    hubspot_window_ms: int = 10_000
    kleer_limit: int = 50  # requests per second (the Kleer simulator's default)
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    concurrency: int = 200  # executions in flight at the driver (its HTTP pool holds 200)
    worker_processes: int = 0
    in_process_worker: bool = True
    calibration_runs: int = 2
    noop_executions: int | None = None  # None = as many as executions
    noop_activities: int | None = None  # None = the mix's average, from the calibration
    timeout_s: float = 900.0
    ack_timeout_s: float = 10.0  # the driver's per-attempt timeout, like HubSpot's
    seed: int = 7
    log_dir: Path | None = None


class Deadline:
    """The overall time budget every phase draws from, so the script always stops by itself."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _delivered(delivery: DeliveryResult | None) -> bool:
    """200 with BLOCK: the API accepted the execution and a workflow will complete it."""
    if delivery is None or delivery.status_code != 200 or not isinstance(delivery.response_json, dict):
        return False
    return delivery.response_json.get("outputFields", {}).get("hs_execution_state") == "BLOCK"


def _outcome(callback: dict[str, Any]) -> str:
    fields = callback.get("outputFields") or {}
    return f"{fields.get('hs_execution_state')} {fields.get('result')}"


async def _execute(stack: LocalStack, driver: HubSpotDriver, ex: Execution) -> DeliveryResult:
    return await driver.execute(DEMO_PORTAL, ex.object_type, ex.object_id, ex.inputs,
                                action_url=stack.action_url(ex.action))


# -- calibration ------------------------------------------------------------------------------

async def _wait_completed(stack: LocalStack, callback_id: str, deadline: Deadline) -> dict | None:
    while deadline.left() > 0:
        callback = stack.hubspot.completion(callback_id)
        if callback and callback["state"] == "completed":
            return callback
        await asyncio.sleep(0.02)
    return None


async def _quiet_call_counts(stack: LocalStack, quiet_s: float = 0.2,
                             limit_s: float = 3.0) -> tuple[int, int]:
    """Call counts once no call arrived for `quiet_s`: the simulator logs a call after answering,
    so the callback completion can be visible a moment before its own call is logged."""
    counts = (len(stack.hubspot.calls.list()), len(stack.kleer.calls.list()))
    give_up = time.monotonic() + limit_s
    while time.monotonic() < give_up:
        await asyncio.sleep(quiet_s)
        now = (len(stack.hubspot.calls.list()), len(stack.kleer.calls.list()))
        if now == counts:
            break
        counts = now
    return counts


async def _activities_of(stack: LocalStack, ex: Execution, callback_id: str) -> int:
    wf_id = workflow_id(ex.action, ex.object_type, ex.object_id, callback_id)
    history = await stack.client.get_workflow_handle(wf_id).fetch_history()
    return sum(1 for e in history.events if e.HasField("activity_task_scheduled_event_attributes"))


async def _calibrate_action(stack: LocalStack, driver: HubSpotDriver, action: str, runs: int,
                            first_index: int, deadline: Deadline) -> Calibration:
    hubspot, kleer, activities = [], [], []
    outcomes: Counter[str] = Counter()
    for index in range(first_index, first_index + runs + 1):
        ex = seed_execution(stack, action, index)
        before = await _quiet_call_counts(stack)
        delivery = await _execute(stack, driver, ex)
        callback = await _wait_completed(stack, delivery.callback_id, deadline) \
            if _delivered(delivery) else None
        if callback is None:
            raise RuntimeError(f"calibration of {action} did not complete: {delivery}")
        after = await _quiet_call_counts(stack)
        if index == first_index:
            continue  # warm-up: a worker's first run also fills its caches (association labels)
        hubspot.append(after[0] - before[0])
        kleer.append(after[1] - before[1])
        activities.append(await _activities_of(stack, ex, delivery.callback_id))
        outcomes[_outcome(callback)] += 1
    return Calibration(action, runs, sum(hubspot) / runs, sum(kleer) / runs,
                       sum(activities) / runs, dict(outcomes))


async def calibrate(stack: LocalStack, driver: HubSpotDriver, actions: list[str], runs: int,
                    deadline: Deadline) -> dict[str, Calibration]:
    """Each action alone, one execution at a time, so call-log diffs belong to that action.

    One unmeasured warm-up run per action first: one-time lookups a worker caches for its whole
    life would otherwise be charged to every execution."""
    result = {}
    for position, action in enumerate(actions):
        result[action] = await _calibrate_action(stack, driver, action, runs,
                                                 1_000_000 + position * (runs + 1), deadline)
    return result


# -- burst ------------------------------------------------------------------------------------

@dataclass
class Sent:
    execution: Execution
    sent_at: float  # wall clock, comparable with the simulator's completedAt
    delivery: DeliveryResult | None
    error: str = ""


async def fire(stack: LocalStack, driver: HubSpotDriver, executions: list[Execution],
               concurrency: int, deadline: Deadline) -> list[Sent]:
    """Deliver every execution with at most `concurrency` in flight (HubSpot retries included)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(ex: Execution) -> Sent:
        async with gate:
            sent_at = time.time()
            try:
                return Sent(ex, sent_at, await _execute(stack, driver, ex))
            except Exception as exc:  # one broken delivery must not abort the burst
                return Sent(ex, sent_at, None, repr(exc))

    try:
        return await asyncio.wait_for(asyncio.gather(*(one(ex) for ex in executions)),
                                      deadline.left())
    except TimeoutError:
        raise TimeoutError("the burst could not even be delivered within the time budget") from None


def _completed(state: HubSpotState, callback_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The completed ones among `callback_ids`, copying only those: `callbacks()` deep-copies
    every callback under the simulator's lock, which would slow the simulator on each poll."""
    out = {}
    with state.lock:
        for callback_id in callback_ids:
            callback = state.find_callback(callback_id)
            if callback is not None and callback["state"] == "completed":
                out[callback_id] = {"completedAt": callback["completedAt"],
                                    "outputFields": dict(callback["outputFields"] or {})}
    return out


async def wait_for_callbacks(stack: LocalStack, callback_ids: set[str], deadline: Deadline,
                             say: Say) -> dict[str, dict[str, Any]]:
    """Completed callbacks by id, read from the simulator state in process (never over HTTP)."""
    done: dict[str, dict[str, Any]] = {}
    pending = set(callback_ids)
    next_progress = time.monotonic() + PROGRESS_EVERY_S
    while pending and deadline.left() > 0:
        newly = _completed(stack.hubspot, pending)
        done.update(newly)
        pending.difference_update(newly)
        if time.monotonic() >= next_progress:
            limited = sum(1 for c in stack.hubspot.calls.list() if c["status"] == 429)
            say(f"  {len(done)}/{len(callback_ids)} completed, HubSpot 429s so far: {limited}")
            next_progress += PROGRESS_EVERY_S
        if pending:
            await asyncio.sleep(POLL_S)
    return done


def call_totals(calls: list[dict[str, Any]]) -> CallTotals:
    by_endpoint = Counter(endpoint(c["method"], c["path"]) for c in calls)
    return CallTotals(len(calls), sum(1 for c in calls if c["status"] == 429), dict(by_endpoint))


def _latencies(sent: list[Sent], done: dict[str, dict[str, Any]]) -> tuple[list[float], list[float]]:
    acks = [s.delivery.ack_latency_s for s in sent
            if s.delivery is not None and s.delivery.ack_latency_s is not None]
    e2e = [_epoch(done[s.delivery.callback_id]["completedAt"]) - s.sent_at
           for s in sent if s.delivery is not None and s.delivery.callback_id in done]
    return acks, e2e


def _wall_s(sent: list[Sent], done: dict[str, dict[str, Any]]) -> float | None:
    if not done:
        return None
    return max(_epoch(cb["completedAt"]) for cb in done.values()) - min(s.sent_at for s in sent)


async def run_burst(stack: LocalStack, driver: HubSpotDriver, config: BenchConfig,
                    calibration: dict[str, Calibration], deadline: Deadline, say: Say) -> Burst:
    counts = allocate(config.mix, config.executions)
    started = time.monotonic()
    executions = build_workload(stack, counts, config.seed)
    seed_s = time.monotonic() - started
    say(f"seeded {len(executions)} records in {seed_s:.1f} s; firing with {config.concurrency} in flight")
    hubspot_mark, kleer_mark = len(stack.hubspot.calls.list()), len(stack.kleer.calls.list())
    stack.hubspot.limiter.reset()  # the burst starts with a full rate-limit window
    stack.kleer.limiter.reset()
    sent = await fire(stack, driver, executions, config.concurrency, deadline)
    delivered = {s.delivery.callback_id for s in sent if _delivered(s.delivery)}
    say(f"delivered {len(delivered)}/{len(sent)}; waiting for the callbacks")
    for failed in [s for s in sent if s.delivery is None or s.delivery.callback_id not in delivered][:3]:
        say(f"  not delivered: {failed.error or failed.delivery}")
    done = await wait_for_callbacks(stack, delivered, deadline, say)
    acks, e2e = _latencies(sent, done)
    return Burst(
        executions=len(executions), by_action=counts, concurrency=config.concurrency, seed_s=seed_s,
        completed=len(done), outcomes=dict(Counter(_outcome(cb) for cb in done.values())),
        delivery_failures=len(sent) - len(delivered),
        delivery_retries=sum(s.delivery.attempts - 1 for s in sent if s.delivery is not None),
        wall_s=_wall_s(sent, done),
        ack_p50_s=percentile(acks, 50), ack_p99_s=percentile(acks, 99),
        e2e_p50_s=percentile(e2e, 50), e2e_p99_s=percentile(e2e, 99),
        hubspot=call_totals(_since(stack.hubspot.calls, hubspot_mark)),
        kleer=call_totals(_since(stack.kleer.calls, kleer_mark)),
        expected_hubspot_calls=sum(n * calibration[a].hubspot_calls for a, n in counts.items()),
        expected_kleer_calls=sum(n * calibration[a].kleer_calls for a, n in counts.items()),
        timed_out=len(done) < len(delivered),
    )


def _since(log: CallLog, mark: int) -> list[dict[str, Any]]:
    """Calls logged after `mark` (the log only grows during a run)."""
    return log.list()[mark:]


def average_activities(calibration: dict[str, Calibration], mix: dict[str, float]) -> int:
    """Activities of an average execution of this mix, rounded (at least 1)."""
    total = sum(mix[a] for a in calibration)
    return max(1, round(sum(mix[a] * cal.activities for a, cal in calibration.items()) / total))


# -- the run ----------------------------------------------------------------------------------

def _portal(config: BenchConfig) -> PortalCredentials:
    """The demo portal with the simulator's HubSpot limit, as a deployment would configure it."""
    return PortalCredentials(DEMO_PORTAL, DEMO_HUBSPOT_TOKEN, DEMO_KLEER_COMPANY, DEMO_KLEER_KEY,
                             hubspot_rate_limit=config.hubspot_limit,
                             hubspot_rate_window_s=config.hubspot_window_ms / 1000)


def _worker_env(stack: LocalStack, config: BenchConfig) -> dict[str, str]:
    """The stack's worker environment, plus the portal's real limit (ignored by older settings)."""
    env = stack.worker_env()
    env.setdefault(f"PORTAL_{DEMO_PORTAL}_HUBSPOT_RATE_LIMIT", str(config.hubspot_limit))
    return env


def _stack(config: BenchConfig, log_dir: Path) -> LocalStack:
    settings = Settings(hubspot_client_secret=DEMO_CLIENT_SECRET, task_queue=BENCH_TASK_QUEUE,
                        portals={DEMO_PORTAL: _portal(config)})
    return LocalStack(settings=settings, run_worker=config.in_process_worker, log_dir=log_dir,
                      hubspot_rate_limit=(config.hubspot_limit, config.hubspot_window_ms))


async def _measure(stack: LocalStack, config: BenchConfig, workers: WorkerProcesses,
                   deadline: Deadline, say: Say) -> tuple[dict[str, Calibration], Burst | None]:
    """Calibration and burst, with the workers of this run polling."""
    expected = config.worker_processes + (1 if config.in_process_worker else 0)
    await wait_for_pollers(stack.client, BENCH_TASK_QUEUE, expected, min(60.0, deadline.left()),
                           workers)
    async with HubSpotDriver(stack.action_url("create-client"), DEMO_CLIENT_SECRET,
                             stack.hubspot_url, timeout_s=config.ack_timeout_s) as driver:
        say(f"calibrating {', '.join(config.mix)} ({config.calibration_runs} run(s) each)")
        calibration = await calibrate(stack, driver, list(config.mix), config.calibration_runs,
                                      deadline)
        # The calibration's calls are still in HubSpot's rolling window; a bulk enrollment meets
        # an idle portal, so let one window pass before the burst.
        await asyncio.sleep(min(config.hubspot_window_ms / 1000, max(0.0, deadline.left() - 60)))
        burst = await run_burst(stack, driver, config, calibration, deadline, say)
    workers.check_alive()
    return calibration, burst


async def _baseline(stack: LocalStack, config: BenchConfig, calibration: dict[str, Calibration],
                    deadline: Deadline, say: Say) -> NoopResult | None:
    workflows = config.noop_executions if config.noop_executions is not None else config.executions
    activities = config.noop_activities or average_activities(calibration, config.mix)
    if workflows <= 0 or deadline.left() <= 0:
        return None
    say(f"baseline: {workflows} no-op workflows x {activities} activities")
    return await run_noop_baseline(stack.client, workflows, activities, config.concurrency,
                                   deadline.left())


async def run_bench(config: BenchConfig, say: Say = _stderr) -> BenchReport:
    """The whole benchmark on a fresh embedded stack; returns the report (printing is the caller's)."""
    if config.worker_processes == 0 and not config.in_process_worker:
        raise ValueError("no worker at all: add --worker-processes or keep the in-process worker")
    deadline = Deadline(config.timeout_s)
    with tempfile.TemporaryDirectory(prefix="kleer-bench-") as tmp:
        log_dir = config.log_dir or Path(tmp)
        say(f"starting the stack (logs in {log_dir})")
        async with _stack(config, log_dir) as stack:
            stack.kleer.set_rate_limit(config.kleer_limit, 1000)
            workers = WorkerProcesses(config.worker_processes, _worker_env(stack, config),
                                      log_dir).start()
            try:
                calibration, burst = await _measure(stack, config, workers, deadline, say)
            finally:
                workers.stop()  # before the baseline, so it has the machine to itself
            noop = None if burst is None or burst.timed_out else \
                await _baseline(stack, config, calibration, deadline, say)
    return BenchReport(_config_dict(config), calibration, burst, noop)


def _config_dict(config: BenchConfig) -> dict[str, Any]:
    out = asdict(config)
    out["log_dir"] = str(config.log_dir) if config.log_dir else None
    return out


# -- command line -----------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> tuple[BenchConfig, Path | None, bool]:
    """The run's config, where to write the JSON report (None = nowhere) and --verbose."""
    p = argparse.ArgumentParser(prog="python -m bench.bench", description=__doc__.split("\n")[0])
    d = BenchConfig()
    p.add_argument("--executions", "-n", type=int, default=d.executions)
    p.add_argument("--hubspot-limit", type=int, default=d.hubspot_limit, metavar="MAX_PER_10S",
                   help="HubSpot simulator rate limit per portal, requests per 10 s")
    p.add_argument("--kleer-limit", type=int, default=d.kleer_limit, metavar="MAX_PER_S")
    p.add_argument("--mix", default=",".join(f"{k.removeprefix('create-')}={v:g}"
                                            for k, v in d.mix.items()),
                   help="action weights, e.g. client=40,invoice=30,agreement=15,project=15")
    p.add_argument("--concurrency", type=int, default=d.concurrency,
                   help="executions in flight at the driver (its HTTP pool caps this at 200)")
    p.add_argument("--worker-processes", type=int, default=d.worker_processes, metavar="K",
                   help="extra `python -m worker` processes")
    p.add_argument("--in-process-worker", action=argparse.BooleanOptionalAction,
                   default=d.in_process_worker)
    p.add_argument("--calibration-runs", type=int, default=d.calibration_runs)
    p.add_argument("--noop-executions", type=int, default=None,
                   help="no-op baseline workflows (default: --executions; 0 = skip)")
    p.add_argument("--noop-activities", type=int, default=None,
                   help="activities per no-op workflow (default: the mix's average)")
    p.add_argument("--timeout", type=float, default=d.timeout_s, help="overall budget, seconds")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--log-dir", type=Path, default=None, help="keep Temporal/worker logs here")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    p.add_argument("--verbose", action="store_true",
                   help="keep the SDK's warning per failed activity attempt (e.g. every 429)")
    args = p.parse_args(argv)
    config = BenchConfig(
        executions=args.executions, hubspot_limit=args.hubspot_limit, kleer_limit=args.kleer_limit,
        mix=parse_mix(args.mix), concurrency=args.concurrency,
        worker_processes=args.worker_processes, in_process_worker=args.in_process_worker,
        calibration_runs=args.calibration_runs, noop_executions=args.noop_executions,
        noop_activities=args.noop_activities, timeout_s=args.timeout, seed=args.seed,
        log_dir=args.log_dir)
    return config, args.json, args.verbose


def _quiet_temporal() -> None:
    """Keep the table readable: a 429 storm logs one traceback per retried activity attempt, and
    an overloaded worker one core warning per slow workflow task; the report has the counts.
    Must run before the first Temporal client is created (the runtime is process-wide)."""
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    Runtime.set_default(Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet))))


def main(argv: list[str] | None = None) -> int:
    config, json_path, verbose = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not verbose:
        _quiet_temporal()
    # Backstop past the phases' own deadline: also bounds startup and shutdown.
    report = asyncio.run(asyncio.wait_for(run_bench(config), config.timeout_s + 120))
    print(format_report(report))
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    burst = report.burst
    return 0 if burst is not None and burst.completed == burst.executions else 1


if __name__ == "__main__":
    sys.exit(main())
