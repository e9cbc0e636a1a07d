"""From the install link to a first Kleer client, in a real browser: headless Chromium from
Debian's packages driven by Playwright (launched by its executable path; nothing is downloaded).

A new portal installs the app on the HubSpot simulator's authorize page, connects Kleer and sets a
client mapping on its settings page, HubSpot (the driver) runs Create Kleer Client (from
mappings) on one of its companies, and the run shows on the page's Recent runs as created.

`KLEER_SCREENSHOTS=docs/screenshots` also writes the settings-*.png screenshots of each step.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from local.stack import DEMO_CLIENT_SECRET, LocalStack
from scripts.screenshot import ARGS, CHROMIUM
from simulators.driver import HubSpotDriver
from tests.test_web import open_web_stack
from workflows.models import workflow_id
from workflows.runs import outcome

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"no Chromium at {CHROMIUM} (Debian's package; .ci/run installs it: apt-get install "
           "chromium)")

PORTAL, USER, EMAIL = 55555, 7555, "owner@portal55555.example"
COMPANY, KEY = 555, "kleer-key-555-not-real"
ACTION = "create-client-from-mappings"
MISSING = ("kleer_email", "kleer_currency", "kleer_delivery_method", "kleer_payment_days")


@pytest.fixture(scope="module")
async def browser_stack(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
                        ) -> AsyncIterator[LocalStack]:
    async with open_web_stack(stack.settings.temporal_address,
                              tmp_path_factory.mktemp("browser"), "kleer-hubspot-browser") as web:
        # A portal as HubSpot has it before the install: nobody installed the app, none of our
        # kleer_* properties exist, nor the custom ones the default mappings name; it has a custom
        # "Legal name" company property of its own. Its admin, and a Kleer company with a key.
        web.hubspot.add_portal(PORTAL, "unused-static-token-55555", seed_kleer_properties=False)
        web.hubspot.add_user(USER, EMAIL, [PORTAL], default=True)
        with web.hubspot.lock:
            crm = web.hubspot.portal(PORTAL).crm
            for name in MISSING:
                del crm.properties["companies"][name]
            crm.add_property("companies", {
                "name": "legal_name", "label": "Legal name", "type": "string",
                "fieldType": "text", "groupName": "companyinformation"})
        web.kleer.add_company(COMPANY, KEY)
        yield web


async def test_a_new_portal_goes_from_the_install_link_to_its_first_kleer_client(
        browser_stack: LocalStack) -> None:
    from playwright.async_api import async_playwright, expect

    web = browser_stack
    shots = Path(os.environ["KLEER_SCREENSHOTS"]) if os.environ.get("KLEER_SCREENSHOTS") else None

    async def shot(name: str, target=None) -> None:
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            await (target or page).screenshot(path=str(shots / f"settings-{name}.png"))

    install = web.install_url()
    assert install is not None
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await chromium.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(10_000)

            # Install: the link leads to HubSpot's authorize page; grant access to the portal.
            await page.goto(install)
            await expect(page.get_by_role("heading", name="Choose an account")).to_be_visible()
            await expect(page.get_by_text(f"Signed in as {EMAIL}")).to_be_visible()
            await shot("install")
            await page.get_by_role("button", name=f"Grant access to {PORTAL}").click()
            await page.wait_for_url(f"**/settings/portals/{PORTAL}")
            await expect(page.get_by_text(f"Connected to HubSpot portal {PORTAL}")).to_be_visible()
            status = page.locator("#status")
            await expect(status).to_contain_text("connected installed")
            await expect(status).to_contain_text("not connected")
            await expect(status.locator("table.props")).to_contain_text("kleer_id missing")
            await shot("status")

            # Status: create the kleer_* properties the actions write the Kleer ids into.
            await status.get_by_role("button", name="Create the missing Kleer properties").click()
            await expect(page.get_by_text("Created in HubSpot: companies: property group kleer; "
                                          "companies: property kleer_id")).to_be_visible()
            await expect(page.locator("#status table.props")).not_to_contain_text("missing")

            # Connect Kleer: a wrong key is refused and nothing is saved; the right one is kept.
            kleer = page.locator("#kleer")
            await kleer.get_by_label("Kleer company id").fill(str(COMPANY))
            await kleer.get_by_label("Kleer API key").fill("not-the-key")
            await kleer.get_by_role("button", name="Check and save").click()
            await expect(page.locator("#kleer")).to_contain_text(
                f"Kleer refused this API key for company {COMPANY}")
            await shot("connect-kleer", page.locator("#kleer"))
            assert await web.services.store.kleer_credentials(PORTAL) is None
            await page.locator("#kleer").get_by_label("Kleer API key").fill(KEY)
            await page.locator("#kleer").get_by_role("button", name="Check and save").click()
            await expect(page.get_by_text(f"Kleer connected: company {COMPANY}, key stored")
                         ).to_be_visible()
            await expect(page.locator("#status")).to_contain_text(
                f"connected to company {COMPANY}, key stored")

            # Field mappings: Name <- the portal's own "Legal name"; one more row, added in the page.
            client = page.locator("#mappings-client")
            await expect(client).to_contain_text("Current: defaults (nothing saved yet).")
            await expect(client).to_contain_text("Not in this portal's companies properties: "
                                                 + ", ".join(MISSING))
            await client.get_by_label("HubSpot property, row 1", exact=True).select_option("legal_name")
            rows = client.locator("tbody tr")
            before = await rows.count()
            await client.get_by_role("button", name="Add a row").click()
            await expect(rows).to_have_count(before + 1)
            added = rows.nth(before)
            await added.locator("select[name$='-kleer']").select_option("country-code")
            await added.locator("select[name$='-hubspot']").select_option("country")
            await added.locator("input[name$='-default']").fill("SE")
            await client.get_by_role("button", name="Save client mappings").click()
            await expect(page.get_by_text("Client field mappings saved (14 rows)")).to_be_visible()
            await shot("mappings", page.locator("#mappings-client"))
            saved = (await web.services.store.mappings(PORTAL))["client"]
            assert (saved[0].kleer, saved[0].hubspot) == ("name", "legal_name")
            assert (saved[-1].kleer, saved[-1].hubspot, saved[-1].default) == (
                "country-code", "country", "SE")

            # HubSpot runs Create Kleer Client (from mappings) on two companies of the portal.
            made = web.hubspot.create_object(PORTAL, "companies", {
                "name": "Acme", "legal_name": "Acme Holding AB"})
            nameless = web.hubspot.create_object(PORTAL, "companies", {"name": "No Legal Name"})
            async with HubSpotDriver(web.action_url(ACTION), DEMO_CLIENT_SECRET,
                                     web.hubspot_url) as driver:
                async def run(company: str) -> tuple[str, dict]:
                    delivery = await driver.execute(PORTAL, "COMPANY", int(company), {})
                    assert delivery.status_code == 200, delivery
                    out = await driver.wait_for_completion(delivery.callback_id, timeout_s=30)
                    wf = workflow_id(ACTION, "COMPANY", company, delivery.callback_id)
                    await outcome(web.client.get_workflow_handle(wf))
                    return wf, out

                (created_id, created), (failed_id, failed) = await asyncio.gather(
                    run(made), run(nameless))
            assert created["result"] == "created", created
            assert failed["result"] == "failed" and "Name is required" in failed["error_message"]
            [kleer_client] = web.kleer.records(COMPANY, "client")
            assert kleer_client["name"] == "Acme Holding AB"
            assert kleer_client["country-code"] == "SE", kleer_client

            # The settings page lists both runs: the new client created, the other one's error.
            runs = page.locator("#runs")
            for _ in range(50):  # Temporal's visibility is eventually consistent
                await page.reload()
                if await runs.locator("tr[data-workflow-id]").count() == 2:
                    break
                await asyncio.sleep(0.2)
            row = runs.locator(f'tr[data-workflow-id="{created_id}"]')
            await expect(row).to_contain_text(ACTION)
            await expect(row).to_contain_text(made)
            await expect(row.locator(".badge")).to_have_text("created")
            await expect(row.get_by_role("link", name="Temporal UI")).to_have_attribute(
                "href", f"http://localhost:8233/namespaces/default/workflows/{created_id}")
            bad = runs.locator(f'tr[data-workflow-id="{failed_id}"]')
            await expect(bad).to_contain_text('Name is required: HubSpot property "legal_name" '
                                              "is empty")
            await expect(bad.get_by_role("button", name="Replay")).to_be_visible()
            await shot("runs", runs)
        finally:
            await chromium.close()
