"""What people see outside the code: the definition texts HubSpot shows, the metric labels."""

from __future__ import annotations

import json

import httpx

from ops.definitions import build_definitions, plain
from tests.conftest import PORTAL


def test_definitions_carry_no_markdown():
    text = json.dumps(build_definitions("https://kleer.example.com"), ensure_ascii=False)
    assert "`" not in text and "**" not in text
    [client] = [d for d in build_definitions("https://x") if d["actionUrl"].endswith("/create-client")]
    described = client["labels"]["en"]["inputFieldDescriptions"]
    assert described["delivery_type"] == "Mail / Email / Manually / Svefaktura (any case)"
    assert plain("`INVOICE_AT_START` / [docs](https://x) **now**") == "INVOICE_AT_START / docs now"


async def test_our_metrics_carry_no_sdk_service_name(stack, run):
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": "Labelled AB"})
    await run("create-client", "COMPANY", company, {"name": "Labelled AB"})
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://{stack.settings.metrics_bind}/metrics")).text
    ours = [line for line in text.splitlines() if line.startswith("kleer_")]
    assert any(line.startswith("kleer_api_requests_total{") for line in ours)
    assert not [line for line in ours if "service_name" in line]
