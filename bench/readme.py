"""Regenerate the README's benchmark section from a saved run.

    python -m bench.readme bench/results/issue12-n5000-limit190.json [--notes NOTES.md]

Replaces what lies between `<!-- bench:start -->` and `<!-- bench:end -->` in README.md with
tables made from the run's JSON (`python -m bench.bench --json ...`), then the notes file
verbatim (what the numbers say and what they don't: written by whoever ran it).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from bench.report import SHORT

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _f(value: float | None, digits: int = 2, unit: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.0f} ms" if value >= 0.1 else f"{value * 1000:.1f} ms"


def _name(burst: dict[str, Any]) -> str:
    label = burst["label"]
    return f"{SHORT.get(label, label)} × {burst['executions']}" if not label.startswith("mix@") \
        else f"mix × {burst['executions']}"


def _bursts(run: dict[str, Any]) -> list[str]:
    rows = ["| burst | coalescing | completed | HubSpot calls/exec | Kleer calls/exec | HubSpot 429s "
            "| drain | bound | drain / bound | e2e p50 / p99 |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for b in run["bursts"]:
        share = 100 * (b["hubspot_429_share"] or 0)
        rows.append(
            f"| {_name(b)} | {'on' if b['batching'] else 'off (`HUBSPOT_MAX_BATCH=1`)'} | "
            f"{b['completed']}/{b['executions']} | {_f(b['hubspot_per_exec'])} | "
            f"{_f(b['kleer_per_exec'])} | {b['hubspot']['rate_limited']} ({share:.2f}%) | "
            f"{_f(b['wall_s'], 1, ' s')} | {_f(b['bound_s'], 1, ' s')} ({b['bound_by']}) | "
            f"**{_f(b['drain_ratio'])}×** | {_f(b['e2e_p50_s'], 1, ' s')} / {_f(b['e2e_p99_s'], 1, ' s')} |")
    return rows


def _fill(run: dict[str, Any]) -> list[str]:
    big = max((b for b in run["bursts"] if b["batching"] and b["label"] == "mix"),
              key=lambda b: b["executions"], default=None)
    if big is None:
        return []
    rows = [f"Calls of the {big['executions']}-execution burst by endpoint, and the fill of each "
            "batch kind (items per call, from the `inputs` of each call's body):", "",
            "| endpoint | calls | per execution | items | fill |", "|---|---|---|---|---|"]
    for service, name in (("hubspot", "HubSpot"), ("kleer", "Kleer")):
        for endpoint, e in big[service]["by_endpoint"].items():
            rows.append(f"| {name} `{endpoint}` | {e['calls']} | "
                        f"{e['calls'] / max(1, big['completed']):.3f} | {e['items']} | {e['fill']:.1f} |")
    return rows


def _quiet(run: dict[str, Any]) -> list[str]:
    rows = ["| action | HubSpot calls | Kleer calls | latency, coalescing on (median of runs) | "
            "off (`HUBSPOT_MAX_BATCH=1`) | on / off |", "|---|---|---|---|---|---|"]
    for action in run["config"]["quiet_actions"]:
        on = next((q for q in run["quiet"] if q["action"] == action and q["batching"]), None)
        off = next((q for q in run["quiet"] if q["action"] == action and not q["batching"]), None)
        if not (on and off):
            continue
        rows.append(f"| {SHORT.get(action, action)} | {on['hubspot_calls']:.0f} | {on['kleer_calls']:.0f} | "
                    f"{_ms(on['e2e_median_s'])} ({_ms(min(on['e2e_s']))}–{_ms(max(on['e2e_s']))}) | "
                    f"{_ms(off['e2e_median_s'])} ({_ms(min(off['e2e_s']))}–{_ms(max(off['e2e_s']))}) | "
                    f"{on['e2e_median_s'] / off['e2e_median_s']:.2f} |")
    return rows


def _per_request(step: dict[str, Any]) -> str:
    cpu = step.get("cpu_s")
    return "-" if cpu is None or not step["sent"] else f"{cpu / step['sent'] * 1000:.2f} ms"


def _ack(run: dict[str, Any]) -> list[str]:
    # Runs before `search-attributes-in-workflow` also measured ours without search attributes.
    older = any(a["target"] == "ours-no-sa" for a in run["ack"])
    header = ["rate", "bare p50 / p99", "ours p50 / p99", "ours / bare (p99)",
              "ours: 429s (p99 latency)", "answers over 10 s: bare / ours",
              *(["ours without search attributes: p99 (/ bare)"] if older else []),
              "CPU per request: bare / ours"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rate in sorted({a["rate"] for a in run["ack"]}):
        step = {a["target"]: a for a in run["ack"] if a["rate"] == rate}
        bare, ours, plain = step["bare"], step["ours"], step.get("ours-no-sa")
        shed = f"{ours['shed']}/{ours['sent']} ({_ms(ours['shed_p99_s'])})" if ours["shed"] else "0"
        cells = [f"{rate:g}/s", f"{_ms(bare['p50_s'])} / {_ms(bare['p99_s'])}",
                 f"{_ms(ours['p50_s'])} / {_ms(ours['p99_s'])}",
                 f"{ours['p99_s'] / bare['p99_s']:.2f}×", shed,
                 f"{bare['over_10s']} / {ours['over_10s']}"]
        if older:
            cells.append(f"{_ms(plain['p99_s'])} ({plain['p99_s'] / bare['p99_s']:.2f}×)" if plain
                         else "-")
        cells.append(f"{_per_request(bare)} / {_per_request(ours)}")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _cpu(run: dict[str, Any]) -> list[str]:
    cpu = run.get("cpu")
    if not cpu:
        return []
    levels = [str(c) for c in cpu["concurrency"]]
    rows = ["| µs CPU per call | " + " | ".join(f"{c} at once" for c in levels) + " |",
            "|---|" + "---|" * len(levels)]
    labels = {"before": "before: client per portal, default pool, no sniffio",
              "after": "after: shared pool (32), sniffio"}
    for variant in cpu["variants"]:
        cells = " | ".join(_f(cpu["median_us_per_call"][variant][c], 0) for c in levels)
        rows.append(f"| {labels.get(variant, variant)} | {cells} |")
    return rows


def _noop(run: dict[str, Any]) -> list[str]:
    noop = run.get("noop") or []
    if not noop:
        return []
    rows = ["Temporal's ceiling on the same server (`bench/noop.py`: workflows of do-nothing "
            "activities, a worker in the bench process):", "",
            "| workflows | activities each | of them in a child workflow | of them between 2 local "
            "activities (a record lease) | executions/s |",
            "|---|---|---|---|---|"]
    rows += [f"| {n['workflows']} | {n['activities_per_workflow']} | {n['child_activities']} | "
             f"{n.get('lease_activities', 0)} | {_f(n['executions_per_s'])} |" for n in noop]
    return [*rows, ""]


def _goals(run: dict[str, Any]) -> list[str]:
    rows = ["| goal | measured | |", "|---|---|---|"]
    for g in run["goals"]:
        mark = "met" if g["met"] else "**missed**" if g["met"] is False else ""
        rows.append(f"| {g['goal'].removeprefix('info: ')} | {g['measured']} | {mark} |")
    return rows


def _command(run: dict[str, Any], source: str) -> str:
    """The run's command, with where it wrote its files replaced by where they are kept."""
    command = re.sub(r" --log-dir \S+", "", run["config"].get("command", "python -m bench.bench"))
    command = re.sub(r"--json \S+", f"--json {source}", command)
    return re.sub(r"--text \S+", f"--text {source.removesuffix('.json')}.txt", command)


