"""The install flow and the settings pages over real HTTP (httpx as the browser), on a stack with a
database and OAuth: the HubSpot simulator's authorize page, our callback, each page and form,
CSRF, session expiry, other portals, validation messages, the live Kleer check, mappings."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import itsdangerous
import pytest

from local.stack import DEMO_CLIENT_SECRET, LocalStack
from oauth.scopes import required_scope_names
from settings import Settings
from simulators.driver import HubSpotDriver
from tests.conftest import DATABASE_SECRETS_KEY, FAST
from tests.test_oauth import forms_of
from web.app import SESSION_COOKIE
from web.forms import parse_kleer_form, parse_mappings_form
from workflows.models import workflow_id
from workflows.runs import outcome

CLIENT_ID = "kleer-web-tests"
SESSION_SECRET = "web-test-session-secret-not-a-secret-in-prod"
USER, EMAIL = 7001, "admin@web.example"
OUTSIDER, OUTSIDER_EMAIL = 7002, "outsider@elsewhere.example"
# The user may install into the first six; FOREIGN belongs to the outsider only.
MAIN, CSRF_PORTAL, KLEER_PORTAL, MAP_PORTAL, PROPS_PORTAL, RECONNECT_PORTAL = range(56001, 56007)
NOT_INSTALLED, FOREIGN = 56008, 56009
KLEER_COMPANY, KLEER_KEY = 561, "kleer-key-561-not-real"


@asynccontextmanager
async def open_web_stack(temporal_address: str, state: Path, task_queue: str
                         ) -> AsyncIterator[LocalStack]:
    """A stack on an existing Temporal server with a database and the OAuth app (its own task
    queue and worker), as `kleer-hubspot dev` runs it."""
    settings = Settings(
        task_queue=task_queue, hubspot_client_secret=DEMO_CLIENT_SECRET,
        database_url=f"sqlite+aiosqlite:///{state / 'kleer.db'}",
        database_secrets_key=DATABASE_SECRETS_KEY, hubspot_client_id=CLIENT_ID,
        session_secret=SESSION_SECRET, session_max_age_s=3600,
        temporal_ui_url="http://localhost:8233", http_timeout_s=3, create_settle_s=2,
        step_policy=FAST, kleer_rate_limit=50,
    )
    async with LocalStack(settings=settings, temporal_address=temporal_address,
                          log_dir=state) as web:
        yield web


@pytest.fixture(scope="module")
async def web_stack(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
                    ) -> AsyncIterator[LocalStack]:
    """On the session's Temporal server: the user may install into six portals, another user
    into FOREIGN; PROPS_PORTAL lacks the kleer_* properties."""
    async with open_web_stack(stack.settings.temporal_address, tmp_path_factory.mktemp("web"),
                              "kleer-hubspot-web") as web:
        hs = web.hubspot
        hs.add_portal(PROPS_PORTAL, "unused-static-token-56005", seed_kleer_properties=False)
        hs.add_user(USER, EMAIL, [MAIN, CSRF_PORTAL, KLEER_PORTAL, MAP_PORTAL, PROPS_PORTAL,
                                  RECONNECT_PORTAL, NOT_INSTALLED], default=True)
        hs.add_user(OUTSIDER, OUTSIDER_EMAIL, [FOREIGN])
        web.kleer.add_company(KLEER_COMPANY, KLEER_KEY)
        yield web


@pytest.fixture
async def browser(web_stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=web_stack.api.url, timeout=20) as http:
        yield http


async def authorize(http: httpx.AsyncClient, stack: LocalStack, portal: int,
                    user: str | None = None) -> httpx.Response:
    """/install, then "Grant access to <portal>" on HubSpot's page: the redirect to our callback."""
    start = await http.get("/install")
    assert start.status_code == 303, start.text
    authorize_url = start.headers["location"]
    assert authorize_url.startswith(stack.hubspot_url + "/oauth/authorize?")
    if user:
        authorize_url += "&user=" + user
    page = await http.get(authorize_url)
    assert page.status_code == 200, page.text
    action, fields = forms_of(page.text)[f"Grant access to {portal}"]
    answer = await http.post(urljoin(stack.hubspot_url, action), data=fields)
    assert answer.status_code == 302, answer.text
    return answer


