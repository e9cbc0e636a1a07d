"""HubSpot OAuth end to end over real HTTP: the simulator's authorize page and token endpoints,
driven through the typed client `oauth.hubspot.HubSpotOAuth`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from oauth.hubspot import HubSpotOAuth, RefreshRefused, TokenInfo
from oauth.scopes import REQUIRED_SCOPES, required_scope_names
from service_errors import ServiceError
from simulators.common import ServerThread
from simulators.hubspot import HubSpotState, create_hubspot_app
from storage.records import OAuthTokens

CLIENT_ID, CLIENT_SECRET = "test-client-id", "test-client-secret-not-real"
REDIRECT = "http://127.0.0.1:8000/oauth/callback"
PORTAL, OTHER_PORTAL, STATIC_PORTAL, STATIC_TOKEN = 4100, 4200, 4300, "private-app-token"
ADMIN, ADMIN_EMAIL = 501, "admin@acme.se"
OUTSIDER, OUTSIDER_EMAIL = 502, "someone@elsewhere.se"


class Forms(HTMLParser):
    """The page's forms: (action, fields, button label), one per submit button."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str], str]] = []
        self._action, self._fields, self._button = "", {}, None
        self._label = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._action, self._fields = a.get("action", ""), {}
        elif tag == "input":
            self._fields[a["name"]] = a.get("value", "")
        elif tag == "button":
            self._button, self._label = a, ""

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._label += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            fields = dict(self._fields)
            if self._button.get("name"):
                fields[self._button["name"]] = self._button.get("value", "")
            self.forms.append((self._action, fields, self._label.strip()))
            self._button = None


def forms_of(page: str) -> dict[str, tuple[str, dict[str, str]]]:
    parser = Forms()
    parser.feed(page)
    return {label: (action, fields) for action, fields, label in parser.forms}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[HubSpotState, ServerThread]]:
    state = HubSpotState()
    state.add_portal(STATIC_PORTAL, STATIC_TOKEN)
    with ServerThread(create_hubspot_app(state)) as server:
        yield state, server


@pytest.fixture
def hs(server: tuple[HubSpotState, ServerThread]) -> HubSpotState:
    state = server[0]
    state.configure_app(CLIENT_ID, CLIENT_SECRET, [REDIRECT], required_scope_names(),
                        access_token_ttl_s=1800)
    state.add_user(ADMIN, ADMIN_EMAIL, [PORTAL, OTHER_PORTAL], default=True)
    state.add_user(OUTSIDER, OUTSIDER_EMAIL, [OTHER_PORTAL])
    state.reset()
    return state


@pytest.fixture
async def client(server: tuple[HubSpotState, ServerThread], hs: HubSpotState
                 ) -> AsyncIterator[HubSpotOAuth]:
    url = server[1].url
    async with HubSpotOAuth(url, url + "/oauth/authorize", CLIENT_ID, CLIENT_SECRET,
                            REDIRECT) as oauth:
        yield oauth


@pytest.fixture
async def browser(server: tuple[HubSpotState, ServerThread]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server[1].url, follow_redirects=False) as http:
        yield http


async def authorize(browser: httpx.AsyncClient, url: str, portal: int = PORTAL,
                    user: str | None = None) -> dict[str, list[str]]:
    """Open the authorize page like a browser, press "Grant access to <portal>", follow nothing:
    the query of the redirect back to us."""
    if user:
        url += "&user=" + user
    page = await browser.get(url)
    assert page.status_code == 200, page.text
    action, fields = forms_of(page.text)[f"Grant access to {portal}"]
    answer = await browser.post(action, data=fields)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return parse_qs(urlsplit(location).query)


async def install(client: HubSpotOAuth, browser: httpx.AsyncClient,
                  portal: int = PORTAL) -> OAuthTokens:
    query = await authorize(browser, client.authorize_url_for("st-1"), portal)
    return await client.exchange_code(query["code"][0])


async def crm_get(browser: httpx.AsyncClient, token: str, object_id: str) -> httpx.Response:
    return await browser.get(f"/crm/v3/objects/companies/{object_id}",
                             headers={"Authorization": f"Bearer {token}"})


def refreshes(hs: HubSpotState) -> int:
    return sum(1 for c in hs.calls.list("POST", "/oauth/v1/token")
               if "grant_type=refresh_token" in str(c["body"]))


# -- the whole dance --

async def test_install_link_names_our_scopes(client: HubSpotOAuth) -> None:
    url = client.authorize_url_for("csrf 1/2")
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == [CLIENT_ID] and query["redirect_uri"] == [REDIRECT]
    assert query["scope"][0].split(" ") == required_scope_names()
    assert "%20" in url and "+" not in url  # scopes separated by URL-encoded spaces
    assert query["state"] == ["csrf 1/2"]
    assert {"oauth", "automation", "crm.objects.companies.write",
            "crm.schemas.deals.write"} <= set(required_scope_names())
    assert all(s.why for s in REQUIRED_SCOPES)