def section(run: dict[str, Any], notes: str, source: str) -> str:
    c = run["config"]
    parts = [
        "### Benchmark results", "",
        f"One run of `{_command(run, source)}` (raw output: "
        f"`{source.removesuffix('.json')}.txt`, every figure: `{source}`). Machine: 2 cores, "
        f"shared and noisy. Temporal dev server (in memory), simulators in the bench process, "
        f"our API (`kleer-hubspot api`) and {c['worker_processes']} `python -m worker` processes "
        f"in processes of their own sharing a {c['database']} database (the limiter, the record "
        f"leases); HubSpot "
        f"limit {c['hubspot_limit']} requests per 10 s (private app), paced at "
        f"{c['hubspot_limit'] / 10 * 0.9:.1f}/s; Kleer 50/s per token, paced at "
        f"{c['kleer_pace']:g}/s; mix " + ", ".join(
            f"{SHORT.get(k, k)} {v:g}%" for k, v in c["mix"].items()) + ".", "",
        "Goals of issue 12:", "", *_goals(run), "",
        "Bursts (bound = max(HubSpot calls ÷ paced HubSpot limit, Kleer calls ÷ paced Kleer "
        "limit)):", "", *_bursts(run), "", *_fill(run), "",
        "Each action alone on the idle stack (latency: send → callback completion):", "",
        *_quiet(run), "",
        "Acknowledgement at fixed open-loop rates, our API beside a bare `start_workflow` "
        "endpoint on the same server (load generator in its own process, no worker running):", "",
        *_ack(run), "",
        *_noop(run),
        "CPU per HubSpot call (`bench/http_cpu.py`, median of the rounds):", "", *_cpu(run), "",
        notes.strip(),
    ]
    return "\n".join(parts).strip() + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.readme", description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="the run's JSON (python -m bench.bench --json)")
    p.add_argument("--notes", type=Path, default=None, help="markdown appended verbatim")
    p.add_argument("--readme", type=Path, default=README)
    args = p.parse_args(argv)
    run = json.loads(args.run.read_text())
    notes = args.notes.read_text() if args.notes else ""
    text = args.readme.read_text()
    source = args.run.resolve().relative_to(README.parent).as_posix() \
        if args.run.resolve().is_relative_to(README.parent) else str(args.run)
    new = section(run, notes, source)
    updated, count = re.subn(re.escape(START) + r".*?" + re.escape(END),
                             lambda m: f"{START}\n{new}{END}", text, flags=re.S)
    if count != 1:
        raise SystemExit(f"{args.readme}: expected one {START} ... {END} block, found {count}")
    args.readme.write_text(updated)


if __name__ == "__main__":
    main()
