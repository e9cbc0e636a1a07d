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

    _logging()
    uvicorn.run("api:app", factory=True, host=args.host, port=args.port, workers=args.workers)


def cmd_worker(args: argparse.Namespace) -> None:
    import worker

    worker.main()


def cmd_simulators(args: argparse.Namespace) -> None:
    from simulators.__main__ import main as sims_main

    sims_main(["--hubspot-port", str(args.hubspot_port), "--kleer-port", str(args.kleer_port)])


async def _dev(args: argparse.Namespace) -> None:
    from local.demo import run_demo
    from local.stack import DEMO_PORTAL, LocalStack, StackPorts
    from settings import Settings

    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    ports = StackPorts(temporal=args.temporal_port, temporal_ui=args.ui_port,
                       hubspot=args.hubspot_port, kleer=args.kleer_port, api=args.api_port)
    settings = Settings(metrics_bind=f"127.0.0.1:{args.metrics_port}")
    async with LocalStack(ports=ports, db_file=state_dir / "temporal.db", log_dir=state_dir,
                          settings=settings) as stack:
        ui = f"http://localhost:{args.ui_port}"
        print(f"""
Local stack is up (all on 127.0.0.1):
  Temporal     {stack.settings.temporal_address}   UI: {ui}
  API          {stack.api.url}/hubspot/actions/<action>
  HubSpot sim  {stack.hubspot_url}   (admin: /_sim/calls, /_sim/callbacks, /_sim/state)
  Kleer sim    {stack.kleer_url}   (admin: /_sim/state)
  Metrics      http://127.0.0.1:{args.metrics_port}/metrics  (Prometheus)
""", flush=True)
        if not args.no_demo:
            print("Demo: signed HubSpot executions of every action\n", flush=True)
            await run_demo(stack.api.url, stack.hubspot_url, stack.kleer_url,
                           stack.settings.hubspot_client_secret,
                           DEMO_PORTAL, ui)
            print(f"\nAll runs: {ui}/namespaces/default/workflows", flush=True)
        if args.exit_after_demo:
            return
        print("Ctrl-C stops everything.", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def cmd_dev(args: argparse.Namespace) -> None:
    _logging("WARNING")
    asyncio.run(_dev(args))


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
        handle = await replay(client, settings, args.callback_id)
    except ReplayError as exc:
        _fail(str(exc))
    print(f"started {handle.id} (run {handle.result_run_id})", flush=True)
    if not args.no_wait:
        result = await outcome(handle)
        print(json.dumps(result.model_dump(), indent=2))


def cmd_replay(args: argparse.Namespace) -> None:
    asyncio.run(_replay(args))


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
        description="Start a new run (id hubspot-action-<callback id>-replay-<n>) of a finished\n"
                    "execution with its original input, e.g. after fixing Kleer credentials.\n"
                    "Refused while the original still runs. HubSpot's callback is already\n"
                    "closed, so the replay only does the Kleer/HubSpot work; a record that\n"
                    "already has its Kleer id is skipped.\n\n"
                    "Environment:\n"
                    "  TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE, TEMPORAL_TLS,\n"
                    "  TEMPORAL_API_KEY, PAYLOAD_ENCRYPTION_KEY (to read encrypted histories)")
    p.add_argument("--callback-id", required=True, metavar="ID",
                   help="the HubSpot callbackId of the execution (workflow id without the "
                        "hubspot-action- prefix)")
    p.add_argument("--no-wait", action="store_true",
                   help="print the new workflow id and exit instead of waiting for its result")
    p.set_defaults(func=cmd_replay)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kleer-hubspot",
        description="HubSpot -> Kleer workflow actions on Temporal. Configuration comes from "
                    "environment variables (see README, .env.example).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("dev", help="run everything locally (Temporal dev server + UI, simulators, "
                                   "worker, API) and a demo of every action")
    p.add_argument("--no-demo", action="store_true", help="start the stack without the demo")
    p.add_argument("--exit-after-demo", action="store_true", help="stop once the demo is done")
    p.add_argument("--state-dir", default=".dev", help="Temporal database and logs (default .dev)")
    p.add_argument("--temporal-port", type=int, default=7233, help="Temporal dev server gRPC port")
    p.add_argument("--ui-port", type=int, default=8233, help="Temporal web UI port")
    p.add_argument("--api-port", type=int, default=8000, help="HubSpot action endpoint port")
    p.add_argument("--hubspot-port", type=int, default=8101, help="HubSpot simulator port")
    p.add_argument("--kleer-port", type=int, default=8102, help="Kleer simulator port")
    p.add_argument("--metrics-port", type=int, default=9464,
                   help="Prometheus metrics of the whole stack (SDK + kleer_* metrics)")
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
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
