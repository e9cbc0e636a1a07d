"""`kleer-hubspot send`: one's own execution, signed v3 or v2, to a running stack, and its
completion read back from Temporal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local.stack import DEMO_CLIENT_SECRET
from ops.send import SendError, parse_inputs, send
from tests.conftest import CODEC_TOKEN, PORTAL

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("version", ["v3", "v2"])
async def test_send_signs_delivers_and_waits_for_the_completion(stack, version):
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": f"Sent {version} AB"})
    sent = await send(api_url=stack.api.url, action="create-client", object_type="COMPANY",
                      object_id=company, portal_id=PORTAL, inputs={"name": f"Sent {version} AB"},
                      client_secret=DEMO_CLIENT_SECRET, signature_version=version,
                      hubspot_sim_url=stack.hubspot_url, temporal=stack.client, timeout_s=60)
    assert sent.status == 200 and sent.blocked
    assert sent.result is not None and sent.result.result == "created"
    assert sent.workflow_id == f"create-client-company-{company}-{sent.callback_id}"
    # The simulator knew the callback, so HubSpot's side accepted the completion.
    assert sent.result.callback == "completed", sent.result


async def test_send_with_a_wrong_secret_gets_the_401(stack):
    sent = await send(api_url=stack.api.url, action="create-client", object_type="COMPANY",
                      object_id=1, portal_id=PORTAL, inputs={}, client_secret="wrong",
                      temporal=stack.client)
    assert sent.status == 401 and not sent.blocked and sent.result is None


def test_inputs_are_name_value_pairs():
    assert parse_inputs(["name=Acme AB", "zip=111 22", "note="]) == {
        "name": "Acme AB", "zip": "111 22", "note": ""}
    with pytest.raises(SendError, match="name=value"):
        parse_inputs(["payment_days"])


async def test_send_command_prints_the_answer_the_output_fields_and_the_ui_link(stack):
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": "Command AB"})
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PAYLOAD_", "PORTAL"))},
           "TEMPORAL_ADDRESS": stack.settings.temporal_address, "CODEC_AUTH_TOKEN": CODEC_TOKEN,
           "HUBSPOT_CLIENT_SECRET": DEMO_CLIENT_SECRET}
    args = [sys.executable, "-m", "cli", "send", "create-client", "--object-id", str(company),
            "--input", "name=Command AB", "--input", "payment_days=-1", "--signature", "v2",
            "--api-url", stack.api.url, "--hubspot-sim", stack.hubspot_url]
    done = await asyncio.to_thread(subprocess.run, args, cwd=ROOT, env=env, capture_output=True,
                                   text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "(signed v2, callbackId ap-send-12345-" in out
    assert 'answer 200: {"outputFields": {"hs_execution_state": "BLOCK"' in out
    assert "registered in the HubSpot simulator" in out
    # Decoded through the API's codec endpoint (the command has no payload key).
    assert "completed: FAIL_CONTINUE (failed)" in out
    assert '"error_message": "Payment Days \\"-1\\"' in out
    ui = "Temporal UI: http://localhost:8233/namespaces/default/workflows/"
    assert f"{ui}create-client-company-{company}-ap-send-" in out
