"""Acknowledgement latency at fixed open-loop rates: our API beside the bare start endpoint.

Each runs in a process of its own (`kleer-hubspot api`; `python -m bench.bare`) against the same
Temporal server with the same settings; the load generator (bench/loadgen.py) runs in another
process. No worker polls the task queue meanwhile, so the workflows only start (what an
acknowledgement waits for) and the endpoints see the same server. Rates run from low to high. Each
rate's duration is cut into `rounds` slices, the endpoints taking turns slice by slice (the order
rotating), with a pause between slices so the server has caught up: a hiccup of this shared
machine then lands on all endpoints alike instead of on whichever ran at that moment (single 15 s
steps measured the same endpoint's p99 at 13 ms and at 59 ms). Each step also reports the endpoint
process's CPU per request (/proc), which tells our code's cost apart from the time spent waiting
for the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench.report import AckStep, percentile
from bench.workers import REPO_ROOT, api_process, bare_process

HUBSPOT_TIMEOUT_S = 10.0  # HubSpot gives up on an answer after this and re-sends
ACK_ROUNDS = 4  # slices per endpoint and rate: each endpoint goes first equally often


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summarize(target: str, raw: dict) -> AckStep:
    results = raw["results"]
    latencies = [r[0] for r in results]
    statuses = Counter(str(r[1]) if r[1] is not None else r[2] for r in results)
    shed = [r for r in results if r[1] == 429]
    return AckStep(
        target=target, rate=raw["rate"], sent=raw["sent"], statuses=dict(statuses),
        p50_s=percentile(latencies, 50), p99_s=percentile(latencies, 99), shed=len(shed),
        shed_p50_s=percentile([r[0] for r in shed], 50), shed_p99_s=percentile([r[0] for r in shed], 99),
        retry_after=sorted({r[2] for r in shed}),
        over_10s=sum(1 for r in results if r[0] > HUBSPOT_TIMEOUT_S or r[1] is None),
        send_lag_max_s=raw["send_lag_max_s"], cpu_s=raw.get("cpu_s"))


async def _load(url: str, secret: str, rate: float, duration_s: float, timeout_s: float,
                out: Path, first_object_id: int) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.loadgen", "--url", url, "--secret", secret,
        "--rate", str(rate), "--duration", str(duration_s), "--timeout", str(timeout_s),
        "--first-object-id", str(first_object_id), "--out", str(out), cwd=REPO_ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed: {err.decode()[-2000:]}")
    return json.loads(out.read_text())


async def run_ack(env: dict[str, str], secret: str, rates: list[float], duration_s: float,
                  log_dir: Path, say: Callable[[str], None], pause_s: float = 2.0,
                  timeout_s: float = 30.0, rounds: int = ACK_ROUNDS) -> list[AckStep]:
    """Per rate, `rounds` slices of each endpoint, the bare one and ours, the order rotating
    slice by slice. (Until the runs set their search attributes themselves, ours also ran a
    third time without them: their indexing was then the whole gap, bench/results/experiments.)"""
    services = [("bare", bare_process(env, log_dir)), ("ours", api_process(env, log_dir, "api-ack"))]
    try:
        for _, service in services:
            await service.start()
        steps: list[AckStep] = []
        first_id = 20_000_000
        for rate in rates:
            pooled: dict[str, dict] = {}
            for r in range(rounds):
                for target, service in services[r % len(services):] + services[:r % len(services)]:
                    out = log_dir / f"ack-{target}-{rate:g}-{r}.json"
                    assert service.proc is not None
                    cpu_before = process_cpu_s(service.proc.pid)
                    raw = await _load(f"{service.url}/hubspot/actions/create-client", secret,
                                      rate, duration_s / rounds, timeout_s, out, first_id)
                    cpu = process_cpu_s(service.proc.pid) - cpu_before
                    first_id += raw["sent"]
                    into = pooled.setdefault(target, {"rate": raw["rate"], "sent": 0, "cpu_s": 0.0,
                                                      "results": [], "send_lag_max_s": 0.0})
                    into["cpu_s"] += cpu
                    into["sent"] += raw["sent"]
                    into["results"] += raw["results"]
                    into["send_lag_max_s"] = max(into["send_lag_max_s"], raw["send_lag_max_s"])
                    await asyncio.sleep(pause_s)
            for target, _ in services:
                step = summarize(target, pooled[target])
                steps.append(step)
                say(f"  ack {target:<10} {rate:>5g}/s: p50 {step.p50_s * 1000:.1f} ms, "
                    f"p99 {step.p99_s * 1000:.1f} ms, 429 x{step.shed}, over 10 s x{step.over_10s}, "
                    f"CPU {(step.cpu_s or 0) / max(1, step.sent) * 1000:.2f} ms/request")
        return steps
    finally:
        for _, service in services:
            service.stop()
