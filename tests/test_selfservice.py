"""Sign-up with a verified address and password reset by code, through the routes, against moto."""

from __future__ import annotations

import dataclasses
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import accounts, codes, errors, selfservice, store
from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from devstack.mailbox import code_in
from devstack.testenv import sent_mail
from tests.attacks.helpers import check_error
from tests.support import VERIFIED_FIELDS, serialize_dynamodb, verified_as

NEW = "new.person@example.com"
STRONG = "correct horse battery staple 42"
OTHER_STRONG = "a different long passphrase 7"
STARTED_FIELDS = {"session_id", "expires_in", "resend_in"}


@pytest.fixture
def signup_on(stack, monkeypatch):
    cfg = dataclasses.replace(stack.app_module.SETTINGS, signup_enabled=True)
    monkeypatch.setattr(stack.app_module, "SETTINGS", cfg)
    return cfg


def _mails_to(stack, email: str) -> list:
    stack.pump()
    return [m for m in sent_mail() if email in m.to]


def _code(stack, email: str) -> str:
    return code_in(_mails_to(stack, email)[-1].text)


def _wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


# ----------------------------------------------------------------- config


def test_config_says_whether_signup_is_on_and_answers_get_only(stack, monkeypatch):
    off = stack.client.http.get("/config")
    assert off.status_code == 200 and off.json_body == {"signup_enabled": False}
    assert off.headers["Cache-Control"] == "public, max-age=60"
    cfg = dataclasses.replace(stack.app_module.SETTINGS, signup_enabled=True)
    monkeypatch.setattr(stack.app_module, "SETTINGS", cfg)
    assert stack.client.http.get("/config").json_body == {"signup_enabled": True}
    refused = stack.post("/config", {})
    assert check_error(refused, 405)["error"] == "method_not_allowed"


# ----------------------------------------------------------------- sign-up


def test_signup_is_refused_when_off_and_for_other_domains(stack, monkeypatch):
    off = stack.post("/signup", {"email": NEW, "password": STRONG})
    assert check_error(off, 403)["error"] == "signup_disabled"
    cfg = dataclasses.replace(
        stack.app_module.SETTINGS, signup_enabled=True, signup_allowed_domains=("example.org",)
    )
    monkeypatch.setattr(stack.app_module, "SETTINGS", cfg)
    other = stack.post("/signup", {"email": NEW, "password": STRONG})
    assert check_error(other, 403)["error"] == "signup_not_allowed"
    allowed = stack.post("/signup", {"email": "someone@example.org", "password": STRONG})
    assert allowed.status_code == 202
    assert _mails_to(stack, NEW) == []


def test_signup_creates_the_account_after_the_code_and_signs_in(stack, signup_on, clock):
    started = stack.post("/signup", {"email": NEW, "password": STRONG})
    assert started.status_code == 202 and set(started.data) == STARTED_FIELDS
    mail = _mails_to(stack, NEW)[-1]
    assert mail.subject == "Confirm your email address"
    assert "did not try to create an account" in mail.text and "did not try" in mail.html
    assert store.get_user(signup_on.table_name, NEW) is None  # nothing made before the code
    verified = stack.post(
        "/signup/verify", {"session_id": started.data["session_id"], "code": code_in(mail.text)}
    )
    assert verified.status_code == 201
    assert verified_as(verified.data) == NEW and set(verified.data) == VERIFIED_FIELDS
    user = store.get_user(signup_on.table_name, NEW)
    assert user["password_hash"].startswith("$argon2id$") and STRONG not in repr(user)
    assert not user["disabled"]
    # the chosen password signs in, and the device token of the sign-up is a trusted device
    assert [row["id"] for row in accounts.list_devices(signup_on, NEW)] == [
        codes.device_hash(verified.data["device_token"])[:16]
    ]
    again = stack.post(
        "/signup/verify", {"session_id": started.data["session_id"], "code": code_in(mail.text)}
    )
    assert check_error(again, 410)["reason"] == "used"
    clock.advance(signup_on.resend_cooldown_seconds + 1)
    assert stack.sign_in(NEW, STRONG).status_code == 200


