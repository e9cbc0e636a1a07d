"""Operator tooling (ops/, cli.py) against the simulators and the session's Temporal server."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actions import ACTIONS
from hubspot_api.client import HubSpotClient
from kleer_api.client import KleerClient
from ops.definitions import build_definitions, publish
from ops.portal_setup import setup_portal
from ops.replay import ReplayError, replay
from service_errors import ServiceError
from tests.conftest import PORTAL
from workflows.runs import outcome

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://kleer.example.com"
# Fresh portal for setup tests: no Kleer properties seeded.
SETUP_PORTAL, SETUP_TOKEN, SETUP_COMPANY, SETUP_KEY = 8801, "hs-token-8801", 88, "kleer-key-88"


@pytest.fixture
async def developer(stack) -> AsyncIterator[HubSpotClient]:
    client = HubSpotClient.for_developer(stack.hubspot_url, stack.hubspot.developer_api_key)
    yield client
    await client.aclose()


def by_key() -> dict[str, dict]:
    return {d["actionUrl"].rsplit("/", 1)[1]: d for d in build_definitions(BASE)}


# --- definitions -------------------------------------------------------------------------------

def test_one_definition_per_action_with_its_url_and_object_type():
    definitions = by_key()
    assert list(definitions) == list(ACTIONS)
    for key, spec in ACTIONS.items():
        d = definitions[key]
        assert d["actionUrl"] == f"{BASE}/hubspot/actions/{key}"
        assert d["objectTypes"] == [spec.object_type] and d["published"] is True
        assert d["labels"]["en"]["actionName"] == spec.label
        assert spec.id_property in d["objectRequestOptions"]["properties"]
        assert [f["typeDefinition"]["name"] for f in d["outputFields"]] == [
            "kleer_id", "result", "error_message"]


def test_inputs_follow_the_models():
    definitions = by_key()
    agreement = definitions["create-agreement"]
    [day] = [f for f in agreement["inputFields"] if f["typeDefinition"]["name"] == "invoice_day"]
    assert day["typeDefinition"]["type"] == "enumeration"
    assert day["typeDefinition"]["fieldType"] == "select"
    assert len(day["typeDefinition"]["options"]) == 8
    assert day["typeDefinition"]["options"][0] == {"label": "Invoice at start",
                                                   "value": "INVOICE_AT_START"}
    assert day["supportedValueTypes"] == ["STATIC_VALUE", "OBJECT_PROPERTY"]
    assert agreement["labels"]["en"]["inputFieldLabels"]["invoice_day"] == "Invoice Day"

    client = definitions["create-client"]
    names = [f["typeDefinition"]["name"] for f in client["inputFields"]]
    assert names == list(ACTIONS["create-client"].inputs.model_fields)  # declaration order
    required = {f["typeDefinition"]["name"] for f in client["inputFields"] if f["isRequired"]}
    assert required == {"name"}
    english = client["labels"]["en"]
    assert english["inputFieldLabels"]["orgno"] == "Organization Number"
    assert english["inputFieldDescriptions"]["country_code"] == "ISO 3166 alpha-2 code, e.g. SE"
    assert english["inputFieldDescriptions"]["payment_days"] == "whole number ≥ 0"
    assert "name" not in english["inputFieldDescriptions"]

    project = definitions["create-project"]
    [fixed] = [f for f in project["inputFields"] if f["typeDefinition"]["name"] == "fixed_price"]
    assert (fixed["typeDefinition"]["type"], fixed["typeDefinition"]["fieldType"]) == (
        "bool", "booleancheckbox")


def test_mapping_actions_have_no_inputs_and_read_the_default_mapped_properties():
    definitions = by_key()
    for key in ("create-client-from-mappings", "create-project-from-mappings"):
        assert definitions[key]["inputFields"] == []
        assert definitions[key]["labels"]["en"]["inputFieldLabels"] == {}
    client_props = definitions["create-client-from-mappings"]["objectRequestOptions"]["properties"]
    assert client_props[0] == "kleer_id" and {"orgno", "kleer_email", "vat_number"} <= set(client_props)
    project_props = definitions["create-project-from-mappings"]["objectRequestOptions"]["properties"]
    assert {"kleer_project_id", "dealname", "closedate", "amount"} <= set(project_props)


async def test_publish_creates_then_is_idempotent(stack, developer):
    app_id = 5101
    first = await publish(developer, app_id, BASE)
    assert [(key, outcome) for key, outcome, _ in first] == [(k, "created") for k in ACTIONS]
    second = await publish(developer, app_id, BASE)
    assert {outcome for _, outcome, _ in second} <= {"updated", "unchanged"}
    assert [d for _, _, d in second] == [d for _, _, d in first]
    listed = await developer.list_action_definitions(app_id)
    assert len(listed) == 7
    assert {d["actionUrl"] for d in listed} == {d["actionUrl"] for d in build_definitions(BASE)}


async def test_publish_updates_a_changed_definition(stack, developer):
    app_id = 5102
    await publish(developer, app_id, BASE)
    [stale] = [d for d in await developer.list_action_definitions(app_id)
               if d["actionUrl"].endswith("/create-client")]
    await developer.update_action_definition(app_id, stale["id"], {"published": False})
    report = {key: outcome for key, outcome, _ in await publish(developer, app_id, BASE)}
    assert report["create-client"] == "updated"
    assert all(outcome == "unchanged" for key, outcome in report.items() if key != "create-client")
    [fixed] = [d for d in await developer.list_action_definitions(app_id) if d["id"] == stale["id"]]
    assert fixed["published"] is True


async def test_simulator_rejects_an_invalid_definition(stack, developer):
    broken = copy.deepcopy(build_definitions(BASE)[0])
    del broken["labels"]
    with pytest.raises(ServiceError) as err:
        await developer.create_action_definition(5103, broken)
    assert err.value.status == 400 and "labels" in err.value.message
    assert await developer.list_action_definitions(5103) == []


async def test_developer_key_is_required(stack):
    client = HubSpotClient.for_developer(stack.hubspot_url, "wrong-key")
    try:
        with pytest.raises(ServiceError) as err:
            await publish(client, 5104, BASE)
        assert err.value.status == 401
    finally:
        await client.aclose()


# --- portal setup ------------------------------------------------------------------------------

async def _setup(stack, kleer_key: str = SETUP_KEY):
    hubspot = HubSpotClient(stack.hubspot_url, SETUP_TOKEN)
    kleer = KleerClient(stack.settings.kleer_base_url, SETUP_COMPANY, kleer_key)
    try:
        return await setup_portal(hubspot, kleer, portal_id=SETUP_PORTAL)
    finally:
        await hubspot.aclose()
        await kleer.aclose()


async def test_portal_setup_creates_group_and_properties_once(stack):
    stack.hubspot.add_portal(SETUP_PORTAL, SETUP_TOKEN, seed_kleer_properties=False)
    stack.kleer.add_company(SETUP_COMPANY, SETUP_KEY)

    first = await _setup(stack)
    assert first.ok, str(first)
    assert set(first.created()) == {
        "companies: property group kleer", "companies: property kleer_id",
        "deals: property group kleer", "deals: property kleer_invoice_id",
        "deals: property kleer_agreement_id", "deals: property kleer_project_id",
        "invoices: property group kleer", "invoices: property kleer_id (unique)",
        "subscriptions: property group kleer", "subscriptions: property kleer_id (unique)",
    }
    crm = stack.hubspot.portal(SETUP_PORTAL).crm
    assert crm.groups["companies"]["kleer"]["label"] == "Kleer"
    deal_prop = crm.properties["deals"]["kleer_agreement_id"]
    assert (deal_prop["type"], deal_prop["fieldType"], deal_prop["groupName"]) == (
        "string", "text", "kleer")
    assert crm.properties["invoices"]["kleer_id"]["hasUniqueValue"] is True
    assert crm.properties["subscriptions"]["kleer_id"]["hasUniqueValue"] is True
    assert crm.properties["companies"]["kleer_id"]["hasUniqueValue"] is False
    assert "ok       Kleer credentials" in str(first)

    second = await _setup(stack)
    assert second.ok and second.created() == []
    assert {s.status for s in second.steps} == {"exists"}


async def test_portal_setup_reports_a_wrong_kleer_key(stack):
    stack.hubspot.add_portal(SETUP_PORTAL, SETUP_TOKEN, seed_kleer_properties=False)
    stack.kleer.add_company(SETUP_COMPANY, SETUP_KEY)
    report = await _setup(stack, kleer_key="not-the-key")
    assert not report.ok and not report.kleer_ok
    assert "401" in report.kleer_detail
    assert "failed   Kleer credentials" in str(report) and "NOT ready" in str(report)


async def test_portal_setup_accepts_the_seeded_portal(stack):
    """The demo portal already has the properties (in HubSpot's default groups): all "exists"."""
    creds = stack.settings.portal(PORTAL)
    hubspot = HubSpotClient(stack.hubspot_url, creds.hubspot_token)
    kleer = KleerClient(stack.settings.kleer_base_url, creds.kleer_company_id, creds.kleer_api_key)
    try:
        report = await setup_portal(hubspot, kleer, portal_id=PORTAL)
    finally:
        await hubspot.aclose()
        await kleer.aclose()
    assert report.ok, str(report)
    assert all(s.what.endswith("group kleer") for s in report.steps if s.status == "created")


# --- replay ------------------------------------------------------------------------------------

async def test_replay_of_a_finished_execution_creates_nothing_twice(stack, run):
    cid = stack.hubspot.create_object(PORTAL, "companies", {"name": "Replay AB"})
    out = await run("create-client", "COMPANY", cid, {"name": "Replay AB"})
    assert out["result"] == "created"
    clients_before = len(stack.kleer.records(1, "client"))

    handle = await replay(stack.client, stack.settings, out["callback_id"])
    assert handle.id == f"{out['workflow_id']}-replay-1"
    result = await outcome(handle)
    assert (result.result, result.kleer_id) == ("skipped", out["kleer_id"])
    assert result.callback.startswith("closed")  # HubSpot's callback was completed already
    assert len(stack.kleer.records(1, "client")) == clients_before

    again = await replay(stack.client, stack.settings, out["callback_id"])
    assert again.id.endswith("-replay-2")
    await outcome(again)
    original = await stack.client.get_workflow_handle(out["workflow_id"]).describe()
    assert original.workflow_type == (await handle.describe()).workflow_type


async def test_replay_after_a_fixed_failure_does_the_work(stack, run):
    stack.kleer.faults.add(method="PUT", path_contains="/client", status=400, count=1)
    cid = stack.hubspot.create_object(PORTAL, "companies", {"name": "Second Try AB"})
    out = await run("create-client", "COMPANY", cid, {"name": "Second Try AB"})
    assert out["result"] == "failed"

    result = await outcome(await replay(stack.client, stack.settings, out["callback_id"]))
    assert result.result == "created" and result.callback.startswith("closed")
    record = stack.hubspot.get_object(PORTAL, "companies", cid)
    assert record["properties"]["kleer_id"] == result.kleer_id


async def test_replay_refuses_an_unknown_execution(stack):
    with pytest.raises(ReplayError, match="no workflow"):
        await replay(stack.client, stack.settings, "no-such-callback")


# --- CLI ---------------------------------------------------------------------------------------

def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("command", "mentions"), [
    ((), ["definitions", "portal", "replay", "dev", "worker"]),
    (("definitions",), ["print", "publish"]),
    (("definitions", "print"), ["--action-base-url", "PUBLIC_BASE_URL"]),
    (("definitions", "publish"), ["--app-id", "--action-base-url", "HUBSPOT_DEVELOPER_API_KEY",
                                  "HUBSPOT_API_BASE_URL"]),
    (("portal", "setup"), ["--portal-id", "PORTAL_<id>_HUBSPOT_TOKEN", "KLEER_API_BASE_URL"]),
    (("replay",), ["--callback-id", "TEMPORAL_ADDRESS", "--no-wait"]),
    (("dev",), ["--no-demo", "--api-port"]),
])
def test_cli_help(command, mentions):
    done = _cli(*command, "--help")
    assert done.returncode == 0, done.stderr
    for word in mentions:
        assert word in done.stdout, (word, done.stdout)