async def test_authorize_exchange_call_expire_refresh(client: HubSpotOAuth,
                                                      browser: httpx.AsyncClient,
                                                      hs: HubSpotState) -> None:
    company = hs.create_object(PORTAL, "companies", {"name": "Acme AB"})
    page = await browser.get(client.authorize_url_for("st-42"))
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert ADMIN_EMAIL in page.text and 'aria-label="Accounts"' in page.text
    labels = set(forms_of(page.text))
    assert labels == {f"Grant access to {PORTAL}", f"Grant access to {OTHER_PORTAL}", "Deny access"}

    query = await authorize(browser, client.authorize_url_for("st-42"))
    assert query["state"] == ["st-42"]
    before = datetime.now(UTC)
    tokens = await client.exchange_code(query["code"][0])
    assert isinstance(tokens, OAuthTokens)
    assert before + timedelta(seconds=1795) <= tokens.expires_at <= datetime.now(UTC) + timedelta(
        seconds=1800)

    info = await client.token_info(tokens.access_token)
    assert isinstance(info, TokenInfo)
    assert (info.hub_id, info.user, info.user_id) == (PORTAL, ADMIN_EMAIL, ADMIN)
    assert info.scopes == required_scope_names() and 1790 <= info.expires_in <= 1800
    assert info.hub_domain

    ok = await crm_get(browser, tokens.access_token, company)
    assert ok.status_code == 200 and ok.json()["properties"]["name"] == "Acme AB"

    assert hs.expire_access_tokens(PORTAL) == 1
    expired = await crm_get(browser, tokens.access_token, company)
    assert expired.status_code == 401
    body = expired.json()
    assert body["category"] == "EXPIRED_AUTHENTICATION" and body["status"] == "error"
    assert body["message"].startswith("The OAuth token used to make this call expired ")
    assert body["message"].endswith(" second(s) ago.") and body["correlationId"]

    fresh = await client.refresh(tokens.refresh_token)
    assert fresh.access_token != tokens.access_token
    assert fresh.refresh_token == tokens.refresh_token  # HubSpot keeps the refresh token
    assert (await crm_get(browser, fresh.access_token, company)).status_code == 200
    assert refreshes(hs) == 1  # countable in the call log, attributed to the portal
    assert [c["key"] for c in hs.calls.list("POST", "/oauth/v1/token")] == [PORTAL, PORTAL]


async def test_access_tokens_expire_after_the_ttl(client: HubSpotOAuth, browser: httpx.AsyncClient,
                                                  hs: HubSpotState) -> None:
    company = hs.create_object(PORTAL, "companies", {"name": "Short-lived"})
    hs.configure_app(CLIENT_ID, CLIENT_SECRET, [REDIRECT], required_scope_names(),
                     access_token_ttl_s=0.5)
    tokens = await install(client, browser)
    assert tokens.expires_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert (await crm_get(browser, tokens.access_token, company)).status_code == 200
    await asyncio.sleep(0.6)
    assert (await crm_get(browser, tokens.access_token, company)).json()["category"] == \
        "EXPIRED_AUTHENTICATION"
    with pytest.raises(ServiceError) as info:
        await client.token_info(tokens.access_token)
    assert info.value.status == 400 and not info.value.retryable


# -- codes --

async def test_codes_are_single_use_and_short_lived(client: HubSpotOAuth,
                                                    browser: httpx.AsyncClient,
                                                    hs: HubSpotState) -> None:
    code = (await authorize(browser, client.authorize_url_for("s")))["code"][0]
    await client.exchange_code(code)
    with pytest.raises(ServiceError) as used:
        await client.exchange_code(code)
    assert (used.value.status, used.value.category) == (400, "BAD_AUTH_CODE")
    assert not used.value.retryable and not isinstance(used.value, RefreshRefused)
    assert code not in str(used.value)

    late = (await authorize(browser, client.authorize_url_for("s")))["code"][0]
    hs.oauth.codes[late].expires_at = time.time() - 1
    with pytest.raises(ServiceError) as expired:
        await client.exchange_code(late)
    assert expired.value.category == "BAD_AUTH_CODE"


