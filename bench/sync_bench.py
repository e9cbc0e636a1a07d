"""Outbound sync benchmark: 10,000 Kleer invoices synced to HubSpot at a portal's rate limit.

    python -m bench.sync_bench [--invoices 10000] [--hubspot-limit 190] [--json out.json]

One worker in its own process, the embedded stack (Temporal dev server, simulators), a SQLite
database for the sync's state. Seeds one Kleer client already linked to its company and N
invoices of two rows each, then times three runs: the first full sync, an unchanged re-run, and
a run after 1% of the invoices were paid. Reports HubSpot calls per synced record (by endpoint)
and the drain time against the lower bound the limit sets (the run's HubSpot calls at the paced
rate, limit / 10 s x HUBSPOT_RATE_SHARE).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from bench.workers import NO_SYNC_INTERVAL_S
from local.stack import DEMO_HUBSPOT_TOKEN, DEMO_KLEER_COMPANY, DEMO_KLEER_KEY, DEMO_PORTAL, LocalStack
from settings import PortalCredentials, Settings
from storage.records import SyncedRecord
from sync.models import SyncRequest, SyncSummary
from sync.workflow import OutboundSync

PORTAL, COMPANY = DEMO_PORTAL, DEMO_KLEER_COMPANY


def endpoint(method: str, path: str) -> str:
    return f"{method} {re.sub(r'/[0-9]+(?=/|$)', '/{id}', path)}"


async def _run(stack: LocalStack) -> tuple[SyncSummary, float, Counter[str]]:
    stack.hubspot.calls.clear()
    started = time.monotonic()
    summary = await stack.client.execute_workflow(
        OutboundSync.run, SyncRequest(portal_id=PORTAL), id=f"sync-bench-{uuid.uuid4().hex[:8]}",
        task_queue=stack.settings.task_queue, result_type=SyncSummary)
    took = time.monotonic() - started
    calls = Counter(endpoint(c["method"], c["path"]) for c in stack.hubspot.calls.list()
                    if c["key"] == PORTAL)
    return summary, took, calls


async def main_async(invoices: int, limit: int, share: float) -> dict:
    state = Path(tempfile.mkdtemp(prefix="sync-bench-"))
    settings = Settings(
        task_queue="kleer-hubspot-sync-bench", http_timeout_s=15, kleer_rate_limit=45,
        hubspot_rate_share=share, database_url=f"sqlite+aiosqlite:///{state / 'kleer.db'}",
        database_secrets_key="sync-bench-key", sync_interval_s=NO_SYNC_INTERVAL_S,
        portals={PORTAL: PortalCredentials(PORTAL, DEMO_HUBSPOT_TOKEN, COMPANY, DEMO_KLEER_KEY,
                                           hubspot_rate_limit=limit)})
    async with LocalStack(settings=settings, run_worker=False, log_dir=state,
                          hubspot_rate_limit=(limit, 10_000)) as stack:
        company = stack.hubspot.create_object(PORTAL, "companies", {"name": "Big Customer AB"})
        client = stack.kleer.create(COMPANY, "client", {"name": "Big Customer AB"})
        await stack.services.store.save_synced(PORTAL, [SyncedRecord(
            kind="client", kleer_id=client, hubspot_id=company, digest="linked")])
        ids = [stack.kleer.create(COMPANY, "invoice", {
            "client-ref": {"id": client}, "invoice-date": "2026-10-01", "due-date": "2027-10-01",
            "currency": "SEK", "certified": True, "sent": True, "remaining": 2000,
            "rows": [{"description": "Licence", "quantity": 1, "price": 1500},
                     {"description": "Support", "quantity": 1, "price": 500}]})
               for _ in range(invoices)]
        worker = stack.spawn_worker(state / "worker.log")
        try:
            rate = limit / 10 * share
            rows = {}
            first = await _run(stack)
            rows["first full sync"] = first
            rows["re-run, nothing changed"] = await _run(stack)
            for invoice_id in ids[:max(1, invoices // 100)]:
                stack.kleer.set_invoice_state(COMPANY, invoice_id, "paid")
            rows["after 1% were paid"] = await _run(stack)
        finally:
            worker.terminate()
            worker.wait()
    out = {"invoices": invoices, "limit_per_10s": limit, "paced_rate_per_s": rate, "runs": {}}
    print(f"Outbound sync of {invoices} Kleer invoices (2 rows each), HubSpot limit {limit}/10 s "
          f"paced at {rate:.1f} calls/s\n")
    print("| run | invoices upserted | HubSpot calls | calls per synced invoice | took | "
          "lower bound (calls / paced rate) | took / bound |\n|---|---|---|---|---|---|---|")
    for name, (summary, took, calls) in rows.items():
        total = sum(calls.values())
        synced = summary.invoices_upserted
        bound = total / rate
        per = f"{total / synced:.3f}" if synced else "-"
        ratio = f"{took / bound:.2f}×" if bound else "-"
        print(f"| {name} | {synced} | {total} | {per} | {took:.1f} s | {bound:.1f} s | {ratio} |")
        out["runs"][name] = {"upserted": synced, "hubspot_calls": total, "took_s": took,
                             "bound_s": bound, "by_endpoint": dict(calls),
                             "summary": summary.line()}
    print("\nHubSpot calls of the first run by endpoint:")
    for name, count in first[2].most_common():
        print(f"  {count:6d}  {name}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--hubspot-limit", type=int, default=190, help="requests per 10 s")
    parser.add_argument("--share", type=float, default=0.9, help="HUBSPOT_RATE_SHARE")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    result = asyncio.run(main_async(args.invoices, args.hubspot_limit, args.share))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
