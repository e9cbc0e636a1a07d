"""No secret in any workflow history or log line; customer data encrypted in histories; the codec
endpoint decrypts only for holders of its token."""

from __future__ import annotations

import base64
import json

import httpx

from local.stack import DEMO_HUBSPOT_TOKEN, DEMO_KLEER_KEY
from tests.conftest import CODEC_TOKEN, OTHER_KEY, OTHER_TOKEN, PAYLOAD_KEY, PORTAL
from tests.test_deal_actions import seed_deal

SECRETS = [DEMO_HUBSPOT_TOKEN, DEMO_KLEER_KEY, OTHER_TOKEN, OTHER_KEY, "demo-client-secret",
           PAYLOAD_KEY, CODEC_TOKEN]
CUSTOMER = "Hemlig Kund Aktiebolag"  # a marker for customer data


async def _histories(stack) -> list[str]:
    texts = []
    async for wf in stack.client.list_workflows():
        history = await stack.client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        texts.append(history.to_json())
    return texts


async def test_no_secrets_in_histories_or_logs_and_customer_data_encrypted(stack, run,
                                                                           log_recorder):
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": CUSTOMER})
    out = await run("create-client", "COMPANY", company, {
        "name": CUSTOMER, "email": "ekonomi@hemlig.se", "orgno": "559999-0001"})
    assert out["result"] == "created"
    deal_id, _ = seed_deal(stack, items=[{"name": CUSTOMER + " licence", "price": "10"}])
    assert (await run("create-invoice", "DEAL", deal_id))["result"] == "created"
    stack.kleer.faults.add(path_contains="/client", status=401, count=1)
    failed = await run("create-client", "COMPANY", company := stack.hubspot.create_object(
        PORTAL, "companies", {"name": "X"}), {"name": "X"})
    assert failed["hs_execution_state"] == "FAIL_CONTINUE"

    histories = await _histories(stack)
    assert len(histories) >= 3
    everything = "\n".join(histories)
    chunks = [c for h in histories for c in _payload_data(json.loads(h))]
    assert len(chunks) > 10  # the scan below really looks inside payloads
    decoded_b64 = "\n".join(base64.b64decode(c).decode("latin-1") for c in chunks)
    logs = "\n".join(log_recorder.lines)
    assert len(log_recorder.lines) > 50  # the recorder really saw the run
    temporal_log = (stack.log_dir / "temporal.log").read_text() if stack.log_dir else ""
    for secret in SECRETS:
        for where, text in (("history", everything), ("history payload", decoded_b64),
                            ("log", logs), ("temporal server log", temporal_log)):
            assert secret not in text, f"secret found in {where}"
    # Customer data is in the runs (inputs, Kleer records) but only encrypted.
    assert CUSTOMER not in everything and CUSTOMER not in decoded_b64
    assert "ekonomi@hemlig.se" not in decoded_b64


def _payload_data(node: object) -> list[str]:
    """Every payload `data` (base64) anywhere in a history's JSON."""
    if isinstance(node, dict):
        found = [node["data"]] if isinstance(node.get("data"), str) and "metadata" in node else []
        return found + [c for v in node.values() for c in _payload_data(v)]
    if isinstance(node, list):
        return [c for v in node for c in _payload_data(v)]
    return []


async def test_codec_endpoint_decodes_for_token_holders_only(stack, run):
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": CUSTOMER})
    out = await run("create-client", "COMPANY", company, {"name": CUSTOMER})
    wf = out["workflow_id"]
    history = await stack.client.get_workflow_handle(wf).fetch_history()
    start = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    body = {"payloads": [{"metadata": {k: base64.b64encode(v).decode()
                                       for k, v in start.metadata.items()},
                          "data": base64.b64encode(start.data).decode()}]}
    url = f"{stack.api.url}/codec/decode"
    async with httpx.AsyncClient() as http:
        refused = await http.post(url, json=body)
        wrong = await http.post(url, json=body, headers={"Authorization": "Bearer nope"})
        ok = await http.post(url, json=body, headers={"Authorization": f"Bearer {CODEC_TOKEN}",
                                                      "Origin": "http://localhost:8233"})
        preflight = await http.options(url, headers={"Origin": "http://localhost:8233"})
    assert refused.status_code == 401 and wrong.status_code == 401
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "http://localhost:8233"
    assert preflight.status_code == 204
    plain = base64.b64decode(ok.json()["payloads"][0]["data"])
    assert json.loads(plain)["input_fields"]["name"] == CUSTOMER
