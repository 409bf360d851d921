"""A real Chromium for the apps' tests: Debian's `chromium` (installed by `./dev test`), driven by
Playwright for Python through `executable_path`. Screenshots go under the test run's own folder.

The apps run in the end-to-end suite's platforms (tests/e2e/conftest.py); their browser tests run
in hybrid and async on NATS, where they add coverage, and are skipped, with the reason printed, on
the other platforms.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from sandwich.platform.settings import Broker
from sandwich.supervisor import Platform

BROWSER_FLOWS = {"hybrid", "async"}
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return os.environ.get("SANDWICH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def apps(platform: Platform) -> str:
    """The apps' address, on the platforms whose browser tests add coverage."""
    if platform.flow.value not in BROWSER_FLOWS or platform.broker_kind is not Broker.NATS:
        pytest.skip(
            f"browser tests run in hybrid and async on NATS, not {platform.flow.value} on {platform.broker_kind.value}"
        )
    assert platform.apps_url is not None
    return platform.apps_url


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    path = chromium_path()
    if path is None:
        pytest.fail("no Chromium: `./dev test` installs Debian's chromium; or set SANDWICH_CHROMIUM")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests leave their screenshots (out of git, in the run's own temp folder)."""
    folder = Path(os.environ.get("SANDWICH_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def at_both_widths(page: Page, folder: Path, name: str) -> None:
    """`name-390.png` and `name-1280.png`: the page at a phone's width and a desktop's."""
    size = page.viewport_size or {"width": 1280, "height": 900}
    for width in (390, 1280):
        await page.set_viewport_size({"width": width, "height": 900})
        await page.screenshot(path=folder / f"{name}-{width}.png", full_page=True)
    await page.set_viewport_size(size)


async def new_context(browser: Browser, base_url: str, *, width: int = 1280) -> BrowserContext:
    context = await browser.new_context(
        base_url=base_url,
        locale="en-US",
        extra_http_headers={"Accept-Language": "en"},
        viewport={"width": width, "height": 900},
    )
    context.set_default_timeout(15_000)
    return context


@pytest.fixture
def platform_flow(platform: Platform) -> str:
    return platform.flow.value
