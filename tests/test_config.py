"""Errors that say what to fix: configuration checked at start (status 2, one paragraph naming the
variable or file and what it accepts), waits that say what they wait for and stop on a signal,
a busy metrics port named as such, clean exits of short commands."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from local.temporal_server import free_port
from settings import ConfigError, Settings, check_role, load_settings
from tests.conftest import DATABASE_SECRETS_KEY

ROOT = Path(__file__).resolve().parent.parent
PORTAL_VARS = {"PORTAL_5_HUBSPOT_TOKEN": "t", "PORTAL_5_KLEER_COMPANY_ID": "1",
               "PORTAL_5_KLEER_API_KEY": "k"}


def _problems(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    return str(err.value)


def test_portals_file_problems_name_the_file_and_what_it_accepts(tmp_path):
    broken = tmp_path / "portals.json"
    broken.write_text('{"12345": {"hubspot_token": "t",}}')
    assert f"PORTALS_FILE={broken} is not valid JSON" in _problems({"PORTALS_FILE": str(broken)})
    assert "line 1 column" in _problems({"PORTALS_FILE": str(broken)})
    missing = tmp_path / "nope.json"
    assert f"PORTALS_FILE={missing} cannot be read" in _problems({"PORTALS_FILE": str(missing)})
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"12345": {"hubspot_token": "t", "kleer_company_id": "one",
                                           "kleer_api_key": "k", "colour": "red"}}))
    text = _problems({"PORTALS_FILE": str(wrong)})
    assert "portal 12345 has unknown keys colour (accepted: hubspot_token" in text
    assert f"PORTALS_FILE={wrong}: portal 12345 kleer_company_id='one' must be a whole number" in text


def test_env_values_name_the_variable_and_the_accepted_values():
    text = _problems({**PORTAL_VARS, "PORTAL_5_HUBSPOT_RATE_LIMIT": "0", "HTTP_TIMEOUT_SECONDS": "abc",
                      "HUBSPOT_RATE_SHARE": "0", "LOG_FORMAT": "xml", "TEMPORAL_TLS": "maybe",
                      "MAX_CONCURRENT_ACTIVITIES": "many", "METRICS_BIND": "9464",
                      "HUBSPOT_CALLBACK_EXPIRATION": "1 day", "KLEER_API_BASE_URL": "api.kleer.se"})
    for expected in ("PORTAL_5_HUBSPOT_RATE_LIMIT='0' must be a whole number ≥ 1",
                     "HTTP_TIMEOUT_SECONDS='abc' must be a number > 0",
                     "HUBSPOT_RATE_SHARE='0' must be a number > 0 and ≤ 1",
                     "LOG_FORMAT='xml' must be one of text, json",
                     "TEMPORAL_TLS='maybe' must be true or false",
                     "MAX_CONCURRENT_ACTIVITIES='many' must be a whole number ≥ 1",
                     "METRICS_BIND='9464' must be host:port",
                     "HUBSPOT_CALLBACK_EXPIRATION='1 day' must be an ISO-8601 duration",
                     "KLEER_API_BASE_URL='api.kleer.se' is not an http(s) URL"):
        assert expected in text, expected
    assert "portal 6 is missing hubspot_token, kleer_api_key" in _problems(
        {"PORTAL_6_KLEER_COMPANY_ID": "2"})


def test_good_values_still_load():
    s = load_settings({**PORTAL_VARS, "PORTAL_5_HUBSPOT_RATE_LIMIT": "100", "TEMPORAL_TLS": "yes",
                       "HUBSPOT_RATE_SHARE": "0.5", "CODEC_AUTH": "proxy", "LOG_FORMAT": "JSON"})
    assert s.portals[5].hubspot_rate_limit == 100 and s.temporal_tls and s.log_format == "json"
    assert s.codec_auth == "proxy" and s.hubspot_rate_share == 0.5


def test_api_role_needs_the_client_secret_and_a_safe_codec_mode():
    with pytest.raises(ConfigError, match="HUBSPOT_CLIENT_SECRET is not set"):
        check_role(Settings(), "api", host="0.0.0.0")
    open_codec = Settings(hubspot_client_secret="s", payload_key="k", codec_auth="none")
    check_role(open_codec, "api", host="127.0.0.1")
    with pytest.raises(ConfigError, match="CODEC_AUTH=none .* only accepted when the API listens on "
                                          "loopback"):
        check_role(open_codec, "api", host="0.0.0.0")
    with pytest.raises(ConfigError, match="METRICS_BIND"):
        check_role(Settings(hubspot_client_secret="s", metrics_bind="0.0.0.0:9464"), "api", workers=2)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PORTAL", "HUBSPOT_", "KLEER_", "TEMPORAL_", "METRICS_", "CODEC_",
                                "PAYLOAD_"))}
    return {**env, **extra}


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)


def test_commands_refuse_bad_configuration_with_status_2_and_no_traceback(tmp_path):
    broken = tmp_path / "portals.json"
    broken.write_text("{not json")
    done = _cli("api", env=_env(HUBSPOT_CLIENT_SECRET="s", PORTALS_FILE=str(broken)))
    assert done.returncode == 2, done.stderr
    assert f"PORTALS_FILE={broken} is not valid JSON" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = _cli("api", env=_env())
    assert done.returncode == 2 and "HUBSPOT_CLIENT_SECRET is not set" in done.stderr
    done = _cli("worker", env=_env(HTTP_TIMEOUT_SECONDS="abc"))
    assert done.returncode == 2 and "HTTP_TIMEOUT_SECONDS='abc'" in done.stderr
    assert "Traceback" not in done.stderr
    (tmp_path / "12345.json").write_text('{"client": [{"kleer": "nmae", "hubspot": "name"}]}')
    done = _cli("worker", env=_env(MAPPINGS_DIR=str(tmp_path)))
    assert done.returncode == 2, done.stderr
    assert f'{tmp_path / "12345.json"}: client[0].kleer: unknown Kleer client field "nmae"' \
        in done.stderr


def test_a_busy_metrics_port_is_reported_as_such():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _cli("worker", env=_env(METRICS_BIND=f"127.0.0.1:{port}",
                                       TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}"))
    assert done.returncode == 2, done.stderr
    assert f"cannot serve Prometheus metrics on METRICS_BIND=127.0.0.1:{port}" in done.stderr
    assert "in use" in done.stderr and "Temporal" not in done.stderr.split("metrics")[0]


@pytest.mark.parametrize(("command", "sig"), [(("api", "--host", "127.0.0.1"), signal.SIGTERM),
                                              (("worker",), signal.SIGINT)])
def test_waiting_for_temporal_says_for_what_and_stops_on_a_signal(command, sig):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    proc = subprocess.Popen([sys.executable, "-m", "cli", *command], cwd=ROOT,
                            env=_env(TEMPORAL_ADDRESS=address, HUBSPOT_CLIENT_SECRET="s"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        seen = ""
        deadline = time.monotonic() + 20
        while "waiting for Temporal" not in seen and time.monotonic() < deadline:
            seen += proc.stdout.readline()
        assert f"waiting for Temporal at {address} (namespace default) for" in seen, seen
        sent = time.monotonic()
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=10)
        assert time.monotonic() - sent < 5
        assert proc.returncode == 128 + sig or (command[0] == "worker" and proc.returncode == 0)
        assert f"stopped waiting for Temporal at {address}" in rest
        assert "Traceback" not in seen + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_replay_of_an_unknown_id_exits_cleanly(stack):
    """The SDK core is released before the interpreter exits (it used to abort with
    `Fatal Python error: PyGILState_Release`, exit 134, in about 4% of runs)."""
    env = _env(TEMPORAL_ADDRESS=stack.settings.temporal_address)
    for n in range(3):
        done = _cli("replay", "--id", f"no-such-run-{n}", env=env)
        assert done.returncode == 1, done.stderr
        assert f"no workflow with id or callbackId 'no-such-run-{n}'" in done.stderr
        assert "Fatal Python error" not in done.stderr


def test_replay_help_says_it_takes_a_workflow_id_or_a_callback_id():
    done = _cli("replay", "--help", env=_env())
    text = " ".join(done.stdout.split())
    assert "--id ID, --callback-id ID" in text
    assert "its workflow id as shown in the Temporal UI" in text and "or its HubSpot callbackId" in text


def test_mtls_files_are_checked_at_start_and_used(tmp_path):
    from temporalio.service import TLSConfig

    from temporal_client import tls_config

    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_bytes(b"CERT")
    key.write_bytes(b"KEY")
    text = _problems({"TEMPORAL_TLS_CLIENT_CERT_PATH": str(cert)})
    assert "TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH go together" in text
    assert f"TEMPORAL_TLS_SERVER_CA_CERT_PATH={tmp_path}/ca.pem is not a readable file" in _problems(
        {"TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(tmp_path / "ca.pem")})
    tls = tls_config(load_settings({"TEMPORAL_TLS_CLIENT_CERT_PATH": str(cert),
                                    "TEMPORAL_TLS_CLIENT_KEY_PATH": str(key)}))
    assert isinstance(tls, TLSConfig) and (tls.client_cert, tls.client_private_key) == (b"CERT", b"KEY")
    assert tls_config(load_settings({"TEMPORAL_TLS": "true"})) is True


def test_the_settings_pages_need_a_session_secret():
    pages = Settings(hubspot_client_secret="s", database_url="sqlite+aiosqlite:///x.db",
                     database_secrets_key="k", hubspot_client_id="app")
    with pytest.raises(ConfigError, match="SESSION_SECRET is not set"):
        check_role(pages, "api", host="127.0.0.1")
    check_role(replace(pages, session_secret="long random"), "api", host="127.0.0.1")


async def test_a_worker_refuses_to_start_beside_one_whose_leases_live_elsewhere(stack, tmp_path):
    """The session stack's worker polls its task queue without a database (its executions take
    turns on a record through child workflows): a worker with a DATABASE_URL on that queue
    would take leases instead, and the two could write one record at once."""
    from worker import check_one_lease_store, worker_identity

    queue, now = stack.settings.task_queue, time.time()
    await _polling(stack)
    assert worker_identity(stack.settings, now).endswith(f" since={now:.3f} leases=none")
    await check_one_lease_store(stack.client, replace(stack.settings, database_url=None), now)
    with pytest.raises(ConfigError) as err:
        await check_one_lease_store(stack.client, replace(
            stack.settings, database_url=f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"), now)
    assert f"polls task queue '{queue}' with another record-lease store" in str(err.value)
    assert "leases=none" in str(err.value)

    # As an operator meets it: `kleer-hubspot worker` exits with status 2 and says why.
    done = await asyncio.to_thread(_cli, "worker", env=_env(
        TEMPORAL_ADDRESS=stack.settings.temporal_address, TEMPORAL_TASK_QUEUE=queue,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}",
        DATABASE_SECRETS_KEY=DATABASE_SECRETS_KEY, METRICS_BIND=f"127.0.0.1:{free_port()}"))
    assert done.returncode == 2, done.stderr
    assert "with another record-lease store than this one (DATABASE_URL sqlite" in done.stderr
    assert "Traceback" not in done.stderr


async def _polling(stack) -> None:
    """Until the stack's worker is listed as polling its task queue (a fresh stack's first poll
    may come after the test's first check)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    request = DescribeTaskQueueRequest(namespace=stack.client.namespace,
                                       task_queue=TaskQueue(name=stack.settings.task_queue),
                                       task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
    for _ in range(100):
        response = await stack.client.workflow_service.describe_task_queue(request)
        if any(p.identity.endswith(" leases=none") for p in response.pollers):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the stack's worker never polled its task queue")


