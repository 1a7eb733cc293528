"""The login page in Debian's headless Chromium, against the real local stack.

Each test starts its own stack (moto server, chalice local, stream pump,
mailbox, vite, example relying app), so the demo user's send cooldown never
links them. The code is read from the mailbox's JSON API, as a person would
read the email. Screenshots of the steps go to test-artifacts/screenshots/
(the path is printed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from devstack.harness import ROOT, LocalStack, code_of

pytestmark = pytest.mark.browser

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
def browser() -> Iterator[object]:
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
def stack() -> Iterator[LocalStack]:
    with LocalStack(env=STACK_ENV, wait_web=True) as running:
        yield running
    assert running.returncode == 0, running.output


@pytest.fixture
def page(browser, stack: LocalStack):
    """A fresh page; console errors and uncaught exceptions fail the test."""
    context = browser.new_context(viewport=WIDE, reduced_motion="reduce")
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
    tab.goto(stack.web_url + "/")
    yield tab
    context.close()
    assert not problems, problems


def focused_id(page) -> str:
    return page.evaluate("document.activeElement && document.activeElement.id")


def sign_in_with_keyboard(page) -> None:
    """Step 1 by keyboard only: the email field has focus on arrival."""
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert focused_id(page) == "email"
    page.keyboard.type(DEMO_EMAIL)
    page.keyboard.press("Tab")
    assert focused_id(page) == "password"
    page.keyboard.type(DEMO_PASSWORD)


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def test_sign_in_read_code_from_mailbox_and_verify(page, stack: LocalStack, shoot):
    sign_in_with_keyboard(page)
    page.keyboard.press("Tab")  # the "Show password" toggle, then the submit button
    expect(page.get_by_role("button", name="Show password")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Continue")).to_be_focused()
    shoot(page, "1-sign-in.png")
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    expect(page.get_by_text("We sent a code to d***@example.com.")).to_be_visible()
    field = page.get_by_label("6-digit code")
    expect(field).to_be_focused()
    expect(field).to_have_attribute("autocomplete", "one-time-code")
    expect(field).to_have_attribute("inputmode", "numeric")
    expect(page.get_by_text("The code expires in")).to_contain_text(":")
    resend = page.get_by_role("button", name="Resend code in")
    expect(resend).to_be_disabled()
    shoot(page, "2-code.png")
    page.set_viewport_size(NARROW)
    shoot(page, "2-code-375px.png")
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
    page.set_viewport_size(WIDE)

    code = code_of(stack.wait_for_mail(DEMO_EMAIL))
    page.keyboard.type(code)
    page.keyboard.press("Enter")

    heading = page.get_by_role("heading", name="You are signed in")
    expect(heading).to_be_visible()
    expect(heading).to_be_focused()
    expect(page.get_by_text(f"Verified as {DEMO_EMAIL}.")).to_be_visible()
    shoot(page, "3-verified.png")


def test_wrong_code_shows_attempts_left(page, stack: LocalStack, shoot):
    sign_in_with_keyboard(page)
    page.keyboard.press("Enter")
    field = page.get_by_label("6-digit code")
    expect(field).to_be_focused()

    code = code_of(stack.wait_for_mail(DEMO_EMAIL))
    field.fill(wrong(code))
    page.get_by_role("button", name="Verify").click()

    alert = page.get_by_role("alert").filter(has_text="not correct")
    expect(alert).to_have_text("That code is not correct. You have 4 attempts left.")
    expect(field).to_have_value("")
    expect(field).to_be_focused()
    shoot(page, "2-wrong-code.png")

    # The right code still works after a wrong one.
    field.fill(code)
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="You are signed in")).to_be_visible()


def test_sign_in_from_the_example_app_and_land_back_signed_in(page, stack: LocalStack, shoot):
    """The whole journey: the example app sends the person here and gets them back signed in."""
    app = stack.example_url
    page.goto(app + "/")
    expect(page.get_by_text("You are not signed in.")).to_be_visible()
    page.get_by_role("link", name="Sign in").click()

    # The app's /login sets its state cookie and sends the browser to the login page with ?state.
    page.wait_for_url(re.compile("^" + re.escape(stack.web_url) + r"/\?state="))
    state = parse_qs(urlsplit(page.url).query)["state"]
    assert len(state) == 1 and re.fullmatch(r"[A-Za-z0-9_-]{16,512}", state[0]), page.url
    sign_in_with_keyboard(page)
    page.keyboard.press("Enter")
    field = page.get_by_label("6-digit code")
    expect(field).to_be_focused()

    requests = []
    page.on("request", lambda request: requests.append(request))
    code = code_of(stack.wait_for_mail(DEMO_EMAIL))
    page.keyboard.type(code)
    with page.expect_request(lambda r: r.url == app + "/callback") as posted:
        page.keyboard.press("Enter")

    # The token went to the app's callback in a form POST body, with the app's own state.
    callback = posted.value
    assert callback.method == "POST"
    assert callback.headers["content-type"].startswith("application/x-www-form-urlencoded")
    fields = parse_qs(callback.post_data, strict_parsing=True)
    assert sorted(fields) == ["state", "token"]
    assert fields["state"] == state
    [token] = fields["token"]
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)

    # Back on the app's home page, signed in as the demo user (the app checked the token).
    page.wait_for_url(app + "/")
    expect(page.get_by_text(f"Signed in as {DEMO_EMAIL}.")).to_be_visible()
    shoot(page, "4-back-at-example-app.png")

    # The token was never in a URL: not in any request the browser made, not in the history.
    assert all(token not in r.url for r in requests), [r.url for r in requests if token in r.url]
    assert token not in page.url
    page.go_back()  # to the login page: its address holds the state only, and it starts over
    page.wait_for_url(re.compile("^" + re.escape(stack.web_url) + r"/\?state="))
    assert token not in page.url
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
