"""HTTP front door: HubSpot POSTs action executions here; we verify, start a workflow, answer BLOCK.

`POST /hubspot/actions/{action}` per action (its actionUrl), `GET /healthz`.
Nothing slow happens here: HubSpot retries slow answers, and Temporal does the work.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

import telemetry
import web.app as web
from actions import ACTIONS
from codec_server import codec_endpoint
from hubspot_api.models import ExecutionRequest
from hubspot_api.signature import SignatureError, verify
from oauth.tokens import PortalDisconnected
from portals.directory import PortalDirectory
from portals.services import PortalServices, open_services
from settings import Settings, load_settings
from storage.db import StorageUnavailable
from temporal_client import check_search_attributes, connect_with_retry
from workflows import WORKFLOWS
from workflows.models import ActionExecution, ActionResult
from workflows.runs import outcome as run_outcome

log = logging.getLogger("api")


# A request whose body has not fully arrived by then is answered 408 (a slow or stuck sender
# must not hold a connection and a task for as long as it likes).
BODY_TIMEOUT_S = 5.0


class BadRequest(Exception):
    """A request we refuse before anything starts: status, and a message for the sender."""

    def __init__(self, status: int, message: str, outcome: str, **extra: object) -> None:
        super().__init__(message)
        self.status, self.message, self.outcome, self.extra = status, message, outcome, extra


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = BadRequest(413, f"request body larger than {limit} bytes", "too_large")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise too_large
    except TimeoutError:
        raise BadRequest(408, f"request body not received within {BODY_TIMEOUT_S:.0f} s",
                         "invalid") from None
    except ClientDisconnect:
        raise BadRequest(400, "the client went away before the body arrived", "invalid") from None
    return bytes(body)


def parse_execution(body: bytes) -> ExecutionRequest:
    """The execution HubSpot sent, or BadRequest (4xx, final) for anything malformed: not UTF-8,
    not JSON, nested too deep, holding text that is not text (lone surrogates cannot be stored
    anywhere downstream), or not shaped like an execution."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(400, f"body is not UTF-8 text: {exc.reason} at byte {exc.start}",
                         "invalid") from None
    try:
        raw = json.loads(text)
    except RecursionError:
        raise BadRequest(400, "body is nested too deeply to be a HubSpot action execution",
                         "invalid") from None
    except ValueError as exc:
        raise BadRequest(400, f"body is not JSON: {exc}", "invalid") from None
    try:
        json.dumps(raw, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(400, "body holds an escaped lone surrogate (e.g. \\udfff), which is not "
                              "text", "invalid") from None
    try:
        return ExecutionRequest.model_validate(raw)
    except ValidationError as exc:
        raise BadRequest(422, "body is not a HubSpot action execution", "invalid",
                         detail=exc.errors(include_url=False, include_input=False)) from None


def _error(status: int, message: str, headers: dict[str, str] | None = None,
           **extra: object) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message, **extra}, status_code=status,
                        headers=headers)


def _signed_uri(request: Request, settings: Settings) -> str:
    if settings.public_base_url:
        query = f"?{request.url.query}" if request.url.query else ""
        return settings.public_base_url.rstrip("/") + request.url.path + query
    return str(request.url)


async def _closed_run_result(client: Client, wf_id: str) -> ActionResult | None:
    """The outcome of a re-delivered execution whose run has already closed; None while it runs
    (or when it has no outcome: terminated, unreadable). HubSpot re-sends only when it did not
    get our first answer, so it may never have taken the callback that run completed: answering
    BLOCK again would leave it waiting for a callback that never comes. The outcome itself ends
    the action in HubSpot as the run ended it."""
    handle = client.get_workflow_handle(wf_id)
    try:
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            return None
        return await asyncio.wait_for(run_outcome(handle), timeout=5)
    except Exception as exc:  # noqa: BLE001 - BLOCK, as before, is the safe answer
        log.info("re-delivery of %s: no outcome to answer with (%s)", wf_id, exc)
        return None


