"""scripts/screenshot.py: a PNG of a page served on loopback, with Debian's headless Chromium."""

from __future__ import annotations

import functools
import http.server
import shutil
import struct
import threading
from pathlib import Path

import pytest

from scripts.screenshot import CHROMIUM, screenshot

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() or shutil.which("chromium") is None,
    reason="no Debian chromium (.ci/run installs it)")


async def test_screenshot_of_a_local_page(tmp_path):
    (tmp_path / "index.html").write_text(
        "<html><body><h1>Kleer screenshot check</h1><p id=late></p><script>"
        "setTimeout(() => document.getElementById('late').textContent = 'rendered late', 300)"
        "</script></body></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = await screenshot(f"http://127.0.0.1:{server.server_port}/index.html",
                               tmp_path / "shots" / "page.png", width=800, height=600,
                               wait_for=["rendered late"], delay_s=0)
    finally:
        server.shutdown()
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (800, 600)
    assert len(data) > 2000  # not a blank page
