"""`kleer-hubspot dev` (./run.sh) shows the production posture: settings from the environment,
payloads encrypted with a local key, the UI decoding them through the codec; every port checked
first, and no child process left behind on any exit."""

from __future__ import annotations

import base64
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from local.dev import dev_settings, local_payload_key
from local.stack import DEMO_CLIENT_SECRET, DEMO_PORTAL
from local.temporal_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def _ports() -> dict[str, int]:
    names = ("temporal", "ui", "api", "hubspot", "kleer", "metrics")
    return dict(zip(names, (free_port() for _ in names), strict=True))


def _args(ports: dict[str, int], state: Path) -> list[str]:
    return [sys.executable, "-m", "cli", "dev", "--no-demo", "--state-dir", str(state),
            "--temporal-port", str(ports["temporal"]), "--ui-port", str(ports["ui"]),
            "--api-port", str(ports["api"]), "--hubspot-port", str(ports["hubspot"]),
            "--kleer-port", str(ports["kleer"]), "--metrics-port", str(ports["metrics"])]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PORTAL", "HUBSPOT_", "KLEER_", "TEMPORAL_", "METRICS_", "CODEC_",
                                "PAYLOAD_"))}
    return {**env, **extra}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and b"zombie" not in Path(f"/proc/{pid}/status").read_bytes()


def test_local_key_is_made_once_private_and_reused(tmp_path):
    key = local_payload_key(tmp_path)
    path = tmp_path / "payload-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(key)) == 32
    assert local_payload_key(tmp_path) == key


def test_dev_settings_come_from_the_environment_with_local_defaults(tmp_path):
    settings, notes = dev_settings({}, tmp_path, 8233, "127.0.0.1:9464")
    assert settings.hubspot_client_secret == DEMO_CLIENT_SECRET and DEMO_PORTAL in settings.portals
    assert settings.payload_key == (tmp_path / "payload-key").read_text().strip()
    assert settings.codec_auth == "none" and len(notes) == 3
    assert "http://127.0.0.1:8233" in settings.codec_cors_origins
    env = {"PAYLOAD_ENCRYPTION_KEY": "mine", "CODEC_AUTH": "token", "CODEC_AUTH_TOKEN": "t",
           "HUBSPOT_CLIENT_SECRET": "s", "LOG_FORMAT": "json", "PORTAL_7_HUBSPOT_TOKEN": "h",
           "PORTAL_7_KLEER_COMPANY_ID": "3", "PORTAL_7_KLEER_API_KEY": "k"}
    settings, notes = dev_settings(env, tmp_path, 8233, None)
    assert (settings.payload_key, settings.codec_auth, settings.hubspot_client_secret) == (
        "mine", "token", "s")
    assert settings.log_format == "json" and {7, DEMO_PORTAL} <= settings.portals.keys()
    assert notes == []


def test_dev_stack_encrypts_decodes_in_the_ui_and_stops_everything_on_sigterm(tmp_path):
    ports, state = _ports(), tmp_path / "state"
    proc = subprocess.Popen(_args(ports, state), cwd=ROOT, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        out, deadline = "", time.monotonic() + 60
        while "Ctrl-C stops everything" not in out and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            out += line
        assert "Ctrl-C stops everything" in out, out
        codec = f"http://127.0.0.1:{ports['api']}/codec"
        assert f"Codec        {codec}" in out and "CODEC_AUTH=none" in out
        assert f"PAYLOAD_ENCRYPTION_KEY from {state / 'payload-key'}" in out
        temporal_pid = int((state / "temporal.pid").read_text())
        assert _alive(temporal_pid)
        ui = httpx.get(f"http://127.0.0.1:{ports['ui']}/api/v1/settings", timeout=10).json()
        assert ui["Codec"]["Endpoint"] == codec  # the UI decodes through our endpoint
        # What the browser sends: no Authorization header, from the UI's origin.
        origin = f"http://localhost:{ports['ui']}"
        decoded = httpx.post(f"{codec}/decode", json={}, timeout=10,
                             headers={"Origin": origin, "X-Namespace": "default"})
        assert decoded.status_code == 200 and decoded.json() == {"payloads": []}
        assert decoded.headers["access-control-allow-origin"] == origin
        assert httpx.get(f"http://127.0.0.1:{ports['api']}/healthz", timeout=10).status_code == 200

        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, rest
        assert "Stopped" in rest
        assert not _alive(temporal_pid) and not (state / "temporal.pid").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_busy_port_is_named_and_nothing_is_started(tmp_path):
    ports, state = _ports(), tmp_path / "state"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports["api"]))
        taken.listen()
        done = subprocess.run(_args(ports, state), cwd=ROOT, env=_env(), capture_output=True,
                              text=True, timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {ports['api']} (API) is in use by pid {os.getpid()}" in done.stderr
    assert "nothing was started" in done.stderr and "Traceback" not in done.stderr
    assert not (state / "temporal.pid").exists() and not (state / "temporal.db").exists()

