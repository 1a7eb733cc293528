"""The login page in Debian's headless Chromium, against the real local stack.

Each test starts its own stack (moto server, chalice local, stream pump,
mailbox, vite, example relying app), so the demo user's send cooldown never
links them. The code is read from the mailbox's JSON API, as a person would
read the email. Screenshots of the steps go to test-artifacts/screenshots/
(the path is printed).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from devstack.harness import LocalStack, code_of
from tests import browser_support
from tests.browser_support import NARROW, WIDE, expect, focused_id, wrong

pytestmark = pytest.mark.browser

# The shared fixtures (tests/browser_support.py), by name: they override conftest's in-process stack.
browser = browser_support.browser
shoot = browser_support.shoot
stack_env = browser_support.stack_env
stack = browser_support.stack
context_options = browser_support.context_options
page = browser_support.page


def sign_in_with_keyboard(page) -> None:
    """Step 1 by keyboard only: the email field has focus on arrival."""
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert focused_id(page) == "email"
    page.keyboard.type(DEMO_EMAIL)
    page.keyboard.press("Tab")
    assert focused_id(page) == "password"
    page.keyboard.type(DEMO_PASSWORD)


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
