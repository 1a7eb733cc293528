"""Enumeration through sign-up and reset: an existing address answers as a new
one, a known reset as an unknown one (same status, fields, work and time).

As in test_enumeration, no assertion reads a wall clock: the work is
counted, and time is the serving thread's CPU time.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from devstack.environment import DEMO_EMAIL
from tests.attacks.helpers import median

ROUNDS = 30
WARM_UP = 5
SERIES = 3
GAP = 0.2
STRONG = "correct horse battery staple 42"


@pytest.fixture
def open_limits(stack, monkeypatch):
    """Sign-up on, and no limit or cooldown in the way of the repeated requests."""
    cfg = dataclasses.replace(
        stack.app_module.SETTINGS,
        signup_enabled=True,
        resend_cooldown_seconds=0,
        sends_per_email_per_hour=1000,
        sends_per_ip_per_hour=100000,
        mails_per_email_per_hour=10000,
    )
    monkeypatch.setattr(stack.app_module, "SETTINGS", cfg)
    return cfg


def _work(monkeypatch) -> dict[str, list]:
    """From here on: argon2 hashes made, and AWS operations, of the app."""
    import argon2

    from chalicelib import aws

    work: dict[str, list] = {"argon2": [], "aws": []}
    real_hash = argon2.PasswordHasher.hash

    def counting_hash(self, password, *args, **kwargs):
        work["argon2"].append((self.time_cost, self.memory_cost))
        return real_hash(self, password, *args, **kwargs)

    monkeypatch.setattr(argon2.PasswordHasher, "hash", counting_hash)
    for service in ("dynamodb", "ssm", "ses"):
        aws.client(service).meta.events.register(
            "before-send", lambda event_name, **_: work["aws"].append(event_name.split(".", 1)[1])
        )
    return work


def _shape(response) -> tuple:
    data = response.data
    return response.status_code, tuple(sorted(data)), data["expires_in"], data["resend_in"]


CASES = {
    "sign-up": (
        "/signup",
        {"email": DEMO_EMAIL, "password": STRONG},
        {"email": "new@example.com", "password": STRONG},
    ),
    "reset": ("/password/reset", {"email": DEMO_EMAIL}, {"email": "nobody@example.com"}),
}


@pytest.mark.parametrize("flow", CASES)
def test_existing_and_new_addresses_get_the_same_answer_and_work(
    stack, open_limits, monkeypatch, attack_log, flow
):
    path, known, unknown = CASES[flow]
    stack.post(path, unknown)  # a warm container: the code key is read once, on the first request
    work = _work(monkeypatch)
    seen = {}
    for name, body in (("known", known), ("unknown", unknown)):
        for found in work.values():
            found.clear()
        answer = stack.post(path, body)
        seen[name] = (_shape(answer), list(work["argon2"]), list(work["aws"]))
    attack_log(
        f"enumeration: {flow}, existing vs new address",
        2,
        int(seen["known"] != seen["unknown"]),
        f"{seen['known'][0][0]}, {len(seen['known'][1])} argon2 hash, AWS calls {seen['known'][2]}",
    )
    assert seen["known"][0][0] == 202
    assert seen["known"] == seen["unknown"], seen


def _medians(stack, path: str, known: dict, unknown: dict) -> tuple[float, float, float]:
    for _ in range(WARM_UP):
        stack.post(path, known)
        stack.post(path, unknown)
    cpu: dict[str, list[float]] = {"known": [], "unknown": []}
    for i in range(ROUNDS):
        order = (("known", known), ("unknown", unknown))
        for name, body in order if i % 2 == 0 else reversed(order):
            started = time.thread_time()  # the test client, moto and argon2 all run on this thread
            response = stack.post(path, body)
            cpu[name].append(time.thread_time() - started)
            assert response.status_code == 202, response.data
    a, b = median(cpu["known"]), median(cpu["unknown"])
    return a, b, max(a, b) / max(min(a, b), 1e-9) - 1


@pytest.mark.parametrize("flow", CASES)
@pytest.mark.timing
def test_existing_and_new_addresses_take_the_same_time(stack, open_limits, attack_log, flow):
    """30 of each, interleaved, CPU-time medians under 20% apart (re-measured up to 3 times)."""
    path, known, unknown = CASES[flow]
    measured = []
    for _ in range(SERIES):
        measured.append(_medians(stack, path, known, unknown))
        if measured[-1][2] < GAP:
            break
    a, b, gap = measured[-1]
    attack_log(
        f"enumeration: {flow} timing, 30 + 30",
        2 * ROUNDS * len(measured),
        int(gap >= GAP),
        f"CPU medians {a * 1000:.1f} (existing) vs {b * 1000:.1f} ms ({gap:.1%} apart)"
        + (f", batch {len(measured)} of {SERIES}" if len(measured) > 1 else ""),
    )
    assert gap < GAP, measured
