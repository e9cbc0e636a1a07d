"""Encryption as an engineer meets it: the run summary readable in the list, everything else
ciphertext; the codec endpoint's auth modes, CORS preflight and empty requests; the Temporal CLI
decoding through it."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from dataclasses import replace

import httpx
import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.query.v1 import WorkflowQuery
from temporalio.api.workflowservice.v1 import QueryWorkflowRequest
from temporalio.common import WorkflowIDReusePolicy

from api import create_app
from codec import ENCODING, PLAINTEXT_MARKER, EncryptionCodec, PublicText, RemoteDecodeCodec
from local.stack import ApiServer
from local.temporal_server import temporal_binary
from settings import Settings
from temporal_client import connect, data_converter
from tests.conftest import CODEC_TOKEN, PAYLOAD_KEY, PORTAL
from workflows.models import record_workflow_id

CUSTOMER = "Kodad Kund AB"


async def _run(stack, run) -> dict:
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": CUSTOMER})
    out = await run("create-client", "COMPANY", company, {"name": CUSTOMER})
    assert out["result"] == "created"
    return {**out, "company": company}


async def test_summary_stays_readable_while_inputs_results_and_details_are_encrypted(stack, run):
    out = await _run(stack, run)
    wf = out["workflow_id"]
    history = await stack.client.get_workflow_handle(wf).fetch_history()
    started = history.events[0]
    assert started.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    summary = started.user_metadata.summary
    # The raw history: the summary is JSON text (marked), the input ciphertext.
    assert summary.metadata["encoding"] == b"json/plain"
    assert summary.metadata[PLAINTEXT_MARKER] == b"true"
    assert json.loads(summary.data) == f"create-client · portal {PORTAL} · COMPANY {out['company']}"
    [given] = started.workflow_execution_started_event_attributes.input.payloads
    assert given.metadata["encoding"] == ENCODING and CUSTOMER.encode() not in given.data
    completed = history.events[-1].workflow_execution_completed_event_attributes
    assert completed.result.payloads[0].metadata["encoding"] == ENCODING

    # A client without the key (what the UI shows without a codec): summary readable, and so
    # is the summary of the per-record workflow the run handed its write to.
    keyless = await connect(replace(stack.settings, payload_key=None))
    described = await keyless.get_workflow_handle(wf).describe()
    assert await described.static_summary() == json.loads(summary.data)
    child = record_workflow_id(PORTAL, "client", "COMPANY", out["company"])
    child_summary = await (await keyless.get_workflow_handle(child).describe()).static_summary()
    assert child_summary.startswith(f"Kleer client of COMPANY {out['company']} · portal {PORTAL}")

    # Current details travel in the metadata query's answer: encrypted as a whole.
    answer = await stack.client.workflow_service.query_workflow(QueryWorkflowRequest(
        namespace=stack.settings.temporal_namespace, execution=WorkflowExecution(workflow_id=wf),
        query=WorkflowQuery(query_type="__temporal_workflow_metadata")))
    [meta] = answer.query_result.payloads
    assert meta.metadata["encoding"] == ENCODING
    assert b"created kleer_id" not in meta.data


async def test_only_public_text_is_left_plain_by_the_codec():
    codec = EncryptionCodec([PAYLOAD_KEY])
    converter = data_converter(Settings(payload_key=PAYLOAD_KEY))
    public, secret, model = await converter.encode([PublicText("ids only"), "Hemlig AB", {"a": 1}])
    assert public.metadata[PLAINTEXT_MARKER] == b"true" and json.loads(public.data) == "ids only"
    assert secret.metadata["encoding"] == ENCODING and model.metadata["encoding"] == ENCODING
    assert await converter.decode([public, secret, model]) == ["ids only", "Hemlig AB", {"a": 1}]
    # The codec endpoint's encode leaves a marked payload alone too.
    [same] = await codec.encode([public])
    assert same is public


async def _post(url: str, body, **headers) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(url, json=body, headers=headers)


async def test_codec_endpoint_answers_an_empty_request_with_an_empty_list(stack):
    url = f"{stack.api.url}/codec/decode"
    auth = {"Authorization": f"Bearer {CODEC_TOKEN}"}
    for body in ({}, {"payloads": []}, {"payloads": None}):
        response = await _post(url, body, **auth)
        assert response.status_code == 200, (body, response.text)
        assert response.json() == {"payloads": []}
    assert (await _post(url, {"payloads": "nope"}, **auth)).status_code == 400


async def test_cors_preflight_as_the_ui_sends_it(stack):
    async with httpx.AsyncClient() as http:
        preflight = await http.options(f"{stack.api.url}/codec/decode", headers={
            "Origin": "http://localhost:8233", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace"})
        stranger = await http.options(f"{stack.api.url}/codec/decode", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:8233"
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "x-namespace", "authorization"} <= allowed
    assert "access-control-allow-origin" not in stranger.headers


@pytest.fixture
async def open_codec(stack):
    """A second API on the session's Temporal with CODEC_AUTH=none (the local stack's mode)."""
    server = ApiServer(create_app(replace(stack.settings, codec_auth="none",
                                          codec_auth_token=None), stack.client))
    await server.start()
    yield server
    await server.stop()


async def test_codec_auth_none_decodes_for_loopback_without_a_token(stack, run, open_codec):
    out = await _run(stack, run)
    history = await stack.client.get_workflow_handle(out["workflow_id"]).fetch_history()
    [given] = history.events[0].workflow_execution_started_event_attributes.input.payloads
    body = {"payloads": [{"metadata": {k: base64.b64encode(v).decode() for k, v in given.metadata.items()},
                          "data": base64.b64encode(given.data).decode()}]}
    ok = await _post(f"{open_codec.url}/codec/decode", body, Origin="http://localhost:8233",
                     **{"X-Namespace": "default", "Content-Type": "application/json"})
    assert ok.status_code == 200
    assert json.loads(base64.b64decode(ok.json()["payloads"][0]["data"]))["input_fields"]["name"] == CUSTOMER
    # The same request from a non-loopback peer is refused (ASGI transport sets the peer).
    app = create_app(replace(stack.settings, codec_auth="none"), stack.client)
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        far = await http.post("/codec/decode", json=body)
    assert far.status_code == 401 and "loopback" in far.json()["message"]
    # proxy: the proxy in front decides; no token needed here.
    app = create_app(replace(stack.settings, codec_auth="proxy", codec_auth_token=None), stack.client)
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        assert (await http.post("/codec/decode", json=body)).status_code == 200


async def test_remote_decode_codec_reads_results_through_the_endpoint(stack, run):
    out = await _run(stack, run)
    remote = await connect(replace(stack.settings, payload_key=None),
                           payload_codec=RemoteDecodeCodec(f"{stack.api.url}/codec", CODEC_TOKEN))
    result = await remote.get_workflow_handle(out["workflow_id"]).result()
    assert result["result"] == "created"


async def test_temporal_cli_reads_details_through_the_codec(stack, run):
    """`temporal workflow metadata` sends `{}`-style requests too; with the codec it works, and
    without it the (encrypted) current details cannot be read."""
    out = await _run(stack, run)
    base = [temporal_binary(), "workflow", "metadata", "--address", stack.settings.temporal_address,
            "--namespace", stack.settings.temporal_namespace, "-w", out["workflow_id"]]
    codec = ["--codec-endpoint", f"{stack.api.url}/codec", "--codec-auth", f"Bearer {CODEC_TOKEN}"]

    def cli(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=30)

    decoded, raw = await asyncio.gather(asyncio.to_thread(cli, base + codec),
                                        asyncio.to_thread(cli, base))
    assert decoded.returncode == 0, decoded.stderr
    assert f"created kleer_id={out['kleer_id']}" in decoded.stdout
    assert raw.returncode != 0 and "created kleer_id" not in raw.stdout


async def test_any_start_through_our_client_keeps_a_readable_summary(stack):
    """Any start through our client (replays too) gets the readable summary."""
    from workflows import WORKFLOWS
    from workflows.models import ActionExecution

    execution = ActionExecution(action="create-client", callback_id="cb-summary", portal_id=PORTAL,
                                object_type="COMPANY", object_id=4242, input_fields={"name": ""})
    handle = await stack.client.start_workflow(
        WORKFLOWS["create-client"].run, execution, id="summary-check-4242",
        task_queue="no-worker-here", id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        static_summary="replay 1 of create-client · portal 1 · COMPANY 4242", static_details="secret")
    try:
        history = await handle.fetch_history()
        meta = history.events[0].user_metadata
        assert json.loads(meta.summary.data).startswith("replay 1 of")
        assert meta.details.metadata["encoding"] == ENCODING
    finally:
        await handle.terminate()
