"""The attacks that need real concurrency and a real mailbox, over HTTP
against the running local stack (devstack: moto server, chalice local, the
stream pump and the mailbox), started once for this module on free ports.

Every request has a timeout; threads are bounded; everything is on 127.0.0.1.
No assertion waits a fixed time: "no more mail arrives" is checked once a
marker's mail shows that the pump has handed over every earlier record.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD, ROOT
from devstack.harness import LocalStack, code_of
from tests.attacks.helpers import error_shape, wrong_codes
from tests.attacks.payloads import cases
from tests.support import verified_as

pytestmark = pytest.mark.stack

PARALLEL = 50
TIMEOUT = 120  # seconds, on every request: a safety bound for a busy machine, not a speed target
SENDS_PER_EMAIL_PER_HOUR = 10  # the default
MAX_ATTEMPTS = 5  # the default
FAILED_SIGN_INS_PER_EMAIL_PER_HOUR = 20  # the default
MARKER = "marker@example.com"  # a second account, whose mail shows how far the pump has got
MARKER_PASSWORD = "a marker passphrase"


@pytest.fixture(scope="module")
def live() -> Iterator[LocalStack]:
    """One stack for the module, with the defaults but no cooldown, so that
    parallel sign-ins meet the hourly counter rather than the cooldown."""
    _sends["accepted"] = 0
    with LocalStack(env={"OTP_RESEND_COOLDOWN_SECONDS": "0"}, wait_web=False) as stack:
        added = subprocess.run(
            [sys.executable, "-m", "ops", "add-user", MARKER],
            cwd=ROOT,
            env=stack.operator_environment(),
            input=MARKER_PASSWORD + "\n",
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert added.returncode == 0, added.stderr
        yield stack
    assert stack.returncode == 0, stack.output[-3000:]
    assert "Traceback" not in stack.output


_local = threading.local()


def _session() -> requests.Session:
    """One HTTP session per thread (requests sessions are not shared across threads)."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
        _local.session.trust_env = False
    return _local.session


_sends = {"accepted": 0}
_sends_lock = threading.Lock()


def post(stack: LocalStack, path: str, body: Any) -> requests.Response:
    """POST JSON to the API, counting the sends it accepted (a code to mail)."""
    response = _session().post(stack.api_url + path, json=body, timeout=TIMEOUT)
    if path in ("/otp", "/otp/resend") and response.status_code == 200:
        with _sends_lock:
            _sends["accepted"] += 1
    return response


def in_parallel(count: int, call: Callable[[], requests.Response]) -> list[requests.Response]:
    """``count`` calls released together from ``count`` threads."""
    barrier = threading.Barrier(count, timeout=TIMEOUT)

    def run(_: int) -> requests.Response:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count), timeout=2 * TIMEOUT))


