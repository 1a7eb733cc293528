"""Sign-up, password reset and trusted devices in Debian's headless Chromium, on the real local stack.

Each test is one journey on a stack of its own, as in test_browser.py, with
the codes read from the mailbox's JSON API. axe-core (the version pinned in
frontend/package.json, from frontend/node_modules) audits every screen a
journey reaches, plain and with its errors showing, in the light and the dark
colour scheme, against WCAG 2.0, 2.1 and 2.2 A and AA. Each journey then
checks that it audited exactly the screens it names, with no violation; the
audits per screen are printed past pytest's capture.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib import mail, passwords
from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from devstack.harness import ROOT, WAIT_SECONDS, LocalStack, code_of
from tests import browser_support
from tests.browser_support import STACK_ENV, expect, wrong

pytestmark = pytest.mark.browser

AXE = ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]},
    "resultTypes": ["violations", "incomplete"],
}
SCHEMES = ("light", "dark")
# The data-screen of each screen in the page, `code` with its flow: "code/signup".
SHOWN_SCREENS = """() => [...document.querySelectorAll('[data-screen]')].map(
    (root) => (root.dataset.flow ? `${root.dataset.screen}/${root.dataset.flow}` : root.dataset.screen))"""

NEW_EMAIL = "ada@example.com"
NEW_PASSWORD = "Lantern-Quartz-8462"
NEW_DEMO_PASSWORD = "Velvet-Harbor-2931"
DEVICE_KEY = "simple-otp:device:demo@example.com"
DEVICE_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,512}")

# Every screen of the page but the hand-over (docs/frontend.md, "Screens"): `code` by its flow.
SCREENS = {
    "signin",
    "code/signin",
    "signup",
    "code/signup",
    "reset-request",
    "reset-confirm",
    "reset-done",
    "verified",
}
# What each journey audits: (screen, what shows on it).
SIGN_UP_AUDITS = {
    ("signin", "plain"),
    ("signup", "plain"),
    ("signup", "empty fields"),
    ("signup", "weak password"),
    ("code/signup", "plain"),
    ("verified", "plain"),
}
RESET_AUDITS = {
    ("reset-request", "plain"),
    ("reset-confirm", "plain"),
    ("reset-confirm", "weak password"),
    ("reset-done", "plain"),
    ("signin", "wrong password"),
    ("code/signin", "plain"),
    ("code/signin", "wrong code"),
    ("verified", "plain"),
}
# The reset mails a code to the demo user, and the sign-in after it mails another one at once:
# the address's send cooldown (600 s in STACK_ENV) would refuse that second send.
RESET_ENV = {**STACK_ENV, "OTP_RESEND_COOLDOWN_SECONDS": "0"}

# The shared fixtures (tests/browser_support.py), by name: they override conftest's in-process stack.
browser = browser_support.browser
shoot = browser_support.shoot
stack_env = browser_support.stack_env
stack = browser_support.stack
page = browser_support.page


@pytest.fixture
def context_options() -> dict[str, Any]:
    # axe-core goes in as a script the test adds, which the Content-Security-Policy suggested for
    # the page (docs/frontend.md) would refuse.
    return {"bypass_csp": True}


# ------------------------------------------------------------ axe-core


class Audits:
    """axe-core on the screen shown now; what it found, per (screen, state) and colour scheme."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}

    def __call__(self, page, screen: str, state: str = "plain") -> None:
        shown = page.evaluate(SHOWN_SCREENS)
        assert shown == [screen], f"auditing {screen!r} ({state}) but the page shows {shown}"
        assert (screen, state) not in self.found, f"{screen!r} ({state}) audited twice"
        if not page.evaluate("typeof window.axe === 'object'"):
            assert AXE.is_file(), f"{AXE} is missing: run `cd frontend && npm ci`"
            page.add_script_tag(path=str(AXE))
        runs = {}
        for scheme in SCHEMES:
            page.emulate_media(color_scheme=scheme)
            assert page.evaluate(f"matchMedia('(prefers-color-scheme: {scheme})').matches")
            result = page.evaluate("(options) => axe.run(document, options)", AXE_OPTIONS)
            runs[scheme] = {
                "version": result["testEngine"]["version"],
                "violations": result["violations"],
                "passes": len(result["passes"]),
                "incomplete": [rule["id"] for rule in result["incomplete"]],
            }
        page.emulate_media(color_scheme="light")
        self.found[(screen, state)] = runs

    def violations(self) -> list[str]:
        lines = []
        for (screen, state), runs in sorted(self.found.items()):
            for scheme, run in runs.items():
                for rule in run["violations"]:
                    lines.append(
                        f"{screen} ({state}, {scheme}): {rule['id']} [{rule['impact']}] {rule['help']}"
                    )
                    for node in rule["nodes"]:
                        lines.append(f"    {node['target']} {node['html']}")
                        lines.append(f"      {node['failureSummary']}".replace("\n", "\n      "))
        return lines

    def assert_clean(self, expected: set[tuple[str, str]]) -> None:
        """Exactly the ``expected`` screens were audited, and axe found nothing on any of them."""
        audited = set(self.found)
        problems = self.violations()
        if audited != expected:
            problems.insert(0, f"audited {sorted(audited)}, expected {sorted(expected)}")
        assert not problems, "\n".join(problems)

    def report(self) -> str:
        lines = []
        for (screen, state), runs in self.found.items():
            for scheme, run in runs.items():
                ids = sorted({rule["id"] for rule in run["violations"]})
                review = f", to review by hand: {', '.join(run['incomplete'])}" if run["incomplete"] else ""
                lines.append(
                    f"  axe-core {run['version']} {screen} ({state}, {scheme}): "
                    f"{run['passes']} rules passed, {len(run['violations'])} violations"
                    f"{' ' + ', '.join(ids) if ids else ''}{review}"
                )
        return "\n".join(lines)


