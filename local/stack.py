"""Everything on one machine: Temporal dev server, HubSpot and Kleer simulators, worker and API.

Used by `kleer-hubspot dev` (with fixed ports and the Temporal UI) and by the tests (free ports).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn

from api import create_app
from local.temporal_server import DevServer, free_port
from oauth.scopes import required_scope_names
from portals.services import open_services
from settings import PortalCredentials, Settings
from simulators.common import ServerThread
from simulators.hubspot import HubSpotState, create_hubspot_app
from simulators.kleer import KleerState, create_kleer_app
from temporal_client import connect_with_retry
from worker import build_worker

log = logging.getLogger("stack")

DEMO_PORTAL = 12345
DEMO_HUBSPOT_TOKEN = "demo-hubspot-token"
DEMO_KLEER_COMPANY = 1
DEMO_KLEER_KEY = "demo-kleer-key"
DEMO_CLIENT_SECRET = "demo-client-secret"
# The OAuth side of the local stack (the HubSpot simulator plays HubSpot): the demo app's client
# id, a demo HubSpot user who may install it into the demo portal and into a second portal that
# is not installed yet (try the install link on it), and that portal.
DEMO_CLIENT_ID = "demo-client-id"
DEMO_USER_ID, DEMO_USER_EMAIL = 4242, "admin@demo.example"
DEMO_INSTALL_PORTAL = 54321


@dataclass
class StackPorts:
    temporal: int | None = None  # None = a free port
    temporal_ui: int | None = None  # None = headless
    hubspot: int = 0
    kleer: int = 0
    api: int = 0


class ApiServer:
    """uvicorn serving an app inside the current event loop, on 127.0.0.1."""

    def __init__(self, app, port: int = 0, host: str = "127.0.0.1") -> None:
        self.app, self.host, self.port = app, host, port
        self._task: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="api")
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is not None:
            self._server.should_exit = True
            await self._task
            self._task = None


class LocalStack:
    """Start with `async with LocalStack() as stack:`; `stack.settings` has every URL and secret."""

    def __init__(
        self,
        ports: StackPorts | None = None,
        temporal_address: str | None = None,
        db_file: Path | None = None,
        settings: Settings | None = None,
        run_worker: bool = True,
        hubspot_rate_limit: tuple[int, int] = (190, 10_000),
        log_dir: Path | None = None,
        keep_api_urls: bool = False,
        token_margin_s: float | None = None,
    ) -> None:
        self.ports = ports or StackPorts()
        self.token_margin_s = token_margin_s  # refresh OAuth tokens this long before they expire
        self.services = None
        self.external_temporal = temporal_address
        self.db_file = db_file
        self.base_settings = settings or Settings()
        self.run_worker = run_worker
        self.hubspot_rate_limit = hubspot_rate_limit
        self.log_dir = log_dir
        # True: HubSpot/Kleer URLs come from `settings` (the environment), not the simulators.
        self.keep_api_urls = keep_api_urls
        self.hubspot = HubSpotState()
        self.kleer = KleerState()
        self.temporal: DevServer | None = None
        self._servers: list[ServerThread] = []
        self._worker_task: asyncio.Task | None = None

    # -- pieces ----------------------------------------------------------------------------
    def start_temporal(self) -> str:
        if self.external_temporal:
            return self.external_temporal
        if self.temporal is None:
            log_file = self.log_dir / "temporal.log" if self.log_dir else None
            pid_file = self.log_dir / "temporal.pid" if self.log_dir else None
            self.temporal = DevServer(self.ports.temporal, self.ports.temporal_ui, self.db_file,
                                      log_file, ui_codec_endpoint=self.codec_url, pid_file=pid_file)
        self.temporal.start()
        return self.temporal.address

    def _serve(self, app, port: int) -> ServerThread:
        server = ServerThread(app, port=port).start()
        self._servers.append(server)
        return server

    async def _serve_in_loop(self, app, port: int) -> ApiServer:
        """The API shares this event loop with the Temporal client it uses."""
        server = ApiServer(app, port)
        await server.start()
        self._api_server = server
        return server

    async def start_worker(self) -> None:
        self._worker = build_worker(self.client, self.settings, self.services)
        self._worker_task = asyncio.create_task(self._worker.run(), name="worker")

    async def stop_worker(self) -> None:
        if self._worker_task is not None:
            await self._worker.shutdown()
            with contextlib.suppress(Exception):
                await self._worker_task
            self._worker_task = None
            await self._worker.aclose()

    @property
    def codec_url(self) -> str | None:
        """The API's codec endpoint, which the dev server's UI uses to show decoded payloads."""
        if not (self.base_settings.payload_key and self.ports.temporal_ui):
            return None
        if not self.ports.api:
            self.ports.api = free_port()  # the UI must know it before the API starts
        return f"http://127.0.0.1:{self.ports.api}/codec"

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> LocalStack:
        try:
            return await self._start()
        except BaseException:
            # A piece that failed to start (a busy port, Ctrl-C) must not leave the others, the
            # Temporal dev server above all, running without us.
            await self.__aexit__()
            raise

    async def _start(self) -> LocalStack:
        hubspot = self._serve(create_hubspot_app(self.hubspot), self.ports.hubspot)
        kleer = self._serve(create_kleer_app(self.kleer), self.ports.kleer)
        self.hubspot.add_portal(DEMO_PORTAL, DEMO_HUBSPOT_TOKEN, rate_limit=self.hubspot_rate_limit)
        self.kleer.add_company(DEMO_KLEER_COMPANY, DEMO_KLEER_KEY)
        address = await asyncio.to_thread(self.start_temporal)
        base = self.base_settings
        self.settings = replace(
            base,
            hubspot_base_url=base.hubspot_base_url if self.keep_api_urls else hubspot.url,
            kleer_base_url=base.kleer_base_url if self.keep_api_urls else kleer.url + "/v1/",
            temporal_address=address,
            hubspot_client_secret=base.hubspot_client_secret or DEMO_CLIENT_SECRET,
            portals=base.portals or {DEMO_PORTAL: PortalCredentials(
                DEMO_PORTAL, DEMO_HUBSPOT_TOKEN, DEMO_KLEER_COMPANY, DEMO_KLEER_KEY,
                hubspot_rate_limit=self.hubspot_rate_limit[0],
                hubspot_rate_window_s=self.hubspot_rate_limit[1] / 1000)},
        )
        self.settings = self._oauth_posture(self.settings, hubspot.url)
        # One database, OAuth client and pacer for the in-process worker and API, as two
        # processes of a deployment share one database.
        self.services = await open_services(self.settings, self.token_margin_s)
        self.client = await connect_with_retry(self.settings)
        if self.run_worker:
            await self.start_worker()
        self.api = await self._serve_in_loop(create_app(self.settings, self.client, self.services),
                                             self.ports.api)
        self.hubspot_url, self.kleer_url = hubspot.url, kleer.url
        return self

    def _oauth_posture(self, settings: Settings, hubspot_url: str) -> Settings:
        """With an OAuth client id: HubSpot's side is the simulator's (its authorize page, the app
        registered with our redirect URL and scopes, the demo user), the redirect URL is this
        API's, and sessions are signed (with a key made now unless one is given)."""
        if not settings.hubspot_client_id:
            return settings
        changes: dict = {}
        if not settings.session_secret:
            changes["session_secret"] = secrets.token_urlsafe(32)
        if not settings.temporal_ui_url and self.ports.temporal_ui:
            changes["temporal_ui_url"] = f"http://localhost:{self.ports.temporal_ui}"
        if not (settings.oauth_redirect_url or settings.public_base_url):
            if not self.ports.api:
                self.ports.api = free_port()  # HubSpot must know it before the API starts
            changes["oauth_redirect_url"] = f"http://127.0.0.1:{self.ports.api}/oauth/callback"
        if not self.keep_api_urls:
            if settings.hubspot_authorize_url == Settings.hubspot_authorize_url:
                changes["hubspot_authorize_url"] = hubspot_url + "/oauth/authorize"
        settings = replace(settings, **changes)
        if not self.keep_api_urls:
            self.hubspot.configure_app(settings.hubspot_client_id or "", settings.hubspot_client_secret,
                                       [settings.redirect_url], required_scope_names())
            self.hubspot.add_user(DEMO_USER_ID, DEMO_USER_EMAIL, [DEMO_PORTAL, DEMO_INSTALL_PORTAL])
        return settings

    def install_url(self) -> str | None:
        """The install link (on the redirect URL's origin, so the sign-in's cookie comes back)."""
        if not (self.settings.hubspot_client_id and self.services and self.services.store):
            return None
        parts = urlsplit(self.settings.redirect_url)
        return f"{parts.scheme}://{parts.netloc}/install"

    async def __aexit__(self, *exc: object) -> None:
        try:
            if getattr(self, "_api_server", None) is not None:
                await self._api_server.stop()
                self._api_server = None
            await self.stop_worker()
            if getattr(self, "services", None) is not None:
                await self.services.aclose()
                self.services = None
            for server in reversed(self._servers):
                server.stop()
            self._servers.clear()
        finally:
            if self.temporal is not None:
                await asyncio.to_thread(self.temporal.stop)

    def worker_env(self) -> dict[str, str]:
        """Environment for a worker in another process (`python -m worker`) joining this stack."""
        s = self.settings
        env = {
            "HUBSPOT_API_BASE_URL": s.hubspot_base_url, "KLEER_API_BASE_URL": s.kleer_base_url,
            "TEMPORAL_ADDRESS": s.temporal_address, "TEMPORAL_NAMESPACE": s.temporal_namespace,
            "TEMPORAL_TASK_QUEUE": s.task_queue, "HUBSPOT_CLIENT_SECRET": s.hubspot_client_secret,
            "HTTP_TIMEOUT_SECONDS": str(s.http_timeout_s),
            "CREATE_SETTLE_SECONDS": str(s.create_settle_s),
            "HUBSPOT_RATE_SHARE": str(s.hubspot_rate_share),
        }
        if s.payload_key:
            env["PAYLOAD_ENCRYPTION_KEY"] = s.payload_key
        if s.database_url:
            env["DATABASE_URL"] = s.database_url
            env["DATABASE_SECRETS_KEY"] = s.database_secrets_key or ""
        if s.hubspot_client_id:
            env["HUBSPOT_CLIENT_ID"] = s.hubspot_client_id
            env["HUBSPOT_AUTHORIZE_URL"] = s.hubspot_authorize_url
            env["OAUTH_REDIRECT_URL"] = s.redirect_url
        env["KLEER_RATE_LIMIT"] = str(s.kleer_rate_limit)
        env["HUBSPOT_MAX_BATCH"] = str(s.hubspot_max_batch)
        env["HUBSPOT_BATCH_WINDOW_MS"] = str(s.hubspot_batch_window_s * 1000)
        env["RECONNECT_RETRY_SECONDS"] = str(s.reconnect_retry_s)
        env["SYNC_INTERVAL_MINUTES"] = str(s.sync_interval_s / 60)
        env["HUBSPOT_TOKEN_REFRESH_MARGIN_SECONDS"] = str(
            s.token_refresh_margin_s if self.token_margin_s is None else self.token_margin_s)
        if s.mappings_dir:
            env["MAPPINGS_DIR"] = str(s.mappings_dir)
        for pid, creds in s.portals.items():
            env[f"PORTAL_{pid}_HUBSPOT_TOKEN"] = creds.hubspot_token
            env[f"PORTAL_{pid}_KLEER_COMPANY_ID"] = str(creds.kleer_company_id)
            env[f"PORTAL_{pid}_KLEER_API_KEY"] = creds.kleer_api_key
            env[f"PORTAL_{pid}_HUBSPOT_RATE_LIMIT"] = str(creds.hubspot_rate_limit)
        return env

    def spawn_worker(self, log: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        """`python -m worker` in its own process joining this stack, as an operator runs it."""
        with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(
                [sys.executable, "-m", "worker"], cwd=Path(__file__).resolve().parents[1],
                env={**os.environ, **self.worker_env(), **(extra_env or {})},
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def action_url(self, action: str) -> str:
        return f"{self.api.url}/hubspot/actions/{action}"


# --- the local stack's database and OAuth defaults (`kleer-hubspot dev`) ----------------------

def state_secret(path: Path, make: Callable[[], str] = lambda: secrets.token_urlsafe(32)) -> str:
    """A random secret made once in `path` (mode 0600, only for this user) and reused, so what
    it protects (payloads, database secrets, sessions) survives restarts of the local stack."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        value = path.read_text().strip()
        if value:
            return value
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    value = make()
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value


def dev_oauth_settings(env: Mapping[str, str], state_dir: Path, settings: Settings, api_port: int,
                       ui_port: int, keep_api_urls: bool) -> tuple[Settings, list[str]]:
    """Where the environment is silent: a SQLite database in the state dir, its secrets key and
    the session secret kept there (0600), the simulator's OAuth app, this API's redirect URL and
    the dev server's UI for run links. Returns the settings and one note per default used."""
    notes: list[str] = []
    changes: dict = {}
    if not env.get("DATABASE_URL"):
        path = (state_dir / "kleer.db").resolve()
        changes["database_url"] = f"sqlite+aiosqlite:///{path}"
        notes.append(f"DATABASE_URL=sqlite:///{path} (installed portals, Kleer keys, mappings)")
    if not env.get("DATABASE_SECRETS_KEY"):
        changes["database_secrets_key"] = state_secret(state_dir / "database-secrets-key")
        notes.append(f"DATABASE_SECRETS_KEY from {state_dir / 'database-secrets-key'} (made once, "
                     "mode 0600)")
    if not env.get("SESSION_SECRET"):
        changes["session_secret"] = state_secret(state_dir / "session-secret")
        notes.append(f"SESSION_SECRET from {state_dir / 'session-secret'} (made once, mode 0600)")
    if not env.get("HUBSPOT_CLIENT_ID") and not keep_api_urls:
        changes["hubspot_client_id"] = DEMO_CLIENT_ID
        notes.append(f"HUBSPOT_CLIENT_ID={DEMO_CLIENT_ID} (the HubSpot simulator's OAuth app; its "
                     "authorize page is HUBSPOT_AUTHORIZE_URL)")
    if not (env.get("OAUTH_REDIRECT_URL") or env.get("PUBLIC_BASE_URL")):
        changes["oauth_redirect_url"] = f"http://127.0.0.1:{api_port}/oauth/callback"
    if not env.get("TEMPORAL_UI_URL"):
        changes["temporal_ui_url"] = f"http://localhost:{ui_port}"
    return replace(settings, **changes), notes
