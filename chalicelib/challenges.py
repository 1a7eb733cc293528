"""The rules of a sign-in challenge: start, resend, verify.

Each function takes validated settings and a parsed request body and either
returns the JSON response body or raises an :mod:`chalicelib.errors`
exception.

Round trips (DynamoDB): start = 3 when the password is right (read the
user, take a password-check slot, then one transaction: the session, its
first challenge, the send limits, the session's place on the account and
the slot given back), 2 when it is wrong or the failed sign-in cap is
reached (refused before the hash), 4 when the password is right but a send
limit refuses (the slot is given back in a write of its own); resend = 2 (read the session, one
transaction); verify = 1 when the code is wrong (one conditional update;
2 for a session made just before a key rotation), 2 when it is right (the
device token is written on the account), plus one KMS Sign. Plus one SSM read per key version and
container, and one every few minutes to learn the current version.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import Any, Literal

from chalicelib import codes, credentials, devices, inputs, keys, mail, observe, store, tokens
from chalicelib.clock import now
from chalicelib.errors import (
    InvalidCode,
    InvalidCredentials,
    RateLimited,
    ServiceUnavailable,
    SessionClosed,
)
from chalicelib.mail import mask
from chalicelib.settings import Settings

log = logging.getLogger("simple-otp")

_RESEND_CONFLICT_RETRIES = 3

# What each 429 says happened.
_LIMIT_TEXT = {
    "email": "Too many codes were sent to this address in the last hour.",
    "ip": "Too many codes were requested from your network in the last hour.",
    "fail-email": "Too many failed sign-ins for this address in the last hour.",
    "fail-ip": "Too many failed sign-ins from your network in the last hour.",
    "device": "Too many codes were requested from this device in the last hour.",
    "fail-device": "Too many failed sign-ins from this device in the last hour.",
    "mail": "This address has been sent too many codes in the last hour.",
}
_COOLDOWN_TEXT = "A code was sent moments ago: wait a little before asking for another."


def _network_ident(source_ip: str | None) -> str:
    """Counters are keyed by a hash of the client's network, not the address itself."""
    return hashlib.sha256(inputs.network(source_ip).encode("utf-8")).hexdigest()[:32]


def windows(
    cfg: Settings,
    purpose: Literal["sends", "failures"],
    email: str,
    source_ip: str | None,
    device: str | None = None,
) -> tuple[store.Window, ...]:
    """The hourly limits an event of ``purpose`` counts in.

    A client without a trusted device shares the address's and the
    network's windows with everyone who names that address. A trusted
    device (``device``: its ident) has its own instead, so a stranger who
    fills the shared ones cannot keep the owner out. Every send also counts
    in the address's mail ceiling, whoever asked for it.
    """
    ceiling = store.Window("mail", email, cfg.mails_per_email_per_hour)
    if device is not None:
        if purpose == "sends":
            return store.Window("device", device, cfg.sends_per_device_per_hour), ceiling
        return (store.Window("fail-device", device, cfg.failed_sign_ins_per_device_per_hour),)
    if purpose == "sends":
        prefix, per_email, per_ip = "", cfg.sends_per_email_per_hour, cfg.sends_per_ip_per_hour
    else:
        prefix = "fail-"
        per_email, per_ip = cfg.failed_sign_ins_per_email_per_hour, cfg.failed_sign_ins_per_ip_per_hour
    shared = (
        store.Window(f"{prefix}email", email, per_email),
        store.Window(f"{prefix}ip", _network_ident(source_ip), per_ip),
    )
    return (*shared, ceiling) if purpose == "sends" else shared


def _rate_limited(cancelled: store.Cancelled, at: int) -> RateLimited:
    """One 429 for everything that refused the request, with the longest wait."""
    hour = at // 3600
    waits: list[tuple[int, str]] = []
    if cancelled.cooldown_until is not None:
        waits.append((cancelled.cooldown_until - at, _COOLDOWN_TEXT))
    for window, item in cancelled.windows:
        own = int((item or {}).get("own", 0))
        # This hour's own events are carried into the next hour's bucket.
        free_at = (hour + 2) * 3600 if own >= window.limit else (hour + 1) * 3600
        waits.append((free_at - at, _LIMIT_TEXT[window.scope]))
    wait, what = max(waits)
    return RateLimited(wait, what)


