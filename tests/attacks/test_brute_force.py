"""Brute force: guessing codes, on one session and across every session an
attacker who knows the password can open.

The bound printed here is computed from what the app really allowed, not
from the settings alone: the attacker below opens every session the send
limits let through in one guessing hour, guesses on each until refused, and
the counts go into 1 - (1 - a/10^d)^s.
"""

from __future__ import annotations

import dataclasses
import math

from chalicelib.settings import Settings
from devstack.testenv import sent_mail
from tests.attacks.helpers import check_error, success_probability, wrong_codes

HOUR = 3600


def test_guessing_one_session_stops_at_max_attempts(stack, attack_log):
    cfg = stack.app_module.SETTINGS
    session_id = stack.sign_in().data["session_id"]
    right = stack.latest_code()
    guesses = wrong_codes(right, 200, cfg.code_length)
    # the right code after the limit, and again between later guesses
    guesses.insert(cfg.max_attempts, right)
    guesses.insert(100, right)
    statuses = []
    remaining = []
    for guess in guesses:
        response = stack.post("/otp/verify", {"session_id": session_id, "code": guess})
        statuses.append(response.status_code)
        if response.status_code == 401:
            remaining.append(check_error(response, 401)["attempts_remaining"])
        elif response.status_code == 410:
            assert check_error(response, 410)["reason"] == "too_many_attempts"
    through = statuses.count(200)
    attack_log(
        "brute force: one session",
        len(guesses),
        through,
        f"{statuses.count(401)} counted, then 410 (OTP_MAX_ATTEMPTS={cfg.max_attempts})",
    )
    assert through == 0
    assert statuses[: cfg.max_attempts] == [401] * cfg.max_attempts
    assert set(statuses[cfg.max_attempts :]) == {410}
    assert remaining == list(range(cfg.max_attempts - 1, -1, -1))


def test_the_last_allowed_attempt_still_works(stack):
    """The control for the test above: the limit is not off by one."""
    cfg = stack.app_module.SETTINGS
    session_id = stack.sign_in().data["session_id"]
    right = stack.latest_code()
    for guess in wrong_codes(right, cfg.max_attempts - 1, cfg.code_length):
        check_error(stack.post("/otp/verify", {"session_id": session_id, "code": guess}), 401)
    assert stack.post("/otp/verify", {"session_id": session_id, "code": right}).status_code == 200


def test_resend_does_not_reset_the_attempt_counter(stack, clock, attack_log):
    cfg = stack.app_module.SETTINGS
    session_id = stack.sign_in().data["session_id"]
    first = stack.latest_code()
    tries = 0
    through = 0
    spent = cfg.max_attempts // 2 + 1
    for guess in wrong_codes(first, spent, cfg.code_length):
        check_error(stack.post("/otp/verify", {"session_id": session_id, "code": guess}), 401)
        tries += 1
    clock.advance(cfg.resend_cooldown_seconds)
    assert stack.post("/otp/resend", {"session_id": session_id}).status_code == 200
    second = stack.latest_code()
    left = []
    for guess in wrong_codes(second, cfg.max_attempts - spent, cfg.code_length):
        left.append(check_error(stack.post("/otp/verify", {"session_id": session_id, "code": guess}), 401))
        tries += 1
    final = stack.post("/otp/verify", {"session_id": session_id, "code": second})
    tries += 1
    through += final.status_code == 200
    clock.advance(cfg.resend_cooldown_seconds)
    again = stack.post("/otp/resend", {"session_id": session_id})
    tries += 1
    through += again.status_code == 200
    attack_log("brute force: resend to reset attempts", tries, through, "resends keep the count")
    assert [body["attempts_remaining"] for body in left] == list(range(cfg.max_attempts - spent - 1, -1, -1))
    assert check_error(final, 410)["reason"] == "too_many_attempts"
    assert check_error(again, 410)["reason"] == "too_many_attempts"


# ----------------------------------------------------------------- the hourly bound


def _slots(length: int, spacing: int) -> int:
    """How many sends fit in ``length`` seconds (half-open) when sends are ``spacing`` apart."""
    if length <= 0:
        return 0
    return length if spacing == 0 else math.ceil(length / spacing)


