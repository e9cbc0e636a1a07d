"""Callback completions batched per portal: one HubSpot call completes many executions.

In a bulk enrollment thousands of runs finish within seconds of each other; completing each
with its own call would spend a large share of the portal's rate limit on bookkeeping. A
completion waits at most `flush_s` for company, then goes out with up to 100 others through the
batch endpoint. Each waiting activity gets its own item's outcome.
"""

from __future__ import annotations

import asyncio
import contextlib

from hubspot_api.client import BATCH_LIMIT, HubSpotClient
from service_errors import ServiceError


class CallbackBatcher:
    def __init__(self, hubspot: HubSpotClient, flush_s: float) -> None:
        self._hubspot = hubspot
        self._flush_s = flush_s
        self._pending: list[tuple[str, dict[str, str], asyncio.Future[None]]] = []
        self._timer: asyncio.Task | None = None
        self._sending: set[asyncio.Task] = set()

    async def complete(self, callback_id: str, output_fields: dict[str, str]) -> None:
        """Resolves when HubSpot accepted this completion; raises its ServiceError otherwise."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((callback_id, output_fields, done))
        if len(self._pending) >= BATCH_LIMIT:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later())
        await done

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._flush_s)
        self._timer = None
        self._flush()

    def _flush(self) -> None:
        batch, self._pending = self._pending[:BATCH_LIMIT], self._pending[BATCH_LIMIT:]
        if batch:
            task = asyncio.create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[str, dict[str, str], asyncio.Future[None]]]) -> None:
        try:
            if len(batch) == 1:  # alone: the single endpoint answers precisely
                cid, fields, _ = batch[0]
                await self._hubspot.complete_callback(cid, fields)
                failures: dict[str, ServiceError] = {}
            else:
                failures = await self._hubspot.complete_callbacks([(c, f) for c, f, _ in batch])
        except ServiceError as exc:  # the whole call failed: every item shares the outcome
            for *_, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for cid, _, done in batch:
            if not done.done():
                if cid in failures:
                    done.set_exception(failures[cid])
                else:
                    done.set_result(None)

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        self._flush()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