def _new_send(
    cfg: Settings,
    email: str,
    digest: str,
    send_no: int,
    at: int,
    ends_at: int,
    source_ip: str | None,
    device: str | None,
    mail_kind: str = "signin",
) -> store.Send:
    """A fresh nonce under the current key, valid for the TTL but never past the session's end.

    A send whose mail holds no code (``mail_kind`` without one, or "none":
    nothing is mailed) gets a right-code tag no guess can match, made with
    the same work.
    """
    version, key = keys.current_key(cfg.key_parameter)
    nonce = codes.new_nonce()
    expires_at = min(at + cfg.ttl_seconds, ends_at)
    right = codes.guess_tag(key, digest, codes.derive_code(key, nonce, cfg.code_length))
    if mail_kind == "none" or not mail.KINDS[mail_kind].has_code:
        right = codes.unmatchable_tag()
    return store.Send(
        email=email,
        session_hash=digest,
        send_no=send_no,
        nonce=nonce,
        key_version=version,
        code_tag=right,
        expires_at=expires_at,
        valid_seconds=expires_at - at,
        windows=windows(cfg, "sends", email, source_ip, device),
        hour=at // 3600,
        now=at,
        cooldown_until=at + cfg.resend_cooldown_seconds,
        cooldown=email if device is None else f"device#{device}",
        mail=mail_kind,
        ip=_network_ident(source_ip),
    )


def _account(email: str, user: dict[str, Any], at: int, device: devices.Device | None) -> store.Account:
    sessions = user.get("sessions")
    sub = user.get("sub")
    keep = device.digest if device else None
    return store.Account(
        email=email,
        version=user.get("version"),
        has_sessions=isinstance(sessions, dict),
        sub=sub or codes.new_account_id(),  # an account from before ids gets one now
        sub_is_new=not sub,
        expired_sessions=tuple(h for h, end in (sessions or {}).items() if int(end) <= at),
        has_devices=isinstance(user.get("devices"), dict),
        device=keep,
        prune_devices=devices.to_prune(user, at, keep),
    )


def _device_fields(device: devices.Device | None) -> dict[str, Any]:
    """What a session remembers of the trusted device that opened it."""
    if device is None:
        return {}
    return {"device": device.digest, "device_created_at": device.created_at, "device_label": device.label}


def _device_ident(session: dict[str, Any]) -> str | None:
    digest = session.get("device")
    return str(digest)[:32] if digest else None


def _attempt_note(email: str, user: dict[str, Any] | None, source_ip: str | None, at: int) -> dict[str, Any]:
    """Who checked a password, noted on the slot it takes: an id the session (or a refund)
    repeats when the password was right, the time, the hashed network, the account's state."""
    state = "none" if user is None else "disabled" if user.get("disabled") else "enabled"
    return {
        "last_attempt": secrets.token_hex(8),
        "last_at": at,
        "last_ip": _network_ident(source_ip),
        "email": email,
        "account": state,
    }


