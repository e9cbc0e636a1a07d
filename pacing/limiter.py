"""GCRA rate limiting: `rate` calls per second on average, at most `burst` at once.

A rolling-window limit of N calls per W seconds (HubSpot's 190 per 10 s) is kept by pacing at a
share of N/W with a small burst: any window of W seconds then holds at most burst + share * N
calls, under N for the shares we use.
"""

from __future__ import annotations

import asyncio
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

# Turns already taken for the next call(s) of this task (Pacer.take_turn): a batch waits for its
# turn before it takes the queued items, and its first HTTP call then goes out without waiting.
_prepaid: ContextVar[int] = ContextVar("prepaid_turns", default=0)


@dataclass(frozen=True)
class RateLimit:
    rate_per_s: float
    burst: int = 1

    @classmethod
    def from_window(cls, max_calls: int, window_s: float, share: float, burst: int = 4) -> RateLimit:
        """Pace a rolling-window limit (HubSpot: 190 per 10 s) at a share of it."""
        rate = max_calls / window_s * share
        return cls(rate, max(1, min(burst, int(max_calls * (1 - share)) or 1)))


class Limiter(Protocol):
    async def acquire(self, key: str, rate_per_s: float, burst: int, reserve: int = 0) -> float:
        """0.0 = granted now (and counted); otherwise seconds to wait before asking again.
        `reserve`: grant only while that many units of the burst stay free for others."""


class LocalLimiter:
    """In-process GCRA: right for one process (tests, a single worker without a database)."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}

    async def acquire(self, key: str, rate_per_s: float, burst: int, reserve: int = 0) -> float:
        now = time.monotonic()
        interval = 1 / rate_per_s
        tolerance = interval * (max(burst, 1) - 1 - min(max(reserve, 0), max(burst, 1) - 1))
        tat = max(self._tat.get(key, now), now)
        if tat - now > tolerance:
            return tat - tolerance - now
        self._tat[key] = tat + interval
        return 0.0


class Pacer:
    """Waits for a call's turn under its key's limit, then counts it."""

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter
        self.waited_s = 0.0
        # One asker per key (and kind of work) in this process at a time, the others queued
        # behind it in order: a bulk enrollment has hundreds of calls waiting for one key, and
        # each asking the shared limiter on its own was a query per waiter per turn, nearly all
        # refused (the processes' share of the key is still decided by the limiter).
        self._queues: dict[tuple[str, bool], asyncio.Lock] = {}

    async def take_turn(self, key: str, limit: RateLimit, background: bool = False) -> None:
        """Wait for a turn now for the next call this task makes (see `wait`). Batching waits
        here before taking the items queued for its call, so the items that arrived while it
        waited go out with it, instead of waiting for the next turn."""
        await self.wait(key, limit, background)
        _prepaid.set(_prepaid.get() + 1)

    async def wait(self, key: str, limit: RateLimit, background: bool = False) -> None:
        """`background` (the outbound sync): only when the key's budget is idle, so the actions
        sharing it go first; a sync waits as long as a bulk enrollment keeps the budget busy."""
        if (turns := _prepaid.get()) > 0:
            _prepaid.set(turns - 1)
            return
        reserve = limit.burst - 1 if background else 0
        queue = self._queues.setdefault((key, background), asyncio.Lock())
        async with queue:
            while True:
                delay = await self._limiter.acquire(key, limit.rate_per_s, limit.burst, reserve)
                if delay <= 0:
                    return
                self.waited_s += delay
                await asyncio.sleep(min(delay, 5.0))
