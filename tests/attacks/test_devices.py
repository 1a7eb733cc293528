"""A stranger who names the address must not lock its owner out.

The owner's browser holds a device token from an earlier sign-in; a
trusted device counts its failures and sends in buckets of its own. Each
test records its row in the attack table before it asserts.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import accounts, challenges, codes, errors, store
from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from devstack.testenv import sent_mail
from tests.attacks.helpers import check_error

HOUR = 3600
ATTACKER_IP = "203.0.113.66"
OWNER_IP = "198.51.100.7"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36"


@pytest.fixture
def source(monkeypatch, stack):
    """Set the client address the app sees: ``source.ip = ...``."""

    class Source:
        ip = OWNER_IP

    chosen = Source()
    monkeypatch.setattr(stack.app_module, "_source_ip", lambda: chosen.ip)
    return chosen


def _sign_in(stack, password: str = DEMO_PASSWORD, device_token=None, email: str = DEMO_EMAIL):
    body = {"email": email, "password": password}
    if device_token is not None:
        body["device_token"] = device_token
    return stack.post("/otp", body)


def _trust(stack, clock, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD, device_token=None) -> str:
    """A full sign-in; returns the device token the verify gave."""
    started = _sign_in(stack, password, device_token, email)
    assert started.status_code == 200, started.data
    verified = stack.post(
        "/otp/verify",
        {"session_id": started.data["session_id"], "code": stack.latest_code(email)},
        headers={"User-Agent": BROWSER},
    )
    assert verified.status_code == 200, verified.data
    token = verified.data["device_token"]
    assert isinstance(token, str) and len(token) >= 22 and token.replace("-", "").replace("_", "").isalnum()
    clock.advance(stack.app_module.SETTINGS.resend_cooldown_seconds + 1)
    return token


def _fill_failures(stack, source, ips) -> int:
    """Wrong passwords for the address, from ``ips`` in turn, until the shared cap answers 429."""
    tries = 0
    for ip in itertools.cycle(ips):
        source.ip = ip
        response = _sign_in(stack, "not-the-password")
        tries += 1
        if response.status_code == 429:
            return tries
        assert response.status_code == 401
        assert tries < 500


@pytest.mark.parametrize("spread", ["one IP", "many IPs"])
def test_a_stranger_filling_the_failure_buckets_does_not_keep_the_owner_out(
    stack, clock, source, attack_log, spread
):
    cfg = stack.app_module.SETTINGS
    token = _trust(stack, clock)
    ips = [ATTACKER_IP] if spread == "one IP" else [f"192.0.2.{i}" for i in range(1, 200)]
    tries = _fill_failures(stack, source, ips)
    # the address's shared bucket is full: an untrusted client is refused, even with the password
    source.ip = OWNER_IP
    untrusted = _sign_in(stack)
    assert "failed sign-ins for this address" in check_error(untrusted, 429)["message"]
    # the owner's trusted device signs in, from anywhere, and gets a code
    owner = _sign_in(stack, device_token=token)
    source.ip = ATTACKER_IP
    owner_elsewhere = _sign_in(stack, device_token=token) if spread == "one IP" else owner
    attack_log(
        f"devices: stranger fills the failure caps ({spread})",
        tries + 1,
        int(untrusted.status_code == 200),
        f"{tries - 1} x 401 then 429; owner's device {owner.status_code}, untrusted {untrusted.status_code}",
    )
    assert tries == cfg.failed_sign_ins_per_email_per_hour + 1
    assert owner.status_code == 200 and owner_elsewhere.status_code in (200, 429)
    if spread == "one IP":  # the second one only met the device's own cooldown, no shared limit
        assert "moments ago" in check_error(owner_elsewhere, 429)["message"]
    verified = stack.post(
        "/otp/verify", {"session_id": owner.data["session_id"], "code": stack.latest_code()}
    )
    assert verified.status_code == 200


def test_the_owner_stays_in_through_hours_of_password_guessing(stack, clock, source, attack_log):
    """The measured weakness: 55 wrong passwords an hour kept every owner out. Now: none."""
    token = _trust(stack, clock)
    owner_ok = untrusted_refused = guesses = 0
    hours = 6
    for _ in range(hours):
        source.ip = ATTACKER_IP
        for _ in range(55):
            guesses += _sign_in(stack, "guess").status_code in (401, 429)
        source.ip = OWNER_IP
        untrusted_refused += _sign_in(stack).status_code == 429
        owner = _sign_in(stack, device_token=token)
        if owner.status_code == 200:
            code = stack.latest_code()
            verified = stack.post("/otp/verify", {"session_id": owner.data["session_id"], "code": code})
            owner_ok += verified.status_code == 200
            token = verified.data.get("device_token", token)
        clock.advance(HOUR)
    attack_log(
        "devices: 55 wrong passwords an hour for 6 h",
        guesses + 2 * hours,
        hours - owner_ok,
        f"owner's device in {owner_ok}/{hours} h; untrusted refused {untrusted_refused}/{hours}",
    )
    assert guesses == 55 * hours
    assert owner_ok == hours
    assert untrusted_refused == hours


def test_a_stranger_with_the_password_cannot_starve_the_owner_or_flood_the_mailbox(
    stack, clock, source, attack_log
):
    cfg = stack.app_module.SETTINGS
    tokens = [_trust(stack, clock) for _ in range(3)]  # three browsers of the owner
    clock.advance(3 * HOUR)  # a fresh hour for every bucket
    before = len(sent_mail())
    stranger = {"accepted": 0, "refused": 0}
    owner = {"accepted": 0, "refused": 0}
    for round_no in range(30):  # 30 x 31 s: inside one hour; 10 for the stranger, 20 for the devices
        source.ip = f"192.0.2.{round_no % 250}"
        answer = _sign_in(stack)
        stranger["accepted" if answer.status_code == 200 else "refused"] += 1
        if round_no < cfg.sends_per_email_per_hour:  # the stranger fills the shared bucket first
            assert answer.status_code == 200
        else:
            source.ip = OWNER_IP
            for token in tokens:
                answer = _sign_in(stack, device_token=token)
                owner["accepted" if answer.status_code == 200 else "refused"] += 1
                if answer.status_code == 429:
                    assert answer.data["message"].startswith(
                        (
                            "This address has been sent too many codes in the last hour.",
                            "Too many codes were requested from this device in the last hour.",
                        )
                    )
        stack.pump()  # mail each round, while the codes are still valid
        clock.advance(cfg.resend_cooldown_seconds + 1)
    mailed = len(sent_mail()) - before
    attack_log(
        "devices: stranger with the password fills the send caps",
        10 + 20 * 4,
        max(0, mailed - cfg.mails_per_email_per_hour),
        f"stranger {stranger}, owner's 3 devices {owner}, {mailed} mails (ceiling "
        f"{cfg.mails_per_email_per_hour})",
    )
    assert stranger["accepted"] == cfg.sends_per_email_per_hour  # the shared bucket, full
    # the owner's devices still got codes, up to the ceiling on all mail to the address
    assert owner["accepted"] == cfg.mails_per_email_per_hour - cfg.sends_per_email_per_hour > 0
    assert mailed == stranger["accepted"] + owner["accepted"] == cfg.mails_per_email_per_hour


def test_the_owner_device_gets_a_code_when_the_shared_send_bucket_is_full(stack, clock, source):
    cfg = stack.app_module.SETTINGS
    token = _trust(stack, clock)
    clock.advance(3 * HOUR)
    for i in range(cfg.sends_per_email_per_hour):
        source.ip = f"192.0.2.{i}"
        assert _sign_in(stack).status_code == 200
        clock.advance(cfg.resend_cooldown_seconds + 1)
    refused = _sign_in(stack)
    assert "sent to this address" in check_error(refused, 429)["message"]
    source.ip = OWNER_IP
    stack.pump()
    before = len(sent_mail())
    owner = _sign_in(stack, device_token=token)
    assert owner.status_code == 200
    stack.pump()
    assert len(sent_mail()) == before + 1
    # and the device's resend uses the device's own cooldown and bucket, not the shared ones
    clock.advance(cfg.resend_cooldown_seconds + 1)
    resent = stack.post("/otp/resend", {"session_id": owner.data["session_id"]})
    assert resent.status_code == 200, resent.data


# ----------------------------------------------------------------- tokens that are no token


def _no_token_answer(stack, source, token, calls=None):
    """With the shared failure bucket full: the right password with ``token`` and without.

    ``calls``, if given, is cleared first and then holds the DynamoDB calls of the one with the token.
    """
    source.ip = OWNER_IP
    if calls is not None:
        calls.clear()
    with_token = _sign_in(stack, device_token=token)
    counted = len(calls) if calls is not None else None
    return with_token, _sign_in(stack), counted


def _same(a, b) -> bool:
    return (a.status_code, a.data, a.headers.get("Retry-After")) == (
        b.status_code,
        b.data,
        b.headers.get("Retry-After"),
    )


def test_forged_expired_revoked_and_other_accounts_tokens_count_as_no_token(stack, clock, source, attack_log):
    from chalicelib.accounts import set_password

    cfg = stack.app_module.SETTINGS
    other = "other@example.com"
    set_password(cfg, other, "another-long-password")
    other_token = _trust(stack, clock, other, "another-long-password")
    stale = _trust(stack, clock)
    expired = _trust(stack, clock)
    revoked = _trust(stack, clock)
    rotated_away = _trust(stack, clock)
    _trust(stack, clock, device_token=rotated_away)  # its own next sign-in replaced it
    ids = [row["id"] for row in accounts.list_devices(cfg, DEMO_EMAIL)]
    revoked_id = codes.device_hash(revoked)[:16]
    assert revoked_id in ids
    assert accounts.revoke_devices(cfg, DEMO_EMAIL, revoked_id) == 1
    _fill_failures(stack, source, [ATTACKER_IP])
    calls: list[str] = []
    from chalicelib import aws

    aws.client("dynamodb").meta.events.register(
        "before-call.dynamodb", lambda event_name, **_: calls.append(1)
    )
    cases = {
        "forged": codes.new_device_token(),
        "other account's": other_token,
        "revoked": revoked,
        "replaced by its own next sign-in": rotated_away,
        "empty": "",
        "long junk": "x" * 5000,
        "lone surrogate": "\ud800",
    }
    results = {}
    for name, token in cases.items():
        with_token, without, count = _no_token_answer(stack, source, token, calls)
        results[name] = (_same(with_token, without), with_token.status_code, count)
    # expired: 30 days on, the shared bucket filled again
    clock.advance(cfg.device_ttl_days * 86400 + 1)
    _fill_failures(stack, source, [ATTACKER_IP])
    results["expired"] = (_same(*_no_token_answer(stack, source, expired)[:2]), 429, None)
    # a new password revokes every device
    set_password(cfg, DEMO_EMAIL, DEMO_PASSWORD)
    clock.advance(2 * HOUR)
    fresh = _trust(stack, clock)
    set_password(cfg, DEMO_EMAIL, DEMO_PASSWORD)
    _fill_failures(stack, source, [ATTACKER_IP])
    results["after a new password"] = (_same(*_no_token_answer(stack, source, fresh)[:2]), 429, None)
    # disabling (and enabling again) revokes too
    clock.advance(2 * HOUR)
    fresh = _trust(stack, clock)
    accounts.set_disabled(cfg, DEMO_EMAIL, True)
    accounts.set_disabled(cfg, DEMO_EMAIL, False)
    _fill_failures(stack, source, [ATTACKER_IP])
    results["after disable and enable"] = (_same(*_no_token_answer(stack, source, fresh)[:2]), 429, None)
    bad_type = _sign_in(stack, device_token=12345)
    attack_log(
        "devices: forged, expired, revoked, other account's tokens",
        2 * len(results) + 1,
        sum(not same for same, _, _ in results.values()),
        ", ".join(f"{name}: {status}" for name, (_, status, _) in results.items()),
    )
    assert all(same for same, _, _ in results.values()), results
    assert all(status == 429 for _, status, _ in results.values()), results
    # the same work: the user read and the refused slot, whatever the token
    assert {count for _, _, count in results.values() if count is not None} == {2}
    assert stale  # the older devices of the owner are still listed
    assert check_error(bad_type, 400)["error"] == "invalid_request"
    assert "device_token" in bad_type.data["message"]


def test_devices_are_listed_and_revoked_one_or_all(stack, clock):
    cfg = stack.app_module.SETTINGS
    first = _trust(stack, clock)
    second = _trust(stack, clock)
    rows = accounts.list_devices(cfg, DEMO_EMAIL)
    assert [row["label"] for row in rows] == ["Chrome on Linux", "Chrome on Linux"]
    assert all(row["expires_at"] - row["created_at"] == cfg.device_ttl_days * 86400 for row in rows)
    assert accounts.revoke_devices(cfg, DEMO_EMAIL, codes.device_hash(first)[:16]) == 1
    assert [row["id"] for row in accounts.list_devices(cfg, DEMO_EMAIL)] == [codes.device_hash(second)[:16]]
    assert accounts.revoke_devices(cfg, DEMO_EMAIL, "0" * 16) == 0
    assert accounts.revoke_devices(cfg, DEMO_EMAIL, None) == 1
    assert accounts.list_devices(cfg, DEMO_EMAIL) == []
    with pytest.raises(accounts.NoSuchAccount):
        accounts.list_devices(cfg, "nobody@example.com")


def test_a_sign_in_from_a_device_replaces_its_token_and_keeps_the_device(stack, clock):
    cfg = stack.app_module.SETTINGS
    first = _trust(stack, clock)
    created = accounts.list_devices(cfg, DEMO_EMAIL)[0]["created_at"]
    clock.advance(HOUR)
    second = _trust(stack, clock, device_token=first)
    rows = accounts.list_devices(cfg, DEMO_EMAIL)
    assert second != first and len(rows) == 1
    assert rows[0]["id"] == codes.device_hash(second)[:16]
    assert rows[0]["created_at"] == created and rows[0]["last_used_at"] > created


def test_an_account_keeps_at_most_twenty_devices(stack, clock):
    from chalicelib.devices import MAX_DEVICES

    cfg = stack.app_module.SETTINGS
    made = []
    for _ in range(MAX_DEVICES + 3):
        made.append(_trust(stack, clock))
        clock.advance(HOUR)  # the sends of each hour stay under the caps
    ids = {row["id"] for row in accounts.list_devices(cfg, DEMO_EMAIL)}
    assert len(ids) == MAX_DEVICES
    assert ids == {codes.device_hash(token)[:16] for token in made[-MAX_DEVICES:]}  # the oldest went


# ----------------------------------------------------------------- races with one device


def test_parallel_bursts_with_one_device_token_cannot_exceed_its_caps(stack, clock, atomic_moto, attack_log):
    cfg = dataclasses.replace(stack.app_module.SETTINGS, resend_cooldown_seconds=0)
    token = _trust_direct(cfg, stack)
    parallel = 30

    def run(body):
        barrier = threading.Barrier(parallel)

        def one(index: int):
            barrier.wait()
            try:
                return challenges.start(cfg, body, f"203.0.113.{index}")
            except errors.OtpError as error:
                return error

        with ThreadPoolExecutor(max_workers=parallel) as pool:
            return [
                type(r).__name__ if not isinstance(r, dict) else "ok" for r in pool.map(one, range(parallel))
            ]

    wrong = run({"email": DEMO_EMAIL, "password": "wrong", "device_token": token})
    clock.advance(3 * HOUR)
    right = run({"email": DEMO_EMAIL, "password": DEMO_PASSWORD, "device_token": token})
    fails, sends = cfg.failed_sign_ins_per_device_per_hour, cfg.sends_per_device_per_hour
    attack_log(
        "devices: 30 parallel sign-ins with one device token, twice",
        2 * parallel,
        max(0, wrong.count("InvalidCredentials") - fails) + max(0, right.count("ok") - sends),
        f"wrong passwords: {wrong.count('InvalidCredentials')} checked (cap {fails}); "
        f"right: {right.count('ok')} codes (cap {sends})",
    )
    assert wrong.count("InvalidCredentials") == fails
    assert wrong.count("RateLimited") == parallel - fails
    assert right.count("ok") == sends
    assert right.count("RateLimited") == parallel - sends


def _trust_direct(cfg, stack) -> str:
    started = challenges.start(cfg, {"email": DEMO_EMAIL, "password": DEMO_PASSWORD}, OWNER_IP)
    code = stack.latest_code()
    return challenges.verify(cfg, {"session_id": started["session_id"], "code": code}, BROWSER)[
        "device_token"
    ]


def test_a_device_is_not_trusted_after_its_account_changed_during_the_sign_in(stack, clock):
    cfg = stack.app_module.SETTINGS
    started = _sign_in(stack)
    code = stack.latest_code()
    # the version moves on without ending this session (as a racing change would, before it closes them)
    user = store.get_user(cfg.table_name, DEMO_EMAIL)
    store.save_user(cfg.table_name, DEMO_EMAIL, {"disabled": False}, int(clock.now), False, "unused")
    assert store.get_user(cfg.table_name, DEMO_EMAIL)["version"] == user["version"] + 1
    answer = stack.post("/otp/verify", {"session_id": started.data["session_id"], "code": code})
    assert check_error(answer, 410)["reason"] == "expired"
    assert accounts.list_devices(cfg, DEMO_EMAIL) == []