def start(cfg: Settings, body: dict[str, Any], source_ip: str | None) -> dict[str, Any]:
    """POST /otp: check the password, open a session, queue the first code."""
    email = inputs.email(body)
    password = inputs.password(body)
    token = inputs.device_token(body)
    at = now()
    hour = at // 3600
    user = store.get_user(cfg.table_name, email)
    device = devices.trusted(user, token, at)  # read with the user: no extra round trip
    ident = device.ident if device else None
    failures = windows(cfg, "failures", email, source_ip, ident)
    note = _attempt_note(email, user, source_ip, at)  # on the slot: the audit trail reads it from the stream
    try:  # a slot before the hash: parallel guessers cannot all pass a read
        store.take_slots(cfg.table_name, failures, hour, note)
    except store.Cancelled as cancelled:
        log.info("sign-in limited: email=%s limits=%s", mask(email), cancelled, extra=_outcome("limited"))
        observe.count(observe.SIGN_IN_LIMITED)
        raise _rate_limited(cancelled, at) from None
    if not credentials.check(user, password) or user is None:
        log.info("sign-in refused: email=%s", mask(email), extra=_outcome("refused"))
        observe.count(observe.SIGN_IN_REFUSED)
        raise InvalidCredentials()  # the slot stays taken: this was a failed sign-in
    session_id, send, ends_at = _first_send(cfg, email, at, source_ip, ident, "signin")
    try:
        store.create_session(
            cfg.table_name,
            send,
            _account(email, user, at, device),
            ends_at,
            at,
            refund=failures,
            refund_hour=hour,
            extra={**_device_fields(device), "attempt": note["last_attempt"]},
        )
    except store.Cancelled as cancelled:
        if "account" in cancelled.conflicts:  # disabled or given a new password meanwhile
            log.info("sign-in refused, account changed: email=%s", mask(email), extra=_outcome("refused"))
            observe.count(observe.SIGN_IN_REFUSED)
            raise InvalidCredentials() from None
        if cancelled.conflicts:
            raise ServiceUnavailable() from None  # a 256-bit id collided: not a user error
        log.info("send limited: email=%s limits=%s", mask(email), cancelled, extra=_outcome("limited"))
        observe.count(observe.SIGN_IN_LIMITED)
        refunded = {**note, "refunded": note["last_attempt"]}
        store.give_back(cfg.table_name, failures, hour, refunded)  # the password was right: not a failure
        raise _rate_limited(cancelled, at) from None
    tag = codes.session_tag(session_id)
    log.info(
        "session started: session=%s email=%s device=%s",
        tag,
        mask(email),
        "trusted" if device else "none",
        extra=_outcome("started", tag),
    )
    observe.count(observe.SIGN_IN_STARTED)
    return _started(cfg, session_id, send)


def _outcome(outcome: str, session: str | None = None) -> dict[str, Any]:
    """The JSON keys of a log line: what happened, and to which session (its short tag)."""
    return observe.fields(outcome=outcome, session=session)


def _first_send(
    cfg: Settings, email: str, at: int, source_ip: str | None, device: str | None, mail_kind: str
) -> tuple[str, store.Send, int]:
    """A new session id, its first send and the end of its life."""
    session_id = codes.new_session_id()
    ends_at = at + cfg.session_max_seconds
    send = _new_send(cfg, email, codes.session_hash(session_id), 1, at, ends_at, source_ip, device, mail_kind)
    return session_id, send, ends_at


def _started(cfg: Settings, session_id: str, send: store.Send) -> dict[str, Any]:
    """The answer to a request that opened a session."""
    return {
        "session_id": session_id,
        "expires_in": send.valid_seconds,
        "resend_in": cfg.resend_cooldown_seconds,
    }


def open_session(
    cfg: Settings, email: str, source_ip: str | None, purpose: str, mail_kind: str, extra: dict[str, Any]
) -> dict[str, Any]:
    """A session of ``purpose`` (sign-up, reset) and its first send, in one transaction.

    It counts in the same send limits as an untrusted sign-in; ``mail_kind``
    "none" sends nothing (but counts the same). Returns the 202 body.
    """
    at = now()
    session_id, send, ends_at = _first_send(cfg, email, at, source_ip, None, mail_kind)
    try:  # listed on no account (a reset is held to the account's version at its confirm instead)
        store.create_session(cfg.table_name, send, None, ends_at, at, extra={"purpose": purpose, **extra})
    except store.Cancelled as cancelled:
        if cancelled.conflicts:  # a 256-bit id collided: not a user error
            raise ServiceUnavailable() from None
        log.info("send limited: purpose=%s email=%s limits=%s", purpose, mask(email), cancelled)
        raise _rate_limited(cancelled, at) from None
    log.info(
        "session started: purpose=%s session=%s email=%s", purpose, codes.session_tag(session_id), mask(email)
    )
    return _started(cfg, session_id, send)