def create_app(settings: Settings | None = None, client: Client | None = None,
               services: PortalServices | None = None) -> Starlette:
    """The API app. `client` (Temporal) and `services` (database, OAuth, directory) are opened in
    the app's lifespan when not given (the local stack and tests pass their own)."""
    settings = settings or load_settings()
    if not settings.hubspot_client_secret.strip():
        # Without it no request can be proven to come from HubSpot (a blank secret would let
        # anyone sign): refuse to serve at all rather than accept or reject everything.
        raise ValueError("HUBSPOT_CLIENT_SECRET is not set: the API needs the HubSpot app's client "
                         "secret to verify execution requests (developer account > app > Auth)")
    requests = telemetry.runtime(settings.metrics_bind).metric_meter.create_counter(
        "kleer_api_requests", "HubSpot action executions received, by outcome")

    def answer(response: JSONResponse, key: str, outcome: str) -> JSONResponse:
        requests.add(1, {"action": key if key in ACTIONS else "unknown", "outcome": outcome})
        return response

    state: dict[str, Any] = {"client": client} if client else {}
    starting = [0]  # workflow starts in flight in this process (the overload bound)
    if services is not None:
        state["services"] = services

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        opened = None
        if "services" not in state:
            state["services"] = opened = await open_services(settings)
        try:
            if "client" not in state:
                state["client"] = await connect_with_retry(settings)
                await check_search_attributes(state["client"], settings)
            yield
        finally:
            if opened is not None:
                await opened.aclose()

    async def portal_problem(portal_id: int) -> str | None:
        """Why an execution of this portal cannot work (answered FAIL_CONTINUE at once), or None.
        StorageUnavailable propagates: the caller answers 503 and HubSpot retries."""
        directory: PortalDirectory = state["services"].directory
        # A portal's standing is used for at most a second (no database round trip per execution
        # during a burst), and refreshed in the background after half of it, so that under
        # steady traffic no execution waits for the database either (in line, once a second,
        # that was 4% of the executions at 25/s: the acknowledgement's p99). A quiet portal's
        # next execution reads in line. A portal not in good standing is read again before an
        # execution is refused.
        record = await directory.installed(portal_id, max_age_s=1.0, refresh_after_s=0.5)
        if record is None and portal_id in settings.portals:
            return None  # configured in the environment (and not installed): nothing to refuse
        if record is None or record.status != "connected":
            record = await directory.installed(portal_id, fresh=True)
        if record is not None and record.status == "disconnected":
            return str(PortalDisconnected(portal_id, record.disconnected_reason or ""))
        if record is None and not await directory.known(portal_id):
            return (f"HubSpot portal {portal_id} is not connected to Kleer: install the Kleer app "
                    "in this portal (or configure its credentials)")
        return None

    async def execute(request: Request) -> JSONResponse:
        key = request.path_params["action"]
        try:
            body = await _read_body(request, settings.max_request_bytes)
        except BadRequest as exc:
            return answer(_error(exc.status, exc.message), key, exc.outcome)
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
            execution = parse_execution(body)
        except BadRequest as exc:
            return answer(_error(exc.status, exc.message, **exc.extra), key, exc.outcome)
        if execution.object.objectType != spec.object_type:
            return answer(_error(422, f"{spec.label} runs on {spec.object_type} records, "
                                      f"not {execution.object.objectType}"), key, "invalid")
        if starting[0] >= settings.max_starts_in_flight:
            # Overloaded: say so at once instead of answering in 10+ s (HubSpot would time out
            # and re-send, adding load). HubSpot retries a 429 after Retry-After; nothing is lost.
            return answer(_error(429, "too many executions at once; retry shortly",
                                 headers={"Retry-After": "2"}), key, "overloaded")
        try:
            problem = await portal_problem(execution.origin.portalId)
        except StorageUnavailable:
            log.exception("portal lookup failed for %s", execution.callbackId)
            return answer(_error(503, "the portal directory is unavailable; retry"), key,
                          "unavailable")
        if problem:
            # Final and visible in the HubSpot workflow history, instead of a run that cannot work.
            return answer(JSONResponse({"outputFields": {
                "hs_execution_state": "FAIL_CONTINUE", "result": "failed", "kleer_id": "",
                "error_message": problem,
            }}), key, "unknown_portal")
        run = ActionExecution(
            action=key, callback_id=execution.callbackId, portal_id=execution.origin.portalId,
            object_type=execution.object.objectType, object_id=execution.object.objectId,
            input_fields=execution.inputFields, policy=settings.step_policy,
            indexed=settings.search_attributes,
        )
        wf_id = run.workflow_id
        context = {"callback_id": execution.callbackId, "workflow_id": wf_id, "action": key,
                   "portal_id": run.portal_id}
        outcome = "started"
        result: ActionResult | None = None
        starting[0] += 1
        try:
            await state["client"].start_workflow(
                WORKFLOWS[key].run, run, id=wf_id, task_queue=settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=run.summary(),
            )
            log.debug("started %s for %s %s (%s)", key, run.object_type, run.object_id, wf_id,
                      extra=context)
        except WorkflowAlreadyStartedError:
            outcome = "duplicate"
            # Counted in flight like a start: under overload, re-deliveries are shed too.
            result = await _closed_run_result(state["client"], wf_id)
        except Exception:
            log.exception("could not start %s", wf_id, extra=context)
            # 503: HubSpot retries, and the same callbackId maps to the same workflow id.
            return answer(_error(503, "could not start the workflow; retry"), key, "unavailable")
        finally:
            starting[0] -= 1
        if outcome == "duplicate":
            log.info("re-delivery of %s: workflow %s already exists%s", execution.callbackId, wf_id,
                     f", closed: answered {result.state}" if result else "", extra=context)
            if result is not None:
                return answer(JSONResponse({"outputFields": result.output_fields()}), key, outcome)
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
    # The install link, OAuth callback and settings pages (web/): only with a database and an
    # OAuth client. They keep their own sessions (SessionMiddleware), CSRF checks and headers.
    if web.enabled(settings, services):
        routes += web.web_routes(settings, lambda: state["services"], lambda: state["client"])
    return Starlette(routes=routes, lifespan=lifespan)


def app() -> Starlette:
    """Factory for `uvicorn --factory api:app` (settings from the environment)."""
    return create_app()