@pytest.fixture
def audit(capsys: pytest.CaptureFixture[str]) -> Iterator[Audits]:
    audits = Audits()
    yield audits
    with capsys.disabled():
        print("\n" + audits.report())


# ------------------------------------------------------------ helpers


def posted(stack: LocalStack, path: str) -> Callable[[Any], bool]:
    """Matches the page's POST to the API's ``path`` (not the CORS preflight)."""
    return lambda request: request.method == "POST" and request.url == stack.api_url + path


def answered(stack: LocalStack, path: str) -> Callable[[Any], bool]:
    """Matches the API's answer to the page's POST to ``path``."""
    return lambda response: posted(stack, path)(response.request)


def wait_for_subject(stack: LocalStack, to: str, subject: str, count: int = 1) -> dict[str, Any]:
    """The newest message to ``to`` with ``subject``, once there are ``count`` of them."""
    found: list[dict[str, Any]] = []

    def enough() -> bool:
        found[:] = [m for m in stack.messages(to) if m["subject"] == subject]
        return len(found) >= count

    expect_soon(enough, f"{count} messages {subject!r} to {to}")
    return found[0]


def expect_soon(check: Callable[[], bool], what: str) -> None:
    """Poll ``check`` within the stack harness's bound for mail."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {WAIT_SECONDS} s"
        time.sleep(0.05)


def stored(page, key: str) -> str | None:
    return page.evaluate("(key) => window.localStorage.getItem(key)", key)


def device_keys(page) -> list[str]:
    return page.evaluate(
        "() => Object.keys(window.localStorage).filter((key) => key.startsWith('simple-otp:device:'))"
    )


def screen(page, name: str, flow: str | None = None):
    selector = f'[data-screen="{name}"]' + (f'[data-flow="{flow}"]' if flow else "")
    return page.locator(selector)


def expect_field_error(page, field, error_id: str, text: str) -> None:
    """The message under ``field``: marked invalid, described by the message, focused."""
    message = page.locator(f"#{error_id}")
    expect(message).to_have_text(text)
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_attribute("aria-describedby", error_id)
    expect(field).to_have_accessible_description(text)
    expect(field).to_be_focused()


def sign_in(page, stack: LocalStack, email: str, password: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The sign-in screen to the verified one; the POST /otp body and the POST /otp/verify answer."""
    expect(screen(page, "signin")).to_be_visible()
    before = len(stack.messages(email.lower()))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    with page.expect_request(posted(stack, "/otp")) as sent:
        page.get_by_role("button", name="Continue").click()
    expect(screen(page, "code", "signin")).to_be_visible()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    code = code_of(stack.wait_for_mail(email.lower(), count=before + 1))
    page.get_by_label("6-digit code").fill(code)
    with page.expect_response(answered(stack, "/otp/verify")) as verified:
        page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="You are signed in")).to_be_focused()
    assert verified.value.status == 200, verified.value.text()
    return sent.value.post_data_json, verified.value.json()


