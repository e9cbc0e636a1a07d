"""`kleer-hubspot`: one entry point for every operator task. `kleer-hubspot --help` lists them."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per call is noise


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

    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    ports = StackPorts(temporal=args.temporal_port, temporal_ui=args.ui_port,
                       hubspot=args.hubspot_port, kleer=args.kleer_port, api=args.api_port)
    async with LocalStack(ports=ports, db_file=state_dir / "temporal.db",
                          log_dir=state_dir) as stack:
        ui = f"http://localhost:{args.ui_port}"
        print(f"""
Local stack is up (all on 127.0.0.1):
  Temporal     {stack.settings.temporal_address}   UI: {ui}
  API          {stack.api.url}/hubspot/actions/<action>
  HubSpot sim  {stack.hubspot_url}   (admin: /_sim/calls, /_sim/callbacks, /_sim/state)
  Kleer sim    {stack.kleer_url}   (admin: /_sim/state)
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
    p.add_argument("--temporal-port", type=int, default=7233)
    p.add_argument("--ui-port", type=int, default=8233)
    p.add_argument("--api-port", type=int, default=8000)
    p.add_argument("--hubspot-port", type=int, default=8101)
    p.add_argument("--kleer-port", type=int, default=8102)
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser("api", help="serve the HubSpot action endpoint (scale with replicas)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.set_defaults(func=cmd_api)

    p = sub.add_parser("worker", help="run a Temporal worker (start several to scale out)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("simulators", help="serve the HubSpot and Kleer simulators only")
    p.add_argument("--hubspot-port", type=int, default=8101)
    p.add_argument("--kleer-port", type=int, default=8102)
    p.set_defaults(func=cmd_simulators)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