def worst_window(window: int, limit: int, cooldown: int) -> tuple[int, int, tuple[int, int, int]]:
    """The most sends to one address in ``window`` seconds under the app's rules.

    The rules (chalicelib.store): consecutive sends at least ``cooldown``
    apart, and for every clock hour h, sends(h-1) + sends(h) <= limit. A
    window under two hours long starting ``o`` seconds into a clock hour
    covers the end of that hour, (part of) the next, and maybe the start of
    a third. Returns (most sends, best offset o, sends per covered hour).
    """
    assert window < 2 * HOUR
    best = (0, 0, (0, 0, 0))
    for offset in range(HOUR):
        part0 = HOUR - offset
        part1 = min(HOUR, window - part0)
        part2 = window - part0 - part1
        caps = (_slots(part0, cooldown), _slots(part1, cooldown), _slots(part2, cooldown))
        for n1 in range(min(limit, caps[1]) + 1):
            n0 = min(caps[0], limit - n1)
            n2 = min(caps[2], limit - n1)
            if n0 + n1 + n2 > best[0]:
                best = (n0 + n1 + n2, offset, (n0, n1, n2))
    return best


def test_send_model_matches_the_documented_rule():
    # any 60 minutes: at most the limit
    assert worst_window(HOUR, 10, 30)[0] == 10
    assert worst_window(HOUR, 3, 0)[0] == 3
    # a window longer than an hour may see more: that is what the bound below accounts for
    assert worst_window(HOUR + 300 - 1, 10, 30)[0] == 15


def test_sessions_per_hour_bound_the_chance_of_guessing_a_code(stack, clock, attack_log):
    """Open every session the limits let through and guess on each until refused.

    A guessing hour [G, G+60 min) can use every session whose code is still
    valid in it: those opened from G - TTL on. The worst schedule of sends
    comes from the rule model above; it is played against the app, which
    must accept every send of it and refuse one more, and each session is
    then guessed until the app refuses.
    """
    cfg = stack.app_module.SETTINGS
    defaults = {
        f.name: f.default for f in dataclasses.fields(Settings) if f.default is not dataclasses.MISSING
    }
    assert {name: getattr(cfg, name) for name in defaults} == defaults  # the figure is for the defaults
    ttl, cooldown, limit = cfg.ttl_seconds, cfg.resend_cooldown_seconds, cfg.sends_per_email_per_hour
    window = HOUR + ttl - 1  # opens in (G - ttl, G + 3600): codes still valid during the hour
    most, offset, (n0, n1, n2) = worst_window(window, limit, cooldown)
    base = 1_900_000_000 // HOUR * HOUR + 10 * HOUR
    start = base + offset  # first second a session can open and still be valid in the guessing hour
    guess_hour = start + ttl - 1
    times = [start + i * cooldown for i in range(n0)]
    times += [base + HOUR + 600 + i * cooldown for i in range(n1)]
    times += [base + 2 * HOUR + i * cooldown for i in range(n2)]
    assert len(times) == most and all(start <= t < start + window for t in times)

    # One more send inside the window, in the middle hour, where the cooldown leaves room:
    # the model says the hourly rule refuses it; the app must agree.
    probe = base + HOUR + 600 + n1 * cooldown
    assert n0 + n1 == limit
    sessions = []
    probes = []
    codes_by_session = {}
    for at in sorted([*times, probe]):
        clock.now = at
        response = stack.sign_in()
        if at == probe:
            probes.append(response)
            continue
        assert response.status_code == 200, (at - base, response.body)
        sessions.append((at, response.data["session_id"]))
        codes_by_session[response.data["session_id"]] = stack.latest_code()
    check_error(probes[0], 429)
    assert len(sent_mail()) == len(sessions)

    counted = 0
    through = 0
    tries = 0
    for at, session_id in sessions:
        clock.now = max(at, guess_hour)
        assert clock.now < at + ttl  # still valid inside the guessing hour
        assert guess_hour <= clock.now < guess_hour + HOUR
        for guess in wrong_codes(codes_by_session[session_id], cfg.max_attempts + 3, cfg.code_length):
            response = stack.post("/otp/verify", {"session_id": session_id, "code": guess})
            tries += 1
            through += response.status_code == 200
            if response.status_code == 401:
                counted += 1
            else:
                check_error(response, 410)
    per_session = counted / len(sessions)
    chance = success_probability(cfg.max_attempts, len(sessions), cfg.code_length)
    opened_per_60 = worst_window(HOUR, limit, cooldown)[0]
    chance_60 = success_probability(cfg.max_attempts, opened_per_60, cfg.code_length)
    note = (
        f"brute force, best chance per email per hour (defaults): {len(sessions)} sessions usable in one hour"
        f" x {cfg.max_attempts} attempts, 1-(1-{cfg.max_attempts}/10^{cfg.code_length})^{len(sessions)}"
        f" = {chance:.3e} (1 in {1 / chance:,.0f}); counting only sessions opened inside the hour:"
        f" {opened_per_60} -> {chance_60:.3e}; must stay below 1e-4"
    )
    attack_log(
        "brute force: every session in one hour",
        tries + len(times) + 1,
        through + (probes[0].status_code == 200),
        f"{len(sessions)} sessions x {per_session:g} guesses: p={chance:.2e}/h",
        note=note,
    )
    assert through == 0
    assert counted == cfg.max_attempts * len(sessions)
    assert chance_60 <= chance < 1e-4


