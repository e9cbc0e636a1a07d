"""storage/: the same behaviour on SQLite and on a real PostgreSQL (each test runs on both through
the `database_url` / `store` fixtures): installs, tokens, Kleer credentials and mappings round
trip; secrets are ciphertext at rest and absent from reprs and logs; the refresh lease has exactly
one winner and the rate limiter never over-grants across two engines; concurrent migrations; and
an unreachable or dropped database is StorageUnavailable, never a wrong answer."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import exc, inspect, make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from storage import (
    FieldMapping,
    KleerCredentials,
    OAuthTokens,
    PortalNotInstalled,
    StorageUnavailable,
    Store,
)
from storage import migrate as migrations
from storage.crypto import SecretBox, SecretsKeyError
from storage.db import database_url as normalise_url
from storage.db import is_unavailable
from storage.schema import metadata
from tests.conftest import DATABASE_SECRETS_KEY

ACCESS, REFRESH, KLEER_KEY = "pat-na1-ACCESS-0f3a9c", "na1-REFRESH-77d2e1", "kleer-API-KEY-5b8c44"
PORTAL = 4242


def tokens(access: str = ACCESS, refresh: str = REFRESH, minutes: int = 30) -> OAuthTokens:
    return OAuthTokens(access_token=access, refresh_token=refresh,
                       expires_at=datetime.now(UTC) + timedelta(minutes=minutes))


async def install(store: Store, portal: int = PORTAL, user: int = 9, email: str | None = "admin@acme.se",
                  **kw: str) -> None:
    await store.record_install(portal, f"acme-{portal}.hubspot.com", user, email, tokens(**kw))


async def raw_rows(url: str) -> list[str]:
    """Every row of every table, as the database holds it (what a dump or backup would show)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: inspect(c).get_table_names())
            return [repr(tuple(row)) for name in names
                    for row in await conn.execute(text(f'SELECT * FROM "{name}"'))]
    finally:
        await engine.dispose()


# -- installs, portals, users ----------------------------------------------------------------------

async def test_install_reinstall_and_users(store: Store) -> None:
    await install(store)
    record = await store.portal(PORTAL)
    assert record is not None
    assert (record.portal_id, record.hub_domain, record.status, record.disconnected_reason) == (
        PORTAL, "acme-4242.hubspot.com", "connected", None)
    assert record.kleer_connected is False and record.kleer_company_id is None
    assert record.installed_at.tzinfo is not None and record.access_expires_at is not None
    assert (await store.oauth_tokens(PORTAL)) == tokens().model_copy(
        update={"expires_at": record.access_expires_at})

    await store.set_kleer_credentials(PORTAL, 17, KLEER_KEY)
    await store.mark_disconnected(PORTAL, "invalid_grant: refresh token revoked")
    gone = await store.portal(PORTAL)
    assert gone is not None and gone.status == "disconnected"
    assert gone.disconnected_reason == "invalid_grant: refresh token revoked"
    assert gone.access_expires_at is None and await store.oauth_tokens(PORTAL) is None

    # A reinstall by another user: connected again, new tokens, Kleer credentials kept.
    await store.record_install(PORTAL, None, 10, None, tokens("new-access", "new-refresh"))
    back = await store.portal(PORTAL)
    assert back is not None and back.status == "connected" and back.disconnected_reason is None
    assert back.hub_domain == "acme-4242.hubspot.com"  # not forgotten when the install omits it
    assert back.installed_at == record.installed_at and back.updated_at > record.updated_at
    assert (await store.oauth_tokens(PORTAL)).access_token == "new-access"
    assert await store.kleer_credentials(PORTAL) == KleerCredentials(company_id=17, api_key=KLEER_KEY)

    await install(store, 5000, user=9)
    await store.add_user(5000, 11, "second@acme.se")
    assert [p.portal_id for p in await store.portals_of_user(9)] == [PORTAL, 5000]
    assert [p.portal_id for p in await store.portals_of_user(10)] == [PORTAL]
    assert [p.portal_id for p in await store.portals_of_user(11)] == [5000]
    assert await store.portals_of_user(12) == []
    assert [p.portal_id for p in await store.portals()] == [PORTAL, 5000]
    await store.add_user(5000, 11, None)  # known user, no email given: kept
    await store.add_user(5000, 11, "second@acme.se")  # idempotent
    assert [p.portal_id for p in await store.portals_of_user(11)] == [5000]