async def test_of_two_workers_started_at_one_moment_with_other_lease_stores_the_later_stops(
        stack, tmp_path):
    """Started at the same moment, two workers both pass the check at start: neither polls yet
    (here the later one skips it). While they run, each checks again: the later one finds the
    earlier and stops, as it would have refused to start; the earlier one keeps running."""
    from temporal_client import connect_with_retry
    from worker import build_worker, check_one_lease_store, watch_lease_store

    await _polling(stack)

    late_settings = replace(stack.settings,
                            database_url=f"sqlite+aiosqlite:///{tmp_path / 'late.db'}")
    client = await connect_with_retry(late_settings)  # a process of its own would have its own
    late = build_worker(client, late_settings)
    late.background(watch_lease_store(client, late_settings, late, every_s=0.3))
    with pytest.raises(ConfigError) as err:
        await asyncio.wait_for(late.run(), 30)
    assert "with another record-lease store than this one (DATABASE_URL sqlite" in str(err.value)
    assert "leases=none" in str(err.value)  # the session stack's worker, started before
    # The rule both sides apply to the late worker's poll (listed for a while after it stopped):
    # a worker that started before it leaves it to give way; one started after it gives way.
    await check_one_lease_store(stack.client, stack.settings, late.started - 1)
    with pytest.raises(ConfigError, match=f"since={late.started:.3f} leases="):
        await check_one_lease_store(stack.client, stack.settings, late.started + 1)


