"""Sign-up and password reset: sessions with a purpose, on the sign-in's engine.

Both open a session and mail a code through the same stream mailer, under
the same send limits, and take the code with the same single conditional
write. Neither may tell a stranger whether an address has an account:

* sign-up for an address that has one answers the same 202, after the same
  hash work; the mail says an account exists (no code), and the session can
  never create anything (its right-code tag matches no guess);
* reset answers the same 202 for any valid address; the code is mailed only
  when an enabled account exists, and for no account the session mails
  nothing (but counts in the limits the same way).

Round trips (DynamoDB): sign-up = 2 (read the user, one transaction);
sign-up verify = 2 (the guess, the new account with its device); reset = 2
(read the user, one transaction: the same writes whether or not the
account exists); reset confirm = 4 (read the session for
the password policy, the guess, the new password, one batch: close the
sessions, clear the failed sign-in buckets, queue the notice mail).
"""

from __future__ import annotations

import logging
from typing import Any

from chalicelib import challenges, codes, credentials, devices, inputs, passwords, store
from chalicelib.errors import AccountExists, SessionClosed, SignupDisabled, SignupNotAllowed, WeakPassword
from chalicelib.mail import mask
from chalicelib.settings import Settings

log = logging.getLogger("simple-otp")

NOTICE_SECONDS = 86400  # a notice not mailed within a day is not worth sending


def public_config(cfg: Settings) -> dict[str, Any]:
    """GET /config: what the login page may offer."""
    return {"signup_enabled": cfg.signup_enabled}


def _policy(password: str, email: str) -> None:
    weak = passwords.weakness(password, email)
    if weak is not None:
        raise WeakPassword(*weak)


def signup(cfg: Settings, body: dict[str, Any], source_ip: str | None) -> dict[str, Any]:
    """POST /signup: a session that mails a code to confirm the address (202)."""
    if not cfg.signup_enabled:
        raise SignupDisabled()
    email = inputs.email(body)
    password = inputs.password(body)
    if cfg.signup_allowed_domains and email.rpartition("@")[2] not in cfg.signup_allowed_domains:
        raise SignupNotAllowed()
    _policy(password, email)
    user = store.get_user(cfg.table_name, email)
    password_hash = credentials.hash_password(password)  # the same work whether or not it is kept
    if user is not None:
        return challenges.open_session(cfg, email, source_ip, "signup", "signup-exists", {})
    return challenges.open_session(
        cfg, email, source_ip, "signup", "signup", {"password_hash": password_hash}
    )


def signup_verify(
    cfg: Settings, body: dict[str, Any], user_agent: str | None, source_ip: str | None = None
) -> dict[str, Any]:
    """POST /signup/verify: the right code creates the account and signs the person in (201)."""
    session_id = inputs.session_id(body)
    submitted = inputs.code(body, cfg.code_length)
    before, at = challenges.check_code(cfg, session_id, submitted, "signup", source_ip)
    label = codes.session_tag(session_id)
    if "password_hash" not in before:  # never: such a session has no right code
        raise SessionClosed("expired")
    email = before["email"]
    sub = codes.new_account_id()
    token = codes.new_device_token()
    device = devices.entry(at, at, cfg.device_ttl_days, devices.label(user_agent))
    if not store.create_account(
        cfg.table_name, email, before["password_hash"], sub, at, {codes.device_hash(token): device}
    ):
        log.info("sign-up refused, account exists: session=%s", label)
        raise AccountExists()
    log.info("verified: purpose=signup session=%s email=%s account created", label, mask(email))
    answer = challenges.signed_in(cfg, email, sub, int(before["created_at"]), at)
    return {**answer, "device_token": token}


def reset(cfg: Settings, body: dict[str, Any], source_ip: str | None) -> dict[str, Any]:
    """POST /password/reset: a code for an enabled account, a mail saying there is none otherwise.

    The same 202, the same writes and a mail either way: even the delivery
    status of the mail cannot tell an account from no account.
    """
    email = inputs.email(body)
    user = store.get_user(cfg.table_name, email)
    usable = user is not None and not user.get("disabled") and "password_hash" in user
    if user is not None and usable:
        # Not listed on the account: the confirm holds only while the account keeps this version.
        version = {"account_version": int(user.get("version") or 0)}
        return challenges.open_session(cfg, email, source_ip, "reset", "reset", version)
    return challenges.open_session(cfg, email, source_ip, "reset", "reset-unknown", {"account_version": 0})


def reset_confirm(cfg: Settings, body: dict[str, Any], source_ip: str | None = None) -> dict[str, Any]:
    """POST /password/reset/confirm: the right code sets the new password (200).

    Then, in this order: every open session of the account is closed, every
    trusted device revoked (both with the new password's write and the batch
    after it), the failed sign-in buckets of the address cleared (and the
    send cooldown, so the owner can sign in at once), and a mail says the
    password was changed. A new password the policy refuses
    answers 400 before the code is looked at, so it costs no attempt.
    """
    session_id = inputs.session_id(body)
    submitted = inputs.code(body, cfg.code_length)
    new_password = inputs.password(body, "new_password")
    digest = codes.session_hash(session_id)
    label = codes.session_tag(session_id)
    session = store.get_session(cfg.table_name, digest)
    own = session is not None and session.get("purpose") == "reset"
    _policy(new_password, session["email"] if session is not None and own else "")
    before, at = challenges.check_code(cfg, session_id, submitted, "reset", source_ip)
    email = before["email"]
    user = store.save_user(
        cfg.table_name,
        email,
        {"password_hash": credentials.hash_password(new_password)},
        at,
        create=False,
        new_sub=codes.new_account_id(),
        revoke_devices=True,
        expected_version=int(before.get("account_version", 0)),
    )
    if user is None:  # disabled or changed since the reset began
        log.info("reset refused, account changed: session=%s", label)
        raise SessionClosed("expired")
    hour = at // 3600
    closed = [store.session_key(h) for h in (user.get("sessions") or {})]
    # the failed sign-ins of the address, and the cooldown its reset code started: the owner signs in now
    buckets = [store.limit_key("fail-email", email, h) for h in (hour, hour + 1)] + [
        store.cooldown_key(email)
    ]
    notice = {
        "pk": store.notice_key(digest),
        "kind": "notice",
        "mail": "password-changed",
        "email": email,
        "session": digest,
        "created_at": at,
        "expires_at": at + NOTICE_SECONDS,
    }
    store.write_batch(cfg.table_name, closed + buckets, [notice])
    log.info("password reset: session=%s email=%s sessions_closed=%d", label, mask(email), len(closed))
    return {"reset": True}