async def test_an_unknown_portal_reads_as_absent_and_cannot_be_written(store: Store) -> None:
    assert await store.portal(1) is None
    assert await store.portals() == []
    assert await store.oauth_tokens(1) is None
    assert await store.kleer_credentials(1) is None
    assert await store.mappings(1) == {}
    for write in (store.set_kleer_credentials(1, 2, "k"), store.add_user(1, 2, None),
                  store.mark_disconnected(1, "x"), store.claim_refresh(1, "me", 5),
                  store.save_refreshed(1, "me", tokens()),
                  store.set_mappings(1, "client", [FieldMapping(kleer="name", hubspot="name")])):
        with pytest.raises(PortalNotInstalled, match="portal 1 is not installed"):
            await write
    with pytest.raises(LookupError):  # one way to handle "unknown portal", as settings does
        await store.add_user(1, 2, None)
    await store.release_refresh(1, "me")  # nothing to release: no error


async def test_kleer_credentials_and_their_repr(store: Store) -> None:
    await install(store)
    assert await store.kleer_credentials(PORTAL) is None
    await store.set_kleer_credentials(PORTAL, 3, KLEER_KEY)
    credentials = await store.kleer_credentials(PORTAL)
    assert credentials == KleerCredentials(company_id=3, api_key=KLEER_KEY)
    assert KLEER_KEY not in repr(credentials) and KLEER_KEY not in str(credentials)
    assert ACCESS not in repr(await store.oauth_tokens(PORTAL))
    assert (await store.portal(PORTAL)).kleer_connected
    await store.set_kleer_credentials(PORTAL, 4, "another-key")
    assert await store.kleer_credentials(PORTAL) == KleerCredentials(company_id=4, api_key="another-key")


async def test_mappings_per_kind_in_order_and_checked(store: Store) -> None:
    await install(store)
    await install(store, 5000)
    client = [FieldMapping(kleer="name", hubspot="legal_name"),
              FieldMapping(kleer="email", hubspot="billing_email", default="ap@acme.se"),
              FieldMapping(kleer="address.zip-code", hubspot="zip")]
    await store.set_mappings(PORTAL, "client", client)
    assert await store.mappings(PORTAL) == {"client": client}  # only the kinds set
    project = [FieldMapping(kleer="number", hubspot="code"), FieldMapping(kleer="name", hubspot="dealname")]
    await store.set_mappings(PORTAL, "project", project)
    await store.set_mappings(PORTAL, "client", client[::-1])  # replaced whole, new order kept
    assert await store.mappings(PORTAL) == {"client": client[::-1], "project": project}
    assert await store.mappings(5000) == {}
    with pytest.raises(ValueError, match='unknown Kleer client field "nmae"'):
        await store.set_mappings(PORTAL, "client", [FieldMapping(kleer="nmae", hubspot="name")])
    with pytest.raises(ValueError, match='unknown kind "invoice"'):
        await store.set_mappings(PORTAL, "invoice", [])
    assert (await store.mappings(PORTAL))["client"] == client[::-1]


# -- secrets at rest ---------------------------------------------------------------------------------

