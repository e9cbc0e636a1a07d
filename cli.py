"""`kleer-hubspot`: one entry point for every operator task. `kleer-hubspot --help` lists them."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn


def _logging(level: str = "INFO") -> None:
    from settings import load_settings
    from telemetry import setup_logging

    setup_logging(level, load_settings().log_format)


def cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

    from settings import check_role, load_settings
    from temporal_client import connect_with_retry, run

    settings = load_settings()
    check_role(settings, "api", host=args.host, workers=args.workers)
    _logging()

    async def wait_for_temporal() -> None:
        # Before listening (and before uvicorn holds SIGINT/SIGTERM for its startup): say what we
        # wait for, stop at once on a signal, and only then take traffic and pass health checks.
        await connect_with_retry(settings)

    run(wait_for_temporal(), release=False)  # the app reuses the runtime (and its metrics port)
    uvicorn.run("api:app", factory=True, host=args.host, port=args.port, workers=args.workers)


def cmd_worker(args: argparse.Namespace) -> None:
    import worker

    worker.main()


def cmd_simulators(args: argparse.Namespace) -> None:
    from simulators.__main__ import main as sims_main

    sims_main(["--hubspot-port", str(args.hubspot_port), "--kleer-port", str(args.kleer_port)])


async def _dev(args: argparse.Namespace, settings, notes: list[str], keep_api_urls: bool) -> None:
    from local.demo import run_demo
    from local.stack import (
        DEMO_INSTALL_PORTAL,
        DEMO_KLEER_COMPANY,
        DEMO_KLEER_KEY,
        DEMO_PORTAL,
        DEMO_USER_EMAIL,
        LocalStack,
        StackPorts,
    )

    state_dir = Path(args.state_dir)
    ports = StackPorts(temporal=args.temporal_port, temporal_ui=args.ui_port,
                       hubspot=args.hubspot_port, kleer=args.kleer_port, api=args.api_port)
    async with LocalStack(ports=ports, db_file=state_dir / "temporal.db", log_dir=state_dir,
                          settings=settings, keep_api_urls=keep_api_urls) as stack:
        ui = f"http://localhost:{args.ui_port}"
        s = stack.settings
        codec = (f"{stack.api.url}/codec  (the UI decodes payloads through it; "
                 f"CODEC_AUTH={s.codec_auth})") if s.payload_key else "off (PAYLOAD_ENCRYPTION_KEY unset)"
        defaults = "".join(f"\n  - {note}" for note in notes)
        print(f"""
Local stack is up (all on 127.0.0.1):
  Temporal     {s.temporal_address}   UI: {ui}
  API          {stack.api.url}/hubspot/actions/<action>   (health: {stack.api.url}/healthz)
  Codec        {codec}
  HubSpot sim  {stack.hubspot_url}   (admin: /_sim/calls, /_sim/callbacks, /_sim/state)
  Kleer sim    {stack.kleer_url}   (admin: /_sim/state)
  Metrics      http://{s.metrics_bind}/metrics  (Prometheus)
Settings come from the environment, as for `api` and `worker`; local defaults used:{defaults or " none"}
""", flush=True)
        install = stack.install_url()
        if install:
            from storage.db import safe_url

            base = install.removesuffix("/install")
            print(f"""Install the app (OAuth, the HubSpot simulator plays HubSpot):
  Install link {install}
               signed in at HubSpot as {DEMO_USER_EMAIL}, who may install into portals {DEMO_PORTAL}
               and {DEMO_INSTALL_PORTAL} (not installed yet: try it)
  Settings     {base}/settings  (after installing: {base}/settings/portals/{DEMO_INSTALL_PORTAL})
               Kleer simulator credentials to connect: company {DEMO_KLEER_COMPANY}, API key {DEMO_KLEER_KEY}
  Database     {safe_url(s.database_url or '')}
