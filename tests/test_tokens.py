"""OAuth access tokens of installed portals: one refresh per expiry across processes, no expired
token handed out, a refused refresh disconnects the portal and its runs say "reconnect"."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from local.stack import DEMO_CLIENT_SECRET, LocalStack
from oauth.hubspot import HubSpotOAuth
from oauth.scopes import required_scope_names
from oauth.tokens import PortalDisconnected, TokenManager
from settings import Settings, StepPolicy
from simulators.common import ServerThread
from simulators.driver import HubSpotDriver
from simulators.hubspot import HubSpotState, create_hubspot_app
from storage.store import Store
from tests.conftest import DATABASE_SECRETS_KEY
from tests.test_oauth import forms_of
from workflows.models import workflow_id

CLIENT_ID = "kleer-test-app"
ADMIN = 9001


async def grant(hubspot_url: str, oauth: HubSpotOAuth, portal: int) -> str:
    """Press "Grant access to <portal>" on the simulator's authorize page: the code."""
    query = urlsplit(oauth.authorize_url_for("state-1")).query
    async with httpx.AsyncClient(base_url=hubspot_url) as browser:
        page = await browser.get("/oauth/authorize?" + query)
        action, fields = forms_of(page.text)[f"Grant access to {portal}"]
        answer = await browser.post(action, data=fields)
    return parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]


async def install(store: Store, oauth: HubSpotOAuth, hubspot_url: str, portal: int) -> None:
    tokens = await oauth.exchange_code(await grant(hubspot_url, oauth, portal))
    info = await oauth.token_info(tokens.access_token)
    await store.record_install(portal, info.hub_domain, info.user_id or ADMIN, info.user, tokens)


def refreshes(hs: HubSpotState) -> int:
    return sum(1 for c in hs.calls.list("POST", "/oauth/v1/token")
               if "grant_type=refresh_token" in str(c["body"]))


# -- the token manager on its own: two "processes" (two stores, two managers) -------------------

async def test_an_expired_token_is_refreshed_once_across_processes(database_url: str) -> None:
    hs = HubSpotState()
    redirect = "http://127.0.0.1:1/oauth/callback"
    hs.configure_app(CLIENT_ID, "secret", [redirect], required_scope_names(), access_token_ttl_s=60)
    hs.add_user(ADMIN, "admin@example.se", [6001], default=True)
    with ServerThread(create_hubspot_app(hs)) as sim:
        async with HubSpotOAuth(sim.url, sim.url + "/oauth/authorize", CLIENT_ID, "secret",
                                redirect) as oauth:
            first, second = (await Store.open(database_url, DATABASE_SECRETS_KEY),
                             await Store.open(database_url, DATABASE_SECRETS_KEY))
            try:
                await install(first, oauth, sim.url, 6001)
                managers = [TokenManager(first, oauth, margin_s=5), TokenManager(second, oauth,
                                                                                  margin_s=5)]
                tokens = [await m.access_token(6001) for m in managers]
                assert refreshes(hs) == 0 and tokens[0] == tokens[1]  # fresh: the stored one
                token = tokens[0]
                hs.expire_access_tokens(6001)  # HubSpot now answers 401 to it: both see stale
                got = await asyncio.gather(*(managers[n % 2].access_token(6001, stale=True)
                                             for n in range(20)))
                assert refreshes(hs) == 1, refreshes(hs)
                assert len(set(got)) == 1 and got[0] != token
                assert sum(m.refreshes for m in managers) == 1
            finally:
                await first.close()
                await second.close()


# -- two worker processes under load ----------------------------------------------------------

PORTAL, COMPANY, KLEER_KEY = 6100, 61, "kleer-key-6100"


@pytest.fixture(scope="module")
async def oauth_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalStack]:
    state = tmp_path_factory.mktemp("oauth-stack")
    settings = Settings(
        task_queue="kleer-hubspot-oauth", http_timeout_s=3,
        database_url=f"sqlite+aiosqlite:///{state / 'kleer.db'}",
        database_secrets_key=DATABASE_SECRETS_KEY, hubspot_client_id=CLIENT_ID,
        oauth_redirect_url="http://127.0.0.1:9/oauth/callback", kleer_rate_limit=50,
        reconnect_retry_s=0.5,
        step_policy=StepPolicy(start_to_close_s=10, initial_retry_s=0.2, max_retry_s=2,
                               give_up_after_s=120),
    )
    async with LocalStack(settings=settings, run_worker=False, log_dir=state,
                          token_margin_s=3) as stack:
        hs = stack.hubspot
        hs.configure_app(CLIENT_ID, DEMO_CLIENT_SECRET, [settings.oauth_redirect_url],
                         required_scope_names(), access_token_ttl_s=10)
        hs.add_user(ADMIN, "admin@example.se", [PORTAL], default=True)
        stack.settings = replace(stack.settings, hubspot_authorize_url=stack.hubspot_url
                                 + "/oauth/authorize")
        stack.kleer.add_company(COMPANY, KLEER_KEY)
        yield stack


