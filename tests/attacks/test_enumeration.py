"""Enumeration: nothing in the answer to POST /otp tells whether an address
has an account (same status, same body, same work, same time).

No assertion here reads a wall clock, so a busy machine cannot fail them:
the work of each kind of refused sign-in is counted (argon2 verifications
and their cost, AWS calls), and its time is the CPU time of the thread that
serves the request, which leaves out the time spent waiting for a core."""

from __future__ import annotations

import time

import pytest

from devstack.environment import DEMO_EMAIL
from tests.attacks.helpers import check_error, median

ROUNDS = 30
WARM_UP = 5
SERIES = 3
GAP = 0.2  # a skipped hash makes the gap about twenty-fold (see the control test)


def _answer(response) -> tuple[int, bytes, dict[str, str]]:
    return response.status_code, response.body, dict(response.headers)


def test_unknown_email_and_wrong_password_are_indistinguishable(stack, attack_log):
    from chalicelib import settings
    from ops.users import add_user, set_disabled

    add_user(settings.load(), "disabled@example.com", "disabled-password")
    set_disabled(settings.load(), "disabled@example.com", True)
    kinds = {
        "unknown email": ("nobody@example.com", "some-password"),
        "wrong password": (DEMO_EMAIL, "some-password"),
        "disabled user": ("disabled@example.com", "disabled-password"),
    }
    answers = {name: _answer(stack.sign_in(*creds)) for name, creds in kinds.items()}
    distinct = len(set(map(repr, answers.values())))
    for name in kinds:
        check_error(stack.sign_in(*kinds[name]), 401)
    attack_log("enumeration: answers compared", len(answers), distinct - 1, "same status, body, headers")
    assert distinct == 1, answers


def _count_work(monkeypatch) -> dict[str, list]:
    """Record, from here on, the argon2 verifications (with their cost parameters)
    and the AWS operations the app performs; the lists are cleared by the caller."""
    import argon2

    from chalicelib import aws

    work: dict[str, list] = {"argon2": [], "aws": []}
    verify = argon2.PasswordHasher.verify

    def counting_verify(self, encoded, password):
        work["argon2"].append(argon2.extract_parameters(encoded))
        return verify(self, encoded, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting_verify)
    for service in ("dynamodb", "ssm", "ses"):
        aws.client(service).meta.events.register(
            "before-send", lambda event_name, **_: work["aws"].append(event_name.split(".", 1)[1])
        )
    return work


def _work_of(stack, work: dict[str, list], creds: tuple[str, str]) -> tuple[list, list[str]]:
    for found in work.values():
        found.clear()
    check_error(stack.sign_in(*creds), 401)
    return list(work["argon2"]), list(work["aws"])


def test_unknown_email_and_wrong_password_do_the_same_work(stack, monkeypatch, attack_log):
    """What the answer's time is made of, counted rather than timed: each kind of
    refused sign-in runs exactly one argon2 verification with the same cost
    parameters (a dummy hash made with other parameters would be quicker) and
    makes the same AWS calls. Counting cannot be skewed by a busy machine."""
    from chalicelib import credentials, settings
    from ops.users import add_user, set_disabled

    add_user(settings.load(), "disabled@example.com", "disabled-password")
    set_disabled(settings.load(), "disabled@example.com", True)
    work = _count_work(monkeypatch)
    kinds = {
        "unknown email": ("nobody@example.com", "some-password"),
        "wrong password": (DEMO_EMAIL, "some-password"),
        "disabled user": ("disabled@example.com", "disabled-password"),
    }
    done = {name: _work_of(stack, work, creds) for name, creds in kinds.items()}
    hashes, calls = done["wrong password"]
    differ = [name for name, seen in done.items() if seen != (hashes, calls)]
    attack_log(
        "enumeration: work compared",
        len(done),
        len(differ),
        f"{len(hashes)} argon2 verification (m={hashes[0].memory_cost if hashes else '-'} KiB), "
        f"{len(calls)} AWS calls each",
    )
    assert len(hashes) == 1, done
    assert (hashes[0].time_cost, hashes[0].memory_cost, hashes[0].parallelism) == (
        credentials.TIME_COST,
        credentials.MEMORY_COST_KIB,
        credentials.PARALLELISM,
    )
    assert differ == [], done