async def test_secrets_are_ciphertext_at_rest_and_never_logged(database_url: str,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level: SQL logs must still hold no secret
    store = await Store.open(database_url, DATABASE_SECRETS_KEY)
    try:
        await install(store)
        await store.set_kleer_credentials(PORTAL, 17, KLEER_KEY)
        assert await store.claim_refresh(PORTAL, "w1", 30)
        assert await store.save_refreshed(PORTAL, "w1", tokens("pat-na1-SECOND-ACCESS", REFRESH))
        assert (await store.oauth_tokens(PORTAL)).access_token == "pat-na1-SECOND-ACCESS"
        assert (await store.kleer_credentials(PORTAL)).api_key == KLEER_KEY
        rows = "\n".join(await raw_rows(database_url))
        assert "admin@acme.se" in rows  # the scan reads real rows...
        for secret in (ACCESS, REFRESH, KLEER_KEY, "pat-na1-SECOND-ACCESS", DATABASE_SECRETS_KEY):
            assert secret not in rows  # ...and none holds a secret in clear
            assert secret not in caplog.text
            assert secret not in repr(store)
        assert rows.count("v1.") >= 3  # sealed values: version.key id.base64
    finally:
        await store.close()


async def test_a_ciphertext_moved_to_another_portal_does_not_decrypt(store: Store, database_url: str) -> None:
    await install(store)
    await install(store, 5000, access="other-access")
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE portals SET access_token = "
                                "(SELECT access_token FROM portals WHERE portal_id = :a) "
                                "WHERE portal_id = :b"), {"a": PORTAL, "b": 5000})
    await engine.dispose()
    with pytest.raises(SecretsKeyError, match="altered or moved") as caught:
        await store.oauth_tokens(5000)
    assert ACCESS not in str(caught.value) and "other-access" not in str(caught.value)


async def test_secrets_key_rotation(database_url: str) -> None:
    old, new = "the-old-database-key", "the-new-database-key"
    store = await Store.open(database_url, old)
    await install(store)
    await store.set_kleer_credentials(PORTAL, 1, KLEER_KEY)
    await install(store, 5000)
    await store.close()

    with pytest.raises(SecretsKeyError, match="which DATABASE_SECRETS_KEY does not list") as caught:
        async with await Store.open(database_url, new) as only_new:
            await only_new.oauth_tokens(PORTAL)
    assert old not in str(caught.value) and ACCESS not in str(caught.value)

    async with await Store.open(database_url, f"{new}, {old}") as both:
        assert (await both.oauth_tokens(PORTAL)).refresh_token == REFRESH  # old rows still read
        assert await both.reencrypt_secrets() == 2
        assert await both.reencrypt_secrets() == 0
    async with await Store.open(database_url, new) as only_new:
        assert (await only_new.oauth_tokens(5000)).access_token == ACCESS
        assert (await only_new.kleer_credentials(PORTAL)).api_key == KLEER_KEY


def test_secret_box_keys() -> None:
    with pytest.raises(ValueError, match="DATABASE_SECRETS_KEY"):
        SecretBox(" , ")
    box = SecretBox("a,b")
    sealed = box.seal("s3cret", "ctx")
    assert box.open(sealed, "ctx") == "s3cret" and box.is_current(sealed)
    assert not SecretBox("b,a").is_current(sealed) and SecretBox("b,a").open(sealed, "ctx") == "s3cret"
    assert "s3cret" not in sealed and "a" not in repr(box).split("(")[0]
    with pytest.raises(SecretsKeyError):
        box.open(sealed, "another context")


# -- the refresh lease -------------------------------------------------------------------------------

