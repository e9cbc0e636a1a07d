"""Open-loop load generator: signed executions at a fixed rate, in a process of its own.

    python -m bench.loadgen --url http://127.0.0.1:P/hubspot/actions/create-client \
        --rate 100 --duration 10 --secret S --out result.json

Request i is sent at start + i / rate whatever happened to the earlier ones (open loop: a slow
server gets more requests in flight, as HubSpot's would), on a connection of its own, and timed
from its scheduled moment (so a late send counts against the server, never hides it). Every
request is signed (v3) with a fresh callbackId, as HubSpot sends them; bodies and signatures are
made before the clock starts. Writes one line per request: latency, status, Retry-After.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from hubspot_api.signature import signed_headers
from simulators.driver import build_execution_body

PORTAL = 12345


def _requests(url: str, secret: str, count: int, first_object_id: int) -> list[bytes]:
    parts = urlsplit(url)
    out = []
    for i in range(count):
        body = json.dumps(build_execution_body(
            PORTAL, "COMPANY", first_object_id + i, {"name": f"Load {i} AB"},
            callback_id=f"ap-1-{PORTAL}-load-{uuid.uuid4().hex[:16]}")).encode()
        headers = {"Host": parts.netloc, "Content-Type": "application/json",
                   "Content-Length": str(len(body)), "Connection": "close",
                   **signed_headers(secret, "POST", url, body, "v3")}
        head = f"POST {parts.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        out.append(head.encode() + b"\r\n" + body)
    return out


async def _one(host: str, port: int, request: bytes, timeout_s: float) -> tuple[int | None, str]:
    """(status, Retry-After) of one request on its own connection; (None, why) on failure."""
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            await writer.drain()
            answer = await reader.read()
    except TimeoutError:
        return None, "timeout"
    except OSError as exc:
        return None, type(exc).__name__
    finally:
        if writer is not None:
            writer.close()
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    try:
        status = int(head[0].split()[1])
    except (IndexError, ValueError):
        return None, "unreadable answer"
    retry_after = next((line.split(":", 1)[1].strip() for line in head[1:]
                        if line.lower().startswith("retry-after:")), "")
    return status, retry_after


async def run_load(url: str, secret: str, rate: float, duration_s: float, timeout_s: float,
                   first_object_id: int = 10_000_000) -> dict:
    parts = urlsplit(url)
    requests = _requests(url, secret, max(1, round(rate * duration_s)), first_object_id)
    results: list[list] = [[] for _ in requests]
    lags: list[float] = []

    async def send(i: int, scheduled: float) -> None:
        status, retry_after = await _one(parts.hostname, parts.port, requests[i], timeout_s)
        results[i] = [round(time.perf_counter() - scheduled, 6), status, retry_after]

    tasks = []
    start = time.perf_counter() + 0.2
    for i in range(len(requests)):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(time.perf_counter() - scheduled)
        tasks.append(asyncio.create_task(send(i, scheduled)))
    await asyncio.gather(*tasks)
    return {"url": url, "rate": rate, "duration_s": duration_s, "timeout_s": timeout_s,
            "sent": len(requests), "send_lag_max_s": max(lags), "results": results}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--rate", type=float, required=True, help="requests per second")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of sending")
    p.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    p.add_argument("--first-object-id", type=int, default=10_000_000)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    result = asyncio.run(run_load(args.url, args.secret, args.rate, args.duration, args.timeout,
                                  args.first_object_id))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
