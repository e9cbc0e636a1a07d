"""Coalescing: the same kind of call from concurrent activities of one portal, sent as one batch.

During a bulk enrollment hundreds of runs want the same HubSpot call at the same moment (read a
company, write a Kleer id back, complete a callback). HubSpot has batch endpoints for each, up
to 100 items a call, and the portal's rate limit counts calls, not items.

A `Coalescer` sends at once when its kind has not sent for a while, so a quiet portal waits for
nothing; while calls are in flight (or waiting for the rate limiter) new items queue up, and the
next call takes up to `max_batch` of them. A kind that is busy (it sent less than `window_s`
ago) lets the next batch gather until the window has passed, unless it is full: in a bulk
enrollment every kind always has an item waiting, and without the window each call would carry
only what arrived since the kind's last turn (about 3 items; bench/results). A full batch goes
out as soon as a slot is free. The send function answers per item (a result or an exception), so
one bad record fails only its own activity, never its neighbours, and retries stay per execution.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741  (an item of a batch)
R = TypeVar("R")

Outcome = R | BaseException
SendBatch = Callable[[list[I]], Awaitable[Sequence["Outcome[R]"]]]


@dataclass
class BatchStats:
    """Per kind: calls made and items carried (the benchmark reports the fill)."""

    calls: int = 0
    items: int = 0
    sizes: list[int] = field(default_factory=list)

    @property
    def fill(self) -> float:
        return self.items / self.calls if self.calls else 0.0


class Coalescer(Generic[I, R]):
    def __init__(self, send: SendBatch, max_batch: int = 100, max_in_flight: int = 2,
                 stats: BatchStats | None = None, weight: Callable[[I], int] | None = None,
                 gate: Callable[[], Awaitable[None]] | None = None,
                 window_s: float = 0.0) -> None:
        """`weight`: how many of the batch's `max_batch` places an item takes (a group of
        line items takes one per line item); 1 each by default. `gate`: awaited before a
        batch takes its items (the portal's turn under its rate limit), so whatever queued up
        while waiting goes out in that batch. `window_s`: how long a busy kind lets a batch
        gather (see the module's docstring); 0 = never waits."""
        self._send = send
        self._gate = gate
        self._window_s = window_s
        self._last_batch = -float("inf")  # loop time the last batch started to gather from
        self._full = asyncio.Event()
        self._weight = weight or (lambda item: 1)
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._queued = 0  # places the pending items take
        self._in_flight = 0
        self._waiting = 0  # flights waiting at the gate (they take their items after it)
        self._tasks: set[asyncio.Task] = set()
        self.stats = stats or BatchStats()

    async def submit(self, item: I) -> R:
        """The item's own outcome; raises its own exception."""
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        self._queued += self._weight(item)
        if self._queued >= self._max_batch:
            self._full.set()
        self._kick()
        return await done

    def _take(self) -> list[tuple[I, asyncio.Future[R]]]:
        """The next batch: queued items up to max_batch places (at least one item)."""
        taken, places = 0, 0
        for item, _ in self._pending:
            weight = self._weight(item)
            if taken and places + weight > self._max_batch:
                break
            taken += 1
            places += weight
        batch, self._pending = self._pending[:taken], self._pending[taken:]
        self._queued -= places
        if self._queued < self._max_batch:
            self._full.clear()
        return batch

    def _kick(self) -> None:
        while len(self._pending) > self._waiting and self._in_flight < self._max_in_flight:
            self._in_flight += 1
            self._waiting += 1
            task = asyncio.create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _gather(self) -> None:
        """A busy kind's next batch waits until `window_s` after the previous one (or is full)."""
        loop = asyncio.get_running_loop()
        wait = self._last_batch + self._window_s - loop.time()
        self._last_batch = max(loop.time(), self._last_batch + self._window_s)
        if wait > 0 and not self._full.is_set():
            try:
                await asyncio.wait_for(self._full.wait(), wait)
            except TimeoutError:
                pass

    async def _run(self) -> None:
        try:
            if self._window_s > 0:
                await self._gather()
            if self._gate is not None:
                await self._gate()
        except BaseException as exc:  # no turn (cancelled, limiter down): fail what would go
            self._waiting -= 1
            batch = self._take()
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            self._in_flight -= 1
            self._kick()
            return
        self._waiting -= 1
        batch = [(item, done) for item, done in self._take() if not done.cancelled()]
        if not batch:
            self._in_flight -= 1
            self._kick()
            return
        await self._send_batch(batch)

    async def _send_batch(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        size = sum(self._weight(item) for item, _ in batch)
        self.stats.calls += 1
        self.stats.items += size
        self.stats.sizes.append(size)
        try:
            try:
                outcomes = list(await self._send([item for item, _ in batch]))
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"batch answered {len(outcomes)} outcomes for {len(batch)}")
            except BaseException as exc:  # the whole call failed: every item shares it
                outcomes = [exc] * len(batch)
            for (_, done), outcome in zip(batch, outcomes, strict=True):
                if done.done():
                    continue
                if isinstance(outcome, BaseException):
                    done.set_exception(outcome)
                else:
                    done.set_result(outcome)
        finally:
            self._in_flight -= 1
            self._kick()

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
