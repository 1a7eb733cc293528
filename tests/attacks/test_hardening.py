"""The holes a security review found, each tried against the service.

1. racing the failed sign-in caps; 2. sessions that outlive their account
(or go on for hours through resends); 3. a rotation of the code key; 4. mail
sent twice, mail that blocks the shard, mail of codes that cannot work.
Every test records its row in the attack table before it asserts.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ReadTimeoutError

from chalicelib import challenges, codes, credentials, errors, keys, settings, store
from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from devstack.testenv import TEST_ENV, sent_mail
from tests.attacks.helpers import Fault, check_error, mail_counts, query_error, request_text

PARALLEL = 30
CAP = 5


def _parallel(count: int, fn):
    """``fn(i)`` in ``count`` threads released together; errors are returned, not raised."""
    barrier = threading.Barrier(count)

    def run(index: int):
        barrier.wait()
        try:
            return fn(index)
        except errors.OtpError as error:
            return error

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


@pytest.fixture
def hashes(monkeypatch) -> list[str]:
    """Every argon2 verification the service runs, by the hash it checked against."""
    real = credentials._matches
    seen: list[str] = []
    lock = threading.Lock()

    def counting(encoded: str, password: str) -> bool:
        with lock:
            seen.append(encoded)
        return real(encoded, password)

    monkeypatch.setattr(credentials, "_matches", counting)
    return seen


def _all_closed(attack_log, label: str, responses, reason: str) -> None:
    """Record the row, then require every answer to be 410 with ``reason``."""
    statuses = [r.status_code for r in responses]
    attack_log(label, len(responses), statuses.count(200), ", ".join(map(str, statuses)))
    for response in responses:
        assert check_error(response, 410)["reason"] == reason


def _kinds(results) -> dict[str, int]:
    out: dict[str, int] = {}
    for result in results:
        name = type(result).__name__ if not isinstance(result, dict) else "ok"
        out[name] = out.get(name, 0) + 1
    return out


# ----------------------------------------------------------------- 1. racing the caps


def test_parallel_wrong_passwords_for_one_address_get_exactly_the_cap(stack, atomic_moto, hashes, attack_log):
    cfg = dataclasses.replace(stack.app_module.SETTINGS, failed_sign_ins_per_email_per_hour=CAP)
    body = {"email": DEMO_EMAIL, "password": "wrong-password"}
    results = _parallel(PARALLEL, lambda i: challenges.start(cfg, body, f"203.0.113.{i}"))
    kinds = _kinds(results)
    right = _parallel(
        1, lambda i: challenges.start(cfg, {"email": DEMO_EMAIL, "password": DEMO_PASSWORD}, "x")
    )[0]
    attack_log(
        "1. race: 30 parallel wrong passwords, one address (cap 5)",
        PARALLEL + 1,
        max(len(hashes) - CAP, 0) + int(isinstance(right, dict)),
        f"{len(hashes)} password checks, {kinds}",
    )
    assert kinds == {"InvalidCredentials": CAP, "RateLimited": PARALLEL - CAP}
    assert len(hashes) == CAP  # the refused ones never reached argon2
    assert isinstance(right, errors.RateLimited)  # the right password does not get in after the cap


def test_right_password_after_the_cap_is_refused_without_a_hash(stack, hashes):
    cfg = dataclasses.replace(stack.app_module.SETTINGS, failed_sign_ins_per_email_per_hour=CAP)
    for _ in range(CAP):
        with pytest.raises(errors.InvalidCredentials):
            challenges.start(cfg, {"email": DEMO_EMAIL, "password": "wrong"}, "203.0.113.1")
    with pytest.raises(errors.RateLimited) as refused:
        challenges.start(cfg, {"email": DEMO_EMAIL, "password": DEMO_PASSWORD}, "203.0.113.1")
    assert "failed sign-ins for this address" in refused.value.message
    assert len(hashes) == CAP


def test_parallel_wrong_passwords_from_one_network_get_exactly_the_cap(
    stack, atomic_moto, hashes, attack_log
):
    cfg = dataclasses.replace(stack.app_module.SETTINGS, failed_sign_ins_per_ip_per_hour=CAP)
    results = _parallel(
        PARALLEL,
        lambda i: challenges.start(cfg, {"email": f"user{i}@example.com", "password": "x"}, "203.0.113.9"),
    )
    kinds = _kinds(results)
    attack_log(
        "1. race: 30 parallel wrong passwords, one IP (cap 5)",
        PARALLEL,
        max(len(hashes) - CAP, 0),
        f"{len(hashes)} password checks",
    )
    assert kinds == {"InvalidCredentials": CAP, "RateLimited": PARALLEL - CAP}
    assert len(hashes) == CAP


def test_a_right_password_gives_its_slot_back(stack, hashes):
    cfg = dataclasses.replace(stack.app_module.SETTINGS, failed_sign_ins_per_email_per_hour=2)
    with pytest.raises(errors.InvalidCredentials):
        challenges.start(cfg, {"email": DEMO_EMAIL, "password": "wrong"}, "203.0.113.1")
    assert "session_id" in challenges.start(
        cfg, {"email": DEMO_EMAIL, "password": DEMO_PASSWORD}, "203.0.113.1"
    )
    # one failure counted, the success gave its slot back: one more wrong password still gets a check
    with pytest.raises(errors.InvalidCredentials):
        challenges.start(cfg, {"email": DEMO_EMAIL, "password": "wrong"}, "203.0.113.1")
    with pytest.raises(errors.RateLimited):
        challenges.start(cfg, {"email": DEMO_EMAIL, "password": "wrong"}, "203.0.113.1")
    assert len(hashes) == 3


# ----------------------------------------------------------------- 2. sessions and the account


# settings.load() here, not inside a request: chalice.test applies the stage's variables there.


def _disable(cfg: settings.Settings, email: str = DEMO_EMAIL) -> None:
    from ops.users import set_disabled

    set_disabled(cfg, email, True)


def _new_password(cfg: settings.Settings, email: str = DEMO_EMAIL) -> None:
    from ops.users import add_user

    add_user(cfg, email, "a-new-password")


@pytest.mark.parametrize("change", [_disable, _new_password], ids=["disabled", "new-password"])
def test_an_account_change_ends_its_open_sessions(stack, clock, change, attack_log):
    first = stack.sign_in().data["session_id"]
    code = stack.latest_code()
    clock.advance(31)
    second = stack.sign_in().data["session_id"]
    change(settings.load())
    clock.advance(31)
    results = [
        stack.post("/otp/verify", {"session_id": first, "code": code}),
        stack.post("/otp/resend", {"session_id": first}),
        stack.post("/otp/resend", {"session_id": second}),
    ]
    label = f"2. session after the account was {change.__name__.strip('_').replace('_', ' ')}"
    _all_closed(attack_log, label, results, "expired")


def test_a_sign_in_racing_an_account_change_opens_no_session(stack, monkeypatch):
    """The account is disabled while the sign-in hashes: its session write must fail."""
    real, cfg = credentials.check, settings.load()

    def check_then_disable(user, password):
        ok = real(user, password)
        _disable(cfg)
        return ok

    monkeypatch.setattr(credentials, "check", check_then_disable)
    check_error(stack.sign_in(), 401)
    stack.pump()
    assert sent_mail() == []


def test_resends_cannot_stretch_a_session_past_its_life(stack, clock, attack_log):
    cfg = stack.app_module.SETTINGS
    session_id = stack.sign_in().data["session_id"]
    stack.pump()
    statuses = []
    started = clock.now
    while clock.now - started < cfg.session_max_seconds + 120:
        clock.advance(cfg.resend_cooldown_seconds + 60)
        response = stack.post("/otp/resend", {"session_id": session_id})
        statuses.append(response.status_code)
        if response.status_code == 200:
            assert response.data["expires_in"] <= started + cfg.session_max_seconds - clock.now
    code = stack.latest_code()
    verify = stack.post("/otp/verify", {"session_id": session_id, "code": code})
    attack_log(
        "2. resend every 90 s to stretch one session",
        len(statuses) + 1,
        int(verify.status_code == 200),
        f"{statuses.count(200)} resends, then 410 after {cfg.session_max_seconds} s",
    )
    assert statuses.count(200) >= 2 and statuses[-1] == 410
    assert check_error(verify, 410)["reason"] == "expired"


# ----------------------------------------------------------------- 3. key rotation


def _rotate() -> int:
    """A new version of the code key, as the rotation in docs/deploy.md makes it."""
    import base64
    import secrets

    from chalicelib import aws

    response = aws.client("ssm").put_parameter(
        Name=TEST_ENV["OTP_KEY_PARAMETER"],
        Value=base64.b64encode(secrets.token_bytes(32)).decode(),
        Type="SecureString",
        Overwrite=True,
    )
    return int(response["Version"])


@pytest.fixture
def key_clock(monkeypatch):
    """The key cache's own clock, to let a warm container's idea of the current version age."""
    now = [0.0]
    monkeypatch.setattr(keys, "monotonic", lambda: now[0])
    return now


def _session(stack, session_id: str) -> dict:
    return store.get_session(TEST_ENV["OTP_TABLE_NAME"], codes.session_hash(session_id))


def test_rotation_between_sign_in_and_verify_keeps_the_mailed_code(stack, key_clock, clock, attack_log):
    session_id = stack.sign_in().data["session_id"]
    version = _rotate()
    key_clock[0] += keys.CURRENT_SECONDS + 1  # the warm container learns the new version
    code = stack.latest_code()  # mailed after the rotation: still the session's own version
    assert _session(stack, session_id)["key_version"] == version - 1
    response = stack.post("/otp/verify", {"session_id": session_id, "code": code})
    attack_log("3. key rotated between sign-in and verify", 1, int(response.status_code != 200), "code works")
    assert response.status_code == 200, response.body
    clock.advance(60)
    later = stack.sign_in().data["session_id"]
    assert _session(stack, later)["key_version"] == version


def test_rotation_after_use_cannot_reopen_the_session(stack, key_clock, clock, attack_log):
    session_id = stack.sign_in().data["session_id"]
    code = stack.latest_code()
    assert stack.post("/otp/verify", {"session_id": session_id, "code": code}).status_code == 200
    _rotate()
    keys.forget()  # a new container: only the new version is current
    clock.advance(60)
    tries = [
        stack.post("/otp/resend", {"session_id": session_id}),
        stack.post("/otp/verify", {"session_id": session_id, "code": code}),
    ]
    _all_closed(attack_log, "3. key rotated after use: resend and verify again", tries, "used")


def test_the_current_key_version_is_cached_for_minutes_only(stack, key_clock):
    from chalicelib import aws

    reads = []
    aws.client("ssm").meta.events.register("before-call.ssm.GetParameter", lambda **kw: reads.append(1))
    keys.current_key(TEST_ENV["OTP_KEY_PARAMETER"])
    keys.current_key(TEST_ENV["OTP_KEY_PARAMETER"])
    key_clock[0] += keys.CURRENT_SECONDS - 1
    keys.current_key(TEST_ENV["OTP_KEY_PARAMETER"])
    before = len(reads)
    key_clock[0] += 2
    keys.current_key(TEST_ENV["OTP_KEY_PARAMETER"])
    assert 60 <= keys.CURRENT_SECONDS <= 600
    assert len(reads) == before + 1


# ----------------------------------------------------------------- 4. mail


class LostAnswer:
    """SES takes the message (moto records it), then the answer is lost: a read timeout.

    Registered first on the operation's ``before-send``: it hands the request
    to moto itself, then raises, so botocore's own retry handling sees a
    timeout exactly as it would from AWS.
    """

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, request, **_):
        from moto.core.models import botocore_stubber

        self.calls += 1
        botocore_stubber.process_request(request)  # SES accepted and sent it
        raise ReadTimeoutError(endpoint_url=request.url)

    def __enter__(self) -> LostAnswer:
        from chalicelib import aws

        aws.client("ses").meta.events.register_first("before-send.ses.SendRawEmail", self)
        return self

    def __exit__(self, *_) -> None:
        from chalicelib import aws

        aws.client("ses").meta.events.unregister("before-send.ses.SendRawEmail", self)


def _deliver(stack, event) -> bool:
    """Run the stream handler as Lambda does; True when it raised (Lambda would retry)."""
    from chalicelib import delivery

    try:
        stack.app_module.send_code(event, None)
    except delivery.DeliveryFailed:
        return True
    return False


def test_a_lost_ses_answer_sends_one_mail(stack, attack_log):
    from devstack.streams import lambda_event

    stack.sign_in()
    event = lambda_event(stack.stream_records(), stack.stream_arn)
    with LostAnswer() as lost:
        retried = [_deliver(stack, event) for _ in range(3)]  # delivered again, as a slow retry might
    counts = mail_counts()
    attack_log(
        "4. SES answer lost (read timeout), record delivered 3 times",
        3,
        max(counts.get(DEMO_EMAIL, 0) - 1, 0),
        f"{lost.calls} SendRawEmail, {counts.get(DEMO_EMAIL, 0)} mail",
    )
    assert lost.calls == 1  # neither botocore nor the mailer sent it again
    assert retried == [False, False, False]  # nothing for Lambda to retry either
    assert counts == {DEMO_EMAIL: 1}


def test_a_permanent_refusal_is_final_and_does_not_hold_up_others(stack, attack_log, caplog):
    from devstack.streams import lambda_event
    from ops.users import add_user

    add_user(settings.load(), "sandboxed@example.com", DEMO_PASSWORD)
    stack.sign_in(email="sandboxed@example.com")
    stack.sign_in()
    event = lambda_event(stack.stream_records(), stack.stream_arn)
    fault = Fault(
        "ses",
        "SendRawEmail",
        query_error("MessageRejected"),
        when=lambda request: "sandboxed%40example.com" in request_text(request),
    ).install()
    try:
        retried = [_deliver(stack, event) for _ in range(3)]
    finally:
        fault.remove()
    counts = mail_counts()
    attack_log(
        "4. SES refuses one address for good (MessageRejected)",
        3,
        sum(retried) + fault.refused - 1,
        f"refused once, not retried; other mail {counts}",
    )
    assert retried == [False, False, False]  # a final refusal does not hold up the shard
    assert fault.refused == 1  # tried once, never again
    assert counts == {DEMO_EMAIL: 1}
    assert "mail refused for good" in caplog.text


def test_codes_that_cannot_work_are_not_mailed(stack, clock, attack_log):
    cfg = stack.app_module.SETTINGS
    superseded = stack.sign_in().data["session_id"]
    clock.advance(cfg.resend_cooldown_seconds)
    assert stack.post("/otp/resend", {"session_id": superseded}).status_code == 200
    clock.advance(cfg.resend_cooldown_seconds)
    locked = stack.sign_in().data["session_id"]
    for _ in range(cfg.max_attempts):
        stack.post("/otp/verify", {"session_id": locked, "code": "0" * cfg.code_length})
    clock.advance(cfg.resend_cooldown_seconds)
    used = stack.sign_in().data["session_id"]
    item = _session(stack, used)
    key = keys.key_at(cfg.key_parameter, item["key_version"])
    code = codes.derive_code(key, item["nonce"], cfg.code_length)
    assert stack.post("/otp/verify", {"session_id": used, "code": code}).status_code == 200
    stack.pump()
    mails = sent_mail()
    attack_log(
        "4. codes that cannot work reach the mailer",
        4,
        len(mails) - 1,
        f"{len(mails)} mailed of 4 challenges (1 superseded, 1 locked, 1 used)",
    )
    assert len(mails) == 1  # only the resent code of the first session
    right = _session(stack, superseded)
    resent = codes.derive_code(keys.key_at(cfg.key_parameter, right["key_version"]), right["nonce"], 6)
    assert mails[0].code == resent


# ----------------------------------------------------------------- 5. bad input and configuration


@pytest.mark.parametrize("field", ["email", "password", "session_id", "code"])
def test_a_lone_surrogate_in_any_string_field_is_400(stack, field, caplog):
    body = {"email": DEMO_EMAIL, "password": DEMO_PASSWORD, "session_id": "abc", "code": "123456"}
    raw = json.dumps(body).replace(json.dumps(body[field]), '"\\ud800"', 1)
    route = "/otp" if field in ("email", "password") else "/otp/verify"
    response = stack.post(route, raw)
    assert check_error(response, 400)["error"] == "invalid_request"
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_a_session_id_with_a_trailing_newline_is_400(stack):
    session_id = stack.sign_in().data["session_id"]
    check_error(stack.post("/otp/resend", {"session_id": session_id + "\n"}), 400)


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        ("*", False),
        ("http://login.example.com", False),
        ("http://127.0.0.1.example.com", False),
        ("https://login.example.com\n", True),  # stripped like every setting
        ("https://login.example.com/path", False),
        ("https://login.example.com", True),
        ("http://localhost:5173", True),
        ("http://127.0.0.1:5173", True),
    ],
)
def test_allowed_origin_must_be_https_or_this_machine(origin, ok):
    env = {**TEST_ENV, "OTP_ALLOWED_ORIGIN": origin}
    if ok:
        assert settings.load(env).allowed_origin == origin.strip()
    else:
        with pytest.raises(settings.ConfigError, match="OTP_ALLOWED_ORIGIN"):
            settings.load(env)


def test_ipv6_addresses_count_by_their_64_prefix(stack, clock, monkeypatch):
    cfg = dataclasses.replace(stack.app_module.SETTINGS, failed_sign_ins_per_ip_per_hour=2)
    body = {"email": DEMO_EMAIL, "password": "wrong"}
    for host in ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9"):
        with pytest.raises(errors.InvalidCredentials):
            challenges.start(cfg, {**body, "email": f"{host.replace(':', '')}@example.com"}, host)
    with pytest.raises(errors.RateLimited) as refused:
        challenges.start(cfg, {**body, "email": "third@example.com"}, "2001:db8:1:2:abcd::1")
    assert "from your network" in refused.value.message
    with pytest.raises(errors.InvalidCredentials):  # another /64 is another network
        challenges.start(cfg, {**body, "email": "fourth@example.com"}, "2001:db8:1:3::1")


def test_each_limit_says_what_happened(stack, clock):
    cfg = stack.app_module.SETTINGS
    assert stack.sign_in().status_code == 200
    cooldown = check_error(stack.sign_in(), 429)["message"]
    assert "wait" in cooldown and "failed" not in cooldown
    tight = dataclasses.replace(cfg, failed_sign_ins_per_email_per_hour=1)
    with pytest.raises(errors.InvalidCredentials):
        challenges.start(tight, {"email": DEMO_EMAIL, "password": "wrong"}, "203.0.113.1")
    with pytest.raises(errors.RateLimited) as failed:
        challenges.start(tight, {"email": DEMO_EMAIL, "password": "wrong"}, "203.0.113.1")
    assert "failed sign-ins" in failed.value.message and "codes" not in failed.value.message
