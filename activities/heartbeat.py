"""HubSpot steps mostly wait: for their batch to gather and for the portal's turn under its rate
limit. In a bulk enrollment that wait can outlast a fixed step timeout, and a step that times out
while its item is queued is retried at the back of the queue, again and again (measured:
bench/results/issue12-off-n1000-livelock.txt). So these steps heartbeat while they wait: a lost
worker is still noticed within the heartbeat timeout, and a step that is only waiting its turn
is never timed out for it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from temporalio import activity

P = ParamSpec("P")
R = TypeVar("R")

HEARTBEAT_EVERY_S = 5.0


def heartbeating(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Runs the activity and heartbeats every few seconds until it ends (or is cancelled)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        every = HEARTBEAT_EVERY_S
        if activity.in_activity() and (timeout := activity.info().heartbeat_timeout):
            every = min(every, timeout.total_seconds() / 3)
        task = asyncio.ensure_future(fn(*args, **kwargs))  # copies the activity's context
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=every)
                if done:
                    return task.result()
                if activity.in_activity():
                    activity.heartbeat()
        finally:
            if not task.done():
                task.cancel()

    return wrapper
