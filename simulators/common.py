"""Pieces shared by the HubSpot and Kleer simulators.

Call log, rolling-window rate limiter, fault injection (incl. commit-then-drop as raw ASGI
middleware), the generic `/_sim/` admin routes and a thread that serves an app with uvicorn.
The state objects are touched both from the server thread and from test code, so every mutable
structure here is guarded by a `threading.Lock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ADMIN_PREFIX = "/_sim/"


def now_iso() -> str:
    """UTC timestamp in the ISO form HubSpot uses (milliseconds, `Z`)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CallLog:
    """Every non-admin request with its outcome, so tests can count calls per action."""

    def __init__(self) -> None:
        self._calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def record(self, method: str, path: str, query: str, status: int, key: Any, body: Any) -> None:
        entry = {"ts": time.time(), "method": method, "path": path, "query": query,
                 "status": status, "key": key, "body": body}
        with self._lock:
            self._calls.append(entry)

    def list(self, method: str | None = None, path_contains: str | None = None) -> list[dict]:
        with self._lock:
            calls = list(self._calls)
        return [c for c in calls if (method is None or c["method"] == method.upper())
                and (path_contains is None or path_contains in c["path"])]

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        return len(self.list(method, path_contains))

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()


@dataclass
class RateDecision:
    allowed: bool
    remaining: int
    retry_after_s: int
    max_requests: int
    window_ms: int


class RollingRateLimiter:
    """Per-key limit of `max_requests` within any rolling window of `window_ms`."""

    def __init__(self, max_requests: int, window_ms: int) -> None:
        self.max_requests = max_requests
        self.window_ms = window_ms
        self._hits: dict[Any, deque[float]] = {}
        self._limits: dict[Any, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def configure(self, max_requests: int, window_ms: int, key: Any = None) -> None:
        """Change the default limit (key None) or the limit of one key."""
        with self._lock:
            if key is None:
                self.max_requests, self.window_ms = max_requests, window_ms
            else:
                self._limits[key] = (max_requests, window_ms)

    def limits(self, key: Any) -> tuple[int, int]:
        return self._limits.get(key, (self.max_requests, self.window_ms))

    def hit(self, key: Any) -> RateDecision:
        """Count one request for `key` unless it is over the limit."""
        now = time.monotonic()
        with self._lock:
            max_requests, window_ms = self.limits(key)
            window = window_ms / 1000
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) >= max_requests:
                wait = hits[0] + window - now
                return RateDecision(False, 0, max(1, int(-(-wait // 1))), max_requests, window_ms)
            hits.append(now)
            return RateDecision(True, max_requests - len(hits), 0, max_requests, window_ms)

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()


# status: answer `status` instead of handling the request; latency: delay, then handle it;
# commit_then_drop: handle it, then close the connection before the answer (a lost response);
# late_commit: a gateway in front of the API answers `status` (e.g. 504) at once while the
# request still reaches the API `commit_delay_ms` later and commits (kleer.md "Unknown outcome").
FAULT_MODES = ("status", "latency", "commit_then_drop", "late_commit")


@dataclass
class FaultRule:
    """One fault-injection rule; `count` None means it never runs out."""

    status: int = 500
    method: str | None = None
    path_contains: str | None = None
    count: int | None = None
    probability: float = 1.0
    latency_ms: int = 0
    jitter_ms: int = 0  # latency is latency_ms plus up to jitter_ms, at random
    retry_after: int | None = None
    mode: str = "status"
    commit_delay_ms: int = 2000
    applied: int = field(default=0)

    def __post_init__(self) -> None:
        if self.mode not in FAULT_MODES:
            raise ValueError(f"mode must be one of {FAULT_MODES}")
        if self.method:
            self.method = self.method.upper()

    def matches(self, method: str, path: str) -> bool:
        return ((self.method is None or self.method == method)
                and (self.path_contains is None or self.path_contains in path)
                and (self.count is None or self.count > 0))


class Faults:
    """Ordered fault rules; the first matching rule that fires (probability) applies."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule | dict[str, Any] | None = None, **kwargs: Any) -> FaultRule:
        if rule is None:
            rule = FaultRule(**kwargs)
        elif isinstance(rule, dict):
            known = FaultRule.__dataclass_fields__
            rule = FaultRule(**{k: v for k, v in rule.items() if k in known and k != "applied"})
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(r) for r in self._rules]

    def match(self, method: str, path: str) -> FaultRule | None:
        """Pick the rule for this request and consume one of its `count`."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path) and random.random() < rule.probability:
                    if rule.count is not None:
                        rule.count -= 1
                    rule.applied += 1
                    return rule
        return None


class DeliberateDrop(Exception):
    """Raised after the response head to make uvicorn abort the connection (commit-then-drop)."""


class _DropLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DeliberateDrop)


logging.getLogger("uvicorn.error").addFilter(_DropLogFilter())

ErrorBody = Callable[[int, FaultRule], tuple[dict[str, Any], dict[str, str]]]


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


class SimMiddleware:
    """Raw ASGI wrapper: call log, fault injection and commit-then-drop for non-admin requests.

    Handlers put the portal/company key into `scope["sim"]["key"]` so the log can attribute calls.
    """

    def __init__(self, app: ASGIApp, calls: CallLog, faults: Faults, error_body: ErrorBody) -> None:
        self.app, self.calls, self.faults, self.error_body = app, calls, faults, error_body
        self._late: set[asyncio.Task] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        replay = _replay(body)
        scope["sim"] = {"key": None}
        method, path = scope["method"], scope["path"]
        query = scope.get("query_string", b"").decode()
        status_box = [0]

        def log() -> None:
            self.calls.record(method, path, query, status_box[0], scope["sim"]["key"],
                              _parse_json(body))

        rule = self.faults.match(method, path)
        if rule and (rule.latency_ms or rule.jitter_ms):
            await asyncio.sleep((rule.latency_ms + random.random() * rule.jitter_ms) / 1000)
        if rule and rule.mode == "status":
            payload, headers = self.error_body(rule.status, rule)
            if rule.retry_after is not None:
                headers = {**headers, "Retry-After": str(rule.retry_after)}
            status_box[0] = rule.status
            await JSONResponse(payload, rule.status, headers=headers)(scope, replay, send)
            log()
            return
        if rule and rule.mode == "late_commit":
            status_box[0] = rule.status
            page = (f"<html><head><title>{rule.status}</title></head><body><center><h1>"
                    f"{rule.status} Gateway error</h1></center><hr><center>nginx</center></body>"
                    "</html>").encode()
            await send({"type": "http.response.start", "status": rule.status,
                        "headers": [(b"content-type", b"text/html"),
                                    (b"content-length", str(len(page)).encode())]})
            await send({"type": "http.response.body", "body": page})
            log()
            task = asyncio.create_task(self._commit_later(dict(scope), body, rule.commit_delay_ms))
            self._late.add(task)
            task.add_done_callback(self._late.discard)
            return
        if rule and rule.mode == "commit_then_drop":
            messages: list[Message] = []

            async def capture(message: Message) -> None:
                messages.append(message)

            await self.app(scope, replay, capture)
            full = b"".join(m.get("body", b"") for m in messages
                            if m["type"] == "http.response.body")
            status_box[0] = next((m["status"] for m in messages
                                  if m["type"] == "http.response.start"), 0)
            log()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(full) or 2).encode())]})
            raise DeliberateDrop("commit-then-drop fault")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, replay, send_wrapper)
        finally:
            log()


    async def _commit_later(self, scope: Scope, body: bytes, delay_ms: int) -> None:
        """The request the gateway gave up on still reaches the API and commits."""
        await asyncio.sleep(delay_ms / 1000)

        async def discard(message: Message) -> None:
            pass

        with contextlib.suppress(Exception):
            await self.app(scope, _replay(body), discard)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # the app never needs more; behave like an idle client
        return {"type": "http.disconnect"}

    return receive


