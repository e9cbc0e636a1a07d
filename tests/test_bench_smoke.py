"""The throughput benchmark runs end to end and reports every figure (bench/README.md).

A smoke test, not a timed one: a few dozen executions on the bench's own embedded stack, asserting
that everything completed and every figure was measured, never how fast it was.
"""

from __future__ import annotations

from bench.bench import BenchConfig, run_bench
from bench.report import format_report

EXECUTIONS, NOOP_WORKFLOWS = 30, 20


async def test_bench_reports_every_figure() -> None:
    config = BenchConfig(executions=EXECUTIONS, noop_executions=NOOP_WORKFLOWS, calibration_runs=1,
                         timeout_s=120)
    report = await run_bench(config, say=lambda message: None)

    assert set(report.calibration) == set(config.mix)
    for cal in report.calibration.values():
        assert cal.outcomes == {"SUCCESS created": 1}, cal
        assert cal.hubspot_calls > 0 and cal.kleer_calls > 0 and cal.activities > 0, cal

    burst = report.burst
    assert burst is not None and not burst.timed_out
    assert burst.completed == burst.executions == EXECUTIONS
    assert burst.outcomes == {"SUCCESS created": EXECUTIONS}
    assert burst.delivery_failures == 0
    assert sum(burst.by_action.values()) == EXECUTIONS
    assert burst.hubspot.total > 0 and burst.kleer.total > 0

    assert report.noop is not None and report.noop.completed == NOOP_WORKFLOWS

    figures = report.to_dict()
    measured = [figures["burst"][k] for k in (
        "executions_per_s", "ack_p50_s", "ack_p99_s", "e2e_p50_s", "e2e_p99_s", "hubspot_429_share")]
    measured += [figures["burst"][s]["per_execution"] for s in ("hubspot", "kleer")]
    measured += [figures[k] for k in ("drain_lower_bound_s", "drain_ratio", "overhead_ratio")]
    measured.append(figures["noop"]["executions_per_s"])
    assert None not in measured, figures
    assert figures["burst"]["hubspot"]["per_execution"] > 0
    assert figures["burst"]["kleer"]["per_execution"] > 0

    table = format_report(report)
    for label in ("executions/s end to end", "API ack latency p50 / p99", "end-to-end latency",
                  "HubSpot 429s", "Kleer 429s", "drain time / lower bound", "ours / no-op"):
        assert label in table