async def test_wrong_secret_or_redirect_is_refused(server: tuple[HubSpotState, ServerThread],
                                                   client: HubSpotOAuth,
                                                   browser: httpx.AsyncClient) -> None:
    url = server[1].url
    tokens = await install(client, browser)
    code = (await authorize(browser, client.authorize_url_for("s")))["code"][0]
    async with HubSpotOAuth(url, url + "/oauth/authorize", CLIENT_ID, "wrong-secret",
                            REDIRECT) as wrong:
        with pytest.raises(ServiceError) as exchange:
            await wrong.exchange_code(code)
        # a wrong secret is configuration, not a revoked install: never RefreshRefused
        with pytest.raises(ServiceError) as refresh:
            await wrong.refresh(tokens.refresh_token)
    for exc in (exchange.value, refresh.value):
        assert (exc.status, exc.category) == (400, "BAD_CLIENT_SECRET")
        assert not isinstance(exc, RefreshRefused) and not exc.retryable
        assert "wrong-secret" not in str(exc) and tokens.refresh_token not in str(exc)

    async with HubSpotOAuth(url, url + "/oauth/authorize", CLIENT_ID, CLIENT_SECRET,
                            REDIRECT + "/other") as moved:
        with pytest.raises(ServiceError) as redirect:
            await moved.exchange_code(code)
    assert redirect.value.category == "BAD_REDIRECT_URI"
    await client.exchange_code(code)  # a refused exchange does not use the code up


@pytest.mark.parametrize(("change", "says"), [
    ({"client_id": "nope"}, "client_id"),
    ({"redirect_uri": "http://127.0.0.1:8000/elsewhere"}, "redirect_uri"),
    ({"scope": "oauth"}, "missing required scopes"),
    ({"scope": " ".join([*required_scope_names(), "tickets"])}, "not configured"),
    ({"optional_scope": "crm.objects.contacts.read"}, "not configured"),
    ({"user": "nobody@x.se"}, "Unknown HubSpot user"),
])
async def test_authorize_page_refuses_bad_requests(client: HubSpotOAuth, browser: httpx.AsyncClient,
                                                   change: dict[str, str], says: str) -> None:
    params = {k: v[0] for k, v in parse_qs(urlsplit(client.authorize_url_for("s")).query).items()}
    page = await browser.get("/oauth/authorize", params={**params, **change})
    assert page.status_code in (400, 401) and "text/html" in page.headers["content-type"]
    assert says in page.text and 'role="alert"' in page.text
    assert "location" not in page.headers  # an error page, never a redirect to an unchecked URI


