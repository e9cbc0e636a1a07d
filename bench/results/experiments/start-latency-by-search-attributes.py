"""Start latency on the dev server by search-attribute set, after the server holds N runs with it.

For each variant: a fresh dev server; preload N workflow starts carrying the variant's attributes
(no worker: they stay open, like a burst not yet drained); then open-loop starts at RATE/s for
DURATION s, alternating slices between the variant and no attributes; p50/p99 of each."""

import asyncio
import sys
import time
import uuid

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3]))
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from local.dev import new_payload_key
from local.temporal_server import DevServer
from settings import Settings
from temporal_client import connect
from workflows import WORKFLOWS
from workflows.models import ACTION, CALLBACK_ID, OBJECT_ID, PORTAL_ID, ActionExecution

VARIANTS = {
    "four": lambda e: [
        SearchAttributePair(PORTAL_ID, e.portal_id),
        SearchAttributePair(ACTION, e.action),
        SearchAttributePair(OBJECT_ID, str(e.object_id)),
        SearchAttributePair(CALLBACK_ID, e.callback_id),
    ],
    "two": lambda e: [
        SearchAttributePair(PORTAL_ID, e.portal_id),
        SearchAttributePair(OBJECT_ID, str(e.object_id)),
    ],
    "summary": lambda e: [],  # no attributes, the summary only
    "four-no-summary": lambda e: VARIANTS["four"](e),
    "none": lambda e: [],
}
WITH_SUMMARY = {"four", "two", "summary"}


def execution(i: int) -> ActionExecution:
    return ActionExecution(
        action="create-client",
        callback_id=f"cb-{uuid.uuid4().hex}",
        portal_id=12345,
        object_type="COMPANY",
        object_id=10_000_000 + i,
        input_fields={},
    )


async def start(client, variant: str, i: int) -> float:
    e = execution(i)
    sa = VARIANTS[variant](e)
    t = time.perf_counter()
    await client.start_workflow(
        WORKFLOWS["create-client"].run,
        e,
        id=e.workflow_id,
        task_queue="sa-exp",
        search_attributes=TypedSearchAttributes(sa) if sa else None,
        static_summary=e.summary() if variant in WITH_SUMMARY else None,
    )
    return time.perf_counter() - t


async def open_loop(client, variant: str, rate: float, duration: float, base: int) -> list[float]:
    tasks = []
    n = int(rate * duration)
    t0 = time.perf_counter()
    for k in range(n):
        delay = t0 + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(start(client, variant, base + k)))
    return await asyncio.gather(*tasks)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def main(preload: int, rate: float, duration: float, rounds: int, variants: list[str]) -> None:
    for variant in variants:
        with DevServer() as server:
            client = await connect(Settings(temporal_address=server.address, payload_key=new_payload_key()))
            gate = asyncio.Semaphore(50)

            async def pre(i, client=client, variant=variant, gate=gate):
                async with gate:
                    await start(client, variant, i)

            t = time.perf_counter()
            await asyncio.gather(*(pre(i) for i in range(preload)))
            print(f"{variant}: preloaded {preload} in {time.perf_counter() - t:.1f} s", flush=True)
            await asyncio.sleep(5)
            lat = {variant: [], "bare": []}
            base = 1_000_000
            for r in range(rounds):
                for v in [variant, "none"] if r % 2 == 0 else ["none", variant]:
                    lat["bare" if v == "none" else v] += await open_loop(
                        client, v, rate, duration / rounds, base
                    )
                    base += 10_000
                    await asyncio.sleep(2)
            a, b = lat[variant], lat["bare"]
            print(
                f"{variant}: p50 {pct(a, 50) * 1000:.1f} ms p99 {pct(a, 99) * 1000:.1f} ms"
                f" | none: p50 {pct(b, 50) * 1000:.1f} p99 {pct(b, 99) * 1000:.1f}"
                f" | p99 ratio {pct(a, 99) / pct(b, 99):.2f}",
                flush=True,
            )


asyncio.run(
    main(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split(","))
)