def test_cli_definitions_print_is_json():
    done = _cli("definitions", "print", "--action-base-url", BASE)
    assert done.returncode == 0, done.stderr
    definitions = json.loads(done.stdout)
    assert len(definitions) == 7
    assert definitions[0]["actionUrl"] == f"{BASE}/hubspot/actions/create-client"


async def test_cli_definitions_publish_and_portal_setup(stack, tmp_path):
    """The commands wire env -> settings -> ops; run in a subprocess against the simulators."""
    env = {**os.environ, "HUBSPOT_DEVELOPER_API_KEY": stack.hubspot.developer_api_key,
           "HUBSPOT_API_BASE_URL": stack.hubspot_url, "KLEER_API_BASE_URL": stack.settings.kleer_base_url,
           f"PORTAL_{SETUP_PORTAL}_HUBSPOT_TOKEN": SETUP_TOKEN,
           f"PORTAL_{SETUP_PORTAL}_KLEER_COMPANY_ID": str(SETUP_COMPANY),
           f"PORTAL_{SETUP_PORTAL}_KLEER_API_KEY": SETUP_KEY}
    stack.hubspot.add_portal(SETUP_PORTAL, SETUP_TOKEN, seed_kleer_properties=False)
    stack.kleer.add_company(SETUP_COMPANY, SETUP_KEY)
    done = await asyncio.to_thread(_cli, "definitions", "publish", "--app-id", "5105",
                                   "--action-base-url", BASE, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("created") == 7
    done = await asyncio.to_thread(_cli, "portal", "setup", "--portal-id", str(SETUP_PORTAL), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Result: ready" in done.stdout
    done = await asyncio.to_thread(_cli, "portal", "setup", "--portal-id", "4040", env=env)
    assert done.returncode == 1 and "PORTAL_4040_HUBSPOT_TOKEN" in done.stderr