async def test_deny_and_who_may_grant(client: HubSpotOAuth, browser: httpx.AsyncClient) -> None:
    page = await browser.get(client.authorize_url_for("st-9"))
    action, fields = forms_of(page.text)["Deny access"]
    denied = await browser.post(action, data=fields)
    assert denied.status_code == 302
    query = parse_qs(urlsplit(denied.headers["location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["st-9"]
    assert "code" not in query

    # another user, chosen with `user`, sees only their own portal ...
    page = await browser.get(client.authorize_url_for("s") + "&user=" + OUTSIDER_EMAIL)
    assert set(forms_of(page.text)) == {f"Grant access to {OTHER_PORTAL}", "Deny access"}
    # ... and cannot grant another one by editing the form
    action, fields = forms_of(page.text)[f"Grant access to {OTHER_PORTAL}"]
    forged = await browser.post(action, data={**fields, "portal_id": str(PORTAL)})
    assert forged.status_code == 403 and "location" not in forged.headers
    query = await authorize(browser, client.authorize_url_for("s"), OTHER_PORTAL, str(OUTSIDER))
    info = await client.token_info((await client.exchange_code(query["code"][0])).access_token)
    assert (info.hub_id, info.user) == (OTHER_PORTAL, OUTSIDER_EMAIL)


# -- revocation --

async def test_revoked_refresh_token_is_refused(client: HubSpotOAuth, browser: httpx.AsyncClient,
                                                hs: HubSpotState) -> None:
    company = hs.create_object(PORTAL, "companies", {"name": "Acme"})
    tokens = await install(client, browser)
    await client.revoke_refresh_token(tokens.refresh_token)
    await client.revoke_refresh_token(tokens.refresh_token)  # again: already gone, fine
    with pytest.raises(RefreshRefused) as refused:
        await client.refresh(tokens.refresh_token)
    assert refused.value.status == 400 and refused.value.category == "BAD_REFRESH_TOKEN"
    assert not refused.value.retryable and tokens.refresh_token not in str(refused.value)
    # v1 guide: deleting the refresh token leaves its access tokens working until they expire
    assert (await crm_get(browser, tokens.access_token, company)).status_code == 200

    with pytest.raises(RefreshRefused):
        await client.refresh("na1-never-issued")


async def test_uninstall_revokes_everything(client: HubSpotOAuth, browser: httpx.AsyncClient,
                                            hs: HubSpotState) -> None:
    company = hs.create_object(PORTAL, "companies", {"name": "Acme"})
    tokens = await install(client, browser)
    other = await install(client, browser, OTHER_PORTAL)
    uninstalled = await browser.post("/_sim/oauth/uninstall", json={"portal_id": PORTAL})
    assert uninstalled.json()["revoked_refresh_tokens"] >= 1
    with pytest.raises(RefreshRefused):
        await client.refresh(tokens.refresh_token)
    gone = await crm_get(browser, tokens.access_token, company)
    assert gone.status_code == 401 and gone.json()["category"] == "UNAUTHORIZED"
    await client.refresh(other.refresh_token)  # other portals keep their install
    # reinstalling works again
    again = await install(client, browser)
    assert (await crm_get(browser, again.access_token, company)).status_code == 200


async def test_private_app_tokens_unaffected(client: HubSpotOAuth, browser: httpx.AsyncClient,
                                             hs: HubSpotState) -> None:
    company = hs.create_object(STATIC_PORTAL, "companies", {"name": "Static"})
    assert (await crm_get(browser, STATIC_TOKEN, company)).status_code == 200
    await install(client, browser)
    hs.expire_access_tokens()
    hs.uninstall_app(PORTAL)
    assert (await crm_get(browser, STATIC_TOKEN, company)).status_code == 200
    assert (await crm_get(browser, "not-a-token", company)).json()["category"] == "UNAUTHORIZED"


# -- failures the client must classify --

async def test_oauth_calls_are_not_rate_limited(client: HubSpotOAuth, browser: httpx.AsyncClient,
                                                hs: HubSpotState) -> None:
    tokens = await install(client, browser)
    hs.limiter.configure(1, 10_000, key=PORTAL)
    try:
        for _ in range(4):
            await client.token_info(tokens.access_token)
            tokens = await client.refresh(tokens.refresh_token)
        company = hs.create_object(PORTAL, "companies", {"name": "Acme"})
        assert (await crm_get(browser, tokens.access_token, company)).status_code == 200
        assert (await crm_get(browser, tokens.access_token, company)).status_code == 429
    finally:
        hs.limiter.configure(190, 10_000, key=PORTAL)


async def test_server_errors_and_odd_answers_are_retryable(client: HubSpotOAuth,
                                                           browser: httpx.AsyncClient,
                                                           hs: HubSpotState) -> None:
    tokens = await install(client, browser)
    hs.faults.add(status=503, path_contains="/oauth/v1/token", count=1)
    hs.faults.add(status=429, path_contains="/oauth/v1/token", count=1, retry_after=3)
    with pytest.raises(ServiceError) as unavailable:
        await client.refresh(tokens.refresh_token)
    assert unavailable.value.retryable and not isinstance(unavailable.value, RefreshRefused)
    with pytest.raises(ServiceError) as limited:
        await client.refresh(tokens.refresh_token)
    assert limited.value.retryable and limited.value.retry_after_s == 3
    await client.refresh(tokens.refresh_token)

    def odd(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/oauth/v1/access-tokens/"):
            return httpx.Response(200, json={"hub_id": "not a number", "scopes": []})
        return httpx.Response(200, json={"token_type": "bearer", "access_token": ""})

    async with HubSpotOAuth("http://hubspot.test", "http://hubspot.test/oauth/authorize",
                            CLIENT_ID, CLIENT_SECRET, REDIRECT,
                            transport=httpx.MockTransport(odd)) as mocked:
        for call in (mocked.refresh(tokens.refresh_token), mocked.exchange_code("c"),
                     mocked.token_info(tokens.access_token)):
            with pytest.raises(ServiceError) as unexpected:
                await call
            assert unexpected.value.retryable and unexpected.value.category == "UNEXPECTED_RESPONSE"
            assert tokens.access_token not in str(unexpected.value)

    async with HubSpotOAuth("http://127.0.0.1:9", "x", CLIENT_ID, CLIENT_SECRET, REDIRECT,
                            timeout_s=2) as unreachable:
        with pytest.raises(ServiceError) as network:
            await unreachable.refresh(tokens.refresh_token)
    assert network.value.retryable and network.value.status is None


async def test_no_token_reaches_the_logs(client: HubSpotOAuth, browser: httpx.AsyncClient,
                                         caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpx"):
        tokens = await install(client, browser)
        await client.token_info(tokens.access_token)
        await client.refresh(tokens.refresh_token)
        await client.revoke_refresh_token(tokens.refresh_token)
    text = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert "/oauth/v1/access-tokens/[redacted]" in text  # httpx's request line, redacted
    for secret in (tokens.access_token, tokens.refresh_token, CLIENT_SECRET):
        assert secret not in text
    assert tokens.access_token not in repr(tokens) and CLIENT_SECRET not in repr(client)
