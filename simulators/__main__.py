"""`python -m simulators`: run the HubSpot and Kleer simulators until Ctrl-C (local demos).

Credentials come from HUBSPOT_SIM_PORTALS ("12345:token,...") and KLEER_SIM_COMPANIES
("1:key,...") or the demo defaults below.
"""

from __future__ import annotations

import argparse
import os
import time

from simulators.common import ServerThread
from simulators.hubspot import HubSpotState, create_hubspot_app
from simulators.kleer import KleerState, create_kleer_app

DEFAULT_PORTALS = "12345:demo-hubspot-token"
DEFAULT_COMPANIES = "1:demo-kleer-key"


def parse_pairs(spec: str) -> list[tuple[int, str]]:
    """"1:a,2:b" -> [(1, "a"), (2, "b")]."""
    pairs = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, _, token = item.partition(":")
        if not token:
            raise SystemExit(f"expected id:token, got {item!r}")
        pairs.append((int(key), token))
    return pairs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    parser.add_argument("--hubspot-port", type=int, default=8101)
    parser.add_argument("--kleer-port", type=int, default=8102)
    parser.add_argument("--portals", default=os.environ.get("HUBSPOT_SIM_PORTALS",
                                                            DEFAULT_PORTALS))
    parser.add_argument("--companies", default=os.environ.get("KLEER_SIM_COMPANIES",
                                                              DEFAULT_COMPANIES))
    args = parser.parse_args(argv)

    hubspot, kleer = HubSpotState(), KleerState()
    for portal_id, token in parse_pairs(args.portals):
        hubspot.add_portal(portal_id, token)
    for company_id, token in parse_pairs(args.companies):
        kleer.add_company(company_id, token)

    servers = [ServerThread(create_hubspot_app(hubspot), args.hubspot_port).start(),
               ServerThread(create_kleer_app(kleer), args.kleer_port).start()]
    print(f"HubSpot simulator: {servers[0].url}  portals {args.portals}")
    print(f"Kleer simulator:   {servers[1].url}/v1/  companies {args.companies}")
    print("Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