async def test_the_api_refuses_to_start_on_a_namespace_without_our_search_attributes(stack):
    """A run sets its search attributes on its first workflow task: on a namespace without them
    every run would start and then fail that task forever. The API's start-up says so instead."""
    from api import create_app
    from local.temporal_server import DevServer
    from temporal_client import SearchAttributesMissing, check_search_attributes, connect

    await check_search_attributes(stack.client, stack.settings)  # registered: nothing to say
    server = DevServer(search_attributes={"KleerPortalId": "Keyword", "KleerAction": "Keyword"})
    await asyncio.to_thread(server.start)
    try:
        settings = replace(stack.settings, temporal_address=server.address)
        client = await connect(settings)
        with pytest.raises(SearchAttributesMissing) as err:
            await check_search_attributes(client, settings)
        # A wrong type counts as missing; a registered one is not named.
        assert "KleerPortalId (Int), HubSpotObjectId (Keyword), KleerResult" in str(err.value)
        assert "KleerAction" not in str(err.value)
        assert "TEMPORAL_SEARCH_ATTRIBUTES=false" in str(err.value)
        await check_search_attributes(client, replace(settings, search_attributes=False))
        app = create_app(settings)
        with pytest.raises(SearchAttributesMissing):
            async with app.router.lifespan_context(app):
                pass
    finally:
        await asyncio.to_thread(server.stop)