def new_session(stack: LocalStack) -> tuple[str, str]:
    before = len(stack.messages(DEMO_EMAIL))
    started = post(stack, "/otp", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert started.status_code == 200, started.text
    return started.json()["session_id"], code_of(stack.wait_for_mail(DEMO_EMAIL, count=before + 1))


def mailed_so_far(stack: LocalStack) -> None:
    """Return once the pump has handed over every stream record written before this call.

    A sign-in of the marker account puts one more challenge at the end of
    the stream; the emulator keeps one shard and the pump hands its records
    to the mailer in order, so once the marker's mail is in the mailbox,
    every earlier record has been mailed or passed over. Waiting on that
    event instead of a fixed pause holds however busy the machine is.
    """
    before = len(stack.messages(MARKER))
    started = stack.post("/otp", {"email": MARKER, "password": MARKER_PASSWORD})  # not counted in _sends
    assert started.status_code == 200, started.text
    stack.wait_for_mail(MARKER, count=before + 1)


def shape(response: requests.Response) -> dict[str, Any]:
    return error_shape(response.status_code, dict(response.headers), response.content)


def test_parallel_wrong_guesses_count_exactly_up_to_the_limit(live, attack_log):
    session_id, code = new_session(live)
    guesses = iter(wrong_codes(code, PARALLEL))
    lock = threading.Lock()

    def guess() -> requests.Response:
        with lock:
            wrong = next(guesses)
        return post(live, "/otp/verify", {"session_id": session_id, "code": wrong})

    answers = in_parallel(PARALLEL, guess)
    statuses = [a.status_code for a in answers]
    counted = sorted(shape(a)["attempts_remaining"] for a in answers if a.status_code == 401)
    refused = [shape(a)["reason"] for a in answers if a.status_code == 410]
    final = post(live, "/otp/verify", {"session_id": session_id, "code": code})
    attack_log(
        f"race: {PARALLEL} parallel wrong guesses (HTTP)",
        PARALLEL + 1,
        statuses.count(200) + max(0, len(counted) - MAX_ATTEMPTS) + int(final.status_code == 200),
        f"{len(counted)} counted, {len(refused)} refused",
    )
    assert counted == list(range(MAX_ATTEMPTS))  # each attempt counted once: 4, 3, 2, 1, 0 left
    assert refused == ["too_many_attempts"] * (PARALLEL - MAX_ATTEMPTS)
    assert shape(final)["reason"] == "too_many_attempts"  # the right code, after the limit


def test_parallel_wrong_passwords_get_exactly_the_failed_sign_in_cap(live, attack_log):
    """50 wrong passwords for one address at once: exactly the cap reach the password check."""
    target = "racer@example.com"  # no account: unknown addresses are checked and counted the same
    answers = in_parallel(PARALLEL, lambda: post(live, "/otp", {"email": target, "password": "guess"}))
    statuses = [a.status_code for a in answers]
    attack_log(
        f"1. race: {PARALLEL} parallel wrong passwords (HTTP, cap {FAILED_SIGN_INS_PER_EMAIL_PER_HOUR})",
        PARALLEL,
        max(0, statuses.count(401) - FAILED_SIGN_INS_PER_EMAIL_PER_HOUR),
        f"{statuses.count(401)} x 401 (password checked), {statuses.count(429)} x 429",
    )
    assert statuses.count(401) == FAILED_SIGN_INS_PER_EMAIL_PER_HOUR
    assert statuses.count(429) == PARALLEL - FAILED_SIGN_INS_PER_EMAIL_PER_HOUR
    for answer in answers:
        if answer.status_code == 429:
            assert "failed sign-ins for this address" in shape(answer)["message"]


def test_parallel_right_codes_give_exactly_one_200(live, attack_log):
    session_id, code = new_session(live)
    answers = in_parallel(
        PARALLEL, lambda: post(live, "/otp/verify", {"session_id": session_id, "code": code})
    )
    ok = [a for a in answers if a.status_code == 200]
    attack_log(
        f"race: {PARALLEL} parallel right codes (HTTP)",
        PARALLEL,
        max(0, len(ok) - 1),
        f"{len(ok)} x 200, {PARALLEL - len(ok)} x 410 used",
    )
    assert len(ok) == 1 and verified_as(ok[0].json()) == DEMO_EMAIL
    assert [shape(a)["reason"] for a in answers if a.status_code != 200] == ["used"] * (PARALLEL - 1)


def test_email_bombing_in_parallel_stops_at_the_limit_and_the_mailbox_proves_it(live, attack_log):
    """60 parallel sign-ins and 40 parallel resends for one address, no cooldown.

    Whatever this module sent before, one address gets at most
    OTP_SENDS_PER_EMAIL_PER_HOUR codes (the count also spans an hour
    boundary): the mailbox never holds more, and no more arrive afterwards.
    """
    sign_ins = in_parallel(60, lambda: post(live, "/otp", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD}))
    opened = [a.json()["session_id"] for a in sign_ins if a.status_code == 200]
    target = opened[-1] if opened else ""
    resends = in_parallel(40, lambda: post(live, "/otp/resend", {"session_id": target}))
    answers = sign_ins + resends
    limited = [a for a in answers if a.status_code == 429]
    for answer in limited:
        body = shape(answer)
        assert answer.headers["Retry-After"] == str(body["retry_after"])
    accepted = _sends["accepted"]  # every send this module's stack accepted
    mailed_so_far(live)  # every record of the requests above handed over: no stray mail can follow
    mailed = len(live.messages(DEMO_EMAIL))
    attack_log(
        "email bombing: 100 parallel requests (HTTP, mailbox)",
        len(answers),
        max(0, mailed - SENDS_PER_EMAIL_PER_HOUR),
        f"{mailed} mails in the mailbox, {len(limited)} x 429 + Retry-After",
    )
    assert {a.status_code for a in answers} <= {200, 429}
    assert accepted == SENDS_PER_EMAIL_PER_HOUR  # every send of the module: the limit, reached, not passed
    assert mailed == accepted  # every accepted send mailed, none beyond


def test_hostile_requests_over_http_are_json_4xx_and_mail_nobody(live, attack_log):
    """The injection cases of test_injection.py, through chalice local's real HTTP parsing."""
    before = live.messages()
    bad = []
    tries = 0
    for label, route, body, content_type in cases():
        if content_type is not None and ("\r" in content_type or "\n" in content_type):
            continue  # an HTTP client cannot send this header at all
        headers = {} if content_type is None else {"Content-Type": content_type}
        response = _session().post(live.api_url + route, data=body, headers=headers, timeout=TIMEOUT)
        tries += 1
        try:
            assert 400 <= response.status_code < 500, response.status_code
            shape(response)
        except (AssertionError, ValueError) as failure:
            bad.append(f"{label}: {response.status_code} {failure!s:.100}")
    for method, path in (
        ("GET", "/otp"),
        ("PUT", "/otp/verify"),
        ("DELETE", "/otp/resend"),
        ("POST", "/admin"),
    ):
        response = _session().request(method, live.api_url + path, timeout=TIMEOUT)
        tries += 1
        if not 400 <= response.status_code < 500:
            bad.append(f"{method} {path}: {response.status_code}")
    mailed_so_far(live)
    after = live.messages()
    new_mail = [m["to"] for m in after[: len(after) - len(before)]]  # newest first
    new_mail.remove([MARKER])  # the marker's own
    attack_log("injection over HTTP (chalice local)", tries, len(bad) + len(new_mail), "4xx JSON, no mail")
    assert bad == []
    assert new_mail == []