async def sign_in(http: httpx.AsyncClient, stack: LocalStack, portal: int,
                  user: str | None = None) -> httpx.Response:
    answer = await authorize(http, stack, portal, user)
    back = await http.get(answer.headers["location"])
    assert back.status_code == 303, back.text
    assert back.headers["location"] == f"/settings/portals/{portal}"
    return await http.get(back.headers["location"])


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def text_of(page: str) -> str:
    """The page as a person reads it: tags dropped, whitespace collapsed."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def session_cookie(payload: dict, signed_at: float) -> str:
    """A session cookie as SessionMiddleware writes it, signed with the stack's secret at a time
    of our choosing."""

    class At(itsdangerous.TimestampSigner):
        def get_timestamp(self) -> int:
            return int(signed_at)

    data = base64.b64encode(json.dumps(payload).encode())
    return At(SESSION_SECRET).sign(data).decode()


# -- install and sign-in ------------------------------------------------------------------------

async def test_install_signs_in_and_shows_each_section(web_stack: LocalStack,
                                                      browser: httpx.AsyncClient) -> None:
    start = await browser.get("/install")
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == [web_stack.settings.redirect_url]
    assert query["scope"][0].split(" ") == required_scope_names()
    assert len(query["state"][0]) >= 32
    cookie = start.headers["set-cookie"]
    assert cookie.startswith(SESSION_COOKIE + "=") and "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower() and f"Max-Age={3600}" in cookie

    page = await sign_in(browser, web_stack, MAIN)
    assert page.status_code == 200
    text = text_of(page.text)
    for heading in ("Status", "Connect Kleer", "Field mappings", "Recent runs"):
        assert f">{heading}</h2>" in page.text, heading
    assert f"Connected to HubSpot portal {MAIN}" in text and f"Signed in as {EMAIL}" in text
    assert "connected installed" in text and "refreshed automatically" in text
    assert "not connected enter the company id and API key" in text
    assert "Create the missing Kleer properties" not in text  # the simulator seeded them
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]

    record = await web_stack.services.store.portal(MAIN)
    assert record is not None and record.status == "connected"
    assert [p.portal_id for p in await web_stack.services.store.portals_of_user(USER)] == [MAIN]
    listing = await browser.get("/settings")
    assert f'href="/settings/portals/{MAIN}"' in listing.text
    static = await browser.get("/settings/static/settings.css")
    assert static.status_code == 200 and "text/css" in static.headers["content-type"]


async def test_refused_or_forged_callbacks_show_an_error_page(web_stack: LocalStack,
                                                            browser: httpx.AsyncClient) -> None:
    # HubSpot says the user denied access.
    start = await browser.get("/install")
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    denied = await browser.get("/oauth/callback", params={
        "error": "access_denied", "error_description": "The user denied access to the app.",
        "state": state})
    assert denied.status_code == 400
    assert "HubSpot did not grant access: The user denied access to the app." in denied.text
    assert "Sign in with HubSpot" in denied.text

    # A state this browser never got (CSRF on the OAuth redirect), and a used one.
    answer = await authorize(browser, web_stack, MAIN)
    good = parse_qs(urlsplit(answer.headers["location"]).query)
    forged = await browser.get("/oauth/callback", params={"code": good["code"][0],
                                                          "state": "not-the-state"})
    assert forged.status_code == 400 and "Sign-in link expired" in forged.text
    again = await browser.get("/oauth/callback", params={"code": good["code"][0],
                                                         "state": good["state"][0]})
    assert again.status_code == 400  # the state was spent on the forged attempt

    # A code HubSpot refuses to exchange.
    await browser.get("/install")
    state = (await browser.get("/install")).headers["location"].split("state=")[1]
    refused = await browser.get("/oauth/callback", params={"code": "bogus", "state": state})
    assert refused.status_code == 502
    assert "HubSpot refused the install" in refused.text and "BAD_AUTH_CODE" in refused.text
    assert await web_stack.services.store.portal(NOT_INSTALLED) is None


async def test_only_portals_proven_in_the_session_are_reachable(web_stack: LocalStack,
                                                                browser: httpx.AsyncClient) -> None:
    signed_out = await browser.get(f"/settings/portals/{MAIN}")
    assert signed_out.status_code == 401 and "Sign in with HubSpot" in signed_out.text

    # Another user installs FOREIGN.
    async with httpx.AsyncClient(base_url=web_stack.api.url) as other:
        await sign_in(other, web_stack, FOREIGN, user=str(OUTSIDER))
    page = await sign_in(browser, web_stack, MAIN)
    csrf = csrf_of(page.text)
    for portal in (FOREIGN, NOT_INSTALLED, 99999999):
        answer = await browser.get(f"/settings/portals/{portal}")
        assert answer.status_code == 403, portal
        assert f"does not cover HubSpot portal {portal}" in answer.text
        post = await browser.post(f"/settings/portals/{portal}/kleer",
                                  data={"csrf": csrf, "company_id": "1", "api_key": "x"})
        assert post.status_code == 403
    assert (await web_stack.services.store.kleer_credentials(FOREIGN)) is None
    listing = await browser.get("/settings")
    assert f"/settings/portals/{FOREIGN}" not in listing.text

    # Signing out ends it.
    out = await browser.post("/signout", data={"csrf": csrf})
    assert out.status_code == 303
    assert (await browser.get(f"/settings/portals/{MAIN}")).status_code == 401


async def test_every_post_needs_the_session_csrf_token(web_stack: LocalStack,
                                                       browser: httpx.AsyncClient) -> None:
    page = await sign_in(browser, web_stack, CSRF_PORTAL)
    csrf = csrf_of(page.text)
    form = {"company_id": str(KLEER_COMPANY), "api_key": KLEER_KEY}
    base = f"/settings/portals/{CSRF_PORTAL}"
    for path, data in ((base + "/kleer", form), (base + "/kleer/check", {}),
                       (base + "/properties", {}), (base + "/mappings/client", {}),
                       (base + "/runs/replay", {"workflow_id": "x"}), ("/signout", {})):
        for token in (None, "", csrf[:-2] + "xx"):
            sent = dict(data) if token is None else {**data, "csrf": token}
            answer = await browser.post(path, data=sent)
            assert answer.status_code == 403, (path, token)
            assert "Form expired" in answer.text and "nothing was changed" in answer.text
    assert await web_stack.services.store.kleer_credentials(CSRF_PORTAL) is None
    huge = await browser.post(base + "/kleer", data={**form, "csrf": csrf, "pad": "x" * 300_000})
    assert huge.status_code == 413 and "nothing was changed" in huge.text
    assert (await browser.get(base)).status_code == 200  # still signed in
    # The token belongs to the session: another session's token does not work.
    async with httpx.AsyncClient(base_url=web_stack.api.url) as other:
        other_page = await sign_in(other, web_stack, CSRF_PORTAL)
        assert csrf_of(other_page.text) != csrf
        answer = await other.post(base + "/kleer", data={**form, "csrf": csrf})
        assert answer.status_code == 403


async def test_sessions_are_signed_and_expire(web_stack: LocalStack) -> None:
    url = f"{web_stack.api.url}/settings/portals/{MAIN}"
    payload = {"user_id": USER, "email": EMAIL, "portals": [MAIN], "csrf": "c" * 40,
               "since": time.time()}
    async def get(path: str, cookie: str) -> httpx.Response:
        async with httpx.AsyncClient(cookies={SESSION_COOKIE: cookie}) as http:
            return await http.get(path)

    fresh = await get(url, session_cookie(payload, time.time()))
    assert fresh.status_code == 200  # the stack's secret signs what it accepts
    # The cookie's signature is older than SESSION_MAX_AGE_SECONDS.
    stale = await get(url, session_cookie(payload, time.time() - 3601))
    assert stale.status_code == 401 and "session expired" in stale.text
    # Kept alive by use, but signed in longer ago than the maximum age.
    aged = await get(url, session_cookie({**payload, "since": time.time() - 3601}, time.time()))
    assert aged.status_code == 401
    # Not signed with our secret: another portal smuggled in.
    forged_payload = base64.b64encode(json.dumps({**payload, "portals": [FOREIGN]}).encode())
    forged = itsdangerous.TimestampSigner("guessed").sign(forged_payload).decode()
    answer = await get(f"{web_stack.api.url}/settings/portals/{FOREIGN}", forged)
    assert answer.status_code == 401


# -- Connect Kleer -------------------------------------------------------------------------------

def test_kleer_form_messages() -> None:
    shown, company, key = parse_kleer_form({"company_id": "", "api_key": ""})
    assert (company, key) == (None, None)
    assert shown.errors == [
        "Kleer company id is required: the number of your company in Kleer (Kleer support or "
        "Settings → API gives it).",
        "Kleer API key is required (the token Kleer issued for this company)."]
    shown, company, key = parse_kleer_form({"company_id": "12a", "api_key": "two words"})
    assert shown.errors[0] == 'Kleer company id "12a" is not a whole number ≥ 1.'
    assert shown.errors[1].startswith("Kleer API key is not a key")
    assert parse_kleer_form({"company_id": " 7 ", "api_key": " k-1 "})[1:] == (7, "k-1")


async def test_connect_kleer_checks_live_and_never_shows_the_key(web_stack: LocalStack,
                                                                browser: httpx.AsyncClient) -> None:
    page = await sign_in(browser, web_stack, KLEER_PORTAL)
    csrf = csrf_of(page.text)
    url = f"/settings/portals/{KLEER_PORTAL}/kleer"
    invalid = await browser.post(url, data={"csrf": csrf, "company_id": "abc", "api_key": ""})
    assert invalid.status_code == 400
    assert 'Kleer company id "abc" is not a whole number ≥ 1.' in text_of(invalid.text)
    assert "Kleer API key is required" in invalid.text
    assert 'value="abc"' in invalid.text  # the form comes back as typed

    wrong = await browser.post(url, data={"csrf": csrf, "company_id": str(KLEER_COMPANY),
                                          "api_key": "wrong-key-123"})
    assert wrong.status_code == 400
    assert (f"Kleer refused this API key for company {KLEER_COMPANY} (Kleer 401: Unauthorized)"
            in text_of(wrong.text)) and "Nothing was saved." in wrong.text
    assert "wrong-key-123" not in wrong.text
    unknown = await browser.post(url, data={"csrf": csrf, "company_id": "999",
                                            "api_key": KLEER_KEY})
    assert unknown.status_code == 400 and "Kleer does not know company 999" in unknown.text
    assert KLEER_KEY not in unknown.text
    assert await web_stack.services.store.kleer_credentials(KLEER_PORTAL) is None

    saved = await browser.post(url, data={"csrf": csrf, "company_id": str(KLEER_COMPANY),
                                          "api_key": KLEER_KEY})
    assert saved.status_code == 303
    creds = await web_stack.services.store.kleer_credentials(KLEER_PORTAL)
    assert creds is not None and (creds.company_id, creds.api_key) == (KLEER_COMPANY, KLEER_KEY)
    page = await browser.get(saved.headers["location"])
    text = text_of(page.text)
    assert f"Kleer connected: company {KLEER_COMPANY}, key stored" in text
    assert f"connected to company {KLEER_COMPANY}, key stored" in text
    assert KLEER_KEY not in page.text and KLEER_KEY not in str(browser.cookies)

    check = await browser.post(f"/settings/portals/{KLEER_PORTAL}/kleer/check",
                               data={"csrf": csrf}, follow_redirects=True)
    assert (f"Kleer check passed: company {KLEER_COMPANY} accepts the stored key"
            in text_of(check.text))
    web_stack.kleer.add_company(KLEER_COMPANY, "rotated-key")  # the key is revoked in Kleer
    try:
        check = await browser.post(f"/settings/portals/{KLEER_PORTAL}/kleer/check",
                                   data={"csrf": csrf}, follow_redirects=True)
        assert "Kleer check failed: Kleer refused this API key" in text_of(check.text)
    finally:
        web_stack.kleer.add_company(KLEER_COMPANY, KLEER_KEY)


# -- field mappings and properties --------------------------------------------------------------

def test_mappings_form_messages() -> None:
    shown, saved = parse_mappings_form("client", {
        "rows-0-kleer": "email", "rows-0-hubspot": "", "rows-1-kleer": "email",
        "rows-1-hubspot": "Bad Name", "rows-2-kleer": "nmae", "rows-2-hubspot": "x",
        "rows-3-kleer": "", "rows-3-hubspot": "", "rows-3-default": "",
        "rows-4-kleer": "phone", "rows-4-hubspot": "phone", "rows-4-remove": "1"})
    assert saved is None
    assert shown.errors == [
        "Row 1: choose the HubSpot property to read for Email (email).",
        "Row 2: Email (email) is already mapped in row 1; a Kleer field takes one HubSpot property.",
        'Row 2: "Bad Name" is not a HubSpot property name (lower-case letters, digits and '
        "underscores).",
        'Row 3: "nmae" is not a Kleer client field (known: name, orgno, email, phone, '
        "address.address1, address.address2, address.zip-code, address.state, address.country, "
        "country-code, vat-nr, client-type, currency-type, delivery-type, payment-days, contact).",
        "Name (name) needs a mapping: Kleer cannot create a client without it."]
    assert [r.kleer for r in shown.rows] == ["email", "email", "nmae"]  # blank and removed: gone
    shown, saved = parse_mappings_form("project", {
        "rows-3-kleer": "name", "rows-3-hubspot": "dealname", "rows-10-kleer": "budget-hours",
        "rows-10-hubspot": "hours", "rows-10-default": "40"})
    assert shown.errors == [] and saved is not None
    assert [(m.kleer, m.hubspot, m.default) for m in saved] == [
        ("name", "dealname", None), ("budget-hours", "hours", "40")]


async def test_mappings_from_the_portals_properties_missing_ones_flagged(
        web_stack: LocalStack, browser: httpx.AsyncClient) -> None:
    with web_stack.hubspot.lock:
        crm = web_stack.hubspot.portal(MAP_PORTAL).crm
        crm.add_property("companies", {
            "name": "legal_name", "label": "Legal name", "type": "string", "fieldType": "text",
            "groupName": "companyinformation"})
        del crm.properties["companies"]["kleer_email"]  # a portal without this default's property
    page = await sign_in(browser, web_stack, MAP_PORTAL)
    csrf = csrf_of(page.text)
    text = text_of(page.text)
    assert "Current: defaults (nothing saved yet)." in text
    # Defaults name properties this portal lacks (e.g. kleer_email): flagged.
    assert "Not in this portal's companies properties: kleer_email." in text
    assert '<option value="kleer_email" selected>kleer_email (missing in HubSpot)</option>' in page.text
    assert '<option value="legal_name">Legal name (legal_name)</option>' in page.text
    assert '<option value="dealname" selected>' in page.text  # project rows list deal properties

    url = f"/settings/portals/{MAP_PORTAL}/mappings/client"
    bad = await browser.post(url, data={"csrf": csrf, "rows-0-kleer": "email",
                                        "rows-0-hubspot": "legal_name"})
    assert bad.status_code == 400
    assert "Name (name) needs a mapping: Kleer cannot create a client without it." in bad.text
    assert await web_stack.services.store.mappings(MAP_PORTAL) == {}

    saved = await browser.post(url, data={
        "csrf": csrf, "rows-0-kleer": "name", "rows-0-hubspot": "legal_name",
        "rows-1-kleer": "email", "rows-1-hubspot": "no_such_property",
        "rows-1-default": "billing@example.se", "rows-2-kleer": "", "rows-2-hubspot": ""})
    assert saved.status_code == 303 and saved.headers["location"].endswith("#mappings-client")
    stored = (await web_stack.services.store.mappings(MAP_PORTAL))["client"]
    assert [(m.kleer, m.hubspot, m.default) for m in stored] == [
        ("name", "legal_name", None), ("email", "no_such_property", "billing@example.se")]
    page = await browser.get(saved.headers["location"])
    text = text_of(page.text)
    assert "Client field mappings saved (2 rows)" in text and "Current: saved on this page." in text
    assert "Not in this portal's companies properties: no_such_property." in text
    assert '<option value="legal_name" selected>Legal name (legal_name)</option>' in page.text
    unknown_kind = await browser.post(f"/settings/portals/{MAP_PORTAL}/mappings/invoice",
                                      data={"csrf": csrf})
    assert unknown_kind.status_code == 404


async def test_the_status_button_creates_the_missing_properties(
        web_stack: LocalStack, browser: httpx.AsyncClient) -> None:
    page = await sign_in(browser, web_stack, PROPS_PORTAL)
    text = text_of(page.text)
    assert "companies kleer_id missing" in text and "invoices kleer_id (unique) missing" in text
    assert "Create the missing Kleer properties" in text
    created = await browser.post(f"/settings/portals/{PROPS_PORTAL}/properties",
                                 data={"csrf": csrf_of(page.text)}, follow_redirects=True)
    text = text_of(created.text)
    assert "Created in HubSpot: companies: property group kleer; companies: property kleer_id" in text
    assert "missing" not in text.split("Kleer properties in HubSpot")[1].split("Connect Kleer")[0]
    assert "Create the missing Kleer properties" not in text
    with web_stack.hubspot.lock:
        props = web_stack.hubspot.portal(PROPS_PORTAL).crm.properties
        assert props["subscriptions"]["kleer_id"]["hasUniqueValue"] is True


# -- recent runs, replay, reconnect ---------------------------------------------------------------

async def test_recent_runs_with_errors_links_and_replay(web_stack: LocalStack,
                                                        browser: httpx.AsyncClient) -> None:
    page = await sign_in(browser, web_stack, MAIN)
    csrf = csrf_of(page.text)
    assert "No runs yet" in page.text
    await web_stack.services.store.set_kleer_credentials(MAIN, KLEER_COMPANY, KLEER_KEY)
    good = web_stack.hubspot.create_object(MAIN, "companies", {"name": "Runs AB"})
    empty = web_stack.hubspot.create_object(MAIN, "companies", {"name": ""})
    action = "create-client-from-mappings"
    async with HubSpotDriver(web_stack.action_url(action), DEMO_CLIENT_SECRET,
                             web_stack.hubspot_url) as driver:
        ids = {}
        for company in (good, empty):
            delivery = await driver.execute(MAIN, "COMPANY", int(company), {})
            assert delivery.status_code == 200, delivery
            await driver.wait_for_completion(delivery.callback_id, timeout_s=30)
            ids[company] = workflow_id(action, "COMPANY", company, delivery.callback_id)
            await outcome(web_stack.client.get_workflow_handle(ids[company]))
    text = ""
    for _ in range(50):  # visibility is eventually consistent
        page = await browser.get(f"/settings/portals/{MAIN}")
        text = text_of(page.text)
        if ids[good] in page.text and ids[empty] in page.text and "created" in text:
            break
        await asyncio.sleep(0.2)
    rows = re.findall(r'<tr class="[^"]*" data-workflow-id="([^"]+)"', page.text)
    assert rows == [ids[empty], ids[good]], rows  # newest first, no per-record child runs
    assert f"{action} {good} created Completed" in text
    assert (f'{action} {empty} failed Failed Name is required: HubSpot property "name" is empty '
            "and has no default") in text
    assert (f'href="http://localhost:8233/namespaces/default/workflows/{ids[good]}"'
            in page.text)
    assert page.text.count(">Replay</button>") == 1

    replayed = await browser.post(f"/settings/portals/{MAIN}/runs/replay",
                                  data={"csrf": csrf, "workflow_id": ids[empty]},
                                  follow_redirects=True)
    assert f"Replay started: {ids[empty]}-replay-1" in text_of(replayed.text)
    # A run of another portal cannot be replayed from here.
    foreign = await browser.post(f"/settings/portals/{MAIN}/runs/replay",
                                 data={"csrf": csrf, "workflow_id": "create-client-company-1-x"},
                                 follow_redirects=True)
    assert "No run 'create-client-company-1-x' of portal" in text_of(foreign.text)


async def test_a_disconnected_portal_says_why_and_signing_in_reconnects_it(
        web_stack: LocalStack, browser: httpx.AsyncClient) -> None:
    await sign_in(browser, web_stack, RECONNECT_PORTAL)
    store = web_stack.services.store
    await store.mark_disconnected(RECONNECT_PORTAL, "HubSpot refused the refresh: BAD_REFRESH_TOKEN")
    page = await browser.get(f"/settings/portals/{RECONNECT_PORTAL}")
    text = text_of(page.text)
    assert "disconnected HubSpot refused the refresh: BAD_REFRESH_TOKEN." in text
    assert "Reconnect" in text and "none stored (reconnect to get new ones)" in text
    page = await sign_in(browser, web_stack, RECONNECT_PORTAL)
    assert "connected installed" in text_of(page.text)
    record = await store.portal(RECONNECT_PORTAL)
    assert record is not None and record.status == "connected"


async def test_without_a_session_secret_the_pages_say_so(web_stack: LocalStack) -> None:
    from dataclasses import replace

    from api import create_app

    app = create_app(replace(web_stack.settings, session_secret=None), web_stack.client,
                     web_stack.services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as http:
        answer = await http.get("/install")
        assert answer.status_code == 503 and "SESSION_SECRET" in answer.text
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/hubspot/actions/create-client")).status_code == 405


def test_templates_never_render_secrets() -> None:
    """No template names a token or key field (the records they get carry none)."""
    for template in (Path(__file__).parents[1] / "web" / "templates").glob("*.html"):
        source = template.read_text()
        for name in ("api_key }}", "access_token", "refresh_token", "session_secret"):
            assert name not in source, (template.name, name)


async def test_the_outbound_sync_section_pauses_resumes_and_lists_unmatched_clients(
        web_stack: LocalStack, browser: httpx.AsyncClient) -> None:
    from sync import schedules

    page = await sign_in(browser, web_stack, MAIN)
    await schedules.ensure(web_stack.client, web_stack.settings, MAIN)
    await web_stack.services.store.set_unmatched(MAIN, [(77, "Lonely AB", "no HubSpot company "
                                                                          "has kleer_id 77")])
    page = await browser.get(f"/settings/portals/{MAIN}")
    text = text_of(page.text)
    assert "Outbound sync (Kleer → HubSpot)" in text and "Schedule: active" in text
    assert "77 Lonely AB no HubSpot company has kleer_id 77" in text
    paused = await browser.post(f"/settings/portals/{MAIN}/sync/pause",
                                data={"csrf": csrf_of(page.text)}, follow_redirects=True)
    assert "Schedule: paused" in text_of(paused.text)
    assert (await schedules.status(web_stack.client, MAIN)).paused
    resumed = await browser.post(f"/settings/portals/{MAIN}/sync/resume",
                                 data={"csrf": csrf_of(paused.text)}, follow_redirects=True)
    assert "Schedule: active" in text_of(resumed.text)
    refused = await browser.post(f"/settings/portals/{MAIN}/sync/pause", data={"csrf": "forged"})
    assert refused.status_code == 403 and not (await schedules.status(web_stack.client, MAIN)).paused
