"""Per-portal pacing: HubSpot activities run on the portal's rate-limited task queue, so a burst
stays under the portal's limit and does not delay another portal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from local.stack import (
    DEMO_CLIENT_SECRET,
    DEMO_HUBSPOT_TOKEN,
    DEMO_KLEER_COMPANY,
    DEMO_KLEER_KEY,
    LocalStack,
)
from settings import PortalCredentials, Settings, StepPolicy
from simulators.driver import HubSpotDriver

BUSY, QUIET = 12345, 888
LIMIT = 20  # per 10 s: budget 1.8 calls/s, of which 0.9/s for activities, callbacks every 1.1 s


@pytest.fixture(scope="module")
async def paced_stack() -> AsyncIterator[LocalStack]:
    settings = Settings(
        task_queue="kleer-hubspot-pacing", http_timeout_s=3,
        step_policy=StepPolicy(start_to_close_s=10, initial_retry_s=0.2, max_retry_s=2),
        portals={
            BUSY: PortalCredentials(BUSY, DEMO_HUBSPOT_TOKEN, DEMO_KLEER_COMPANY, DEMO_KLEER_KEY,
                                    hubspot_rate_limit=LIMIT),
            QUIET: PortalCredentials(QUIET, "quiet-token", 2, "quiet-key"),
        },
    )
    async with LocalStack(settings=settings, hubspot_rate_limit=(LIMIT, 10_000)) as stack:
        stack.hubspot.add_portal(QUIET, "quiet-token")
        stack.kleer.add_company(2, "quiet-key")
        yield stack


async def test_burst_is_paced_under_the_limit_and_other_portal_is_not_starved(paced_stack):
    stack = paced_stack
    busy = [stack.hubspot.create_object(BUSY, "companies", {"name": f"B{i}"}) for i in range(6)]
    quiet = [stack.hubspot.create_object(QUIET, "companies", {"name": f"Q{i}"}) for i in range(3)]
    done: dict[str, float] = {}
    async with HubSpotDriver(stack.action_url("create-client"), DEMO_CLIENT_SECRET,
                             stack.hubspot_url) as driver:
        async def one(portal: int, company: str) -> None:
            delivery = await driver.execute(portal, "COMPANY", int(company), {"name": company},
                                            action_url=stack.action_url("create-client"))
            out = await driver.wait_for_completion(delivery.callback_id, timeout_s=120, poll_s=0.1)
            assert out["result"] == "created", out
            done[f"{portal}:{company}"] = time.monotonic()

        started = time.monotonic()
        burst = [asyncio.create_task(one(BUSY, c)) for c in busy]
        await asyncio.sleep(1)
        await asyncio.gather(*(one(QUIET, c) for c in quiet))
        quiet_done = time.monotonic()
        busy_done_by_then = sum(1 for k, t in done.items() if k.startswith(f"{BUSY}:"))
        await asyncio.gather(*burst)
    calls = [c for c in stack.hubspot.calls.list() if c["key"] == BUSY]
    # 6 executions x 2 paced calls at 0.9/s: the burst takes ~13 s; the quiet portal, started a
    # second later, is done while most of the burst still waits for its turn.
    assert busy_done_by_then < len(busy) / 2, (busy_done_by_then, quiet_done - started)
    assert [c for c in calls if c["status"] == 429] == []
    # Never more than the limit in any rolling 10 s window.
    times = sorted(c["ts"] for c in calls)
    assert max(sum(1 for t in times if s <= t < s + 10) for s in times) <= LIMIT
