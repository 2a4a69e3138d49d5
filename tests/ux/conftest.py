"""Fixtures of the user-facing tests. `browser`: open an HTML report in a real headless Chromium.

Debian's `chromium` package (CI: `apt-get install -y chromium`) driven by playwright (PyPI) with
executable_path=/usr/bin/chromium; no browser download, no network. A test that needs it calls
`require_chromium()`, which skips with a printed reason when the browser or playwright is absent.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("GPUSCHED_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def require_chromium() -> str:
    path = chromium_path()
    if path is None:
        reason = "needs Debian's chromium (apt-get install -y chromium) to open the HTML reports"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "needs playwright (pip install playwright) to drive chromium"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return path


@dataclass
class Page:
    errors: list[str] = field(default_factory=list)
    """Console errors and uncaught exceptions, and requests that left the machine."""
    plots: int = 0
    """plotly plots drawn (div.js-plotly-plot with an svg)."""
    axis_titles: list[str] = field(default_factory=list)
    tick_labels: list[str] = field(default_factory=list)
    text: str = ""


def open_page(path: Path) -> Page:
    """Load `path` (file://), wait for the plots, and collect what the page showed and logged."""
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    seen = Page()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=FLAGS[1:], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: seen.errors.append(f"uncaught: {e}"))

            def request(route, req) -> None:  # type: ignore[no-untyped-def]
                if req.url.startswith(("file:", "data:", "blob:", "about:")):
                    route.continue_()
                else:
                    seen.errors.append(f"network request: {req.url}")
                    route.abort()

            page.route("**/*", request)
            page.goto(path.resolve().as_uri(), wait_until="load", timeout=60_000)
            page.wait_for_timeout(500)
            seen.plots = page.locator("div.js-plotly-plot .main-svg").count() and page.evaluate(
                "document.querySelectorAll('div.js-plotly-plot').length"
            )
            seen.axis_titles = page.evaluate(
                "[...document.querySelectorAll('.xtitle, .ytitle')].map(e => e.textContent)"
            )
            seen.tick_labels = page.evaluate(
                "[...document.querySelectorAll('.xtick text, .ytick text')].map(e => e.textContent)"
            )
            seen.text = page.inner_text("body")
        finally:
            browser.close()
    return seen


@pytest.fixture
def browser() -> object:
    """`browser(path) -> Page`: skips (with the reason printed) when chromium or playwright is absent."""
    require_chromium()
    return open_page