def test_signup_for_an_existing_address_answers_the_same_and_can_create_nothing(stack, signup_on):
    from chalicelib import credentials

    before = store.get_user(signup_on.table_name, DEMO_EMAIL)
    existing = stack.post("/signup", {"email": DEMO_EMAIL, "password": STRONG})
    fresh = stack.post("/signup", {"email": NEW, "password": STRONG})
    assert existing.status_code == fresh.status_code == 202
    assert set(existing.data) == set(fresh.data) == STARTED_FIELDS
    assert {k: v for k, v in existing.data.items() if k != "session_id"} == {
        k: v for k, v in fresh.data.items() if k != "session_id"
    }
    mail = _mails_to(stack, DEMO_EMAIL)[-1]
    assert "already have one" in mail.text and "Forgot your password?" in mail.text
    assert "http" not in mail.text.replace("https://", "http")[:0] and "://" not in mail.text  # link-free
    with pytest.raises(ValueError):
        code_in(mail.text)  # no code in it
    statuses = []
    for guess in ("000000", "123456", "999999", "424242", "111111", "222222"):
        answer = stack.post("/signup/verify", {"session_id": existing.data["session_id"], "code": guess})
        statuses.append(answer.status_code)
    assert statuses == [401] * signup_on.max_attempts + [410]
    after = store.get_user(signup_on.table_name, DEMO_EMAIL)
    assert after == before  # untouched: same hash, same version
    assert credentials.check(after, DEMO_PASSWORD)


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short", "too_short"),
        ("x" * 1025, "too_long"),
        ("password1", "common"),
        ("New.Person@Example.com", "matches_email"),
        ("new.person", "matches_email"),
    ],
)
def test_signup_refuses_a_weak_password_naming_the_rule(stack, signup_on, password, rule):
    answer = stack.post("/signup", {"email": NEW, "password": password})
    if rule == "too_long":  # longer than any password the API takes: the request itself is bad
        assert check_error(answer, 400)["error"] == "invalid_request"
        return
    body = check_error(answer, 400)
    assert (body["error"], body["rule"]) == ("weak_password", rule)
    assert body["message"]
    assert _mails_to(stack, NEW) == []


def test_signup_codes_fail_expire_and_count_like_sign_in(stack, signup_on, clock):
    started = stack.post("/signup", {"email": NEW, "password": STRONG})
    session = started.data["session_id"]
    code = _code(stack, NEW)
    wrong = stack.post("/signup/verify", {"session_id": session, "code": _wrong(code)})
    assert check_error(wrong, 401)["attempts_remaining"] == signup_on.max_attempts - 1
    clock.advance(signup_on.ttl_seconds + 1)
    late = stack.post("/signup/verify", {"session_id": session, "code": code})
    assert check_error(late, 410)["reason"] == "expired"
    assert store.get_user(signup_on.table_name, NEW) is None


def test_signup_resend_and_limits_are_the_sign_in_ones(stack, signup_on, clock):
    started = stack.post("/signup", {"email": NEW, "password": STRONG})
    session = started.data["session_id"]
    stack.pump()  # the first code is mailed before the resend supersedes it
    too_soon = stack.post("/otp/resend", {"session_id": session})
    assert check_error(too_soon, 429)["error"] == "rate_limited"
    clock.advance(signup_on.resend_cooldown_seconds + 1)
    resent = stack.post("/otp/resend", {"session_id": session})
    assert resent.status_code == 200
    mails = _mails_to(stack, NEW)
    assert len(mails) == 2 and mails[-1].subject == "Confirm your email address"
    old, new = code_in(mails[0].text), code_in(mails[1].text)
    assert check_error(stack.post("/signup/verify", {"session_id": session, "code": old}), 401)
    assert stack.post("/signup/verify", {"session_id": session, "code": new}).status_code == 201
    # sign-ups, sign-ins and resets fill one per-address send limit
    for _ in range(signup_on.sends_per_email_per_hour - 2):
        clock.advance(signup_on.resend_cooldown_seconds + 1)
        assert stack.sign_in(NEW, STRONG).status_code == 200
    clock.advance(signup_on.resend_cooldown_seconds + 1)
    refused = [
        stack.post("/password/reset", {"email": NEW}),
        stack.post("/signup", {"email": NEW, "password": OTHER_STRONG}),
    ]
    assert all("sent to this address" in check_error(answer, 429)["message"] for answer in refused)


