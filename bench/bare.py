"""The bare `start_workflow` endpoint: the floor our API's acknowledgement is compared with.

    python -m bench.bare --port P      (settings from the environment, like `kleer-hubspot api`)

A minimal Starlette app that only starts the same workflow, with the same input, id and task
queue, on the same Temporal server (same client settings, so the same data converter) as
`api.py` does for a create-client execution, and answers BLOCK. Nothing else: no signature check,
no validation, no portal lookup, no search attributes or summary, no overload bound, no metrics.
Served by uvicorn with the same defaults as `kleer-hubspot api`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.common import WorkflowIDReusePolicy

from settings import load_settings
from temporal_client import connect_with_retry
from workflows import WORKFLOWS
from workflows.models import ActionExecution


def create_bare_app() -> Starlette:
    settings = load_settings()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["client"] = await connect_with_retry(settings)
        yield

    async def start(request: Request) -> JSONResponse:
        key = request.path_params["action"]
        body = json.loads(await request.body())
        run = ActionExecution(
            action=key, callback_id=body["callbackId"], portal_id=body["origin"]["portalId"],
            object_type=body["object"]["objectType"], object_id=body["object"]["objectId"],
            input_fields=body.get("inputFields") or {}, policy=settings.step_policy)
        await state["client"].start_workflow(
            WORKFLOWS[key].run, run, id=run.workflow_id, task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        return JSONResponse({"outputFields": {"hs_execution_state": "BLOCK",
                                              "hs_expiration_duration": settings.callback_expiration}})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/hubspot/actions/{action}", start, methods=["POST"]),
                             Route("/healthz", health, methods=["GET"])], lifespan=lifespan)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bare", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    uvicorn.run("bench.bare:create_bare_app", factory=True, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
