"""What the browser tests share: Debian's Chromium, the local stack, a watched page.

A test module takes the fixtures by assigning them to names of its own
(``page = browser_support.page``), so they override the in-process ``stack``
of tests/conftest.py for that module only. ``stack_env`` (the stack's extra
environment) and ``context_options`` (the browser context's options) are
fixtures too, so a module or a test can change them with a fixture of its
own or ``pytest.mark.parametrize``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from devstack.harness import ROOT, LocalStack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = ROOT / "test-artifacts" / "screenshots"
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 375, "height": 812}
# The bound of every wait for the page (actions and expect() alike; expect's own default is 5 s).
# Each returns as soon as the page is there, so the bound is sized for a busy machine.
TIMEOUT_MS = 60_000
# The send cooldown and the code's life outlast any test, so the page's "Resend code in"
# and a typed code cannot run out of time while a slow machine gets there.
STACK_ENV = {"OTP_RESEND_COOLDOWN_SECONDS": "600", "OTP_TTL_SECONDS": "1200"}

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make test installs it with apt-get)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def shoot(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., None]]:
    """Save full-page screenshots under SHOTS; the folder is printed past pytest's capture."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    saved: list[str] = []

    def save(page, name: str) -> None:
        page.screenshot(path=SHOTS / name, full_page=True)
        saved.append(name)

    yield save
    with capsys.disabled():
        print(f"\n  screenshots in {SHOTS}: {', '.join(saved)}")


@pytest.fixture
def stack_env() -> dict[str, str]:
    """The stack's extra environment."""
    return dict(STACK_ENV)


@pytest.fixture
def stack(stack_env: dict[str, str]) -> Iterator[LocalStack]:
    with LocalStack(env=stack_env, wait_web=True) as running:
        yield running
    assert running.returncode == 0, running.output


@pytest.fixture
def context_options() -> dict[str, Any]:
    """Options of the browser context, besides the viewport and reduced motion."""
    return {}


@contextmanager
def watched_page(browser, url: str, **options: Any) -> Iterator[Any]:
    """A page of a fresh context at ``url``; console errors and uncaught exceptions fail on leaving."""
    context = browser.new_context(viewport=WIDE, reduced_motion="reduce", **options)
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))

    def on_console(message) -> None:
        # A 4xx from the API is an answer the page handles (a wrong code), not a fault.
        expected = "the server responded with a status of 4" in message.text
        if message.type == "error" and not expected:
            problems.append(f"console: {message.text}")

    tab.on("console", on_console)
    tab.goto(url)
    yield tab
    context.close()
    assert not problems, problems


@pytest.fixture
def page(browser, stack: LocalStack, context_options: dict[str, Any]) -> Iterator[Any]:
    """A fresh page on the login page; console errors and uncaught exceptions fail the test."""
    with watched_page(browser, stack.web_url + "/", **context_options) as tab:
        yield tab


def focused_id(page) -> str:
    return page.evaluate("document.activeElement && document.activeElement.id")


def wrong(code: str) -> str:
    """Another code of the same length: the code plus one (999999 gives 000000)."""
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))