# ------------------------------------------------------------ the journeys


def test_sign_up_confirm_the_address_and_land_signed_in(page, stack: LocalStack, audit, shoot):
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    create = page.get_by_role("button", name="Create an account")
    expect(create).to_be_visible()  # GET /config: the local stage takes new accounts
    audit(page, "signin")
    signups = []
    page.on("request", lambda request: signups.append(request) if posted(stack, "/signup")(request) else None)
    create.click()

    expect(screen(page, "signup")).to_be_visible()
    expect(page.get_by_role("heading", name="Create an account")).to_be_focused()
    email = page.get_by_label("Email")
    password = page.get_by_label("Password", exact=True)
    expect(email).to_have_attribute("autocomplete", "username")
    expect(password).to_have_attribute("autocomplete", "new-password")
    expect(password).to_have_attribute("type", "password")
    audit(page, "signup")

    # Nothing filled in: each field says what it needs, and the page asks the server nothing.
    submit = page.get_by_role("button", name="Create account")
    submit.click()
    expect_field_error(page, email, "email-error", "Enter your email address.")
    expect(page.locator("#new-password-error")).to_have_text("Choose a password.")
    expect(password).to_have_attribute("aria-invalid", "true")
    audit(page, "signup", "empty fields")

    # A common password: the server's words under the field, nothing mailed, still on sign-up.
    email.fill(NEW_EMAIL)
    password.fill("password1")
    rule, words = passwords.weakness("password1", NEW_EMAIL) or ("", "")
    assert rule == "common"
    with page.expect_response(answered(stack, "/signup")) as refused:
        submit.click()
    assert refused.value.status == 400
    assert refused.value.json()["error"] == "weak_password"
    expect_field_error(page, password, "new-password-error", words)
    expect(email).to_have_attribute("aria-invalid", "false")
    expect(screen(page, "signup")).to_be_visible()
    shoot(page, "5-sign-up-weak-password.png")
    audit(page, "signup", "weak password")
    assert stack.messages(NEW_EMAIL) == []

    # Changing the password clears the message; Show and Hide switch what the field shows.
    password.fill(NEW_PASSWORD)
    expect(page.locator("#new-password-error")).to_have_count(0)
    expect(password).to_have_attribute("aria-invalid", "false")
    expect(password).not_to_have_attribute("aria-describedby", re.compile("."))
    page.get_by_role("button", name="Show password").click()
    expect(password).to_have_attribute("type", "text")
    hide = page.get_by_role("button", name="Hide password")
    expect(hide).to_have_attribute("aria-controls", "new-password")
    hide.click()
    expect(password).to_have_attribute("type", "password")
    expect(page.get_by_role("button", name="Show password")).to_be_visible()
    expect(password).to_have_value(NEW_PASSWORD)
    submit.click()

    expect(screen(page, "code", "signup")).to_be_visible()
    expect(page.get_by_role("heading", name="Confirm your email address")).to_be_visible()
    expect(page.get_by_text("We sent a code to a***@example.com.")).to_be_visible()
    field = page.get_by_label("6-digit code")
    expect(field).to_be_focused()
    expect(field).to_have_attribute("autocomplete", "one-time-code")
    expect(page.get_by_role("button", name="Resend code in")).to_be_disabled()
    expect(page.get_by_role("button", name="Use another address")).to_be_visible()
    shoot(page, "6-sign-up-code.png")
    audit(page, "code/signup")
    assert [request.post_data_json for request in signups] == [
        {"email": NEW_EMAIL, "password": "password1"},
        {"email": NEW_EMAIL, "password": NEW_PASSWORD},
    ]

    confirm = wait_for_subject(stack, NEW_EMAIL, "Confirm your email address")
    assert "To finish creating your account, enter this code:" in confirm["text"]
    page.keyboard.type(code_of(confirm))
    with page.expect_response(answered(stack, "/signup/verify")) as created:
        page.keyboard.press("Enter")

    # Signed in, exactly as after a sign-in.
    heading = page.get_by_role("heading", name="You are signed in")
    expect(heading).to_be_visible()
    expect(heading).to_be_focused()
    expect(screen(page, "verified")).to_be_visible()
    expect(page.get_by_text(f"Verified as {NEW_EMAIL}.")).to_be_visible()
    expect(page).to_have_title("Signed in · simple-otp")
    assert created.value.status == 201, created.value.text()
    account = created.value.json()
    assert account["verified"] is True and account["email"] == NEW_EMAIL
    assert account["token_type"] == "Bearer" and account["token"].count(".") == 2
    assert DEVICE_TOKEN.fullmatch(account["device_token"])
    assert stored(page, f"simple-otp:device:{NEW_EMAIL}") == account["device_token"]
    shoot(page, "7-sign-up-verified.png")
    audit(page, "verified")

    # The new account signs in with its password, from this browser (the token sign-up gave it).
    page.get_by_role("button", name="Sign in with another account").click()
    expect(screen(page, "signin")).to_be_visible()
    page.get_by_label("Email").fill(NEW_EMAIL)
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    with page.expect_request(posted(stack, "/otp")) as signing_in:
        page.get_by_role("button", name="Continue").click()
    expect(screen(page, "code", "signin")).to_be_visible()
    assert signing_in.value.post_data_json == {
        "email": NEW_EMAIL,
        "password": NEW_PASSWORD,
        "device_token": account["device_token"],
    }
    wait_for_subject(stack, NEW_EMAIL, mail.SUBJECT)
    audit.assert_clean(SIGN_UP_AUDITS)


