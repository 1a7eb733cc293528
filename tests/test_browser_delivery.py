"""Where the code is, in Debian's headless Chromium, on the real local stack.

The code step shows SES's word on the mail (docs/local.md, "Delivery
events"): the local stack's mailbox stands where the recipient's mail
server stands, so the demo user's code is delivered, and a sign-up at SES's
mailbox simulator address bounce@simulator.amazonses.com bounces, as it
would on a real account. The mailbox page shows the same state.
"""

from __future__ import annotations

import pytest

from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from devstack.harness import LocalStack
from tests import browser_support
from tests.browser_support import expect

pytestmark = pytest.mark.browser

BOUNCE = "bounce@simulator.amazonses.com"
PASSWORD = "Lantern-Quartz-8462"

# The shared fixtures (tests/browser_support.py), by name: they override conftest's in-process stack.
browser = browser_support.browser
shoot = browser_support.shoot
stack_env = browser_support.stack_env
stack = browser_support.stack
context_options = browser_support.context_options
page = browser_support.page


def delivery(page, state: str):
    return page.locator(f'p.delivery[data-delivery="{state}"]')


def mailbox_shows(browser, stack: LocalStack, to: str, state: str) -> None:
    """The mailbox page lists the newest message to ``to`` with ``state``."""
    mail = stack.wait_for_mail(to)
    with browser_support.watched_page(browser, stack.mailbox_url + "/") as mailbox:
        article = mailbox.locator(f'article[data-id="{mail["id"]}"]')
        expect(article.locator(f'dd.delivery[data-delivery="{state}"]')).to_have_text(state)


def test_the_code_step_says_the_demo_users_code_was_delivered(page, browser, stack: LocalStack, shoot):
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    shown = delivery(page, "delivered")
    expect(shown).to_be_visible()
    expect(shown).to_have_attribute("role", "status")
    shoot(page, "8-code-delivered.png")
    assert stack.wait_for_mail(DEMO_EMAIL)["delivery"] == "delivered"
    mailbox_shows(browser, stack, DEMO_EMAIL, "delivered")


def test_a_sign_up_at_the_simulators_bounce_address_shows_the_bounce(page, browser, stack: LocalStack, shoot):
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_role("button", name="Create an account").click()
    expect(page.get_by_role("heading", name="Create an account")).to_be_focused()
    page.get_by_label("Email").fill(BOUNCE)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()

    expect(page.get_by_role("heading", name="Confirm your email address")).to_be_visible()
    shown = delivery(page, "bounced")
    expect(shown).to_be_visible()
    shoot(page, "9-sign-up-bounced.png")
    assert stack.wait_for_mail(BOUNCE)["delivery"] == "bounced"
    mailbox_shows(browser, stack, BOUNCE, "bounced")