def test_sessions_of_one_purpose_are_unknown_to_the_others(stack, signup_on, clock):
    signin = stack.sign_in()
    signin_code = stack.latest_code()
    clock.advance(31)
    signup = stack.post("/signup", {"email": NEW, "password": STRONG})
    signup_code = _code(stack, NEW)
    crossed = [
        stack.post("/signup/verify", {"session_id": signin.data["session_id"], "code": signin_code}),
        stack.post("/otp/verify", {"session_id": signup.data["session_id"], "code": signup_code}),
        stack.post(
            "/password/reset/confirm",
            {"session_id": signin.data["session_id"], "code": signin_code, "new_password": OTHER_STRONG},
        ),
    ]
    assert [check_error(answer, 410)["reason"] for answer in crossed] == ["expired"] * 3
    # and none of them used up an attempt of the session
    assert (
        stack.post("/otp/verify", {"session_id": signin.data["session_id"], "code": signin_code}).status_code
        == 200
    )
    assert (
        stack.post(
            "/signup/verify", {"session_id": signup.data["session_id"], "code": signup_code}
        ).status_code
        == 201
    )


def test_two_sign_ups_of_one_address_verified_at_once_create_one_account(stack, signup_on, clock):
    first = stack.post("/signup", {"email": NEW, "password": STRONG})
    first_code = _code(stack, NEW)
    clock.advance(signup_on.resend_cooldown_seconds + 1)
    second = stack.post("/signup", {"email": NEW, "password": OTHER_STRONG})
    second_code = _code(stack, NEW)
    undo = serialize_dynamodb()
    barrier = threading.Barrier(2)

    def verify(pair):
        # called directly: chalice's test client swaps os.environ per request, which threads would tangle
        barrier.wait()
        try:
            return selfservice.signup_verify(signup_on, {"session_id": pair[0], "code": pair[1]}, None)
        except errors.OtpError as error:
            return error

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(
                pool.map(
                    verify, [(first.data["session_id"], first_code), (second.data["session_id"], second_code)]
                )
            )
    finally:
        for fn in undo:
            fn()
    kinds = sorted(type(answer).__name__ for answer in answers)
    assert kinds == ["AccountExists", "dict"], answers
    won = next(answer for answer in answers if isinstance(answer, dict))
    assert won["email"] == NEW and won["device_token"]
    chosen = STRONG if won is answers[0] else OTHER_STRONG
    clock.advance(signup_on.resend_cooldown_seconds + 1)
    assert stack.sign_in(NEW, chosen).status_code == 200


# ----------------------------------------------------------------- password reset


def _reset(stack, email: str = DEMO_EMAIL):
    started = stack.post("/password/reset", {"email": email})
    assert started.status_code == 202 and set(started.data) == STARTED_FIELDS
    return started.data["session_id"]