def _ends_at(cfg: Settings, session: dict[str, Any]) -> int:
    return int(session.get("ends_at") or int(session.get("created_at", 0)) + cfg.session_max_seconds)


def _is_used(session: dict[str, Any]) -> bool:
    """Used: the last guess was the right code. Needs no key."""
    last, right = session.get("last_tag"), session.get("code_tag")
    return bool(last and right and codes.codes_equal(right, last))


def _closed_reason(cfg: Settings, session: dict[str, Any] | None, at: int) -> str | None:
    """Why a session can take no more codes, or None while it is open."""
    if session is None:
        return "expired"
    if _is_used(session):
        return "used"
    if int(session.get("attempts", 0)) >= cfg.max_attempts:
        return "too_many_attempts"
    if int(session["expires_at"]) <= at or _ends_at(cfg, session) <= at:
        return "expired"
    return None


def resend(cfg: Settings, body: dict[str, Any], source_ip: str | None) -> dict[str, Any]:
    """POST /otp/resend: a new code for an open session; the old one stops working."""
    session_id = inputs.session_id(body)
    digest = codes.session_hash(session_id)
    label = codes.session_tag(session_id)
    for _ in range(_RESEND_CONFLICT_RETRIES):
        at = now()
        session = store.get_session(cfg.table_name, digest)
        reason = _closed_reason(cfg, session, at)
        if reason or session is None:
            log.info("resend refused: session=%s reason=%s", label, reason)
            raise SessionClosed(reason or "expired")
        send_no = int(session["send_no"]) + 1
        send = _new_send(
            cfg,
            session["email"],
            digest,
            send_no,
            at,
            _ends_at(cfg, session),
            source_ip,
            _device_ident(session),
            session.get("mail", "signin"),  # a sign-up or reset session mails its own kind
        )
        try:
            store.renew_session(cfg.table_name, session, send)
        except store.Cancelled as cancelled:
            if cancelled.windows or cancelled.cooldown_until is not None:
                log.info("resend limited: session=%s limits=%s", label, cancelled)
                raise _rate_limited(cancelled, at) from None
            continue  # the session changed under us: read it again
        log.info(
            "code resent: purpose=%s session=%s send=%d", session.get("purpose", "signin"), label, send_no
        )
        return {"expires_in": send.valid_seconds, "resend_in": cfg.resend_cooldown_seconds}
    raise ServiceUnavailable()


def _trust_device(cfg: Settings, session: dict[str, Any], at: int, user_agent: str | None) -> dict[str, Any]:
    """After a right code: a new device token, in place of the one that opened the session if any.

    One write. A session from before device tokens has no account version
    to hold the write to: it gets none (its next sign-in will).
    """
    if "account_version" not in session:
        return {}
    token = codes.new_device_token()
    previous = session.get("device")
    created = int(session["device_created_at"]) if previous else at
    name = str(session.get("device_label", "")) if previous else devices.label(user_agent)
    added = store.add_device(
        cfg.table_name,
        session["email"],
        codes.device_hash(token),
        devices.entry(created, at, cfg.device_ttl_days, name),
        previous,
        int(session["account_version"]),
    )
    if not added:
        raise SessionClosed("expired")  # the account changed since this sign-in began
    return {"device_token": token}


def _purpose_of(session: dict[str, Any] | None) -> str | None:
    return (session or {}).get("purpose")


