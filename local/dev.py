"""What `kleer-hubspot dev` adds to the stack: settings from the environment with local defaults,
a local payload key, and a check of every port before anything starts."""

from __future__ import annotations

import base64
import errno
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from local.stack import (
    DEMO_CLIENT_SECRET,
    DEMO_HUBSPOT_TOKEN,
    DEMO_KLEER_COMPANY,
    DEMO_KLEER_KEY,
    DEMO_PORTAL,
    state_secret,
)
from local.temporal_server import leftover
from settings import PortalCredentials, Settings, load_settings

KEY_FILE = "payload-key"


def new_payload_key() -> str:
    """A PAYLOAD_ENCRYPTION_KEY: 32 random bytes, base64 (the codec uses them as the AES key)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def local_payload_key(state_dir: Path) -> str:
    """The local stack's payload key: made once in `<state dir>/payload-key` (mode 0600, only for
    this user) and reused, so runs encrypted by an earlier `dev` still decode."""
    return state_secret(state_dir / KEY_FILE, new_payload_key)


def dev_settings(env: Mapping[str, str], state_dir: Path, ui_port: int,
                 metrics_bind: str | None) -> tuple[Settings, list[str]]:
    """Settings for the local stack: read from the environment exactly like `api` and `worker`
    (`load_settings`), with local defaults where the environment is silent. Returns the settings
    and one line per local default used (the banner shows them).

    Local defaults: the demo portal's credentials (added to any configured portals), the demo
    client secret, payload encryption with the local key, `CODEC_AUTH=none` (the UI in the
    browser sends no token; loopback clients only) and the UI's origins for CORS. The HubSpot and
    Kleer URLs are the simulators' unless the environment names others (LocalStack.keep_api_urls).
    """
    settings = load_settings(dict(env))
    notes: list[str] = []
    demo = PortalCredentials(DEMO_PORTAL, DEMO_HUBSPOT_TOKEN, DEMO_KLEER_COMPANY, DEMO_KLEER_KEY)
    changes: dict = {"portals": {DEMO_PORTAL: demo, **settings.portals}}
    if not env.get("HUBSPOT_CLIENT_SECRET"):
        changes["hubspot_client_secret"] = DEMO_CLIENT_SECRET
        notes.append(f"HUBSPOT_CLIENT_SECRET={DEMO_CLIENT_SECRET} (the demo app's secret)")
    if not env.get("PAYLOAD_ENCRYPTION_KEY"):
        changes["payload_key"] = local_payload_key(state_dir)
        notes.append(f"PAYLOAD_ENCRYPTION_KEY from {state_dir / KEY_FILE} (made once, mode 0600)")
    if not env.get("CODEC_AUTH"):
        changes["codec_auth"] = "none"
        notes.append("CODEC_AUTH=none (codec endpoint answers loopback clients without a token)")
    if not env.get("CODEC_CORS_ORIGINS"):
        changes["codec_cors_origins"] = (f"http://localhost:{ui_port}", f"http://127.0.0.1:{ui_port}")
    if metrics_bind:
        changes["metrics_bind"] = metrics_bind
    return replace(settings, **changes), notes


class PortsBusy(RuntimeError):
    """Ports the stack needs are taken; the message names each one and who wanted it."""


def _listener(port: int) -> str | None:
    """Best effort: 'pid N (command)' of the process listening on a local TCP port."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd).removeprefix("socket:[").rstrip("]") in inodes:
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                    return f"pid {proc.name} ({cmd[:80]})"
        except OSError:
            continue
    return None


def _busy(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def check_ports(wanted: dict[str, int], state_dir: Path) -> None:
    """Raise PortsBusy naming every busy port and the piece that wanted it, before anything
    starts (so nothing is half started, and nobody else's server is silently reused)."""
    problems = []
    seen: dict[int, str] = {}
    for piece, port in wanted.items():
        if port in seen:
            problems.append(f"{piece} and {seen[port]} both want port {port}")
            continue
        seen[port] = piece
        if not _busy(port):
            continue
        holder = _listener(port)
        problem = f"port {port} ({piece}) is in use" + (f" by {holder}" if holder else "")
        stale = leftover(state_dir / "temporal.pid")
        if stale is not None and holder and holder.startswith(f"pid {stale} "):
            problem += (": a Temporal dev server left by an earlier run that did not stop cleanly "
                        f"(stop it: kill {stale})")
        problems.append(problem)
    if problems:
        raise PortsBusy("; ".join(problems) + ". Stop what holds them or choose other ports "
                        "(kleer-hubspot dev --help lists the port options); nothing was started.")