""", flush=True)
        if keep_api_urls and not args.no_demo:
            print("Demo skipped: HUBSPOT_API_BASE_URL/KLEER_API_BASE_URL point away from the "
                  "simulators, and the demo seeds the simulators.\n", flush=True)
        elif not args.no_demo:
            print("Demo: signed HubSpot executions of every action\n", flush=True)
            await run_demo(stack.api.url, stack.hubspot_url, stack.kleer_url,
                           s.hubspot_client_secret, DEMO_PORTAL, ui)
            print(f"\nAll runs: {ui}/namespaces/default/workflows", flush=True)
        if args.exit_after_demo:
            return
        print("Ctrl-C stops everything.", flush=True)
        await asyncio.Event().wait()  # until SIGINT/SIGTERM (temporal_client.run cancels us)


def cmd_dev(args: argparse.Namespace) -> None:
    from local.dev import PortsBusy, check_ports, dev_settings
    from local.stack import dev_oauth_settings
    from temporal_client import run

    _logging("WARNING")
    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    if args.metrics_port is not None:
        metrics_bind = f"127.0.0.1:{args.metrics_port}"
    else:
        metrics_bind = os.environ.get("METRICS_BIND") or "127.0.0.1:9464"
    settings, notes = dev_settings(os.environ, state_dir, args.ui_port, metrics_bind)
    keep_api_urls = bool(os.environ.get("HUBSPOT_API_BASE_URL") or os.environ.get("KLEER_API_BASE_URL"))
    settings, oauth_notes = dev_oauth_settings(os.environ, state_dir, settings, args.api_port,
                                               args.ui_port, keep_api_urls)
    notes += oauth_notes
    wanted = {"Temporal dev server": args.temporal_port, "Temporal UI": args.ui_port,
              "API": args.api_port, "HubSpot simulator": args.hubspot_port,
              "Kleer simulator": args.kleer_port, "metrics": int(metrics_bind.rsplit(":", 1)[1])}
    try:
        check_ports(wanted, state_dir)
    except PortsBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        run(_dev(args, settings, notes, keep_api_urls))
    except SystemExit as exc:
        if exc.code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
            print("Stopped: the Temporal dev server, simulators, worker and API are down.",
                  flush=True)
            return
        raise
    except (RuntimeError, TimeoutError) as exc:
        _fail(f"the local stack could not start: {exc} (everything it had started is stopped)")


# --- Operator tasks (ops/) ---------------------------------------------------------------------
DEFAULT_ACTION_BASE_URL = "http://localhost:8000"


def _default_action_base_url() -> str:
    return os.environ.get("PUBLIC_BASE_URL") or DEFAULT_ACTION_BASE_URL


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def cmd_definitions_print(args: argparse.Namespace) -> None:
    from ops.definitions import build_definitions

    json.dump(build_definitions(args.action_base_url, published=not args.unpublished),
              sys.stdout, indent=2)
    sys.stdout.write("\n")


async def _publish(args: argparse.Namespace) -> None:
    from hubspot_api.client import HubSpotClient
    from ops.definitions import publish
    from service_errors import ServiceError
    from settings import load_settings

    key = os.environ.get("HUBSPOT_DEVELOPER_API_KEY")
    if not key:
        _fail("HUBSPOT_DEVELOPER_API_KEY is not set (the app's developer API key)")
    client = HubSpotClient.for_developer(load_settings().hubspot_base_url, key or "")
    try:
        report = await publish(client, args.app_id, args.action_base_url,
                               published=not args.unpublished)
    except ServiceError as exc:
        _fail(f"publishing failed: {exc}")
    finally:
        await client.aclose()
    for action, outcome, definition_id in report:
        print(f"{outcome:<10} {action:<30} definition {definition_id}")


def cmd_definitions_publish(args: argparse.Namespace) -> None:
    asyncio.run(_publish(args))


async def _portal_setup(args: argparse.Namespace) -> None:
    from hubspot_api.client import HubSpotClient
    from kleer_api.client import KleerClient
    from ops.portal_setup import setup_portal
    from settings import UnknownPortalError, load_settings

    settings = load_settings()
    try:
        creds = settings.portal(args.portal_id)
    except UnknownPortalError as exc:
        _fail(f"{exc}: set PORTAL_{args.portal_id}_HUBSPOT_TOKEN, "
              f"PORTAL_{args.portal_id}_KLEER_COMPANY_ID and PORTAL_{args.portal_id}_KLEER_API_KEY "
              "(or PORTALS_FILE)")
    hubspot = HubSpotClient(settings.hubspot_base_url, creds.hubspot_token,
                            timeout_s=settings.http_timeout_s)
    kleer = KleerClient(settings.kleer_base_url, creds.kleer_company_id, creds.kleer_api_key,
                        timeout_s=settings.http_timeout_s)
    try:
        report = await setup_portal(hubspot, kleer, portal_id=args.portal_id)
    finally:
        await hubspot.aclose()
        await kleer.aclose()
    print(report)
    if not report.ok:
        raise SystemExit(1)


def cmd_portal_setup(args: argparse.Namespace) -> None:
    asyncio.run(_portal_setup(args))


async def _replay(args: argparse.Namespace) -> None:
    from ops.replay import ReplayError, replay
    from settings import load_settings
    from temporal_client import connect
    from workflows.runs import outcome

    settings = load_settings()
    client = await connect(settings)
    try:
        handle = await replay(client, settings, args.ref)
    except ReplayError as exc:
        _fail(str(exc))
    print(f"started {handle.id} (run {handle.result_run_id})", flush=True)
    if not args.no_wait:
        result = await outcome(handle)
        print(json.dumps(result.model_dump(), indent=2))


def cmd_replay(args: argparse.Namespace) -> None:
    from temporal_client import run

    run(_replay(args))


async def _sync(args: argparse.Namespace) -> None:
    from portals.services import open_services
    from settings import load_settings
    from sync import schedules
    from temporal_client import connect

    settings = load_settings()
    client = await connect(settings)
    if args.sync_command == "schedule":
        services = await open_services(settings)
        try:
            outcome = await schedules.reconcile(client, settings, services)
        finally:
            await services.aclose()
        for portal_id, result in outcome.items():
            print(f"portal {portal_id}: {result}")
        return
    if args.portal_id is None:
        _fail(f"sync {args.sync_command} needs --portal-id")
    status = await schedules.status(client, args.portal_id)
    if not status.exists:
        _fail(f"portal {args.portal_id} has no sync schedule yet (workers create it; or run "
              "`kleer-hubspot sync schedule`)")
    if args.sync_command == "pause":
        await schedules.pause(client, args.portal_id, args.note or "paused by an operator")
    elif args.sync_command == "resume":
        await schedules.resume(client, args.portal_id, args.note or "resumed by an operator")
    elif args.sync_command == "run-now":
        await schedules.run_now(client, args.portal_id)
    status = await schedules.status(client, args.portal_id)
    print(f"portal {status.portal_id}: {'paused' if status.paused else 'active'}, every "
          f"{status.interval_s / 60:g} min ({status.note})")
    print(f"  next runs: {', '.join(status.next_runs or []) or '-'}")
    print(f"  recent runs: {', '.join(status.recent or []) or '-'}")
    if args.sync_command == "run-now":
        print("  a run was started (skipped if one was going)")


def cmd_sync(args: argparse.Namespace) -> None:
    from temporal_client import run

    run(_sync(args))


async def _send(args: argparse.Namespace) -> None:
    from actions import ACTIONS
    from codec import RemoteDecodeCodec
    from local.stack import DEMO_CLIENT_SECRET
    from ops.send import SendError, parse_inputs, send
    from settings import load_settings
    from temporal_client import connect

    spec = ACTIONS.get(args.action)
    if spec is None:
        _fail(f"unknown action {args.action!r}; known: {', '.join(ACTIONS)}")
    settings = load_settings()
    secret = os.environ.get("HUBSPOT_CLIENT_SECRET") or DEMO_CLIENT_SECRET
    if not os.environ.get("HUBSPOT_CLIENT_SECRET"):
        print(f"HUBSPOT_CLIENT_SECRET unset: signing with the local stack's {DEMO_CLIENT_SECRET}")
    api_url = args.api_url.rstrip("/")
    local = api_url.startswith(("http://127.", "http://localhost"))
    sim = None if args.no_hubspot_sim else (args.hubspot_sim or ("http://127.0.0.1:8101" if local
                                                                 else None))
    temporal = None
    if not args.no_wait:
        # Without the payload key, read the run's (encrypted) result through the API's codec
        # endpoint, as the Temporal CLI does with --codec-endpoint.
        codec = None if settings.payload_key else RemoteDecodeCodec(
            args.codec_endpoint or f"{api_url}/codec", settings.codec_auth_token)
        try:
            temporal = await connect(settings, payload_codec=codec)
        except Exception as exc:
            _fail(f"cannot reach Temporal at {settings.temporal_address} (namespace "
                  f"{settings.temporal_namespace}) to wait for the run: {exc}. Set TEMPORAL_ADDRESS, "
                  "or use --no-wait")
    try:
        sent = await send(
            api_url=api_url, action=args.action, object_type=args.object_type or spec.object_type,
            object_id=args.object_id, portal_id=args.portal_id, inputs=parse_inputs(args.input),
            client_secret=secret, signature_version=args.signature, hubspot_sim_url=sim,
            temporal=temporal, timeout_s=args.timeout, progress=lambda line: print(line, flush=True))
    except SendError as exc:
        _fail(str(exc))
    ui = f"{args.ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}/workflows/{sent.workflow_id}"
    if sent.result is not None:
        print(f"completed: {sent.result.state} ({sent.result.result})")
        print("outputFields: " + json.dumps(sent.result.output_fields(), ensure_ascii=False))
    if sent.blocked:
        print(f"Temporal UI: {ui}")
    elif sent.status != 200:
        raise SystemExit(1)


def cmd_send(args: argparse.Namespace) -> None:
    from temporal_client import run

    run(_send(args))


def _add_ops_commands(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    base_url_help = ("public base URL of the API, as HubSpot reaches it; each action's actionUrl "
                     "is <URL>/hubspot/actions/<action> (default: env PUBLIC_BASE_URL, else "
                     f"{DEFAULT_ACTION_BASE_URL})")

    p = sub.add_parser(
        "definitions", help="generate or publish the HubSpot action definitions",
        description="The seven custom workflow action definitions, generated from the action "
                    "input models (actions/).")
    defs = p.add_subparsers(dest="definitions_command", required=True)

    d = defs.add_parser(
        "print", help="print the definitions as JSON (nothing is sent)",
        description="Print the seven action definitions (HubSpot's automation v4 shape) as a "
                    "JSON list on stdout. Reads env PUBLIC_BASE_URL for the default base URL.")
    d.add_argument("--action-base-url", default=_default_action_base_url(), metavar="URL",
                   help=base_url_help)
    d.add_argument("--unpublished", action="store_true",
                   help="mark the definitions unpublished (hidden from workflow users)")
    d.set_defaults(func=cmd_definitions_print)

    d = defs.add_parser(
        "publish", help="create/update the definitions on a HubSpot app (idempotent)",
        formatter_class=fmt,
        description="Create or update the app's action definitions so they match this code.\n"
                    "Definitions are matched by actionUrl: existing ones are updated (or left\n"
                    "alone when identical), missing ones created; safe to run repeatedly.\n\n"
                    "Environment:\n"
                    "  HUBSPOT_DEVELOPER_API_KEY  the app's developer API key (sent as hapikey)\n"
                    "  HUBSPOT_API_BASE_URL       HubSpot API (default https://api.hubapi.com)\n"
                    "  PUBLIC_BASE_URL            default for --action-base-url")
    d.add_argument("--app-id", type=int, required=True, metavar="N",
                   help="the HubSpot app id (developer account > Apps)")
    d.add_argument("--action-base-url", default=_default_action_base_url(), metavar="URL",
                   help=base_url_help)
    d.add_argument("--unpublished", action="store_true",
                   help="publish the definitions unpublished (hidden from workflow users)")
    d.set_defaults(func=cmd_definitions_publish)

    p = sub.add_parser("portal", help="prepare a connected HubSpot portal",
                       description="Tasks on one connected portal (credentials from settings).")
    portal = p.add_subparsers(dest="portal_command", required=True)
    d = portal.add_parser(
        "setup", help="create the Kleer properties in HubSpot and check the Kleer credentials",
        formatter_class=fmt,
        description="Create the property group \"Kleer\" and the properties the actions write\n"
                    "(companies: kleer_id; deals: kleer_invoice_id, kleer_agreement_id,\n"
                    "kleer_project_id; invoices and subscriptions: unique kleer_id) where\n"
                    "missing, then check the Kleer credentials with a harmless read (products).\n"
                    "Idempotent. Exit status 1 when anything failed.\n\n"
                    "Environment:\n"
                    "  PORTAL_<id>_HUBSPOT_TOKEN, PORTAL_<id>_KLEER_COMPANY_ID,\n"
                    "  PORTAL_<id>_KLEER_API_KEY (or PORTALS_FILE)   the portal's credentials\n"
                    "  HUBSPOT_API_BASE_URL, KLEER_API_BASE_URL, HTTP_TIMEOUT_SECONDS")
    d.add_argument("--portal-id", type=int, required=True, metavar="N",
                   help="the HubSpot portal (hub) id, as configured in PORTAL_<id>_* variables")
    d.set_defaults(func=cmd_portal_setup)

    p = sub.add_parser(
        "replay", help="run a finished execution again with its original input",
        formatter_class=fmt,
        description="Start a new run (id <workflow id>-replay-<n>) of a finished\n"
                    "execution with its original input, e.g. after fixing Kleer credentials.\n"
                    "Refused while the original still runs. HubSpot's callback is already\n"
                    "closed, so the replay only does the Kleer/HubSpot work; a record that\n"
                    "already has its Kleer id is skipped.\n\n"
                    "Environment:\n"
                    "  TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE, TEMPORAL_TLS,\n"
                    "  TEMPORAL_API_KEY, PAYLOAD_ENCRYPTION_KEY (to read encrypted histories)")
    p.add_argument("--id", "--callback-id", dest="ref", required=True, metavar="ID",
                   help="the execution: its workflow id as shown in the Temporal UI (e.g. "
                        "create-client-company-1001-ap-1-12345-d3a85d2ead31) or its HubSpot "
                        "callbackId")
    p.add_argument("--no-wait", action="store_true",
                   help="print the new workflow id and exit instead of waiting for its result")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser(
        "sync", help="the scheduled outbound sync (Kleer -> HubSpot) of a portal",
        formatter_class=fmt,
        description="Each portal has a Temporal Schedule (id kleer-sync-portal-<id>, under\n"
                    "Schedules in the Temporal UI) that runs the outbound sync every\n"
                    "SYNC_INTERVAL_MINUTES. Workers create the schedules; these commands show,\n"
                    "pause, resume and trigger them.\n\n"
                    "  status   --portal-id N   state, interval, next and recent runs\n"
                    "  pause    --portal-id N   no runs until resumed (a run under way finishes)\n"
                    "  resume   --portal-id N\n"
                    "  run-now  --portal-id N   a run now (skipped if one is going)\n"
                    "  schedule                 create/update the schedule of every portal\n\n"
                    "Environment: TEMPORAL_*, DATABASE_URL (installed portals), SYNC_INTERVAL_MINUTES")
    p.add_argument("sync_command", choices=["status", "pause", "resume", "run-now", "schedule"])
    p.add_argument("--portal-id", type=int, metavar="N", help="the HubSpot portal (hub) id")
    p.add_argument("--note", help="a note on the schedule (pause/resume), shown in the UI")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser(
        "send", help="sign and send one execution to a running stack and wait for its completion",
        formatter_class=fmt,
        description="Build the request HubSpot sends for an action execution, sign it (v3 or v2)\n"
                    "with HUBSPOT_CLIENT_SECRET, POST it to the actionUrl and wait for the run in\n"
                    "Temporal; prints the answer, the outputFields and the Temporal UI link.\n"
                    "Against the HubSpot simulator the callback is registered there first.\n\n"
                    "Example (./run.sh --no-demo running):\n"
                    "  kleer-hubspot send create-client --object-id 1001 --input name='Acme AB'\n\n"
                    "Environment:\n"
                    "  HUBSPOT_CLIENT_SECRET  signs the request (default: the local stack's\n"
                    "                         demo-client-secret)\n"
                    "  TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TLS, TEMPORAL_API_KEY\n"
                    "  PAYLOAD_ENCRYPTION_KEY to read the result; without it, through the API's\n"
                    "                         codec endpoint (CODEC_AUTH_TOKEN if it wants one)")
    p.add_argument("action", help="the action key, e.g. create-client, create-invoice")
    p.add_argument("--object-id", type=int, required=True, metavar="N",
                   help="the enrolled HubSpot record's id (company or deal)")
    p.add_argument("--object-type", choices=["COMPANY", "DEAL"],
                   help="default: the action's own (companies for client actions, else deals)")
    p.add_argument("--portal-id", type=int, default=12345, metavar="N",
                   help="the HubSpot portal (default 12345, the local stack's demo portal)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=VALUE",
                   help="an input field, repeatable (names as in `definitions print`)")
    p.add_argument("--api-url", default="http://127.0.0.1:8000", metavar="URL",
                   help="the API's base URL (default http://127.0.0.1:8000)")
    p.add_argument("--signature", choices=["v3", "v2"], default="v3",
                   help="HubSpot signature version (default v3)")
    p.add_argument("--hubspot-sim", metavar="URL",
                   help="register the callback in this HubSpot simulator first (default "
                        "http://127.0.0.1:8101 when --api-url is local)")
    p.add_argument("--no-hubspot-sim", action="store_true",
                   help="register no callback (a real HubSpot, or a stack without the simulator)")
    p.add_argument("--codec-endpoint", metavar="URL",
                   help="decode the result here when PAYLOAD_ENCRYPTION_KEY is unset (default "
                        "<api-url>/codec)")
    p.add_argument("--ui-url", default="http://localhost:8233", metavar="URL",
                   help="Temporal UI base URL for the printed link (default http://localhost:8233)")
    p.add_argument("--timeout", type=float, default=120, metavar="S",
                   help="seconds to wait for the completion (default 120)")
    p.add_argument("--no-wait", action="store_true", help="send and print the answer only")
    p.set_defaults(func=cmd_send)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kleer-hubspot",
        description="HubSpot -> Kleer workflow actions on Temporal. Configuration comes from "
                    "environment variables (see README, .env.example).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "dev", help="run everything locally (Temporal dev server + UI, simulators, worker, API) "
                    "and a demo of every action",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run everything on 127.0.0.1: a Temporal dev server with its UI, the HubSpot\n"
                    "and Kleer simulators, a worker and the API, then a demo of every action.\n"
                    "Every port is checked first; Ctrl-C or SIGTERM stops everything.\n\n"
                    "Settings come from the environment as for `api` and `worker`. Where it is\n"
                    "silent: the simulators' URLs, the demo portal 12345, HUBSPOT_CLIENT_SECRET=\n"
                    "demo-client-secret, payloads encrypted with a key kept in <state dir>/payload-key\n"
                    "and CODEC_AUTH=none, so the UI shows them decoded (raw history: ciphertext).\n"
                    "The dev server always runs here (TEMPORAL_ADDRESS is not used).")
    p.add_argument("--no-demo", action="store_true", help="start the stack without the demo")
    p.add_argument("--exit-after-demo", action="store_true", help="stop once the demo is done")
    p.add_argument("--state-dir", default=".dev", help="Temporal database and logs (default .dev)")
    p.add_argument("--temporal-port", type=int, default=7233, help="Temporal dev server gRPC port")
    p.add_argument("--ui-port", type=int, default=8233, help="Temporal web UI port")
    p.add_argument("--api-port", type=int, default=8000, help="HubSpot action endpoint port")
    p.add_argument("--hubspot-port", type=int, default=8101, help="HubSpot simulator port")
    p.add_argument("--kleer-port", type=int, default=8102, help="Kleer simulator port")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="Prometheus metrics of the whole stack (SDK + kleer_* metrics; default: "
                        "env METRICS_BIND, else 9464)")
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser("api", help="serve the HubSpot action endpoint (scale with replicas)")
    p.add_argument("--host", default="0.0.0.0", help="interface to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.set_defaults(func=cmd_api)

    p = sub.add_parser("worker", help="run a Temporal worker (start several to scale out)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("simulators", help="serve the HubSpot and Kleer simulators only")
    p.add_argument("--hubspot-port", type=int, default=8101, help="HubSpot simulator port")
    p.add_argument("--kleer-port", type=int, default=8102, help="Kleer simulator port")
    p.set_defaults(func=cmd_simulators)

    _add_ops_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    from settings import ConfigError
    from telemetry import MetricsBindError
    from temporal_client import TemporalUnavailable

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ConfigError as exc:  # one paragraph naming each variable/file and what it accepts
        print(f"kleer-hubspot {args.command}: {exc.paragraph()}", file=sys.stderr)
        raise SystemExit(2) from None
    except MetricsBindError as exc:
        print(f"kleer-hubspot {args.command}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except TemporalUnavailable as exc:
        _fail(str(exc))


if __name__ == "__main__":
    main()