def check_code(
    cfg: Settings, session_id: str, submitted: str, purpose: str | None, source_ip: str | None = None
) -> tuple[dict[str, Any], int]:
    """Count one attempt at the code of a session of ``purpose`` (None: a sign-in), atomically.

    Returns the session as it was before the attempt, and the time, when
    the code is right; raises :class:`InvalidCode` when it is wrong and
    :class:`SessionClosed` when the session takes no more codes (a session
    of another purpose counts as unknown: "expired").
    """
    digest = codes.session_hash(session_id)
    label = codes.session_tag(session_id)
    version, key = keys.current_key(cfg.key_parameter)
    at = now()
    tag = codes.guess_tag(key, digest, submitted)
    ip = _network_ident(source_ip)
    counted, before = store.record_guess(
        cfg.table_name, digest, tag, version, at, cfg.max_attempts, purpose, ip
    )
    made_with = before.get("key_version") if before else None
    own = before is not None and _purpose_of(before) == purpose
    if (
        not counted
        and own
        and made_with is not None
        and made_with != version
        and not _closed_reason(cfg, before, at)
    ):
        # Made with another version of the key (a rotation): the code is that version's.
        key = keys.key_at(cfg.key_parameter, int(made_with))
        tag = codes.guess_tag(key, digest, submitted)
        counted, before = store.record_guess(
            cfg.table_name, digest, tag, int(made_with), at, cfg.max_attempts, purpose, ip
        )
    what = purpose or "signin"
    if not counted or before is None:
        reason = (_closed_reason(cfg, before, at) if own else None) or "expired"
        log.info(
            "verify refused: purpose=%s session=%s reason=%s",
            what,
            label,
            reason,
            extra=_outcome(reason, label),
        )
        observe.count(observe.VERIFY_LOCKED if reason == "too_many_attempts" else observe.VERIFY_FAILED)
        raise SessionClosed(reason)
    if codes.codes_equal(str(before.get("code_tag", "")), tag):
        observe.count(observe.VERIFY_SUCCEEDED)
        return before, at
    remaining = cfg.max_attempts - (int(before.get("attempts", 0)) + 1)
    log.info(
        "wrong code: purpose=%s session=%s attempts_remaining=%d",
        what,
        label,
        remaining,
        extra=_outcome("wrong code", label),
    )
    observe.count(observe.VERIFY_LOCKED if remaining <= 0 else observe.VERIFY_FAILED)
    raise InvalidCode(remaining)


def signed_in(cfg: Settings, email: str, sub: str, auth_time: int, at: int) -> dict[str, Any]:
    """The answer of a verification that signs the person in: the token fields (device token apart)."""
    return {
        "verified": True,
        "email": email,
        **tokens.issue(cfg, sub=sub, email=email, auth_time=auth_time, at=at),
    }


def verify(
    cfg: Settings, body: dict[str, Any], user_agent: str | None = None, source_ip: str | None = None
) -> dict[str, Any]:
    """POST /otp/verify: one conditional write counts the attempt and decides."""
    session_id = inputs.session_id(body)
    submitted = inputs.code(body, cfg.code_length)
    label = codes.session_tag(session_id)
    before, at = check_code(cfg, session_id, submitted, None, source_ip)
    if not before.get("sub"):  # a session opened before accounts had ids: start again
        log.info("verify refused: session=%s reason=no account id", label)
        raise SessionClosed("expired")
    device = _trust_device(cfg, before, at, user_agent)
    log.info("verified: purpose=signin session=%s", label, extra=_outcome("verified", label))
    return {**signed_in(cfg, before["email"], before["sub"], int(before["created_at"]), at), **device}


def status(cfg: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """POST /otp/status: where the mail of the session's latest send is; one read.

    Any purpose (sign-in, sign-up, reset); a closed session answers as an
    unknown one (410), so the route tells nothing once the code is spent.
    """
    session_id = inputs.session_id(body)
    at = now()
    session = store.get_session(cfg.table_name, codes.session_hash(session_id))
    reason = _closed_reason(cfg, session, at)
    if reason or session is None:
        raise SessionClosed(reason or "expired")
    state = str(session.get("delivery", "queued"))
    return {"delivery": state, "at": int(session.get("delivery_at") or session.get("created_at") or at)}
