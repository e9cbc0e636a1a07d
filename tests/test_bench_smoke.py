"""The benchmark runs end to end, every phase reports, and coalescing shows in its figures.

A smoke test, not a timed one: a few executions per phase on the bench's own stack (a SQLite
database, one worker process at a time, a high HubSpot limit so pacing does not stretch it),
asserting that everything completed, every figure was measured, and what coalescing must do
to the call counts (a burst needs fewer HubSpot calls per execution than an execution alone,
and fewer than the same burst with HUBSPOT_MAX_BATCH=1), never how fast anything was.
"""

from __future__ import annotations

from bench.bench import BenchConfig, run_bench
from bench.report import format_report

MIX = {"create-client": 1.0, "create-invoice": 1.0}


async def test_bench_reports_every_phase_and_batching_cuts_calls(tmp_path) -> None:
    config = BenchConfig(
        executions=24, action_burst=12, off_executions=12, mix=MIX, hubspot_limit=1000,
        worker_processes=1, database="sqlite", quiet_runs=1, ack_rates=[20.0], ack_duration_s=1.0,
        cpu_calls=100, cpu_concurrency=[4], cpu_rounds=1, timeout_s=240, log_dir=tmp_path)
    report = await run_bench(config, say=lambda message: None)

    assert {(q.action, q.batching) for q in report.quiet} == {(a, b) for a in MIX for b in (True, False)}
    for q in report.quiet:
        assert q.outcomes == {"SUCCESS created": 1}, q
        assert q.hubspot_calls > 0 and q.kleer_calls > 0 and q.activities > 0 and q.e2e_s, q

    assert [(b.label, b.batching) for b in report.bursts] == [
        ("mix@12", False), ("mix@12", True), ("create-client", True), ("create-invoice", True),
        ("mix", True)]
    for b in report.bursts:
        assert b.completed == b.executions and not b.incomplete and not b.timed_out, b.incomplete
        assert b.outcomes == {"SUCCESS created": b.executions}, b.outcomes
        assert b.wall_s and b.drain_ratio and b.e2e_p99_s and b.ack_p99_s
        assert b.hubspot.total > 0 and b.kleer.total > 0
        assert 0 < b.hubspot_windowed["500"] <= b.hubspot_windowed["100"] <= b.hubspot.accepted

    # Coalescing, from the simulators' call logs: concurrent executions share batch calls.
    for action in MIX:
        alone, burst = report.quiet_of(action, True), report.burst(action)
        assert burst.hubspot_per_exec < alone.hubspot_calls, (action, burst.hubspot_per_exec)
        assert max(e.fill for e in burst.hubspot.by_endpoint.values()) > 1
    on, off = report.burst("mix@12", True), report.burst("mix@12", False)
    assert on.hubspot_per_exec < off.hubspot_per_exec, (on.hubspot_per_exec, off.hubspot_per_exec)
    # With HUBSPOT_MAX_BATCH=1 a call carries one execution's items: reads and updates one each.
    assert all(e.fill == 1 for name, e in off.hubspot.by_endpoint.items()
               if "batch/read" in name or "batch/update" in name or name.endswith("/complete")), {
        name: (e.calls, e.items) for name, e in off.hubspot.by_endpoint.items()}

    assert {(a.target, a.rate) for a in report.ack} == {("ours", 20.0), ("bare", 20.0)}
    for step in report.ack:
        # 20/s for 1 s, in 4 slices per endpoint (bench/ack.py): each slice rounds up.
        assert step.ok == step.sent and 20 <= step.sent <= 24 and step.p99_s is not None, step
        assert step.cpu_s is not None and step.cpu_s > 0, step  # each process's own CPU

    assert report.cpu is not None
    medians = report.cpu["median_us_per_call"]
    assert medians["before"]["4"] > 0 and medians["after"]["4"] > 0

    goals = report.goals()
    assert goals and all(measured for _, measured, _ in goals)
    table = format_report(report)
    for label in ("Each action alone", "Bursts", "fill", "Acknowledgement", "CPU per HubSpot call",
                  "Goals (issue 12)", "drain/bound"):
        assert label in table
    assert report.to_dict()["bursts"][0]["bound_s"] > 0