async def read_json(request: Request) -> Any:
    """Parsed body, or raise ValueError for malformed JSON (each sim maps it to its 400)."""
    raw = await request.body()
    if not raw.strip():
        return None
    return json.loads(raw)


def admin_routes(calls: CallLog, faults: Faults, reset: Callable[[], None],
                 snapshot: Callable[[], dict[str, Any]]) -> list[Route]:
    """The `/_sim/` endpoints both simulators share."""

    async def add_faults(request: Request) -> Response:
        try:
            data = await read_json(request) or {}
            rules = data.get("rules", [data]) if isinstance(data, dict) else data
            added = [asdict(faults.add(r)) for r in rules]
        except (ValueError, TypeError) as exc:
            return JSONResponse({"message": f"bad fault rule: {exc}"}, 400)
        return JSONResponse({"rules": added})

    async def list_faults(request: Request) -> Response:
        return JSONResponse({"rules": faults.list()})

    async def clear_faults(request: Request) -> Response:
        faults.clear()
        return JSONResponse({})

    async def list_calls(request: Request) -> Response:
        return JSONResponse({"calls": calls.list()})

    async def clear_calls(request: Request) -> Response:
        calls.clear()
        return JSONResponse({})

    async def do_reset(request: Request) -> Response:
        reset()
        return JSONResponse({})

    async def state(request: Request) -> Response:
        return JSONResponse(snapshot())

    return [
        Route("/_sim/faults", add_faults, methods=["POST"]),
        Route("/_sim/faults", list_faults, methods=["GET"]),
        Route("/_sim/faults", clear_faults, methods=["DELETE"]),
        Route("/_sim/calls", list_calls, methods=["GET"]),
        Route("/_sim/calls", clear_calls, methods=["DELETE"]),
        Route("/_sim/reset", do_reset, methods=["POST"]),
        Route("/_sim/state", state, methods=["GET"]),
    ]


def deep(value: Any) -> Any:
    """Copy handed out of the state, so callers never mutate it behind the lock's back."""
    return copy.deepcopy(value)


class ServerThread:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a daemon thread (port 0 = a free port)."""

    def __init__(self, app: ASGIApp, port: int = 0, host: str = "127.0.0.1") -> None:
        self.app, self.host, self.port = app, host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10) -> ServerThread:
        # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets then,
        # and without it every response waits ~40 ms for a delayed ACK (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning",
                                lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        daemon=True, name=f"sim-{self.port}")
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server and self._thread:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
