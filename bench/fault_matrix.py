"""Fault matrix: many executions under each fault, then an audit of duplicates and losses.

    python -m bench.fault_matrix [--per-fault 12]

Each row injects one fault (randomly, into a share of the calls, or as a process event), fires a
mix of create-client/invoice/agreement/project executions through the HubSpot driver against a
local stack with a worker in its own process, waits for every callback, and audits:
- duplicates: Kleer records beyond one per execution (by foreign-id; projects by name), HubSpot
  mirrors beyond one per Kleer id, mirror line items beyond the deal's;
- losses: executions whose callback never completed, or completed without the Kleer record, the
  Kleer id on the HubSpot record, or the mirror.
The tests (tests/test_faults.py, tests/test_crash_recovery.py) prove each case; this prints the
numbers over many runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.workers import NO_SYNC_INTERVAL_S
from local.stack import DEMO_CLIENT_SECRET, DEMO_PORTAL, LocalStack
from settings import Settings, StepPolicy
from simulators.driver import HubSpotDriver

PORTAL = DEMO_PORTAL
ACTIONS = ["create-client", "create-invoice", "create-agreement", "create-project"]
KIND = {"create-client": "client", "create-invoice": "invoice",
        "create-agreement": "agreement", "create-project": "project"}
KIND["create-client-from-mappings"] = "client"
ID_PROPERTY = {"create-client": "kleer_id", "create-client-from-mappings": "kleer_id",
               "create-invoice": "kleer_invoice_id",
               "create-agreement": "kleer_agreement_id", "create-project": "kleer_project_id"}
MIRROR = {"create-invoice": "invoices", "create-agreement": "subscriptions"}


@dataclass
class Execution:
    action: str
    object_id: str
    callback_id: str = ""
    line_items: int = 0
    twin_of: Execution | None = None  # a second execution for the same record, at the same time


def _seed(stack: LocalStack, action: str, tag: str) -> Execution:
    hs = stack.hubspot
    if action == "create-client":
        return Execution(action, hs.create_object(PORTAL, "companies", {"name": tag}))
    client_id = stack.kleer.create(1, "client", {"name": f"{tag} client"})
    company = hs.create_object(PORTAL, "companies", {"name": tag, "kleer_id": str(client_id)})
    links = [("companies", company, 5)]
    items = [{"name": f"{tag} licence", "price": "100.10", "recurringbillingfrequency": "monthly"},
             {"name": f"{tag} setup", "price": "0.30000000000000004"}]
    for item in items:
        links.append(("line_items", hs.create_object(PORTAL, "line_items", item), 19))
    deal = hs.create_object(PORTAL, "deals", {"dealname": tag}, links)
    return Execution(action, deal, line_items=len(items))


def _audit(stack: LocalStack, runs: list[Execution], completions: dict[str, dict]) -> tuple[int, int]:
    duplicates = losses = 0
    hs, kleer = stack.hubspot, stack.kleer
    for run in runs:
        out = completions.get(run.callback_id)
        if run.twin_of is not None:
            # The second execution for a record reports the first one's Kleer id.
            first = completions.get(run.twin_of.callback_id) or {}
            if not out or out.get("kleer_id") != first.get("kleer_id") or \
                    {out.get("result"), first.get("result")} != {"created", "skipped"}:
                losses += 1
            continue
        if not out or out.get("result") not in ("created", "skipped"):
            losses += 1
            continue
        kind = KIND[run.action]
        if kind == "project":
            records = [p for p in kleer.records(1, "project") if p.get("name") == f"P{run.object_id}"]
        else:
            object_type = "company" if kind == "client" else "deal"
            marker = f"hubspot:{PORTAL}:{object_type}:{run.object_id}:{kind}"
            records = [r for r in kleer.records(1, kind) if r.get("foreign-id") == marker]
        duplicates += max(0, len(records) - 1)
        hubspot_type = "companies" if kind == "client" else "deals"
        written = hs.get_object(PORTAL, hubspot_type, run.object_id)["properties"].get(
            ID_PROPERTY[run.action])
        if not records or written != out["kleer_id"]:
            losses += 1
            continue
        if run.action in MIRROR:
            mirrors = hs.find_objects(PORTAL, MIRROR[run.action], kleer_id=out["kleer_id"])
            duplicates += max(0, len(mirrors) - 1)
            if not mirrors:
                losses += 1
                continue
            items = hs.associations_of(PORTAL, MIRROR[run.action], mirrors[0]["id"], "line_items")
            duplicates += max(0, len(items) - run.line_items)
            losses += max(0, run.line_items - len(items))
    return duplicates, losses


FAULTS: dict[str, str] = {
    "Kleer commit-then-drop on create": "kleer_drop",
    "Kleer commits after our timeout": "kleer_slow",
    "Kleer 5xx / 429 (Retry-After)": "kleer_errors",
    "HubSpot commit-then-drop (writes, sync, callback)": "hubspot_drop",
    "HubSpot 429 storm (Retry-After 1 s)": "hubspot_429",
    "HubSpot 5xx": "hubspot_5xx",
    "Re-delivery x3 (same callbackId)": "redeliver",
    "Kleer gateway 502/504 at once, commit 1.5 s later (50%)": "gateway_late",
    "Kleer ignores list filters, pages by 25 (30+ others); commit-then-drop (50%)": "unfiltered_paged",
    "Slow lookups (0.3-1.5 s), two executions per record at once": "twins",
    "Worker SIGKILL every 3 s (restarted)": "kill",
    "Temporal dev server restart mid-burst": "restart",
}


def _inject(stack: LocalStack, fault: str) -> None:
    k, h = stack.kleer.faults, stack.hubspot.faults
    if fault == "kleer_drop":
        k.add(method="PUT", mode="commit_then_drop", probability=0.5)
    elif fault == "kleer_slow":
        k.add(method="PUT", mode="latency", latency_ms=2600, probability=0.4)
    elif fault == "kleer_errors":
        k.add(status=503, probability=0.2)
        k.add(status=429, retry_after=1, probability=0.1)
    elif fault == "hubspot_drop":
        h.add(method="PATCH", mode="commit_then_drop", probability=0.3)
        h.add(method="POST", path_contains="/batch/create", mode="commit_then_drop", probability=0.3)
        h.add(method="POST", path_contains="/complete", mode="commit_then_drop", probability=0.3)
    elif fault == "hubspot_429":
        h.add(path_contains="/crm/", status=429, retry_after=1, probability=0.3)
    elif fault == "hubspot_5xx":
        h.add(status=502, probability=0.25)
    elif fault == "gateway_late":
        k.add(method="PUT", mode="late_commit", status=504, commit_delay_ms=1500, probability=0.25)
        k.add(method="PUT", mode="late_commit", status=502, commit_delay_ms=1500, probability=0.33)
    elif fault == "unfiltered_paged":
        while len(stack.kleer.records(1, "client")) < 30:
            stack.kleer.create(1, "client", {"name": "someone else"})
        stack.kleer.set_behaviour(list_filters="ignored", page_size=25)
        k.add(method="PUT", mode="commit_then_drop", probability=0.5)
    elif fault == "twins":
        k.add(method="GET", mode="latency", latency_ms=300, jitter_ms=1200)
    elif fault in ("kill", "restart"):  # slow steps, so the process event hits runs mid-way
        k.add(method="PUT", mode="latency", latency_ms=1500)
        h.add(method="PATCH", mode="latency", latency_ms=1500)


async def _row(stack: LocalStack, driver: HubSpotDriver, name: str, fault: str, n: int,
               logdir: Path) -> tuple[str, int, int, int, float]:
    stack.kleer.faults.clear()
    stack.hubspot.faults.clear()
    runs = [_seed(stack, ACTIONS[i % len(ACTIONS)], f"{fault}-{i}") for i in range(n)]
    if fault == "twins":  # both client actions on a company; the same deal action twice
        runs += [Execution("create-client-from-mappings" if r.action == "create-client" else r.action,
                           r.object_id, line_items=r.line_items, twin_of=r) for r in list(runs)]
    _inject(stack, fault)
    worker = stack.spawn_worker(logdir / f"{fault}.log")
    started = time.monotonic()
    try:
        async def fire(run: Execution) -> None:
            inputs = {"name": f"P{run.object_id}"} if run.action in ("create-project",
                                                                      "create-client") else {}
            copies = 3 if fault == "redeliver" else 1
            cb = f"fm-{fault}-{run.object_id}" + ("-twin" if run.twin_of else "")
            results = await asyncio.gather(*(driver.execute(
                PORTAL, "COMPANY" if run.action.startswith("create-client") else "DEAL",
                int(run.object_id), inputs, callback_id=cb, action_url=stack.action_url(run.action))
                for _ in range(copies)))
            run.callback_id = results[0].callback_id

        firing = asyncio.gather(*(fire(r) for r in runs))
        if fault == "kill":
            for i in range(3):
                await asyncio.sleep(3)
                worker.kill()
                worker.wait()
                worker = stack.spawn_worker(logdir / f"{fault}-{i}.log")
        elif fault == "restart":
            await asyncio.sleep(1.5)
            await asyncio.to_thread(stack.temporal.stop)
            await asyncio.sleep(1)
            await asyncio.to_thread(stack.temporal.start)
        await firing
        completions: dict[str, dict] = {}
        for run in runs:
            try:
                completions[run.callback_id] = await driver.wait_for_completion(run.callback_id,
                                                                                timeout_s=180)
            except TimeoutError:
                pass
        if fault == "gateway_late":
            await asyncio.sleep(2)  # let every late commit land before counting
    finally:
        stack.kleer.faults.clear()
        stack.hubspot.faults.clear()
        stack.kleer.set_behaviour(list_filters="ignored", page_size=None)
        worker.terminate()
        worker.wait()
    duplicates, losses = _audit(stack, runs, completions)
    return name, len(runs), duplicates, losses, time.monotonic() - started


async def main_async(per_fault: int, only: list[str] | None, settle_s: float = 2,
                     database: str = "sqlite") -> list[tuple]:
    state = Path(tempfile.mkdtemp(prefix="fault-matrix-"))
    settings = Settings(
        task_queue="fault-matrix", http_timeout_s=2, create_settle_s=settle_s,
        step_policy=StepPolicy(start_to_close_s=6, initial_retry_s=0.2, max_retry_s=2,
                               give_up_after_s=600),
        # With a database (as deployed) one write per record at a time is a lease; without, the
        # record's child workflow (workflows/record.py).
        database_url=None if database == "none" else f"sqlite+aiosqlite:///{state / 'kleer.db'}",
        database_secrets_key=None if database == "none" else "fault-matrix-key",
        sync_interval_s=NO_SYNC_INTERVAL_S,  # no outbound sync during the matrix
    )
    rows = []
    async with LocalStack(settings=settings, run_worker=False, db_file=state / "temporal.db",
                          log_dir=state) as stack:
        async with HubSpotDriver(stack.action_url("create-client"), DEMO_CLIENT_SECRET,
                                 stack.hubspot_url, timeout_s=20) as driver:
            for name, fault in FAULTS.items():
                if only and fault not in only:
                    continue
                row = await _row(stack, driver, name, fault, per_fault, state)
                rows.append(row)
                print(f"| {row[0]} | {row[1]} | {row[2]} | {row[3]} | {row[4]:.0f} s |", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-fault", type=int, default=12, help="executions per fault (mixed)")
    parser.add_argument("--only", nargs="*", choices=list(FAULTS.values()), help="run these only")
    parser.add_argument("--settle", type=float, default=2,
                        help="CREATE_SETTLE_SECONDS; 0 shows what the settle wait prevents")
    parser.add_argument("--database", choices=["sqlite", "none"], default="sqlite",
                        help="the workers' database: record leases (sqlite, as ./run.sh) or the "
                             "per-record child workflow (none)")
    args = parser.parse_args()
    print("| fault | executions | duplicates | losses | time |\n|---|---|---|---|---|", flush=True)
    rows = asyncio.run(main_async(args.per_fault, args.only, args.settle, args.database))
    bad = sum(r[2] + r[3] for r in rows)
    print(f"\n{sum(r[1] for r in rows)} executions, {bad} duplicates or losses")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
