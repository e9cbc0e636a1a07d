"""CPU per HubSpot call: our HubSpot client against a local simulator, before and after.

    python -m bench.http_cpu [--calls 2000] [--portals 4] [--concurrency 40] [--rounds 2]

- **before**: a fresh httpx client per portal with httpx's default pool limits (100 connections),
  and `sniffio` missing, as it was before it was installed: httpcore imports it for every lock it
  creates, and each failed import searches `sys.path` again.
- **after**: the shared pool (`hubspot_api.client.http_pool`, one per host, 8 connections by
  default: HTTP_MAX_CONNECTIONS) with `sniffio` installed.

Each variant runs in a fresh interpreter (hiding a module is process-wide), against a HubSpot
simulator in a third process, so the figure is our client's CPU only: `time.process_time()` over
`--calls` reads (`GET /crm/v3/objects/companies/{id}`), `--concurrency` at once spread over
`--portals` portals, after a warm-up. Variants alternate `--rounds` times; the median is reported.

How sniffio is hidden: it is dropped from `sys.modules` and a finder first in `sys.meta_path`
searches `sys.path` for it like the import system does (PathFinder), then raises
ModuleNotFoundError, so every `import sniffio` costs the search it cost when sniffio was missing.
(A finder appended at the END of `sys.meta_path` would never be asked: PathFinder, before it,
finds the installed sniffio.)
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# variant -> (pool, sniffio installed); "before"/"after" are the comparison, the rest (--breakdown)
# separate the two changes and try a smaller shared pool.
VARIANTS: dict[str, tuple[str, bool]] = {
    "before": ("per-portal", False),
    "after": ("shared", True),
    "shared, sniffio missing": ("shared", False),
    "per-portal, sniffio installed": ("per-portal", True),
    "shared pool of 8, sniffio installed": ("shared-8", True),
}
MAIN = ("before", "after")


class HideModule(importlib.abc.MetaPathFinder):
    """`import NAME` searches sys.path (as PathFinder does) and then fails, as if not installed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.searches = 0

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 (importlib's protocol)
        if fullname != self.name:
            return None
        self.searches += 1
        importlib.machinery.PathFinder.find_spec(fullname, path)  # the search it used to cost
        raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)


def hide_module(name: str) -> HideModule:
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]
    finder = HideModule(name)
    sys.meta_path.insert(0, finder)
    return finder


@dataclass
class CpuResult:
    variant: str
    concurrency: int
    calls: int
    cpu_s: float
    wall_s: float
    sniffio_import_failures: int

    @property
    def cpu_us_per_call(self) -> float:
        return self.cpu_s / self.calls * 1e6


# -- the simulator process --------------------------------------------------------------------

def serve(portals: int) -> None:
    """The HubSpot simulator with `portals` portals (token t<n>, one company each, no effective
    rate limit); prints its URL, runs until stdin closes."""
    from simulators.common import ServerThread
    from simulators.hubspot import HubSpotState, create_hubspot_app

    state = HubSpotState()
    companies = {}
    for n in range(portals):
        state.add_portal(n + 1, f"t{n + 1}", rate_limit=(10**9, 10_000))
        companies[n + 1] = state.create_object(n + 1, "companies", {"name": f"CPU {n + 1} AB"})
    # Never grows: the log would cost the server memory, and nothing reads it.
    state.calls.record = lambda *args, **kwargs: None  # type: ignore[method-assign]
    server = ServerThread(create_hubspot_app(state)).start()
    print(json.dumps({"url": server.url, "companies": companies}), flush=True)
    sys.stdin.read()
    server.stop()


# -- a client process -------------------------------------------------------------------------

async def _measure(variant: str, url: str, companies: dict[int, str], calls: int,
                   concurrency: int, warmup: int) -> CpuResult:
    import asyncio

    import httpx

    from hubspot_api.client import HubSpotClient, http_pool

    pool_kind, _ = VARIANTS[variant]
    pools: list[httpx.AsyncClient] = []
    clients = []
    if pool_kind == "per-portal":  # a client of its own per portal, httpx's default limits
        for p in companies:
            pools.append(httpx.AsyncClient(base_url=url, timeout=15.0))
            clients.append(HubSpotClient(url, f"t{p}", http=pools[-1]))
    else:
        pools.append(http_pool(url) if pool_kind == "shared" else httpx.AsyncClient(
            base_url=url, timeout=15.0,
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8)))
        clients = [HubSpotClient(url, f"t{p}", http=pools[0]) for p in companies]
    targets = [(c, companies[p]) for c, p in zip(clients, companies, strict=True)]

    async def run(n: int) -> None:
        queue = iter(range(n))

        async def lane() -> None:
            for i in queue:
                client, company = targets[i % len(targets)]
                await client.get_object("companies", company, ["name", "kleer_id"])

        await asyncio.gather(*(lane() for _ in range(concurrency)))

    await run(warmup)
    cpu, wall = time.process_time(), time.perf_counter()
    await run(calls)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    for pool in pools:
        await pool.aclose()
    return CpuResult(variant, concurrency, calls, cpu, wall, 0)