def _median_gap(stack) -> tuple[float, float, float, float, float]:
    """CPU-time medians of 30 unknown-email and 30 wrong-password sign-ins,
    interleaved, their gap, and the wall-clock medians (reported, never asserted).

    The failed sign-in limits are lifted for the measurement: every try here
    must reach the password check (both kinds count a failure the same way).
    """
    import dataclasses

    saved = stack.app_module.SETTINGS
    stack.app_module.SETTINGS = dataclasses.replace(
        saved, failed_sign_ins_per_email_per_hour=1000, failed_sign_ins_per_ip_per_hour=100000
    )
    try:
        return _measure(stack)
    finally:
        stack.app_module.SETTINGS = saved


def _measure(stack) -> tuple[float, float, float, float, float]:
    unknown = ("nobody@example.com", "some-password")
    wrong = (DEMO_EMAIL, "some-password")
    for _ in range(WARM_UP):
        stack.sign_in(*unknown)
        stack.sign_in(*wrong)
    cpu: dict[tuple[str, str], list[float]] = {unknown: [], wrong: []}
    wall: dict[tuple[str, str], list[float]] = {unknown: [], wrong: []}
    for i in range(ROUNDS):
        order = (unknown, wrong) if i % 2 == 0 else (wrong, unknown)
        for creds in order:
            # chalice's test client, moto and argon2 (parallelism 1) all run on this thread
            started_cpu, started_wall = time.thread_time(), time.perf_counter()
            response = stack.sign_in(*creds)
            cpu[creds].append(time.thread_time() - started_cpu)
            wall[creds].append(time.perf_counter() - started_wall)
            assert response.status_code == 401
    c_unknown, c_wrong = median(cpu[unknown]), median(cpu[wrong])
    gap = max(c_unknown, c_wrong) / max(min(c_unknown, c_wrong), 1e-9) - 1
    return c_unknown, c_wrong, gap, median(wall[unknown]), median(wall[wrong])


@pytest.mark.timing
def test_unknown_email_and_wrong_password_take_the_same_time(stack, attack_log):
    """30 of each, interleaved after a warm-up; the CPU-time medians differ by under 20%.

    Server-side, in-process (around the test client's call), so the network
    does not blur it; a real attacker sees the same plus noise. The time is
    the serving thread's CPU time (``time.thread_time``): another job on the
    machine makes this thread wait for a core, and that wait is not counted.
    What a neighbour can still change (clock speed, caches) changes both
    kinds alike, as they alternate. Should one batch still land over the line,
    it is measured again, up to three batches: a real difference in work (a
    skipped hash is twenty-fold) fails every one of them. The wall-clock
    medians are only reported.
    """
    measured = []
    for _ in range(SERIES):
        measured.append(_median_gap(stack))
        if measured[-1][2] < GAP:
            break
    c_unknown, c_wrong, gap, w_unknown, w_wrong = measured[-1]
    attack_log(
        "enumeration: timing, 30 + 30",
        2 * ROUNDS * len(measured),
        int(gap >= GAP),
        f"CPU medians {c_unknown * 1000:.1f} vs {c_wrong * 1000:.1f} ms ({gap:.1%} apart; "
        f"wall {w_unknown * 1000:.1f} vs {w_wrong * 1000:.1f} ms)"
        + (f", batch {len(measured)} of {SERIES}" if len(measured) > 1 else ""),
    )
    assert gap < GAP, measured


@pytest.mark.timing
def test_the_checks_see_a_skipped_hash(stack, monkeypatch):
    """The control: were unknown addresses answered without the dummy hash, both checks would fail."""
    from chalicelib import credentials

    real = credentials._matches
    monkeypatch.setattr(
        credentials,
        "_matches",
        lambda encoded, pw: False if encoded == credentials.DUMMY_HASH else real(encoded, pw),
    )
    work = _count_work(monkeypatch)
    unknown = _work_of(stack, work, ("nobody@example.com", "some-password"))
    wrong = _work_of(stack, work, (DEMO_EMAIL, "some-password"))
    assert len(unknown[0]) == 0 and len(wrong[0]) == 1
    assert _median_gap(stack)[2] >= GAP
