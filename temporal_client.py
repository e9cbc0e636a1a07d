"""Connecting to Temporal with the project's data converter: pydantic payloads, encrypted when a
payload key is configured (codec.py), run summaries left readable (ids only)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowHandle,
)
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.service import RPCError, TLSConfig

import telemetry
from codec import EncryptionCodec, PayloadConverter, PublicText
from settings import Settings
from workflows.models import SEARCH_ATTRIBUTES

log = logging.getLogger(__name__)
T = TypeVar("T")


def data_converter(settings: Settings, payload_codec: PayloadCodec | None = None) -> DataConverter:
    """pydantic JSON payloads (`PayloadConverter`), AES-GCM encrypted with a payload key (or
    through `payload_codec`, e.g. a codec endpoint's)."""
    codec = payload_codec or (
        EncryptionCodec.from_setting(settings.payload_key) if settings.payload_key else None)
    return DataConverter(payload_converter_class=PayloadConverter, payload_codec=codec)


class _ReadableSummaries(Interceptor):
    """A workflow's static summary (`ActionExecution.summary()`: action, portal, object type and
    id, nothing else) stays unencrypted so the Temporal UI's list is readable without a codec.
    Everything else (inputs, results, activity payloads, static and current details) is encrypted.
    """

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _ReadableSummariesOutbound(next)


class _ReadableSummariesOutbound(OutboundInterceptor):
    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        if isinstance(input.static_summary, str):
            input.static_summary = PublicText(input.static_summary)
        return await super().start_workflow(input)


def tls_config(settings: Settings) -> bool | TLSConfig:
    """TEMPORAL_TLS alone: TLS with the system's roots (Temporal Cloud with an API key); a client
    certificate and key (mTLS: Temporal Cloud or a self-hosted cluster), a private CA."""
    if not (settings.temporal_tls_cert or settings.temporal_tls_ca):
        return settings.temporal_tls
    return TLSConfig(
        client_cert=settings.temporal_tls_cert.read_bytes() if settings.temporal_tls_cert else None,
        client_private_key=settings.temporal_tls_key.read_bytes() if settings.temporal_tls_key
        else None,
        server_root_ca_cert=settings.temporal_tls_ca.read_bytes() if settings.temporal_tls_ca
        else None)


async def connect(settings: Settings, payload_codec: PayloadCodec | None = None) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings, payload_codec),
        interceptors=[_ReadableSummaries()],
        tls=tls_config(settings),
        api_key=settings.temporal_api_key,
        runtime=telemetry.runtime(settings.metrics_bind),
    )


class TemporalUnavailable(RuntimeError):
    """Temporal stayed unreachable for the whole wait."""


async def connect_with_retry(settings: Settings, timeout_s: float = 300) -> Client:
    """Wait for the cluster instead of dying when a process starts before Temporal is reachable
    (restarts, rolling deploys, `kleer-hubspot dev` starting the dev server).

    Says what it waits for (address, namespace, for how long) and gives up after `timeout_s`
    (`TemporalUnavailable`). Cancelling it stops the wait at once: `run()` cancels on SIGINT and
    SIGTERM. A Prometheus endpoint that cannot be opened is raised at once as
    `telemetry.MetricsBindError`: it is not a Temporal problem, and no retry fixes a busy port.
    """
    telemetry.runtime(settings.metrics_bind)
    where = f"Temporal at {settings.temporal_address} (namespace {settings.temporal_namespace})"
    loop = asyncio.get_running_loop()
    started, delay = loop.time(), 0.2
    try:
        while True:
            try:
                return await connect(settings)
            except Exception as exc:
                waited = loop.time() - started
                if waited > timeout_s:
                    raise TemporalUnavailable(
                        f"{where} not reachable after {waited:.0f} s: {exc}. Check TEMPORAL_ADDRESS, "
                        "TEMPORAL_NAMESPACE, TEMPORAL_TLS and TEMPORAL_API_KEY") from exc
                log.warning("waiting for %s for %.0f s: %s; retrying in %.1f s (Ctrl-C stops)",
                            where, waited, str(exc).strip() or type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)
    except asyncio.CancelledError:
        log.warning("stopped waiting for %s after %.0f s", where, loop.time() - started)
        raise


class SearchAttributesMissing(RuntimeError):
    """TEMPORAL_SEARCH_ATTRIBUTES is on and the namespace lacks some of ours."""


async def check_search_attributes(client: Client, settings: Settings) -> None:
    """With TEMPORAL_SEARCH_ATTRIBUTES on, the namespace must have ours, with their types. A run
    sets them on its first workflow task, so on a namespace without them every run would start
    and then fail that task over and over: the API refuses to start instead, naming what is
    missing. A server that does not let us list them (no permission, a proxy) is trusted, with a
    warning."""
    if not settings.search_attributes:
        return
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace))
    except RPCError as exc:
        log.warning("could not list the search attributes of namespace %s (%s): assuming ours "
                    "are registered", client.namespace, exc.message)
        return
    wrong = [f"{key.name} ({key.indexed_value_type.name.title()})"
             for key in SEARCH_ATTRIBUTES
             if listed.custom_attributes.get(key.name) != key.indexed_value_type]
    if wrong:
        raise SearchAttributesMissing(
            f"namespace {client.namespace} lacks the search attributes {', '.join(wrong)}: "
            "register them (README, \"Finding runs in the Temporal UI\") or set "
            "TEMPORAL_SEARCH_ATTRIBUTES=false")


class Stopped(Exception):
    """SIGINT or SIGTERM ended `run()`'s coroutine (after its cleanup ran)."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


async def _until_signal(main: Coroutine[Any, Any, T]) -> T:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(sig: int) -> None:
        if not received and task is not None:  # a second signal must not cut the cleanup short
            received.append(sig)
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # main thread only
            loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await main
    except asyncio.CancelledError:
        if received:
            raise Stopped(received[0]) from None
        raise


def run(main: Coroutine[Any, Any, T], *, release: bool = True) -> T:
    """`asyncio.run` for the commands: SIGINT/SIGTERM cancel `main` (so its cleanup runs: child
    processes stopped, connections closed) and exit with 128 + the signal's number; then the SDK
    core (client connections, runtime threads) is released while Python is still fully alive
    (`telemetry.release`), so exiting never aborts the interpreter. `release=False` keeps the
    runtime (and its metrics endpoint) for what the process does next."""
    code: Any = None
    try:
        return asyncio.run(_until_signal(main))
    except SystemExit as exc:  # its traceback holds the frames that hold the client: drop it
        code = exc.code
    except Stopped as exc:
        code = 128 + exc.signal_number
    finally:
        if release or code is not None:
            telemetry.release()
    raise SystemExit(code)
