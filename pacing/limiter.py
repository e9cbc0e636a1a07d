"""GCRA rate limiting: `rate` calls per second on average, at most `burst` at once.

A rolling-window limit of N calls per W seconds (HubSpot's 190 per 10 s) is kept by pacing at a
share of N/W with a small burst: any window of W seconds then holds at most burst + share * N
calls, under N for the shares we use.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol


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
    async def acquire(self, key: str, rate_per_s: float, burst: int) -> float:
        """0.0 = granted now (and counted); otherwise seconds to wait before asking again."""


class LocalLimiter:
    """In-process GCRA: right for one process (tests, a single worker without a database)."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}

    async def acquire(self, key: str, rate_per_s: float, burst: int) -> float:
        now = time.monotonic()
        interval = 1 / rate_per_s
        tolerance = interval * (max(burst, 1) - 1)
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

    async def wait(self, key: str, limit: RateLimit) -> None:
        while True:
            delay = await self._limiter.acquire(key, limit.rate_per_s, limit.burst)
            if delay <= 0:
                return
            self.waited_s += delay
            await asyncio.sleep(min(delay, 5.0))