async def test_refresh_lease(store: Store) -> None:
    await install(store)
    assert await store.claim_refresh(PORTAL, "w1", 30)
    assert not await store.claim_refresh(PORTAL, "w2", 30)
    assert not await store.claim_refresh(PORTAL, "w1", 30)  # not re-entrant
    await store.release_refresh(PORTAL, "w2")  # not the holder: no effect
    assert not await store.claim_refresh(PORTAL, "w2", 30)
    assert not await store.save_refreshed(PORTAL, "w2", tokens("stolen"))  # not the holder
    assert (await store.oauth_tokens(PORTAL)).access_token == ACCESS
    await store.release_refresh(PORTAL, "w1")
    assert await store.claim_refresh(PORTAL, "w2", 30)
    assert await store.save_refreshed(PORTAL, "w2", tokens("fresh"))  # stores and releases
    assert (await store.oauth_tokens(PORTAL)).access_token == "fresh"
    assert not await store.save_refreshed(PORTAL, "w2", tokens("again"))  # released already

    # An expired lease can be taken over; the late holder's tokens are then discarded.
    assert await store.claim_refresh(PORTAL, "slow", 0.2)
    assert not await store.claim_refresh(PORTAL, "w3", 30)
    await asyncio.sleep(0.3)
    assert await store.claim_refresh(PORTAL, "w3", 30)
    assert not await store.save_refreshed(PORTAL, "slow", tokens("late"))
    assert await store.save_refreshed(PORTAL, "w3", tokens("w3"))
    # Expired but nobody took it over: the holder still stores.
    assert await store.claim_refresh(PORTAL, "w4", 0.05)
    await asyncio.sleep(0.1)
    assert await store.save_refreshed(PORTAL, "w4", tokens("w4"))
    assert (await store.oauth_tokens(PORTAL)).access_token == "w4"

    # A reinstall or a disconnect drops the lease; tokens of a refresh begun before are discarded.
    assert await store.claim_refresh(PORTAL, "w5", 30)
    await install(store, access="reinstalled")
    assert not await store.save_refreshed(PORTAL, "w5", tokens("stale"))
    assert await store.claim_refresh(PORTAL, "w6", 30)
    await store.mark_disconnected(PORTAL, "invalid_grant")
    assert not await store.save_refreshed(PORTAL, "w6", tokens("zombie"))
    assert await store.oauth_tokens(PORTAL) is None
    with pytest.raises(ValueError):
        await store.claim_refresh(PORTAL, "w7", 0)


async def test_exactly_one_refresh_winner_across_two_engines(store: Store, database_url: str) -> None:
    await install(store)
    other = await Store.open(database_url, DATABASE_SECRETS_KEY)
    try:
        for round_ in range(3):
            claims = [s.claim_refresh(PORTAL, f"{round_}-{n}", 30) for n in range(20) for s in (store, other)]
            results = await asyncio.gather(*claims)
            assert sum(results) == 1, results
            winner = f"{round_}-{results.index(True) // 2}"
            assert await (store, other)[round_ % 2].save_refreshed(PORTAL, winner, tokens(f"t{round_}"))
            assert (await other.oauth_tokens(PORTAL)).access_token == f"t{round_}"
    finally:
        await other.close()


# -- the shared rate limiter -------------------------------------------------------------------------

async def test_acquire_grants_the_burst_then_paces(store: Store) -> None:
    assert [await store.acquire("k", 10, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await store.acquire("k", 10, 3)
    assert 0.0 < wait <= 0.1 + 0.02
    assert await store.acquire("other key", 10, 1) == 0.0  # keys are independent
    await asyncio.sleep(wait)
    assert await store.acquire("k", 10, 3) == 0.0
    assert await store.acquire("k", 10, 3) > 0
    for bad in ((0, 1), (1, 0)):
        with pytest.raises(ValueError):
            await store.acquire("k", *bad)


async def test_acquire_never_over_grants_across_two_engines(store: Store, database_url: str) -> None:
    rate, burst, duration = 40.0, 5, 1.2
    other = await Store.open(database_url, DATABASE_SECRETS_KEY)
    granted: list[float] = []
    start = time.monotonic()

    async def caller(s: Store) -> None:
        while (left := duration - (time.monotonic() - start)) > 0:
            wait = await s.acquire("hubspot:portal:4242", rate, burst)
            if wait == 0.0:
                granted.append(time.monotonic())
            else:
                await asyncio.sleep(min(wait, left))

    try:
        await asyncio.gather(*(caller(s) for s in (store, other) for _ in range(6)))
    finally:
        await other.close()
    elapsed = time.monotonic() - start
    assert len(granted) <= rate * elapsed + burst, (len(granted), elapsed)
    assert len(granted) >= rate * duration * 0.6, (len(granted), elapsed)  # and it does grant
    assert len([t for t in granted if t - start < 0.1]) <= burst + 0.1 * rate + 1


# -- migrations --------------------------------------------------------------------------------------

async def test_concurrent_migrations_on_an_empty_database(database_url: str) -> None:
    assert await migrations.current(database_url) is None
    with pytest.raises(migrations.SchemaMismatch, match="python -m storage upgrade"):
        await Store.open(database_url, DATABASE_SECRETS_KEY, migrate=False)
    stores = await asyncio.gather(*(Store.open(database_url, DATABASE_SECRETS_KEY) for _ in range(3)))
    try:
        assert await migrations.current(database_url) == migrations.head()
        engine = create_async_engine(database_url)
        async with engine.connect() as conn:
            names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            # The migrations create exactly what the code uses (a schema change without one fails here).
            assert await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)) == []
        await engine.dispose()
        assert {"portals", "portal_users", "field_mappings", "rate_limits", "alembic_version"} <= names
        await install(stores[0])
        assert (await stores[2].portal(PORTAL)) is not None
        async with await Store.open(database_url, DATABASE_SECRETS_KEY, migrate=False) as checked:
            assert (await checked.portal(PORTAL)).status == "connected"  # at head: opens without migrating
    finally:
        for s in stores:
            await s.close()


