"""HubSpotDriver: plays HubSpot's workflow engine against our actionUrl.

It registers the pending callback in the HubSpot simulator, sends signed execution requests
(hubspot.md section 1), retries like HubSpot (timeouts, connection errors, 5xx, 429; re-signed with
a fresh timestamp each time; other 4xx are final) and waits for the callback completion.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from hubspot_api.signature import signed_headers

BACKOFF_START_S = 0.2
BACKOFF_CAP_S = 5.0


@dataclass
class DeliveryResult:
    callback_id: str
    attempts: int
    status_code: int | None
    response_json: Any
    ack_latency_s: float | None  # duration of the attempt that got the final answer


def build_execution_body(portal_id: int, object_type: str, object_id: int,
                         input_fields: dict[str, str], action_definition_id: int = 1,
                         callback_id: str | None = None, workflow_id: int = 777,
                         enrollment_id: int | None = None) -> dict[str, Any]:
    """The JSON HubSpot POSTs to an actionUrl for one action execution."""
    if callback_id is None:
        callback_id = f"ap-{action_definition_id}-{portal_id}-{uuid.uuid4().hex[:12]}"
    if enrollment_id is None:
        enrollment_id = random.randint(1, 2**31)
    return {
        "callbackId": callback_id,
        "origin": {"portalId": portal_id, "actionDefinitionId": action_definition_id,
                   "actionDefinitionVersion": 1,
                   "actionExecutionIndexIdentifier": {"enrollmentId": enrollment_id,
                                                      "actionExecutionIndex": 0}},
        "context": {"source": "WORKFLOWS", "workflowId": workflow_id},
        "object": {"objectId": object_id, "objectType": object_type},
        "inputFields": dict(input_fields),
    }


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class HubSpotDriver:
    """Async context manager owning one httpx client for executions and sim admin calls."""

    def __init__(self, action_url: str, client_secret: str, hubspot_sim_url: str,
                 timeout_s: float = 10) -> None:
        self.action_url = action_url
        self.client_secret = client_secret
        self.hubspot_sim_url = hubspot_sim_url.rstrip("/")
        # Simulator bookkeeping on its own connections: a full execution pool must not starve it.
        self._admin = httpx.AsyncClient(timeout=30)
        self._http = httpx.AsyncClient(timeout=timeout_s,
                                       limits=httpx.Limits(max_connections=200))

    async def __aenter__(self) -> HubSpotDriver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._admin.aclose()

    async def register_callback(self, portal_id: int, callback_id: str) -> None:
        """Idempotent on the simulator, so a dropped connection is simply tried again (a reused
        keep-alive connection the server closes at that moment answers ReadError: the bench's
        5,000-execution burst lost one delivery to it)."""
        body = {"portal_id": portal_id, "callback_id": callback_id}
        for attempt in range(3):
            try:
                response = await self._admin.post(f"{self.hubspot_sim_url}/_sim/callbacks",
                                                  json=body)
                break
            except httpx.TransportError:
                if attempt == 2:
                    raise
        response.raise_for_status()

    async def send(self, body: bytes, signature_version: str = "v3",
                   headers: dict[str, str] | None = None,
                   action_url: str | None = None) -> httpx.Response:
        """One signed POST of raw body bytes to the actionUrl (tests tamper with these)."""
        url = action_url or self.action_url
        signed = signed_headers(self.client_secret, "POST", url, body, signature_version)
        all_headers = {"Content-Type": "application/json", **signed, **(headers or {})}
        return await self._http.post(url, content=body, headers=all_headers)

    async def execute(self, portal_id: int, object_type: str, object_id: int,
                      input_fields: dict[str, str], action_definition_id: int = 1,
                      callback_id: str | None = None, signature_version: str = "v3",
                      max_attempts: int = 8, action_url: str | None = None) -> DeliveryResult:
        """Deliver one execution with HubSpot's retry behaviour; returns the final answer.

        `action_url` overrides the driver's default, for apps with one URL per action.
        """
        payload = build_execution_body(portal_id, object_type, object_id, input_fields,
                                       action_definition_id, callback_id)
        callback_id = payload["callbackId"]
        await self.register_callback(portal_id, callback_id)
        body = json.dumps(payload).encode()
        delay = BACKOFF_START_S
        status: int | None = None
        answer: Any = None
        latency: float | None = None
        for attempt in range(1, max_attempts + 1):
            started = time.monotonic()
            wait: float | None = None
            try:
                response = await self.send(body, signature_version, action_url=action_url)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                status, answer, latency = None, {"error": repr(exc)}, None
            else:
                latency = time.monotonic() - started
                status = response.status_code
                try:
                    answer = response.json()
                except ValueError:
                    answer = response.text
                if status < 500 and status != 429:
                    return DeliveryResult(callback_id, attempt, status, answer, latency)
                wait = _retry_after(response)
            if attempt < max_attempts:
                await asyncio.sleep(wait if wait is not None else delay)
                delay = min(delay * 2, BACKOFF_CAP_S)
        return DeliveryResult(callback_id, max_attempts, status, answer, latency)

    async def wait_for_completion(self, callback_id: str, timeout_s: float = 60,
                                  poll_s: float = 0.2) -> dict[str, Any]:
        """outputFields of the completed callback; TimeoutError if it stays pending."""
        deadline = time.monotonic() + timeout_s
        while True:
            response = await self._admin.get(f"{self.hubspot_sim_url}/_sim/callbacks")
            response.raise_for_status()
            callback = response.json()["callbacks"].get(callback_id)
            if callback and callback["state"] == "completed":
                return callback["outputFields"]
            if time.monotonic() >= deadline:
                raise TimeoutError(f"callback {callback_id} not completed within {timeout_s}s")
            await asyncio.sleep(poll_s)

    async def run_many(self, executions: Iterable[dict[str, Any]],
                       concurrency: int = 50) -> list[DeliveryResult]:
        """Execute many (each a dict of `execute` kwargs) with bounded concurrency, in order."""
        gate = asyncio.Semaphore(concurrency)

        async def one(kwargs: dict[str, Any]) -> DeliveryResult:
            async with gate:
                return await self.execute(**kwargs)

        return list(await asyncio.gather(*(one(kw) for kw in executions)))
