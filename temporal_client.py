"""Connecting to Temporal with the project's data converter: pydantic payloads, encrypted when a
payload key is configured (codec.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

import telemetry
from codec import EncryptionCodec
from settings import Settings


def data_converter(settings: Settings) -> DataConverter:
    if not settings.payload_key:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter,
                               payload_codec=EncryptionCodec.from_setting(settings.payload_key))


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        tls=settings.temporal_tls,
        api_key=settings.temporal_api_key,
        runtime=telemetry.runtime(settings.metrics_bind),
    )


async def connect_with_retry(settings: Settings, timeout_s: float = 300) -> Client:
    """Wait for the cluster instead of dying when a process starts before Temporal is reachable
    (restarts, rolling deploys, `kleer-hubspot dev` starting the dev server)."""
    loop = asyncio.get_running_loop()
    deadline, delay = loop.time() + timeout_s, 0.2
    while True:
        try:
            return await connect(settings)
        except Exception as exc:
            if loop.time() > deadline:
                raise
            logging.getLogger(__name__).warning("Temporal at %s not reachable (%s); retrying",
                                                settings.temporal_address, type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)