def test_operators_commands(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    run = [sys.executable, "-m", "storage"]
    current = subprocess.run([*run, "current", "--url", url], capture_output=True, text=True, timeout=60)
    assert current.returncode == 0 and "at schema revision (none)" in current.stdout, current
    upgrade = subprocess.run([*run, "upgrade", "--url", url], capture_output=True, text=True, timeout=60)
    assert upgrade.returncode == 0 and f"at schema revision {migrations.head()}" in upgrade.stdout, upgrade
    down = subprocess.run([*run, "current", "--url", "postgresql://nobody:pw-xyz@127.0.0.1:9/db"],
                          capture_output=True, text=True, timeout=60)
    assert down.returncode == 1 and "database unavailable" in down.stderr and "pw-xyz" not in down.stderr


# -- outages -----------------------------------------------------------------------------------------

class CuttableProxy:
    """A TCP proxy to PostgreSQL that a test can cut (listener closed, every connection reset) and
    bring back on the same port, or freeze (connections stay open, nothing answers): a database
    that goes away or hangs, and returns, as network faults do."""

    def __init__(self, target_port: int) -> None:
        self.target_port, self.port = target_port, 0
        self.server: asyncio.Server | None = None
        self.transports: set[asyncio.BaseTransport] = set()
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for transport in list(self.transports):
            transport.abort()
        self.transports.clear()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.transports |= {writer.transport, up_writer.transport}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    await self.flowing.wait()  # frozen: bytes are held, nothing answers
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_a_cut_postgres_connection_is_unavailable_then_recovers(postgres_url: str | None) -> None:
    if postgres_url is None:
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    real = make_url(postgres_url)
    proxy = CuttableProxy(real.port or 5432)
    await proxy.start()
    url = real.set(port=proxy.port)
    store = await Store.open(url.render_as_string(hide_password=False), DATABASE_SECRETS_KEY, timeout_s=1)
    try:
        await install(store, 777)
        await store.set_kleer_credentials(777, 5, KLEER_KEY)
        assert (await store.portal(777)) is not None

        await proxy.cut()
        started = time.monotonic()
        for call in (store.portal(777), store.oauth_tokens(777), store.kleer_credentials(777),
                     store.mappings(777), store.portals(), store.claim_refresh(777, "w", 5),
                     store.acquire("k", 1, 1), store.set_kleer_credentials(777, 5, KLEER_KEY)):
            with pytest.raises(StorageUnavailable, match="database unavailable") as caught:
                await call  # never None / {} / False for "unknown" while the database is away
            for secret in (KLEER_KEY, ACCESS, REFRESH, DATABASE_SECRETS_KEY):
                assert secret not in str(caught.value)
        assert time.monotonic() - started < 5

        await proxy.start()  # back on the same port
        assert (await store.portal(777)).kleer_connected
        assert (await store.kleer_credentials(777)).api_key == KLEER_KEY

        # Dropped while idle and back before the next call: the pooled connection is replaced
        # (pool_pre_ping) and the call just works.
        await proxy.cut()
        await proxy.start()
        assert (await store.oauth_tokens(777)).access_token == ACCESS
        assert await store.claim_refresh(777, "after", 5)
        # The rate limiter's connections skip the ping (one statement per turn, in a bulk
        # enrollment's hot path): a dropped one fails at most one acquire, then it is replaced.
        await proxy.cut()
        await proxy.start()
        answers = []
        for _ in range(3):
            try:
                answers.append(await store.acquire("after-cut", 100, 5))
            except StorageUnavailable:
                answers.append("unavailable")
        assert answers.count("unavailable") <= 1 and answers[-1] == 0.0, answers

        # A database that stops answering (connections open, no bytes back): a timeout, reported
        # as StorageUnavailable within the configured bound, then it works again.
        proxy.flowing.clear()
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="database unavailable"):
            await store.portal(777)
        assert time.monotonic() - started < 4
        proxy.flowing.set()
        assert (await store.portal(777)).status == "connected"
    finally:
        await store.close()
        if proxy.server is not None:
            proxy.server.close()


