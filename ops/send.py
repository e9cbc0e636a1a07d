"""Fire one's own execution: build the request HubSpot would send for an action, sign it (v3 or
v2) with the app's client secret, POST it to a running stack's actionUrl and wait for the run's
completion in Temporal (`kleer-hubspot send`).

Against the HubSpot simulator the callback is registered first (`POST /_sim/callbacks`), as
HubSpot's workflow engine would have it pending: the simulator refuses completions of callbacks
it does not know.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio.client import Client

from hubspot_api.signature import signed_headers
from simulators.driver import build_execution_body
from workflows.models import ActionResult, workflow_id
from workflows.runs import outcome


class SendError(RuntimeError):
    """The execution could not be delivered or did not complete in time."""


@dataclass
class Sent:
    action_url: str
    callback_id: str
    workflow_id: str
    status: int
    answer: Any
    result: ActionResult | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        """HubSpot's answer is BLOCK: a run was started (or already existed) and will complete."""
        fields = self.answer.get("outputFields", {}) if isinstance(self.answer, dict) else {}
        return self.status == 200 and fields.get("hs_execution_state") == "BLOCK"


def parse_inputs(pairs: list[str]) -> dict[str, str]:
    """`name=value` pairs (the action's input field names) to inputFields."""
    inputs = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SendError(f"--input {pair!r}: write name=value, e.g. --input payment_days=30")
        inputs[name.strip()] = value
    return inputs


async def register_callback(hubspot_sim_url: str, portal_id: int, callback_id: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(f"{hubspot_sim_url.rstrip('/')}/_sim/callbacks",
                                   json={"portal_id": portal_id, "callback_id": callback_id})
        response.raise_for_status()


async def send(
    *, api_url: str, action: str, object_type: str, object_id: int, portal_id: int,
    inputs: dict[str, str], client_secret: str, signature_version: str = "v3",
    hubspot_sim_url: str | None = None, temporal: Client | None = None,
    timeout_s: float = 120, callback_id: str | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> Sent:
    """Deliver one signed execution and, with a Temporal client, wait for its ActionResult."""
    callback_id = callback_id or f"ap-send-{portal_id}-{uuid.uuid4().hex[:12]}"
    url = f"{api_url.rstrip('/')}/hubspot/actions/{action}"
    body = json.dumps(build_execution_body(portal_id, object_type, object_id, inputs,
                                           callback_id=callback_id)).encode()
    sent = Sent(url, callback_id, workflow_id(action, object_type, object_id, callback_id), 0, None)
    if hubspot_sim_url:
        try:
            await register_callback(hubspot_sim_url, portal_id, callback_id)
            sent.notes.append(f"callback {callback_id} registered in the HubSpot simulator at "
                              f"{hubspot_sim_url}")
        except httpx.HTTPError as exc:
            sent.notes.append(f"could not register the callback in the HubSpot simulator at "
                              f"{hubspot_sim_url} ({exc}): the run's completion will be refused")
        progress(sent.notes[-1])
    progress(f"POST {url}  (signed {signature_version}, callbackId {callback_id})")
    headers = {"Content-Type": "application/json",
               **signed_headers(client_secret, "POST", url, body, signature_version)}
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise SendError(f"could not reach {url}: {exc}. Is the stack running "
                        "(./run.sh --no-demo, or kleer-hubspot api)?") from exc
    sent.status = response.status_code
    try:
        sent.answer = response.json()
    except ValueError:
        sent.answer = response.text
    progress(f"answer {sent.status}: {json.dumps(sent.answer)}")
    if not sent.blocked or temporal is None:
        return sent
    progress(f"waiting for run {sent.workflow_id} ...")
    handle = temporal.get_workflow_handle(sent.workflow_id)
    try:
        sent.result = await asyncio.wait_for(outcome(handle), timeout_s)
    except TimeoutError:
        raise SendError(f"run {sent.workflow_id} did not complete within {timeout_s:.0f} s "
                        "(is a worker running?)") from None
    return sent
