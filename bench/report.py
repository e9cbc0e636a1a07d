"""The benchmark's figures (one dataclass per phase) and the readable table they print as.

Figures that could not be measured (e.g. nothing completed before the timeout) are None and print
as "-", so a partial run still prints everything it has.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.noop import NoopResult


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile: an observed value, never an interpolation between two."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


_CALLBACK = re.compile(r"/ap-[^/]+")
_NUMBER = re.compile(r"/\d+(?=/|$)")


def endpoint(method: str, path: str) -> str:
    """`PATCH /crm/v3/objects/deals/{id}`: calls grouped by endpoint instead of by record."""
    return f"{method} {_NUMBER.sub('/{id}', _CALLBACK.sub('/{callbackId}', path))}"


@dataclass
class Calibration:
    """Calls and activities of one action, measured alone (sequentially), averaged over runs."""

    action: str
    runs: int
    hubspot_calls: float
    kleer_calls: float
    activities: float
    outcomes: dict[str, int]


@dataclass
class CallTotals:
    """One service's calls during the burst, from its simulator's call log."""

    total: int
    rate_limited: int  # 429 answers
    by_endpoint: dict[str, int] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return self.total - self.rate_limited


@dataclass
class Burst:
    executions: int
    by_action: dict[str, int]
    concurrency: int
    seed_s: float
    completed: int
    outcomes: dict[str, int]  # "SUCCESS created" -> count
    delivery_failures: int  # final answer was not 200 + BLOCK
    delivery_retries: int  # extra attempts the driver needed (like HubSpot re-sending)
    wall_s: float | None  # first send -> last callback completion
    ack_p50_s: float | None
    ack_p99_s: float | None
    e2e_p50_s: float | None
    e2e_p99_s: float | None
    hubspot: CallTotals
    kleer: CallTotals
    expected_hubspot_calls: float  # from the calibration, for this mix
    expected_kleer_calls: float
    timed_out: bool

    @property
    def executions_per_s(self) -> float | None:
        return self.completed / self.wall_s if self.wall_s else None


@dataclass
class BenchReport:
    config: dict[str, Any]
    calibration: dict[str, Calibration]
    burst: Burst | None
    noop: NoopResult | None

    @property
    def hubspot_limit_per_s(self) -> float:
        return self.config["hubspot_limit"] / (self.config["hubspot_window_ms"] / 1000)

    @property
    def drain_lower_bound_s(self) -> float | None:
        """The least time the accepted HubSpot calls need at the configured rate limit."""
        if self.burst is None:
            return None
        return self.burst.hubspot.accepted / self.hubspot_limit_per_s

    @property
    def drain_ratio(self) -> float | None:
        bound = self.drain_lower_bound_s
        if self.burst is None or not self.burst.wall_s or not bound:
            return None
        return self.burst.wall_s / bound

    @property
    def overhead_ratio(self) -> float | None:
        """Our executions/s as a share of the no-op ceiling's (1.0 = no overhead at all)."""
        ours = self.burst.executions_per_s if self.burst else None
        ceiling = self.noop.executions_per_s if self.noop else None
        return ours / ceiling if ours and ceiling else None

    def to_dict(self) -> dict[str, Any]:
        """Everything, with the derived figures, for `--json`."""
        out = asdict(self)
        if self.burst is not None:
            out["burst"]["executions_per_s"] = self.burst.executions_per_s
            for name in ("hubspot", "kleer"):
                totals: CallTotals = getattr(self.burst, name)
                out["burst"][name]["accepted"] = totals.accepted
                out["burst"][name]["per_execution"] = _div(totals.total, self.burst.completed)
            out["burst"]["hubspot_429_share"] = _div(self.burst.hubspot.rate_limited,
                                                     self.burst.hubspot.total)
        out["hubspot_limit_per_s"] = self.hubspot_limit_per_s
        out["drain_lower_bound_s"] = self.drain_lower_bound_s
        out["drain_ratio"] = self.drain_ratio
        out["overhead_ratio"] = self.overhead_ratio
        return out


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


def _fmt(value: float | int | None, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value}{unit}"
    return f"{value:.{digits}f}{unit}"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _rows(title: str, rows: list[tuple[str, str]]) -> list[str]:
    width = max(len(label) for label, _ in rows)
    return [title, *(f"  {label:<{width}}  {value}" for label, value in rows), ""]