def test_reset_mails_a_code_only_to_an_enabled_account_and_answers_the_same(stack, clock):
    """A code for an enabled account; for no account, or a disabled one, a mail without a code
    saying there is none (so that even the mail's delivery status is the same)."""
    cfg = stack.app_module.SETTINGS
    accounts.set_password(cfg, "off@example.com", OTHER_STRONG)
    accounts.set_disabled(cfg, "off@example.com", True)
    answers = {}
    for email in (DEMO_EMAIL, "nobody@example.com", "off@example.com"):
        answer = stack.post("/password/reset", {"email": email})
        answers[email] = (
            answer.status_code,
            tuple(sorted(answer.data)),
            answer.data["expires_in"],
            answer.data["resend_in"],
        )
    assert len(set(answers.values())) == 1 and answers[DEMO_EMAIL][0] == 202
    stack.pump()
    mails = sent_mail()
    addresses = (DEMO_EMAIL, "nobody@example.com", "off@example.com")
    assert [(m.to, m.subject) for m in mails] == [([a], "Reset your password") for a in addresses]
    assert "did not ask to reset your password" in mails[0].text
    for unknown in mails[1:]:
        assert "no account you can sign in to" in unknown.text
        assert not re.search(r"\d{6}", unknown.text)  # no code
    # an unknown address's session resends "as well": the newest send mails the same no-code mail
    clock.advance(cfg.resend_cooldown_seconds + 1)
    unknown = _reset(stack, "ghost@example.com")
    clock.advance(cfg.resend_cooldown_seconds + 1)
    assert stack.post("/otp/resend", {"session_id": unknown}).status_code == 200
    stack.pump()
    ghost = [m for m in sent_mail() if m.to == ["ghost@example.com"]]
    assert len(ghost) == 1 and all("no account you can sign in to" in m.text for m in ghost)
    bad = stack.post("/password/reset", {"email": "not an address"})
    assert check_error(bad, 400)["error"] == "invalid_request"


def test_reset_confirm_replaces_the_password_and_ends_everything_else(stack, clock):
    cfg = stack.app_module.SETTINGS
    # the owner has a trusted device, an open sign-in, and a stranger filled the failure bucket
    started = stack.sign_in()
    device = stack.post(
        "/otp/verify", {"session_id": started.data["session_id"], "code": stack.latest_code()}
    )
    device_token = device.data["device_token"]
    clock.advance(cfg.resend_cooldown_seconds + 1)
    open_sign_in = stack.sign_in()
    open_code = stack.latest_code()
    for _ in range(cfg.failed_sign_ins_per_email_per_hour):
        assert stack.sign_in(DEMO_EMAIL, "wrong guess").status_code == 401
    assert check_error(stack.sign_in(DEMO_EMAIL, "wrong guess"), 429)
    clock.advance(cfg.resend_cooldown_seconds + 1)
    session = _reset(stack)
    code = _code(stack, DEMO_EMAIL)
    done = stack.post(
        "/password/reset/confirm", {"session_id": session, "code": code, "new_password": STRONG}
    )
    assert done.status_code == 200 and done.data == {"reset": True}
    # the open sign-in session is closed, the device revoked, the failure bucket cleared
    closed = stack.post("/otp/verify", {"session_id": open_sign_in.data["session_id"], "code": open_code})
    assert check_error(closed, 410)["reason"] == "expired"
    assert accounts.list_devices(cfg, DEMO_EMAIL) == []
    assert check_error(stack.sign_in(DEMO_EMAIL, DEMO_PASSWORD), 401)  # the old password: 401, not 429
    # at once: the reset's send cooldown was lifted with it
    new_sign_in = stack.post("/otp", {"email": DEMO_EMAIL, "password": STRONG, "device_token": device_token})
    assert new_sign_in.status_code == 200
    assert stack.app_module.SETTINGS.failed_sign_ins_per_email_per_hour > 1
    notice = [m for m in _mails_to(stack, DEMO_EMAIL) if m.subject == "Your password was changed"]
    assert len(notice) == 1 and "did not change it" in notice[0].text
    with pytest.raises(ValueError):
        code_in(notice[0].text)
    # the reset session is used
    again = stack.post(
        "/password/reset/confirm", {"session_id": session, "code": code, "new_password": OTHER_STRONG}
    )
    assert check_error(again, 410)["reason"] in ("used", "expired")


