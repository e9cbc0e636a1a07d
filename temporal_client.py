"""Connecting to Temporal with the project's data converter: pydantic payloads, encrypted when a
payload key is configured (codec.py)."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

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
    )
