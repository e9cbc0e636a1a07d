"""Acknowledgement latency at fixed open-loop rates: our API beside the bare start endpoint.

Both run in processes of their own (`kleer-hubspot api`, `python -m bench.bare`) against the same
Temporal server with the same settings; the load generator (bench/loadgen.py) runs in a third
process. No worker polls the task queue meanwhile, so the workflows only start (what an
acknowledgement waits for) and the two endpoints see the same server. Rates run from low to
high. Each rate's duration is cut into `rounds` slices, the endpoints taking turns slice by slice
(the order alternating), with a pause between slices so the server has caught up: a hiccup of
this shared machine then lands on both endpoints alike instead of on whichever ran at that
moment (single 15 s steps measured the same endpoint's p99 at 13 ms and at 59 ms).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench.report import AckStep, percentile
from bench.workers import REPO_ROOT, api_process, bare_process

HUBSPOT_TIMEOUT_S = 10.0  # HubSpot gives up on an answer after this and re-sends


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
        send_lag_max_s=raw["send_lag_max_s"])


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
                  timeout_s: float = 30.0, rounds: int = 3) -> list[AckStep]:
    ours = api_process(env, log_dir, "api-ack")
    bare = bare_process(env, log_dir)
    await ours.start()
    try:
        await bare.start()
        try:
            steps: list[AckStep] = []
            first_id = 20_000_000
            order = [("bare", bare), ("ours", ours)]
            for rate in rates:
                pooled: dict[str, dict] = {}
                for r in range(rounds):
                    for target, service in order if r % 2 == 0 else order[::-1]:
                        out = log_dir / f"ack-{target}-{rate:g}-{r}.json"
                        raw = await _load(f"{service.url}/hubspot/actions/create-client", secret,
                                          rate, duration_s / rounds, timeout_s, out, first_id)
                        first_id += raw["sent"]
                        into = pooled.setdefault(target, {"rate": raw["rate"], "sent": 0,
                                                          "results": [], "send_lag_max_s": 0.0})
                        into["sent"] += raw["sent"]
                        into["results"] += raw["results"]
                        into["send_lag_max_s"] = max(into["send_lag_max_s"], raw["send_lag_max_s"])
                        await asyncio.sleep(pause_s)
                for target, _ in order:
                    step = summarize(target, pooled[target])
                    steps.append(step)
                    say(f"  ack {target:<4} {rate:>5g}/s: p50 {step.p50_s * 1000:.1f} ms, "
                        f"p99 {step.p99_s * 1000:.1f} ms, 429 x{step.shed}, over 10 s x{step.over_10s}")
            return steps
        finally:
            bare.stop()
    finally:
        ours.stop()
