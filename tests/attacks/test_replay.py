"""Replay: every way of using a code or session again is refused."""

from __future__ import annotations

from devstack.environment import DEMO_EMAIL
from tests.attacks.helpers import check_error, wrong_codes
from tests.support import verified_as


def _verify(stack, session_id: str, code: str):
    return stack.post("/otp/verify", {"session_id": session_id, "code": code})


def test_used_code_is_refused(stack, attack_log):
    session_id = stack.sign_in().data["session_id"]
    code = stack.latest_code()
    assert _verify(stack, session_id, code).status_code == 200
    replays = [_verify(stack, session_id, code) for _ in range(20)]
    through = sum(r.status_code == 200 for r in replays)
    attack_log("replay: used code", len(replays), through, "410 used")
    assert through == 0
    assert {check_error(r, 410)["reason"] for r in replays} == {"used"}
    # a used session cannot be revived by asking for a new code either
    assert check_error(stack.post("/otp/resend", {"session_id": session_id}), 410)["reason"] == "used"


def test_code_of_a_superseded_send_is_refused(stack, clock, attack_log):
    cfg = stack.app_module.SETTINGS
    session_id = stack.sign_in().data["session_id"]
    old = [stack.latest_code()]
    for _ in range(2):
        clock.advance(cfg.resend_cooldown_seconds)
        assert stack.post("/otp/resend", {"session_id": session_id}).status_code == 200
        old.append(stack.latest_code())
    current = old.pop()
    stale = [code for code in dict.fromkeys(old) if code != current]  # equal codes: 1 in 10^6
    answers = [_verify(stack, session_id, code) for code in stale]
    through = sum(r.status_code == 200 for r in answers)
    attack_log("replay: code from before a resend", len(answers), through, "401, attempt counted")
    assert through == 0
    for answer in answers:
        check_error(answer, 401)
    assert _verify(stack, session_id, current).status_code == 200


def test_code_after_expiry_is_refused(stack, clock, attack_log):
    cfg = stack.app_module.SETTINGS
    opened = clock.now
    late = stack.sign_in().data["session_id"]
    late_code = stack.latest_code()
    clock.advance(cfg.resend_cooldown_seconds)
    in_time = stack.sign_in().data["session_id"]
    in_time_code = stack.latest_code()

    clock.now = opened + cfg.ttl_seconds  # exactly the late one's expiry
    tries = [_verify(stack, late, late_code)]
    # the control: one second before its own expiry, the other code still works
    clock.now = opened + cfg.resend_cooldown_seconds + cfg.ttl_seconds - 1
    assert _verify(stack, in_time, in_time_code).status_code == 200
    clock.now = opened + cfg.ttl_seconds + 3600  # DynamoDB's TTL may not have deleted the item yet
    tries.append(_verify(stack, late, late_code))
    tries.append(stack.post("/otp/resend", {"session_id": late}))
    through = sum(r.status_code == 200 for r in tries)
    attack_log("replay: code after expiry", len(tries), through, f"410 expired at {cfg.ttl_seconds} s")
    assert through == 0
    assert {check_error(r, 410)["reason"] for r in tries} == {"expired"}


def test_session_of_another_email_is_refused(stack, clock, attack_log):
    from chalicelib import settings
    from ops.users import add_user

    cfg = stack.app_module.SETTINGS
    add_user(settings.load(), "victim@example.com", "victim-password")
    victim = stack.sign_in("victim@example.com", "victim-password").data["session_id"]
    victim_code = stack.latest_code("victim@example.com")
    mine = stack.sign_in().data["session_id"]
    my_code = stack.latest_code()

    tries = []
    if my_code != victim_code:  # equal codes: 1 in 10^6
        tries.append(_verify(stack, victim, my_code))  # my code on their session
        tries.append(_verify(stack, mine, victim_code))  # their code on my session
    # their session id with my email in the body: extra fields are ignored, not trusted
    tries.append(
        stack.post(
            "/otp/verify", {"session_id": victim, "code": wrong_codes(victim_code, 1)[0], "email": DEMO_EMAIL}
        )
    )
    through = sum(r.status_code == 200 for r in tries)
    attack_log("replay: session of another email", len(tries), through, "401, no cross-over")
    assert through == 0
    for answer in tries:
        check_error(answer, 401)
    ok = _verify(stack, mine, my_code)
    assert verified_as(ok.data) == DEMO_EMAIL
    assert verified_as(_verify(stack, victim, victim_code).data) == "victim@example.com"
    assert cfg.max_attempts > 2  # the cross-over guesses above did not lock either session