def client(variant: str, url: str, companies: dict[int, str], calls: int, concurrency: int,
           warmup: int) -> CpuResult:
    _, sniffio_installed = VARIANTS[variant]
    finder = None if sniffio_installed else hide_module("sniffio")  # before httpx/anyio load
    import asyncio

    if finder is not None:
        try:
            import sniffio  # noqa: F401
        except ModuleNotFoundError:
            pass
        else:
            raise RuntimeError("sniffio is still importable: the variant would be wrong")
    result = asyncio.run(_measure(variant, url, companies, calls, concurrency, warmup))
    if finder is not None:
        result.sniffio_import_failures = finder.searches
    return result


# -- all variants, alternating ----------------------------------------------------------------

@dataclass
class CpuReport:
    calls: int
    portals: int
    concurrency: list[int]
    rounds: int
    variants: list[str]
    runs: list[dict]

    def median_us(self, variant: str, concurrency: int) -> float | None:
        values = [r["cpu_us_per_call"] for r in self.runs
                  if r["variant"] == variant and r["concurrency"] == concurrency]
        return statistics.median(values) if values else None

    def to_dict(self) -> dict:
        medians = {v: {str(c): self.median_us(v, c) for c in self.concurrency}
                   for v in self.variants}
        return {**asdict(self), "median_us_per_call": medians}


def _client_process(variant: str, url: str, companies: dict[int, str], calls: int,
                    concurrency: int, warmup: int, timeout_s: float) -> CpuResult:
    args = [sys.executable, "-m", "bench.http_cpu", "--client", variant, "--url", url,
            "--companies", json.dumps(companies), "--calls", str(calls),
            "--concurrency", str(concurrency), "--warmup", str(warmup)]
    out = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"http_cpu {variant} failed: {out.stderr[-2000:]}")
    return CpuResult(**json.loads(out.stdout.strip().splitlines()[-1]))


def run_cpu_bench(calls: int = 1000, portals: int = 4, concurrency: tuple[int, ...] = (1, 8, 32),
                  rounds: int = 2, warmup: int = 100, breakdown: bool = False,
                  timeout_s: float = 600) -> CpuReport:
    variants = list(VARIANTS) if breakdown else list(MAIN)
    server = subprocess.Popen([sys.executable, "-m", "bench.http_cpu", "--serve",
                               "--portals", str(portals)], cwd=REPO_ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    results: list[CpuResult] = []
    try:
        ready = json.loads(server.stdout.readline())
        companies = {int(k): v for k, v in ready["companies"].items()}
        deadline = time.monotonic() + timeout_s
        for n in range(rounds):
            for level in concurrency:
                for variant in variants if n % 2 == 0 else variants[::-1]:
                    results.append(_client_process(variant, ready["url"], companies, calls, level,
                                                   warmup, max(10.0, deadline - time.monotonic())))
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    runs = [{**asdict(r), "cpu_us_per_call": r.cpu_us_per_call} for r in results]
    return CpuReport(calls, portals, list(concurrency), rounds, variants, runs)


LABELS = {"before": "fresh httpx client per portal (default pool), sniffio missing",
          "after": "shared pool (http_pool, 8 connections), sniffio installed"}


def format_cpu(report: CpuReport) -> list[str]:
    width = max(map(len, report.variants))
    head = "".join(f"{f'{c} at once':>12}" for c in report.concurrency)
    lines = [f"CPU per HubSpot call, µs (bench/http_cpu.py: {report.calls} reads per run, median of "
             f"{report.rounds} run(s), over {report.portals} portals)",
             f"  {'variant':<{width}}{head}"]
    for variant in report.variants:
        cells = "".join(f"{_num(report.median_us(variant, c)):>12}" for c in report.concurrency)
        lines.append(f"  {variant:<{width}}{cells}")
    ratio = "".join(f"{_ratio(report, c):>12}" for c in report.concurrency)
    lines.append(f"  {'before / after':<{width}}{ratio}")
    lines += [f"  {name}: {label}" for name, label in LABELS.items()]
    return [*lines, ""]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _ratio(report: CpuReport, concurrency: int) -> str:
    before, after = report.median_us("before", concurrency), report.median_us("after", concurrency)
    return f"{before / after:.2f}x" if before and after else "-"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.http_cpu", description=__doc__.split("\n")[0])
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--client", choices=list(VARIANTS), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--companies", help=argparse.SUPPRESS)
    p.add_argument("--calls", type=int, default=1000, help="measured reads per run")
    p.add_argument("--portals", type=int, default=4)
    p.add_argument("--concurrency", default="1,8,32", help="reads at once, comma separated")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--breakdown", action="store_true",
                   help="also: each change alone, and a shared pool of 8 connections")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.portals)
        return 0
    if args.client:
        companies = {int(k): v for k, v in json.loads(args.companies).items()}
        result = client(args.client, args.url, companies, args.calls, int(args.concurrency),
                        args.warmup)
        print(json.dumps(asdict(result)))
        return 0
    levels = tuple(int(c) for c in args.concurrency.split(","))
    report = run_cpu_bench(args.calls, args.portals, levels, args.rounds, args.warmup,
                           args.breakdown)
    print("\n".join(format_cpu(report)))
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
