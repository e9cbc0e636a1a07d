"""The demo: signed HubSpot executions of every action against the local stack, and what happened.

Seeds the HubSpot simulator through its admin API, fires executions through the driver (signed
like HubSpot, retried like HubSpot), waits for the callbacks and prints one line per execution
with its Temporal UI link.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from simulators.driver import HubSpotDriver
from workflows.models import workflow_id


@dataclass
class Step:
    title: str
    action: str
    object_type: str
    object_ref: str  # key into the seeded objects
    inputs: dict[str, str]


async def _seed(http: httpx.AsyncClient, hubspot_url: str, portal_id: int) -> dict[str, str]:
    async def make(object_type: str, properties: dict, associations: list | None = None) -> str:
        response = await http.post(f"{hubspot_url}/_sim/objects/{object_type}", json={
            "portal_id": portal_id, "properties": properties, "associations": associations or []})
        response.raise_for_status()
        return str(response.json()["id"])

    ids = {
        "acme": await make("companies", {"name": "Acme AB", "phone": "+46 8 123 45 67"}),
        "known": await make("companies", {"name": "Already In Kleer AB", "kleer_id": "999"}),
        "typo": await make("companies", {"name": "Typo AB"}),
        "mapped": await make("companies", {
            "name": "Mapped Oy", "kleer_email": "billing@mapped.fi", "address": "Esplanadi 1",
            "zip": "00100", "country": "Finland", "kleer_currency": "eur",
            "kleer_delivery_method": "email", "kleer_payment_days": "14"}),
        "nameless": await make("companies", {"name": "", "phone": "+46 70 000 00 00"}),
    }
    items = [
        await make("line_items", {"name": "Platform licence", "quantity": "12", "price": "1234.50",
                                  "recurringbillingfrequency": "monthly"}),
        await make("line_items", {"name": "Onboarding", "quantity": "1", "price": "4999.99",
                                  "hs_discount_percentage": "10"}),
    ]
    ids["deal"] = await make(
        "deals", {"dealname": "Acme platform 2027", "amount": "19813.99",
                  "closedate": "2026-12-15T12:00:00.000Z", "description": "Annual platform deal"},
        [{"to_type": "companies", "to_id": ids["acme"], "type_id": 5}]
        + [{"to_type": "line_items", "to_id": i, "type_id": 19} for i in items])
    ids["orphan"] = await make("deals", {"dealname": "Deal without company"})
    return ids


STEPS = [
    Step("create a client", "create-client", "COMPANY", "acme",
         {"name": "Acme AB", "orgno": "556677-8899", "email": "billing@acme.se",
          "currency": "sek", "delivery_type": "email", "payment_days": "30", "zip": "111 22"}),
    Step("skip: company already has kleer_id", "create-client", "COMPANY", "known",
         {"name": "Already In Kleer AB"}),
    Step("bad input: negative payment days", "create-client", "COMPANY", "typo",
         {"name": "Typo AB", "payment_days": "-3"}),
    Step("client from field mappings", "create-client-from-mappings", "COMPANY", "mapped", {}),
    Step("from mappings, empty name", "create-client-from-mappings", "COMPANY", "nameless", {}),
    Step("invoice for the deal", "create-invoice", "DEAL", "deal",
         {"invoice_date": "2026-12-01", "your_reference": "Anna Andersson"}),
    Step("agreement for the deal", "create-agreement", "DEAL", "deal",
         {"name": "Acme platform", "start_date": "2027-01-01", "end_date": "2027-12-31",
          "invoice_interval": "3", "invoice_day": "invoice_at_start"}),
    Step("update the agreement (renewal)", "update-agreement", "DEAL", "deal",
         {"end_date": "2028-12-31", "po_number": "PO-2028"}),
    Step("project for the deal", "create-project", "DEAL", "deal",
         {"name": "Acme rollout", "fixed_price": "yes", "budget_hours": "120",
          "budget_amount": "150000"}),
    Step("project from mappings: skipped (already created)", "create-project-from-mappings",
         "DEAL", "deal", {}),
    Step("invoice for a deal without company", "create-invoice", "DEAL", "orphan", {}),
]


async def _call_counts(driver: HubSpotDriver, kleer_url: str) -> tuple[int, int]:
    """Calls our code made so far, from the simulators' call logs (admin calls not counted)."""
    http = driver._admin
    hubspot = (await http.get(f"{driver.hubspot_sim_url}/_sim/calls")).json()["calls"]
    kleer = (await http.get(f"{kleer_url}/_sim/calls")).json()["calls"]
    return len(hubspot), len(kleer)


async def run_demo(api_url: str, hubspot_url: str, kleer_url: str, client_secret: str,
                   portal_id: int, ui_url: str | None = None,
                   namespace: str = "default") -> list[dict]:
    """Run every step in order (later steps depend on earlier ones) and print the outcome."""
    rows = []
    async with httpx.AsyncClient(timeout=30) as http:
        ids = await _seed(http, hubspot_url, portal_id)
    async with HubSpotDriver(f"{api_url}/hubspot/actions/", client_secret, hubspot_url) as driver:
        for step in STEPS:
            before = await _call_counts(driver, kleer_url)
            delivery = await driver.execute(
                portal_id, step.object_type, int(ids[step.object_ref]), step.inputs,
                action_url=f"{api_url}/hubspot/actions/{step.action}")
            outputs = await driver.wait_for_completion(delivery.callback_id, timeout_s=120)
            after = await _call_counts(driver, kleer_url)
            row = {"step": step.title, "action": step.action,
                   "object": f"{step.object_type} {ids[step.object_ref]}", **outputs,
                   "workflow_id": workflow_id(step.action, step.object_type,
                                                            ids[step.object_ref],
                                                            delivery.callback_id),
                   "hubspot_calls": after[0] - before[0], "kleer_calls": after[1] - before[1]}
            rows.append(row)
            _print(row, ui_url, namespace)
    return rows


def _print(row: dict, ui_url: str | None, namespace: str) -> None:
    outcome = f"{row['result']:<8} kleer_id={row['kleer_id'] or '-':<4}"
    calls = f"calls: HubSpot {row['hubspot_calls']}, Kleer {row['kleer_calls']}"
    print(f"- {row['step']:<48} {row['action']:<29} {row['object']:<13} {outcome} {calls}")
    if row.get("error_message"):
        print(f"    error_message: {row['error_message']}")
    if ui_url:
        print(f"    {ui_url}/namespaces/{namespace}/workflows/{row['workflow_id']}")


if __name__ == "__main__":  # against an already running `kleer-hubspot dev --no-demo`
    asyncio.run(run_demo("http://127.0.0.1:8000", "http://127.0.0.1:8101", "http://127.0.0.1:8102",
                         "demo-client-secret", 12345, "http://localhost:8233"))