def test_reset_confirm_refuses_a_weak_password_without_using_an_attempt(stack):
    cfg = stack.app_module.SETTINGS
    session = _reset(stack)
    code = _code(stack, DEMO_EMAIL)
    for password, rule in (
        ("short", "too_short"),
        ("qwertyuiop", "common"),
        ("DEMO@example.com", "matches_email"),
    ):
        body = check_error(
            stack.post(
                "/password/reset/confirm", {"session_id": session, "code": code, "new_password": password}
            ),
            400,
        )
        assert (body["error"], body["rule"]) == ("weak_password", rule)
    wrong = stack.post(
        "/password/reset/confirm", {"session_id": session, "code": _wrong(code), "new_password": STRONG}
    )
    assert check_error(wrong, 401)["attempts_remaining"] == cfg.max_attempts - 1
    missing = stack.post("/password/reset/confirm", {"session_id": session, "code": code})
    assert check_error(missing, 400)["error"] == "invalid_request"
    assert (
        stack.post(
            "/password/reset/confirm", {"session_id": session, "code": code, "new_password": STRONG}
        ).status_code
        == 200
    )


def test_a_reset_session_ends_when_the_account_is_disabled(stack):
    cfg = stack.app_module.SETTINGS
    session = _reset(stack)
    code = _code(stack, DEMO_EMAIL)
    accounts.set_disabled(cfg, DEMO_EMAIL, True)
    answer = stack.post(
        "/password/reset/confirm", {"session_id": session, "code": code, "new_password": STRONG}
    )
    assert check_error(answer, 410)["reason"] == "expired"
    assert not stack.app_module.SETTINGS.signup_enabled


# ----------------------------------------------------------------- mail and logs


@pytest.mark.parametrize("kind", ["signin", "signup", "signup-exists", "reset", "password-changed"])
def test_each_mail_has_its_subject_text_and_html_and_says_what_if_unasked(kind):
    import html as html_module

    from chalicelib import mail

    what = mail.KINDS[kind]
    message = mail.render(
        "no-reply@example.com", "a@example.com", "123456" if what.has_code else None, 300, kind
    )
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert message["Subject"] == what.subject and message["To"] == "a@example.com"
    assert what.unasked in text and html_module.escape(what.unasked) in html
    assert ("123456" in text and "123456" in html) == what.has_code
    assert "://" not in text  # no links in any of them
    look_alike = {"signup-exists": "signup", "reset-unknown": "reset"}  # must look like the real one
    subjects = {k.subject for name, k in mail.KINDS.items() if name not in look_alike}
    assert len(subjects) == len(mail.KINDS) - len(look_alike)  # every other kind its own subject
    for name, twin in look_alike.items():
        assert mail.KINDS[name].subject == mail.KINDS[twin].subject


def test_no_log_line_of_sign_up_or_reset_carries_a_code_password_or_session_id(
    stack, signup_on, clock, caplog
):
    import logging

    caplog.set_level(logging.DEBUG, logger="simple-otp")
    started = stack.post("/signup", {"email": NEW, "password": STRONG})
    signup_code = _code(stack, NEW)
    stack.post("/signup/verify", {"session_id": started.data["session_id"], "code": _wrong(signup_code)})
    device = stack.post("/signup/verify", {"session_id": started.data["session_id"], "code": signup_code})
    clock.advance(signup_on.resend_cooldown_seconds + 1)
    session = _reset(stack, NEW)
    reset_code = _code(stack, NEW)
    stack.post("/password/reset/confirm", {"session_id": session, "code": reset_code, "new_password": "weak"})
    stack.post(
        "/password/reset/confirm", {"session_id": session, "code": reset_code, "new_password": OTHER_STRONG}
    )
    stack.pump()
    text = caplog.text
    assert "purpose=signup" in text and "purpose=reset" in text and "password reset:" in text
    assert "mail=password-changed" in text
    secrets = (signup_code, reset_code, STRONG, OTHER_STRONG, started.data["session_id"], session, NEW)
    for secret in (*secrets, device.data["token"], device.data["device_token"]):
        assert secret not in text, secret
