"""Temporal worker: runs the seven action workflows and their activities.

Start as many as you like (`kleer-hubspot worker`); they share the task queue.
"""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client
from temporalio.worker import Worker

from activities.hubspot import HubSpotActivities
from activities.kleer import KleerActivities
from settings import Settings, load_settings
from temporal_client import connect_with_retry
from workflows import WORKFLOWS


def build_worker(client: Client, settings: Settings, **options: object) -> tuple[Worker, list]:
    """The worker and the activity holders (close them with `aclose()` after the worker stops)."""
    hubspot, kleer = HubSpotActivities(settings), KleerActivities(settings)
    activities = [hubspot.read_context, hubspot.write_back, hubspot.sync_back, hubspot.complete,
                  kleer.create, kleer.update, kleer.find_products]
    worker = Worker(client, task_queue=settings.task_queue, workflows=list(WORKFLOWS.values()),
                    activities=activities, **options)  # type: ignore[arg-type]
    return worker, [hubspot, kleer]


async def run_worker(settings: Settings) -> None:
    client = await connect_with_retry(settings)
    worker, holders = build_worker(client, settings)
    logging.getLogger(__name__).info("worker on %s, task queue %s",
                                     settings.temporal_address, settings.task_queue)
    try:
        await worker.run()
    finally:
        for holder in holders:
            await holder.aclose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run_worker(load_settings()))


if __name__ == "__main__":
    main()