async def test_unreachable_database_is_unavailable_on_open() -> None:
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="ConnectionRefused"):
        await Store.open("postgresql://root@127.0.0.1:9/nothing", DATABASE_SECRETS_KEY, timeout_s=2)
    assert time.monotonic() - started < 5


async def test_a_silent_database_times_out_as_unavailable_on_open() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, reads, never answers (a hung server or a black hole)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    started = time.monotonic()
    try:
        with pytest.raises(StorageUnavailable, match="TimeoutError"):
            await Store.open(f"postgresql://root@127.0.0.1:{port}/x", DATABASE_SECRETS_KEY, timeout_s=0.5)
        assert time.monotonic() - started < 3
    finally:
        server.close()


async def test_a_locked_sqlite_file_is_unavailable_until_released(tmp_path) -> None:
    path = tmp_path / "kleer.db"
    store = await Store.open(f"sqlite:///{path}", DATABASE_SECRETS_KEY, timeout_s=0.3)
    try:
        await install(store)
        other_process = sqlite3.connect(path, isolation_level=None)  # e.g. a stuck writer elsewhere
        other_process.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StorageUnavailable, match="database is locked"):
            await store.set_kleer_credentials(PORTAL, 1, KLEER_KEY)
        assert (await store.portal(PORTAL)) is not None  # WAL: readers go on
        other_process.execute("COMMIT")
        other_process.close()
        await store.set_kleer_credentials(PORTAL, 1, KLEER_KEY)
        assert (await store.kleer_credentials(PORTAL)).api_key == KLEER_KEY
        journal = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert journal == "wal"
    finally:
        await store.close()


def test_outage_classification_and_urls() -> None:
    def wrapped(cls: type[exc.DBAPIError], message: str) -> exc.DBAPIError:
        return cls("SELECT 1", {}, Exception(message))

    assert is_unavailable(wrapped(exc.OperationalError, "database is locked"))
    assert is_unavailable(wrapped(exc.InterfaceError, "connection is closed"))
    assert is_unavailable(ConnectionRefusedError()) and is_unavailable(TimeoutError())
    assert is_unavailable(exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"))
    assert not is_unavailable(wrapped(exc.OperationalError, "no such table: portals"))
    assert not is_unavailable(wrapped(exc.IntegrityError, "UNIQUE constraint failed"))
    assert not is_unavailable(ValueError("x"))
    assert normalise_url("postgres://u:p@h/db").drivername == "postgresql+asyncpg"
    assert normalise_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    for bad in ("mysql://h/db", "sqlite://", "sqlite:///:memory:"):
        with pytest.raises(ValueError):
            normalise_url(bad)
    assert json.loads(FieldMapping(kleer="a", hubspot="b").model_dump_json())["default"] is None
