"""Connecting to Temporal with the project's data converter (pydantic; encryption when keyed)."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from settings import Settings


def data_converter(settings: Settings) -> DataConverter:
    return pydantic_data_converter


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
    )


__all__ = ["connect", "data_converter", "dataclasses"]
