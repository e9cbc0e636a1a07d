"""A PNG of a web page, taken with Debian's headless Chromium through Playwright.

    .venv/bin/python -m scripts.screenshot http://localhost:8233/namespaces/default/workflows \
        docs/screenshots/workflows.png --wait-for "Workflows"

Nothing is downloaded: Playwright drives the system browser (`apt-get install chromium`); never
run `playwright install`.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


async def screenshot(url: str, out: Path, *, width: int = 1600, height: int = 1000,
                     wait_for: list[str] | None = None, delay_s: float = 0.5,
                     full_page: bool = False, timeout_s: float = 30) -> Path:
    """Open `url`, wait until every text in `wait_for` is visible (and `delay_s` more, for late
    rendering), then write the PNG to `out`."""
    from playwright.async_api import async_playwright

    out.parent.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            await page.goto(url, wait_until="networkidle", timeout=timeout_s * 1000)
            for text in wait_for or []:
                await page.get_by_text(text).first.wait_for(timeout=timeout_s * 1000)
            await asyncio.sleep(delay_s)
            await page.screenshot(path=str(out), full_page=full_page)
        finally:
            await browser.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--wait-for", action="append", metavar="TEXT",
                        help="wait until this text is visible (repeatable)")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds to wait before the shot")
    parser.add_argument("--full-page", action="store_true")
    args = parser.parse_args(argv)
    path = asyncio.run(screenshot(args.url, args.out, width=args.width, height=args.height,
                                  wait_for=args.wait_for, delay_s=args.delay,
                                  full_page=args.full_page))
    print(path)


if __name__ == "__main__":
    main()
