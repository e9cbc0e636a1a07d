"""HTTP front door: HubSpot POSTs action executions here; we verify, start a workflow, answer BLOCK.

`POST /hubspot/actions/{action}` per action (its actionUrl), `GET /healthz`.
Nothing slow happens here: HubSpot retries slow answers, and Temporal does the work.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

import telemetry
from actions import ACTIONS
from codec_server import codec_endpoint
from hubspot_api.models import ExecutionRequest
from hubspot_api.signature import SignatureError, verify
from settings import Settings, load_settings
from temporal_client import connect_with_retry
from workflows import WORKFLOWS
from workflows.models import ActionExecution

log = logging.getLogger("api")


class BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


def _error(status: int, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message, **extra}, status_code=status)


def _signed_uri(request: Request, settings: Settings) -> str:
    if settings.public_base_url:
        query = f"?{request.url.query}" if request.url.query else ""
        return settings.public_base_url.rstrip("/") + request.url.path + query
    return str(request.url)


def create_app(settings: Settings | None = None, client: Client | None = None) -> Starlette:
    settings = settings or load_settings()
    requests = telemetry.runtime(settings.metrics_bind).metric_meter.create_counter(
        "kleer_api_requests", "HubSpot action executions received, by outcome")

    def answer(response: JSONResponse, key: str, outcome: str) -> JSONResponse:
        requests.add(1, {"action": key if key in ACTIONS else "unknown", "outcome": outcome})
        return response

    state: dict[str, Client] = {"client": client} if client else {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if "client" not in state:
            state["client"] = await connect_with_retry(settings)
        yield

    async def execute(request: Request) -> JSONResponse:
        key = request.path_params["action"]
        try:
            body = await _read_body(request, settings.max_request_bytes)
        except BodyTooLarge:
            return answer(_error(413, f"request body larger than {settings.max_request_bytes} bytes"),
                          key, "too_large")
        try:
            verify(settings.hubspot_client_secret, request.method, _signed_uri(request, settings),
                   body, {k.lower(): v for k, v in request.headers.items()})
        except SignatureError as exc:
            log.warning("rejected unsigned/invalid request to %s: %s", key, exc)
            return answer(_error(401, f"invalid HubSpot signature: {exc}"), key, "bad_signature")
        spec = ACTIONS.get(key)
        if spec is None:
            return answer(_error(404, f"unknown action {key!r}; known: {', '.join(ACTIONS)}"), key,
                          "unknown_action")
        try:
            execution = ExecutionRequest.model_validate(json.loads(body))
        except (ValueError, ValidationError) as exc:
            detail = exc.errors(include_url=False, include_input=False) \
                if isinstance(exc, ValidationError) else str(exc)
            return answer(_error(422, "body is not a HubSpot action execution", detail=detail), key,
                          "invalid")
        if execution.object.objectType != spec.object_type:
            return answer(_error(422, f"{spec.label} runs on {spec.object_type} records, "
                                      f"not {execution.object.objectType}"), key, "invalid")
        if execution.origin.portalId not in settings.portals:
            # Final and visible in the HubSpot workflow history, instead of a run that cannot work.
            return answer(JSONResponse({"outputFields": {
                "hs_execution_state": "FAIL_CONTINUE", "result": "failed", "kleer_id": "",
                "error_message": f"HubSpot portal {execution.origin.portalId} is not connected "
                                 "to Kleer: configure its credentials",
            }}), key, "unknown_portal")
        run = ActionExecution(
            action=key, callback_id=execution.callbackId, portal_id=execution.origin.portalId,
            object_type=execution.object.objectType, object_id=execution.object.objectId,
            input_fields=execution.inputFields, policy=settings.step_policy,
        )
        wf_id = run.workflow_id
        context = {"callback_id": execution.callbackId, "workflow_id": wf_id, "action": key,
                   "portal_id": run.portal_id}
        outcome = "started"
        try:
            await state["client"].start_workflow(
                WORKFLOWS[key].run, run, id=wf_id, task_queue=settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=run.search_attributes() if settings.search_attributes else None,
                static_summary=run.summary(),
            )
            log.info("started %s for %s %s (%s)", key, run.object_type, run.object_id, wf_id,
                     extra=context)
        except WorkflowAlreadyStartedError:
            outcome = "duplicate"
            log.info("re-delivery of %s: workflow %s already exists", execution.callbackId, wf_id,
                     extra=context)
        except Exception:
            log.exception("could not start %s", wf_id, extra=context)
            # 503: HubSpot retries, and the same callbackId maps to the same workflow id.
            return answer(_error(503, "could not start the workflow; retry"), key, "unavailable")
        return answer(JSONResponse({"outputFields": {
            "hs_execution_state": "BLOCK",
            "hs_expiration_duration": settings.callback_expiration,
        }}), key, outcome)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "actions": list(ACTIONS)})

    routes = [
        Route("/hubspot/actions/{action}", execute, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    if settings.payload_key:
        routes.append(Route("/codec/{op:str}", codec_endpoint(settings), methods=["POST", "OPTIONS"]))
    return Starlette(routes=routes, lifespan=lifespan)


def app() -> Starlette:
    """Factory for `uvicorn --factory api:app` (settings from the environment)."""
    return create_app()