@pytest.mark.parametrize("stack_env", [RESET_ENV], ids=["no-send-cooldown"])
def test_reset_the_password_by_code_then_sign_in_with_it(page, stack: LocalStack, audit, shoot):
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_role("button", name="Forgot your password?").click()

    expect(screen(page, "reset-request")).to_be_visible()
    expect(page.get_by_role("heading", name="Reset your password")).to_be_focused()
    expect(page.get_by_label("Email")).to_have_value(DEMO_EMAIL)  # the address typed so far
    audit(page, "reset-request")
    page.get_by_role("button", name="Send code").click()

    expect(screen(page, "reset-confirm")).to_be_visible()
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    expect(
        page.get_by_text("If an account exists for d***@example.com, we sent a code to it.")
    ).to_be_visible()
    code_field = page.get_by_label("6-digit code")
    new_password = page.get_by_label("New password", exact=True)
    expect(code_field).to_be_focused()
    expect(new_password).to_have_attribute("autocomplete", "new-password")
    audit(page, "reset-confirm")

    reset = wait_for_subject(stack, DEMO_EMAIL, "Reset your password")
    code = code_of(reset)
    code_field.fill(code)
    # The address as its own password: refused, in the server's words, and the code stays.
    rule, words = passwords.weakness(DEMO_EMAIL, DEMO_EMAIL) or ("", "")
    assert rule == "matches_email"
    new_password.fill(DEMO_EMAIL)
    change = page.get_by_role("button", name="Change password")
    with page.expect_response(answered(stack, "/password/reset/confirm")) as refused:
        change.click()
    assert refused.value.status == 400
    assert {k: refused.value.json()[k] for k in ("error", "rule")} == {
        "error": "weak_password",
        "rule": "matches_email",
    }
    expect_field_error(page, new_password, "new-password-error", words)
    expect(code_field).to_have_value(code)
    expect(code_field).to_have_attribute("aria-invalid", "false")
    shoot(page, "8-reset-weak-password.png")
    audit(page, "reset-confirm", "weak password")

    # The same code with a strong password changes it.
    new_password.fill(NEW_DEMO_PASSWORD)
    expect(page.locator("#new-password-error")).to_have_count(0)
    with page.expect_response(answered(stack, "/password/reset/confirm")) as changed:
        change.click()
    expect(screen(page, "reset-done")).to_be_visible()
    expect(page.get_by_role("heading", name="Your password was changed")).to_be_focused()
    assert changed.value.status == 200 and changed.value.json() == {"reset": True}
    shoot(page, "9-reset-done.png")
    audit(page, "reset-done")
    notice = wait_for_subject(stack, DEMO_EMAIL, "Your password was changed")
    with pytest.raises(ValueError):
        code_of(notice)  # a notice, with no code in it

    # "Sign in": the address is filled in, the focus on the password. The old one is refused.
    page.get_by_role("button", name="Sign in").click()
    expect(screen(page, "signin")).to_be_visible()
    expect(page.get_by_label("Email")).to_have_value(DEMO_EMAIL)
    password = page.get_by_label("Password", exact=True)
    expect(password).to_be_focused()
    password.fill(DEMO_PASSWORD)
    with page.expect_response(answered(stack, "/otp")) as old:
        page.get_by_role("button", name="Continue").click()
    assert old.value.status == 401
    alert = page.get_by_role("alert").filter(has_text="not correct")
    expect(alert).to_have_text("The email or password is not correct.")
    expect(screen(page, "signin")).to_be_visible()
    audit(page, "signin", "wrong password")

    # The new one gets the code, and the code signs in.
    password.fill(NEW_DEMO_PASSWORD)
    with page.expect_response(answered(stack, "/otp")) as new:
        page.get_by_role("button", name="Continue").click()
    assert new.value.status == 200, new.value.text()
    expect(screen(page, "code", "signin")).to_be_visible()
    field = page.get_by_label("6-digit code")
    expect(field).to_be_focused()
    audit(page, "code/signin")
    code = code_of(wait_for_subject(stack, DEMO_EMAIL, mail.SUBJECT))
    field.fill(wrong(code))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert").filter(has_text="not correct")).to_have_text(
        "That code is not correct. You have 4 attempts left."
    )
    audit(page, "code/signin", "wrong code")
    field.fill(code)
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="You are signed in")).to_be_focused()
    expect(page.get_by_text(f"Verified as {DEMO_EMAIL}.")).to_be_visible()
    audit(page, "verified")

    subjects = [m["subject"] for m in stack.messages(DEMO_EMAIL)]
    assert subjects == [mail.SUBJECT, "Your password was changed", "Reset your password"]
    audit.assert_clean(RESET_AUDITS)