def _calibration_table(calibration: dict[str, Calibration]) -> list[str]:
    lines = ["Calls per execution by action (calibration: each action alone, sequentially)",
             f"  {'action':<18} {'runs':>4} {'HubSpot':>8} {'Kleer':>6} {'activities':>10}  outcome"]
    for cal in calibration.values():
        outcome = ", ".join(f"{k} x{v}" for k, v in cal.outcomes.items())
        lines.append(f"  {cal.action:<18} {cal.runs:>4} {cal.hubspot_calls:>8.2f} "
                     f"{cal.kleer_calls:>6.2f} {cal.activities:>10.2f}  {outcome}")
    return [*lines, ""]


def _burst_rows(report: BenchReport, burst: Burst) -> list[tuple[str, str]]:
    mix = ", ".join(f"{a} {n}" for a, n in burst.by_action.items())
    outcomes = ", ".join(f"{k} x{v}" for k, v in burst.outcomes.items()) or "-"
    hs, kl = burst.hubspot, burst.kleer
    return [
        ("executions (mix)", f"{burst.executions} ({mix})"),
        ("in flight (driver concurrency)", str(burst.concurrency)),
        ("seeding (in-process)", _fmt(burst.seed_s, " s")),
        ("completed", f"{burst.completed}/{burst.executions}"
                      + ("  TIMED OUT" if burst.timed_out else "")),
        ("outcomes", outcomes),
        ("deliveries failed / retried", f"{burst.delivery_failures} / {burst.delivery_retries}"),
        ("wall time (first send -> last callback)", _fmt(burst.wall_s, " s")),
        ("executions/s end to end", _fmt(burst.executions_per_s)),
        ("API ack latency p50 / p99", f"{_ms(burst.ack_p50_s)} / {_ms(burst.ack_p99_s)}"),
        ("end-to-end latency p50 / p99", f"{_fmt(burst.e2e_p50_s, ' s')} / "
                                         f"{_fmt(burst.e2e_p99_s, ' s')}"),
        ("HubSpot calls (per execution)", f"{hs.total} ({_fmt(_div(hs.total, burst.completed))}); "
                                          f"calibration predicts {burst.expected_hubspot_calls:.0f}"),
        ("Kleer calls (per execution)", f"{kl.total} ({_fmt(_div(kl.total, burst.completed))}); "
                                        f"calibration predicts {burst.expected_kleer_calls:.0f}"),
        ("HubSpot 429s (share of HubSpot calls)", f"{hs.rate_limited} "
                                                  f"({_fmt(_div(100 * hs.rate_limited, hs.total), '%', 1)})"),
        ("Kleer 429s", str(kl.rate_limited)),
        ("HubSpot limit", f"{report.config['hubspot_limit']} per "
                          f"{report.config['hubspot_window_ms'] / 1000:g} s "
                          f"= {report.hubspot_limit_per_s:g}/s"),
        ("drain lower bound (accepted HubSpot calls / limit)",
         _fmt(report.drain_lower_bound_s, " s")),
        ("drain time / lower bound", _fmt(report.drain_ratio, "x")),
    ]


def _noop_rows(report: BenchReport, noop: NoopResult) -> list[tuple[str, str]]:
    return [
        ("workflows x no-op activities", f"{noop.workflows} x {noop.activities_per_workflow}"),
        ("completed", f"{noop.completed}/{noop.workflows}" + ("  TIMED OUT" if noop.timed_out else "")),
        ("wall time", _fmt(noop.wall_s, " s")),
        ("executions/s", _fmt(noop.executions_per_s)),
        ("ours / no-op executions/s", _fmt(report.overhead_ratio, digits=3)),
    ]


def _endpoint_rows(totals: CallTotals, top: int = 12) -> list[tuple[str, str]]:
    ranked = sorted(totals.by_endpoint.items(), key=lambda kv: kv[1], reverse=True)
    return [(name, str(count)) for name, count in ranked[:top]] or [("-", "0")]


def format_report(report: BenchReport) -> str:
    """The whole report as a plain-text table."""
    c = report.config
    workers = f"in-process {'yes' if c['in_process_worker'] else 'no'}, " \
              f"extra processes {c['worker_processes']}"
    lines = _rows("Benchmark setup", [("stack", "LocalStack (Temporal dev server, simulators)"),
                                      ("workers", workers),
                                      ("Kleer limit", f"{c['kleer_limit']} per 1 s")])
    lines += _calibration_table(report.calibration)
    if report.burst is not None:
        lines += _rows("Burst", _burst_rows(report, report.burst))
        lines += _rows("HubSpot calls of the burst by endpoint", _endpoint_rows(report.burst.hubspot))
        lines += _rows("Kleer calls of the burst by endpoint", _endpoint_rows(report.burst.kleer))
    if report.noop is not None:
        lines += _rows("Baseline: Temporal no-op ceiling (same process, own task queue)",
                       _noop_rows(report, report.noop))
    return "\n".join(lines)
