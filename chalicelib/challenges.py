"""The rules of a sign-in challenge: start, resend, verify.

Each function takes validated settings and a parsed request body and either
returns the JSON response body or raises an :mod:`chalicelib.errors`
exception. Round trips: start = 2 (one batch read of the user and the failed sign-in
counters, then one transaction: the send, or the failure count), resend = 2
(read session, one transaction), verify = 1 (one conditional update), plus
one SSM read per container for the code key.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from chalicelib import codes, credentials, inputs, keys, store
from chalicelib.errors import (
    InvalidCode,
    InvalidCredentials,
    RateLimited,
    ServiceUnavailable,
    SessionExpired,
)
from chalicelib.mail import mask
from chalicelib.settings import Settings

log = logging.getLogger("simple-otp")

# The clock, in one place, so tests can move time instead of sleeping.
clock = time.time

_RESEND_CONFLICT_RETRIES = 3


def now() -> int:
    return int(clock())


def _ip_ident(source_ip: str | None) -> str:
    """Counters are keyed by a hash of the address, not the address itself."""
    return hashlib.sha256((source_ip or "unknown").encode("utf-8")).hexdigest()[:32]


def _windows(cfg: Settings, email: str, source_ip: str | None) -> list[store.Window]:
    return [
        store.Window("email", email, cfg.sends_per_email_per_hour),
        store.Window("ip", _ip_ident(source_ip), cfg.sends_per_ip_per_hour),
    ]


_LIMIT_TEXT = {
    "email": "hourly limit for this address",
    "ip": "hourly limit for your network",
    "fail-email": "too many failed sign-ins for this address",
    "fail-ip": "too many failed sign-ins from your network",
}


def _failure_windows(cfg: Settings, email: str, source_ip: str | None) -> list[store.Window]:
    return [
        store.Window("fail-email", email, cfg.failed_sign_ins_per_email_per_hour),
        store.Window("fail-ip", _ip_ident(source_ip), cfg.failed_sign_ins_per_ip_per_hour),
    ]


def _rate_limited(cfg: Settings, failed: dict[str, Any], at: int, windows: list[store.Window]) -> RateLimited:
    """Turn the failed conditions of ``windows`` (and the cooldown) into one 429
    with the longest wait."""
    hour = at // 3600
    waits: list[tuple[int, str]] = []
    limits = {window.scope: window.limit for window in windows}
    for role, item in failed.items():
        if role == "cooldown":
            until = int((item or {}).get("until", at + cfg.resend_cooldown_seconds))
            waits.append((until - at, "please wait before asking for another code"))
        elif role.endswith("_window"):
            scope = role.removesuffix("_window")
            own = int((item or {}).get("own", 0))
            # This hour's own events are carried into the next hour's bucket.
            free_at = (hour + 2) * 3600 if own >= limits[scope] else (hour + 1) * 3600
            waits.append((free_at - at, _LIMIT_TEXT[scope]))
    wait, what = max(waits)
    return RateLimited(wait, what)


def _send_record(
    email: str, session_hash: str, send_no: int, nonce: bytes, expires_at: int, ttl: int
) -> dict[str, Any]:
    return {
        "pk": store.challenge_key(session_hash, send_no),
        "session": session_hash,
        "email": email,
        "nonce": nonce,
        "send_no": send_no,
        "expires_at": expires_at,
        "valid_seconds": ttl,
    }


def start(cfg: Settings, body: dict[str, Any], source_ip: str | None) -> dict[str, Any]:
    """POST /otp: check the password, open a session, queue the first code."""
    email = inputs.email(body)
    password = inputs.password(body)
    at = now()
    hour = at // 3600
    failures = _failure_windows(cfg, email, source_ip)
    user, counters = store.read_sign_in(
        cfg.table_name, email, [store.limit_key(w.scope, w.ident, hour) for w in failures]
    )
    full = {
        f"{window.scope}_window": item
        for window, item in zip(failures, counters, strict=True)
        if item and int(item.get("n", 0)) >= window.limit
    }
    if full:  # checked before the hash: a blocked guesser costs no argon2 work
        log.info("sign-in limited: email=%s limits=%s", mask(email), ",".join(full))
        raise _rate_limited(cfg, full, at, failures)
    if not credentials.check(user, password):
        store.count_events(cfg.table_name, failures, hour)
        log.info("sign-in refused: email=%s", mask(email))
        raise InvalidCredentials()
    session_id = codes.new_session_id()
    digest = codes.session_hash(session_id)
    nonce = codes.new_nonce()
    expires_at = at + cfg.ttl_seconds
    session = {
        "pk": store.session_key(digest),
        "email": email,
        "nonce": nonce,
        "send_no": 1,
        "attempts": 0,
        "expires_at": expires_at,
        "created_at": at,
    }
    challenge = _send_record(email, digest, 1, nonce, expires_at, cfg.ttl_seconds)
    sends = _windows(cfg, email, source_ip)
    try:
        store.create_session(
            cfg.table_name,
            session,
            challenge,
            sends,
            hour=hour,
            now=at,
            cooldown_until=at + cfg.resend_cooldown_seconds,
        )
    except store.Cancelled as cancelled:
        if {"session", "challenge"} & cancelled.failed.keys():
            raise ServiceUnavailable() from None  # a 256-bit id collided: not a user error
        log.info("send limited: email=%s limits=%s", mask(email), ",".join(cancelled.failed))
        raise _rate_limited(cfg, cancelled.failed, at, sends) from None
    log.info("session started: session=%s email=%s", codes.session_tag(session_id), mask(email))
    return {
        "session_id": session_id,
        "expires_in": cfg.ttl_seconds,
        "resend_in": cfg.resend_cooldown_seconds,
    }


def _right_code(cfg: Settings, key: bytes, session: dict[str, Any]) -> str:
    return codes.derive_code(key, session["nonce"], cfg.code_length)


def _was_used(cfg: Settings, key: bytes, digest: str, session: dict[str, Any]) -> bool:
    tag = codes.guess_tag(key, digest, _right_code(cfg, key, session))
    return tag in session.get("tags", set())


def _closed_reason(
    cfg: Settings, key: bytes, digest: str, session: dict[str, Any] | None, at: int
) -> str | None:
    """Why a session can take no more codes, or None while it is open."""
    if session is None:
        return "expired"
    if _was_used(cfg, key, digest, session):
        return "used"
    if int(session.get("attempts", 0)) >= cfg.max_attempts:
        return "too_many_attempts"
    if int(session["expires_at"]) <= at:
        return "expired"
    return None


def resend(cfg: Settings, body: dict[str, Any], source_ip: str | None) -> dict[str, Any]:
    """POST /otp/resend: a new code for an open session; the old one stops working."""
    session_id = inputs.session_id(body)
    digest = codes.session_hash(session_id)
    key = keys.code_key(cfg.key_parameter)
    for _ in range(_RESEND_CONFLICT_RETRIES):
        at = now()
        session = store.get_session(cfg.table_name, digest)
        reason = _closed_reason(cfg, key, digest, session, at)
        if reason or session is None:
            raise SessionExpired(reason or "expired")
        send_no = int(session["send_no"]) + 1
        expires_at = at + cfg.ttl_seconds
        challenge = _send_record(
            session["email"], digest, send_no, codes.new_nonce(), expires_at, cfg.ttl_seconds
        )
        sends = _windows(cfg, session["email"], source_ip)
        try:
            store.renew_session(
                cfg.table_name,
                session,
                challenge,
                sends,
                hour=at // 3600,
                now=at,
                cooldown_until=at + cfg.resend_cooldown_seconds,
            )
        except store.Cancelled as cancelled:
            limits = {k: v for k, v in cancelled.failed.items() if k not in ("session", "challenge")}
            if limits:
                log.info(
                    "resend limited: session=%s limits=%s", codes.session_tag(session_id), ",".join(limits)
                )
                raise _rate_limited(cfg, limits, at, sends) from None
            continue  # the session changed under us: read it again
        log.info("code resent: session=%s send=%d", codes.session_tag(session_id), send_no)
        return {"expires_in": cfg.ttl_seconds, "resend_in": cfg.resend_cooldown_seconds}
    raise ServiceUnavailable()


def verify(cfg: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """POST /otp/verify: one conditional write counts the attempt and decides."""
    session_id = inputs.session_id(body)
    submitted = inputs.code(body, cfg.code_length)
    digest = codes.session_hash(session_id)
    key = keys.code_key(cfg.key_parameter)
    at = now()
    tag = codes.guess_tag(key, digest, submitted)
    counted, before = store.record_guess(cfg.table_name, digest, tag, at, cfg.max_attempts)
    label = codes.session_tag(session_id)
    if before is None:
        raise SessionExpired("expired")
    if _was_used(cfg, key, digest, before):
        log.info("verify refused: session=%s reason=used", label)
        raise SessionExpired("used")
    if not counted:
        reason = _closed_reason(cfg, key, digest, before, at) or "expired"
        log.info("verify refused: session=%s reason=%s", label, reason)
        raise SessionExpired(reason)
    if codes.codes_equal(_right_code(cfg, key, before), submitted):
        log.info("verified: session=%s", label)
        return {"verified": True, "email": before["email"]}
    remaining = cfg.max_attempts - (int(before.get("attempts", 0)) + 1)
    log.info("wrong code: session=%s attempts_remaining=%d", label, remaining)
    raise InvalidCode(remaining)
