"""What the benchmark fires: the action mix, seeded records that succeed, and the executions.

Records are seeded straight into the in-process simulator state (not over HTTP), so seeding a few
thousand records takes seconds and never touches the HubSpot rate limit the run is measuring.
Every execution gets its own record: a repeated action on one record would be skipped (its Kleer
id is already set), which is cheaper and would flatter the numbers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from local.stack import DEMO_KLEER_COMPANY, DEMO_PORTAL, LocalStack

PRIMARY_COMPANY, DEAL_TO_LINE_ITEM = 5, 19  # HubSpot association type ids (deal -> company/item)

ALIASES = {
    "client": "create-client",
    "invoice": "create-invoice",
    "agreement": "create-agreement",
    "project": "create-project",
}
DEFAULT_MIX: dict[str, float] = {
    "create-client": 40, "create-invoice": 30, "create-agreement": 15, "create-project": 15,
}
OBJECT_TYPES = {"create-client": "COMPANY", "create-invoice": "DEAL",
                "create-agreement": "DEAL", "create-project": "DEAL"}


@dataclass
class Execution:
    """One execution to fire: the action, its seeded record and its input fields."""

    action: str
    object_type: str
    object_id: int
    inputs: dict[str, str] = field(default_factory=dict)


def parse_mix(text: str) -> dict[str, float]:
    """`client=40,invoice=30,...` (short names or action keys) -> weights by action key.

    Only the actions that succeed on a freshly seeded record are supported: update-agreement needs
    an agreement first and the *-from-mappings actions need a mappings file per portal.
    """
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        action = ALIASES.get(name.strip(), name.strip())
        if action not in OBJECT_TYPES:
            raise ValueError(f"unsupported action {name!r}; use {', '.join(ALIASES)}")
        mix[action] = float(weight) if weight else 1.0
        if mix[action] < 0:
            raise ValueError(f"negative weight for {name!r}")
    if not mix or sum(mix.values()) <= 0:
        raise ValueError(f"empty mix: {text!r}")
    return mix


def allocate(mix: dict[str, float], total: int) -> dict[str, int]:
    """Split `total` by the weights (largest remainder), so the counts add up exactly."""
    weight_sum = sum(mix.values())
    exact = {action: total * w / weight_sum for action, w in mix.items()}
    counts = {action: int(x) for action, x in exact.items()}
    by_remainder = sorted(exact, key=lambda a: exact[a] - counts[a], reverse=True)
    for action in by_remainder[: total - sum(counts.values())]:
        counts[action] += 1
    return {action: n for action, n in counts.items() if n > 0}


def _seed_company(stack: LocalStack, index: int) -> Execution:
    company_id = stack.hubspot.create_object(DEMO_PORTAL, "companies", {
        "name": f"Bench Client {index} AB", "phone": "+46 8 123 45 67"})
    return Execution("create-client", "COMPANY", int(company_id), {
        "name": f"Bench Client {index} AB", "email": f"billing{index}@bench.example",
        "currency": "sek", "delivery_type": "email", "payment_days": "30", "zip": "111 22"})


def _seed_deal(stack: LocalStack, index: int) -> int:
    """A deal with a company that is already a Kleer client and two line items."""
    hubspot = stack.hubspot
    name = f"Bench Deal Co {index} AB"
    client_id = stack.kleer.create(DEMO_KLEER_COMPANY, "client", {"name": name})
    company_id = hubspot.create_object(DEMO_PORTAL, "companies",
                                       {"name": name, "kleer_id": str(client_id)})
    links = [("companies", company_id, PRIMARY_COMPANY)]
    for item in ({"name": "Licence", "quantity": "12", "price": "1234.50",
                  "recurringbillingfrequency": "monthly"},
                 {"name": "Onboarding", "quantity": "1", "price": "4999.99",
                  "hs_discount_percentage": "10"}):
        links.append(("line_items", hubspot.create_object(DEMO_PORTAL, "line_items", item),
                      DEAL_TO_LINE_ITEM))
    deal_id = hubspot.create_object(DEMO_PORTAL, "deals", {
        "dealname": f"Bench deal {index}", "amount": "19813.99",
        "closedate": "2026-12-15T12:00:00.000Z"}, links)
    return int(deal_id)


DEAL_INPUTS = {
    "create-invoice": lambda i: {"invoice_date": "2026-12-01", "your_reference": "Bench"},
    "create-agreement": lambda i: {
        "name": f"Bench agreement {i}", "start_date": "2027-01-01", "end_date": "2027-12-31",
        "invoice_interval": "3", "invoice_day": "invoice_at_start"},
    "create-project": lambda i: {"name": f"Bench project {i}", "fixed_price": "yes",
                                 "budget_hours": "120", "budget_amount": "150000"},
}


def seed_execution(stack: LocalStack, action: str, index: int) -> Execution:
    """Seed the record one execution of `action` needs and return that execution."""
    if action == "create-client":
        return _seed_company(stack, index)
    return Execution(action, "DEAL", _seed_deal(stack, index), DEAL_INPUTS[action](index))


def build_workload(stack: LocalStack, counts: dict[str, int], seed: int,
                   first_index: int = 0) -> list[Execution]:
    """Seed every execution's record, then shuffle so the actions interleave like real traffic."""
    executions: list[Execution] = []
    index = first_index
    for action, count in counts.items():
        for _ in range(count):
            executions.append(seed_execution(stack, action, index))
            index += 1
    random.Random(seed).shuffle(executions)
    return executions
