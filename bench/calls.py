"""Calls read from the simulators' call logs: by endpoint, with the items each batch carried.

A batch call's items are the `inputs` of its JSON body (HubSpot's batch endpoints and the batch
callback completion all take `{"inputs": [...]}`); any other call carries one item.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_CALLBACK = re.compile(r"/ap-[^/]+")
_NUMBER = re.compile(r"/\d+(?=/|$)")


def endpoint(method: str, path: str) -> str:
    """`PATCH /crm/v3/objects/deals/{id}`: calls grouped by endpoint instead of by record."""
    return f"{method} {_NUMBER.sub('/{id}', _CALLBACK.sub('/{callbackId}', path))}"


def items_of(call: dict[str, Any]) -> int:
    body = call.get("body")
    inputs = body.get("inputs") if isinstance(body, dict) else None
    return len(inputs) if isinstance(inputs, list) else 1


@dataclass
class EndpointCalls:
    calls: int = 0
    items: int = 0
    rate_limited: int = 0

    @property
    def fill(self) -> float:
        """Items per call: 1.0 for single calls, up to 100 for full batches."""
        return self.items / self.calls if self.calls else 0.0


@dataclass
class ServiceCalls:
    """One service's calls in a phase, from its simulator's call log (429 answers included)."""

    total: int = 0
    rate_limited: int = 0
    by_endpoint: dict[str, EndpointCalls] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return self.total - self.rate_limited

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "rate_limited": self.rate_limited,
                "by_endpoint": {k: {"calls": v.calls, "items": v.items, "fill": v.fill,
                                    "rate_limited": v.rate_limited}
                                for k, v in self.by_endpoint.items()}}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ServiceCalls:
        return cls(raw["total"], raw["rate_limited"], {
            k: EndpointCalls(v["calls"], v["items"], v["rate_limited"])
            for k, v in raw["by_endpoint"].items()})


def tally(calls: Iterable[dict[str, Any]]) -> ServiceCalls:
    out = ServiceCalls()
    for call in calls:
        limited = call["status"] == 429
        out.total += 1
        out.rate_limited += limited
        slot = out.by_endpoint.setdefault(endpoint(call["method"], call["path"]), EndpointCalls())
        slot.calls += 1
        slot.items += items_of(call)
        slot.rate_limited += limited
    out.by_endpoint = dict(sorted(out.by_endpoint.items(), key=lambda kv: -kv[1].calls))
    return out


_SINGLE = re.compile(r"^(GET|PATCH) /crm/v3/objects/(\w+)/\{id\}$")
_BATCH = re.compile(r"^POST /crm/v3/objects/(\w+)/batch/(read|update)$")


def kind(name: str) -> str:
    """The kind of call an endpoint serves: a single read/update and its batch are one kind, as
    are a single and a batch callback completion (activities/hubspot_calls.py coalesces them)."""
    if m := _SINGLE.match(name):
        return f"{'read' if m[1] == 'GET' else 'update'} {m[2]}"
    if m := _BATCH.match(name):
        return f"{m[2]} {m[1]}"
    if name.endswith("/complete"):
        return "complete"
    return name


def windowed(calls: list[dict[str, Any]], window_s: float, max_items: int = 100) -> int:
    """An estimate, from a call log, of the calls a batch window would have made: consecutive
    calls of one kind within `window_s` of the first of their group are counted as one (up to
    `max_items` items). Accepted calls only (a 429 would not have been made)."""
    groups = 0
    open_groups: dict[str, tuple[float, int]] = {}  # kind -> (first call's time, items)
    for call in sorted((c for c in calls if c["status"] != 429), key=lambda c: c["ts"]):
        k = kind(endpoint(call["method"], call["path"]))
        items = items_of(call)
        first = open_groups.get(k)
        if first is not None and call["ts"] - first[0] <= window_s and first[1] + items <= max_items:
            open_groups[k] = (first[0], first[1] + items)
            continue
        open_groups[k] = (call["ts"], items)
        groups += 1
    return groups