def test_second_sign_in_carries_the_stored_device_token(page, stack: LocalStack):
    """The browser test signs in twice: the second sign-in carries the stored token."""
    assert device_keys(page) == []
    first, verified = sign_in(page, stack, DEMO_EMAIL, DEMO_PASSWORD)
    assert first == {"email": DEMO_EMAIL, "password": DEMO_PASSWORD}  # no token yet: none sent
    token = verified["device_token"]
    assert DEVICE_TOKEN.fullmatch(token)
    assert stored(page, DEVICE_KEY) == token

    # A new page load: the token comes from localStorage, for the address however it is typed.
    page.reload()
    expect(screen(page, "signin")).to_be_visible()
    assert device_keys(page) == [DEVICE_KEY]
    second, again = sign_in(page, stack, "Demo@Example.com", DEMO_PASSWORD)
    assert second == {"email": "Demo@Example.com", "password": DEMO_PASSWORD, "device_token": token}
    # The code was sent within the address's 600 s send cooldown: the server took the token
    # (a trusted device has a cooldown of its own), or POST /otp would have been refused.
    assert len(stack.messages(DEMO_EMAIL)) == 2

    # That verify gave a new token, which replaced the old one under the same key.
    renewed = again["device_token"]
    assert DEVICE_TOKEN.fullmatch(renewed) and renewed != token
    assert device_keys(page) == [DEVICE_KEY]
    assert stored(page, DEVICE_KEY) == renewed


def test_the_journeys_audit_every_screen():
    """Every screen of the page is audited by one journey or another, and with errors showing."""
    audits = SIGN_UP_AUDITS | RESET_AUDITS
    assert {name for name, _ in audits} == SCREENS
    assert {"signup", "reset-confirm", "signin", "code/signin"} <= {n for n, s in audits if s != "plain"}