async def test_a_token_expiring_under_load_gets_exactly_one_refresh(oauth_stack, tmp_path):
    stack = oauth_stack
    store, oauth = stack.services.store, stack.services.oauth
    assert store is not None and oauth is not None
    await install(store, oauth, stack.hubspot_url, PORTAL)
    await store.set_kleer_credentials(PORTAL, COMPANY, KLEER_KEY)
    installed = time.monotonic()  # the token lives 10 s; refreshed when < 3 s are left
    workers = [stack.spawn_worker(tmp_path / f"worker-{n}.log") for n in range(2)]
    try:
        companies = [stack.hubspot.create_object(PORTAL, "companies", {"name": f"Load {n} AB"})
                     for n in range(24)]
        async with HubSpotDriver(stack.action_url("create-client"), DEMO_CLIENT_SECRET,
                                 stack.hubspot_url) as driver:
            async def one(n: int, company: str) -> dict:
                await asyncio.sleep(n * 0.4)  # 3 executions a second for 9.6 s
                delivery = await driver.execute(PORTAL, "COMPANY", int(company),
                                                {"name": f"Load {n} AB"},
                                                action_url=stack.action_url("create-client"))
                return await driver.wait_for_completion(delivery.callback_id, timeout_s=90)

            outs = await asyncio.gather(*(one(n, c) for n, c in enumerate(companies)))
        finished = time.monotonic() - installed
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait()
    assert [o["result"] for o in outs] == ["created"] * len(companies), outs
    assert finished < 14, finished  # the refreshed token (due at ~14 s) was never due again
    assert refreshes(stack.hubspot) == 1
    # No process used a token it knew had expired: HubSpot refused none.
    refused = [c for c in stack.hubspot.calls.list() if c["status"] == 401]
    assert refused == [], refused[:3]


async def test_an_uninstalled_app_disconnects_the_portal_and_runs_say_reconnect(oauth_stack, tmp_path):
    stack = oauth_stack
    store = stack.services.store
    assert store is not None
    if await store.portal(PORTAL) is None:
        await install(store, stack.services.oauth, stack.hubspot_url, PORTAL)
        await store.set_kleer_credentials(PORTAL, COMPANY, KLEER_KEY)
    stack.hubspot.uninstall_app(PORTAL)
    worker = stack.spawn_worker(tmp_path / "worker.log")
    try:
        company = stack.hubspot.create_object(PORTAL, "companies", {"name": "Gone App AB"})
        async with HubSpotDriver(stack.action_url("create-client"), DEMO_CLIENT_SECRET,
                                 stack.hubspot_url) as driver:
            started = time.monotonic()
            delivery = await driver.execute(PORTAL, "COMPANY", int(company), {"name": "Gone App AB"},
                                            action_url=stack.action_url("create-client"))
            # The refresh is refused: the run fails for good at once (not retried for hours),
            # but HubSpot's callback API needs the portal's token, so the outcome waits...
            handle = stack.client.get_workflow_handle(workflow_id(
                "create-client", "COMPANY", company, delivery.callback_id))
            for _ in range(100):
                if "failed:" in str(await handle.query("__temporal_workflow_metadata")):
                    break
                await asyncio.sleep(0.2)
            assert time.monotonic() - started < 30
            assert stack.hubspot.completion(delivery.callback_id)["state"] == "pending"
            # The portal is disconnected now: the API answers the next execution at once (once
            # its one-second view of the portal has expired).
            await asyncio.sleep(1.1)
            again = await driver.execute(PORTAL, "COMPANY", int(company), {"name": "Gone App AB"},
                                         action_url=stack.action_url("create-client"))
            answer = again.response_json["outputFields"]
            assert answer["hs_execution_state"] == "FAIL_CONTINUE"
            assert "reconnect the Kleer app in HubSpot" in answer["error_message"]
            record = await store.portal(PORTAL)
            assert record is not None and record.status == "disconnected"
            with pytest.raises(PortalDisconnected):
                await stack.services.tokens.access_token(PORTAL)
            # ...until an admin reconnects the app: then HubSpot hears why it failed.
            await install(store, stack.services.oauth, stack.hubspot_url, PORTAL)
            out = await driver.wait_for_completion(delivery.callback_id, timeout_s=60)
            assert out["hs_execution_state"] == "FAIL_CONTINUE"
            assert "reconnect the Kleer app in HubSpot" in out["error_message"], out
    finally:
        worker.terminate()
        worker.wait()
    assert (await store.portal(PORTAL)).status == "connected"


class _DownStore:
    """A database that is away: every call raises StorageUnavailable (as storage/ does)."""

    def __getattr__(self, name: str):
        async def down(*args, **kwargs):
            from storage.db import StorageUnavailable

            raise StorageUnavailable(f"{name}: connection refused")

        return down


async def test_a_database_outage_is_retried_never_read_as_unknown(stack):
    """The API answers 503 (HubSpot retries) and starts nothing; activities retry; nothing is
    taken for "portal unknown"."""
    import json as jsonlib

    from temporalio.exceptions import ApplicationError

    from activities.errors import translate_errors
    from api import create_app
    from hubspot_api.signature import signed_headers
    from pacing import LocalLimiter, Pacer
    from portals.directory import PortalDirectory
    from portals.services import PortalServices
    from simulators.driver import build_execution_body
    from storage.db import StorageUnavailable

    directory = PortalDirectory(stack.settings, store=_DownStore())
    with pytest.raises(StorageUnavailable):
        await directory.known(6200)
    services = PortalServices(directory, Pacer(LocalLimiter()), store=_DownStore())
    started = []

    class Temporal:
        async def start_workflow(self, *args, **kwargs):
            started.append(kwargs["id"])

    app = create_app(stack.settings, Temporal(), services)
    body = jsonlib.dumps(build_execution_body(6200, "COMPANY", 1, {"name": "X"},
                                              callback_id="cb-db-down")).encode()
    url = "http://api.test/hubspot/actions/create-client"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        answer = await http.post(url, content=body, headers={
            "Content-Type": "application/json",
            **signed_headers(DEMO_CLIENT_SECRET, "POST", url, body)})
    assert answer.status_code == 503 and started == []

    @translate_errors
    async def activity_reading_the_directory() -> None:
        await directory.kleer(6200)

    with pytest.raises(ApplicationError) as raised:
        await activity_reading_the_directory()
    assert not raised.value.non_retryable and "database is unavailable" in raised.value.message