def test_an_attacker_at_full_speed_never_beats_the_hourly_limit(stack, clock, attack_log):
    """Ask for a session as often as the cooldown allows for two and a half hours.

    While only the cooldown holds it back, the attacker asks every cooldown;
    once the hourly limit answers, it probes every five minutes, one second
    before the ``Retry-After`` it was given (must be refused) and exactly at
    it (must be let through). Measures the sessions opened in any 60 minutes.
    """
    cfg = stack.app_module.SETTINGS
    cooldown = max(cfg.resend_cooldown_seconds, 1)
    begin = 1_900_000_000 // HOUR * HOUR + 20 * HOUR - 437  # starts 7 minutes before an hour ends
    end = begin + 150 * 60
    opened: list[int] = []
    early = 0  # sends let through before the Retry-After given
    late = 0  # sends refused at the Retry-After given
    tries = 0
    at = begin
    while at < end:
        clock.now = at
        response = stack.sign_in()
        tries += 1
        if response.status_code == 200:
            opened.append(at)
            at += cooldown
            continue
        free_at = at + check_error(response, 429)["retry_after"]
        for probe in range(at + 300, free_at - 1, 300):
            clock.now = probe
            early += stack.sign_in().status_code == 200
            tries += 1
        clock.now = free_at - 1
        early += stack.sign_in().status_code == 200
        tries += 1
        at = free_at
        if at < end:
            clock.now = at
            answer = stack.sign_in()
            tries += 1
            if answer.status_code == 200:
                opened.append(at)
            else:
                late += 1
            at += cooldown
    busiest = max(sum(1 for t in opened if s <= t < s + HOUR) for s in opened)
    attack_log(
        "send limit: full-speed attacker, 150 min",
        tries,
        max(0, busiest - cfg.sends_per_email_per_hour) + early,
        f"{len(opened)} sessions, at most {busiest} in any 60 min; Retry-After exact",
    )
    assert early == 0
    assert late == 0  # Retry-After is not longer than needed either
    assert busiest == cfg.sends_per_email_per_hour  # reached, never passed
    assert len(opened) == 2 * cfg.sends_per_email_per_hour


def test_password_guessing_stops_at_the_failed_sign_in_limit(stack, clock, attack_log):
    """Guessing passwords for one address: after the limit, every try is 429
    before any hash is computed, even with the right password."""
    limit = Settings.__dataclass_fields__["failed_sign_ins_per_email_per_hour"].default
    clock.now = 1_900_000_000 // 3600 * 3600 + 10
    answers = [stack.sign_in(password=f"guess-{i}").status_code for i in range(limit + 30)]
    right = stack.sign_in()
    got_in = int(right.status_code == 200)
    attack_log(
        "brute force: password guessing, one address",
        len(answers) + 1,
        got_in,
        f"{answers.count(401)} x 401 then {answers.count(429)} x 429; right password refused too",
    )
    assert answers == [401] * limit + [429] * 30
    check_error(right, 429)
    clock.advance(2 * 3600)
    assert stack.sign_in().status_code == 200  # the owner gets back in once the window passes
