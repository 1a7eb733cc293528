"""Faults: SES and DynamoDB refusing work, SSM out of reach, records delivered
twice. Nothing is lost, nothing is sent twice, and clients get a clean answer.

Faults are injected on the botocore client's ``before-send`` event (see
helpers.Fault): the request never reaches moto, exactly as if AWS had
answered with that error, so botocore's own retry handling runs for real.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from botocore.exceptions import EndpointConnectionError

from chalicelib import delivery
from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from devstack.streams import lambda_event
from devstack.testenv import TEST_ENV, child_environment
from tests.attacks.helpers import (
    Fault,
    check_error,
    dynamodb_error,
    json11_error,
    mail_counts,
    query_error,
    request_text,
)

MAX_ATTEMPTS = 3  # chalicelib/aws.py: retries={"mode": "standard", "total_max_attempts": 3}
ROOT = Path(__file__).resolve().parents[2]


def _users(count: int) -> list[str]:
    from chalicelib import settings
    from ops.users import add_user

    users = [f"user{i}@example.com" for i in range(count)]
    for user in users:
        add_user(settings.load(), user, DEMO_PASSWORD)
    return users


def _recipient(request) -> str:
    return parse_qs(request_text(request)).get("Destinations.member.1", [""])[0]


def _no_tracebacks(caplog) -> None:
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], "a log record carries a traceback"


# ----------------------------------------------------------------- SES


def test_ses_failing_for_some_records_loses_nothing_and_sends_nothing_twice(
    stack, backoff, caplog, attack_log, monkeypatch
):
    """Throttling is retried (by the mailer, then by Lambda's redelivery); a
    rejection is final: logged once, never tried again, never holding up the rest."""
    from chalicelib import mail

    mail_sleeps: list[float] = []
    monkeypatch.setattr(mail, "sleep", mail_sleeps.append)
    users = _users(5)
    for user in users:
        assert stack.sign_in(user, DEMO_PASSWORD).status_code == 200
    event = lambda_event(stack.stream_records(), stack.stream_arn)
    throttled, rejected = users[1], users[3]
    throttle = Fault(
        "ses",
        "SendRawEmail",
        query_error("Throttling"),
        times=MAX_ATTEMPTS,
        when=lambda r: _recipient(r) == throttled,
    ).install()
    reject = Fault(
        "ses",
        "SendRawEmail",
        query_error("MessageRejected"),
        times=1,
        when=lambda r: _recipient(r) == rejected,
    ).install()

    with pytest.raises(delivery.DeliveryFailed):
        stack.app_module.send_code(event, None)  # Lambda sees the error and delivers the batch again
    first = mail_counts()
    throttled_calls = sum(_recipient(r) == throttled for r in throttle.calls)
    rejected_calls = sum(_recipient(r) == rejected for r in reject.calls)
    stack.app_module.send_code(event, None)  # the redelivery
    stack.app_module.send_code(event, None)  # and one more, as a slow retry might
    counts = mail_counts()
    attack_log(
        "fault: SES throttles/rejects 2 of 5 records",
        3,
        # sent twice, lost (all but the rejected one are owed a mail), or the rejected one sent anyway
        sum(abs(counts.get(u, 0) - (u != rejected)) for u in users),
        f"{len(first)} sent, then the throttled one on retry; the rejected one never",
    )
    assert first == {u: 1 for u in users if u not in (throttled, rejected)}
    assert counts == {u: 1 for u in users if u != rejected}
    assert throttled_calls == MAX_ATTEMPTS  # the mailer retried the throttling...
    assert rejected_calls == 1 == reject.refused  # ...but not a rejection, which no retry can fix
    assert backoff == []  # botocore itself never resends a mail
    assert len(mail_sleeps) == MAX_ATTEMPTS - 1 and all(d > 0 for d in mail_sleeps)
    assert "mail failed, will retry" in caplog.text
    assert "mail refused for good" in caplog.text
    _no_tracebacks(caplog)


def test_ses_unreachable_for_a_whole_batch_then_back(stack, backoff, attack_log):
    users = _users(3)
    for user in users:
        stack.sign_in(user, DEMO_PASSWORD)
    event = lambda_event(stack.stream_records(), stack.stream_arn)
    outage = Fault(
        "ses", "SendRawEmail", raise_error=lambda r: EndpointConnectionError(endpoint_url=r.url)
    ).install()
    for _ in range(3):  # Lambda retries while SES is down
        with pytest.raises(delivery.DeliveryFailed):
            stack.app_module.send_code(event, None)
    outage.remove()
    stack.app_module.send_code(event, None)
    counts = mail_counts()
    lost_or_doubled = sum(abs(counts.get(user, 0) - 1) for user in users)
    attack_log("fault: SES unreachable, 3 retries", 4, lost_or_doubled, "each sent once when back")
    assert counts == {u: 1 for u in users}


# ----------------------------------------------------------------- the stream


def test_the_same_record_delivered_in_parallel_is_mailed_once(stack, atomic_moto, attack_log):
    users = _users(3)
    for user in users:
        stack.sign_in(user, DEMO_PASSWORD)
    event = lambda_event(stack.stream_records(), stack.stream_arn)
    copies = 8
    barrier = threading.Barrier(copies)

    def deliver(_):
        barrier.wait()
        stack.app_module.send_code(event, None)

    with ThreadPoolExecutor(max_workers=copies) as pool:
        list(pool.map(deliver, range(copies)))
    stack.app_module.send_code(event, None)  # and once more, later
    counts = mail_counts()
    attack_log(
        "fault: one batch delivered 9 times (8 at once)",
        copies + 1,
        sum(counts.values()) - len(users),
        f"{sum(counts.values())} mails for {len(users)} codes",
    )
    assert counts == {u: 1 for u in users}


# ----------------------------------------------------------------- DynamoDB


def _worst_backoff(retries: int) -> float:
    """botocore's standard mode sleeps rand(0, 1) * min(2**(i-1), 20) s before retry i of a throttled call."""
    return float(sum(min(2 ** (i - 1), 20) for i in range(1, retries + 1)))


def _calls_per_route(stack, clock) -> dict[str, int]:
    """AWS calls each route makes in a new container (code key not yet read)."""
    from chalicelib import aws, keys

    counted: list[str] = []
    for service in ("dynamodb", "ssm", "ses"):
        aws.client(service).meta.events.register(
            "before-send", lambda event_name, **_: counted.append(event_name)
        )
    calls = {}
    session_id = ""
    for route in ("/otp", "/otp/verify", "/otp/resend"):
        keys.forget()
        clock.advance(60)
        counted.clear()
        if route == "/otp":
            response = stack.sign_in()
            session_id = response.data["session_id"]
        elif route == "/otp/verify":
            response = stack.post(route, {"session_id": session_id, "code": "000000"})
        else:
            response = stack.post(route, {"session_id": session_id})
        assert response.status_code in (200, 401), response.body
        calls[route] = len(counted)
    return calls


def test_retries_fit_inside_the_lambda_timeout(stack, clock, backoff, attack_log):
    """Throttling that outlasts the retries must still be answered (503 JSON) before
    Lambda's timeout stops the request, or the client gets the gateway's 502/504."""
    fault = Fault("dynamodb", "GetItem", dynamodb_error("ProvisionedThroughputExceededException")).install()
    check_error(stack.sign_in(), 503)
    attempts = len(fault.calls)
    fault.remove()
    calls = _calls_per_route(stack, clock)
    worst = max(calls.values()) * _worst_backoff(attempts - 1)
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    timeouts = {
        stage: int(values.get("lambda_timeout", config.get("lambda_timeout", 60)))
        for stage, values in config["stages"].items()
    }
    shortest = min(timeouts.values())
    attack_log(
        "fault: throttled on every call, retry budget",
        len(calls),
        int(worst > shortest - 1),
        f"{attempts} attempts x {max(calls.values())} calls: backoff <= {worst:g} s, timeout {shortest} s",
    )
    # cold container: the code key, then read user, take a slot, one transaction
    assert calls == {"/otp": 4, "/otp/verify": 2, "/otp/resend": 3}
    for stage, timeout in timeouts.items():
        assert worst <= timeout - 1, (stage, worst, timeout)  # a second left for the work itself


def test_dynamodb_throttling_is_retried_with_backoff(stack, backoff, attack_log):
    fault = Fault(
        "dynamodb",
        "GetItem",
        dynamodb_error("ProvisionedThroughputExceededException"),
        times=MAX_ATTEMPTS - 1,
    ).install()
    response = stack.sign_in()
    attack_log(
        f"fault: DynamoDB throttles {MAX_ATTEMPTS - 1} times",
        1,
        int(response.status_code != 200),
        "retried, then 200",
    )
    assert response.status_code == 200, response.body
    assert len(fault.calls) == MAX_ATTEMPTS  # all but the last refused; the last went through
    assert len(backoff) == MAX_ATTEMPTS - 1 and all(0 < d <= 2 ** (i - 1) for i, d in enumerate(backoff, 1))


@pytest.mark.parametrize(
    ("operation", "code", "status"),
    [
        ("GetItem", "ProvisionedThroughputExceededException", 400),
        ("GetItem", "ThrottlingException", 400),
        ("GetItem", "RequestLimitExceeded", 400),
        ("GetItem", "InternalServerError", 500),
        ("TransactWriteItems", "ProvisionedThroughputExceededException", 400),
    ],
)
def test_dynamodb_throttling_that_outlasts_retries_is_503_json(
    stack, backoff, caplog, operation, code, status
):
    fault = Fault("dynamodb", operation, dynamodb_error(code, status)).install()
    response = stack.sign_in()
    check_error(response, 503)
    assert response.data["error"] == "service_unavailable"
    assert len(fault.calls) == MAX_ATTEMPTS and len(backoff) == MAX_ATTEMPTS - 1
    stack.pump()
    assert mail_counts() == {}
    fault.remove()
    assert stack.sign_in().status_code == 200  # the failed try left no cooldown or count behind
    _no_tracebacks(caplog)


def _cancelled(*reasons: str):
    body = {
        "Message": f"Transaction cancelled, please refer cancellation reasons [{', '.join(reasons)}]",
        "CancellationReasons": [{"Code": reason, "Message": reason} for reason in reasons],
    }
    return dynamodb_error("TransactionCanceledException", 400, body)


@pytest.mark.parametrize(
    "reason", ["ThrottlingError", "TransactionConflict", "ProvisionedThroughputExceeded"]
)
def test_a_transaction_cancelled_by_throttling_or_conflict_is_503_json(
    stack, clock, caplog, attack_log, reason
):
    """DynamoDB cancels a transaction when an item in it is throttled or being
    written by another transaction (two sign-ins for one address at once).
    That is a busy service, not a bug: 503, not 500."""
    writes = 4  # the first transaction: the password-check slots, 2 per hourly window
    Fault("dynamodb", "TransactWriteItems", _cancelled(reason, *["None"] * (writes - 1))).install()
    sign_in = stack.sign_in()
    attack_log(
        f"fault: transaction cancelled, {reason}",
        1,
        int(sign_in.status_code != 503),
        f"{sign_in.status_code}",
    )
    check_error(sign_in, 503)
    _no_tracebacks(caplog)


def test_a_resend_cancelled_by_conflict_is_503_json(stack, clock, caplog):
    session_id = stack.sign_in().data["session_id"]
    clock.advance(30)
    fault = Fault(
        "dynamodb",
        "TransactWriteItems",
        _cancelled("None", "None", "TransactionConflict", "None", "None", "None", "None"),
    ).install()
    check_error(stack.post("/otp/resend", {"session_id": session_id}), 503)
    fault.remove()
    assert stack.post("/otp/resend", {"session_id": session_id}).status_code == 200


def test_verify_throttled_is_503_and_does_not_count_an_attempt(stack, backoff):
    session_id = stack.sign_in().data["session_id"]
    code = stack.latest_code()
    fault = Fault(
        "dynamodb", "UpdateItem", dynamodb_error("ProvisionedThroughputExceededException")
    ).install()
    for _ in range(3):
        check_error(stack.post("/otp/verify", {"session_id": session_id, "code": "000000"}), 503)
    fault.remove()
    wrong = "000000" if code != "000000" else "111111"
    body = check_error(stack.post("/otp/verify", {"session_id": session_id, "code": wrong}), 401)
    assert body["attempts_remaining"] == stack.app_module.SETTINGS.max_attempts - 1
    assert stack.post("/otp/verify", {"session_id": session_id, "code": code}).status_code == 200


def test_throttled_claim_in_the_mailer_is_retried_not_lost(stack, backoff, attack_log):
    stack.sign_in()
    event = lambda_event(stack.stream_records(), stack.stream_arn)
    fault = Fault(
        "dynamodb", "TransactWriteItems", dynamodb_error("ProvisionedThroughputExceededException")
    ).install()
    with pytest.raises(Exception):  # noqa: B017 - any error makes Lambda redeliver
        stack.app_module.send_code(event, None)
    assert mail_counts() == {}
    fault.remove()
    stack.app_module.send_code(event, None)
    stack.app_module.send_code(event, None)
    attack_log(
        "fault: mailer's claim throttled", 3, abs(mail_counts().get(DEMO_EMAIL, 0) - 1), "sent once on retry"
    )
    assert mail_counts() == {DEMO_EMAIL: 1}


# ----------------------------------------------------------------- SSM


def test_ssm_unreachable_at_container_start_is_503_with_one_log_line(stack, backoff, caplog, attack_log):
    from chalicelib import keys

    caplog.set_level(logging.INFO)
    started = stack.sign_in()  # opened by another container, before the outage
    assert started.status_code == 200
    session_id = started.data["session_id"]
    keys.forget()  # a new container: the key is not in memory yet
    outage = Fault(
        "ssm", "GetParameter", raise_error=lambda r: EndpointConnectionError(endpoint_url=r.url)
    ).install()
    caplog.clear()
    answers = [
        stack.sign_in(),
        stack.post("/otp/verify", {"session_id": session_id, "code": "123456"}),
        stack.post("/otp/resend", {"session_id": session_id}),
    ]
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    event = lambda_event(stack.stream_records(), stack.stream_arn)
    with pytest.raises(delivery.DeliveryFailed):
        stack.app_module.send_code(event, None)  # the mailer fails the batch before claiming anything
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR][len(lines) :] == lines[:1]
    attack_log(
        "fault: SSM unreachable at start",
        len(answers) + 1,
        sum(a.status_code not in (503,) for a in answers),
        "503 JSON + one log line each; recovers",
    )
    for answer in answers:
        check_error(answer, 503)
    assert (
        lines
        == ["code key unavailable: parameter=/simple-otp/test/code-key reason=EndpointConnectionError"] * 3
    )
    assert len(outage.calls) == 4 * MAX_ATTEMPTS  # each try retried by botocore, none cached
    _no_tracebacks(caplog)

    outage.remove()  # SSM is back: the same container recovers, no restart needed
    stack.app_module.send_code(event, None)
    code = stack.latest_code()
    assert stack.post("/otp/verify", {"session_id": session_id, "code": code}).status_code == 200
    assert mail_counts() == {DEMO_EMAIL: 1}


def test_ssm_access_denied_is_503_and_names_the_reason(stack, caplog):
    from chalicelib import keys

    session_id = stack.sign_in().data["session_id"]
    keys.forget()
    Fault("ssm", "GetParameter", json11_error("AccessDeniedException")).install()
    response = stack.post("/otp/verify", {"session_id": session_id, "code": "123456"})
    check_error(response, 503)
    assert "reason=AccessDeniedException" in caplog.text
    _no_tracebacks(caplog)


CONTAINER = """
import json
from chalice.test import Client
import app

with Client(app.app) as client:
    for path, body in (
        ("/otp/verify", {"session_id": "A" * 43, "code": "123456"}),
        ("/otp", {"email": "demo@example.com", "password": "demo-password"}),
    ):
        response = client.http.post(path, headers={"Content-Type": "application/json"}, body=json.dumps(body))
        print(response.status_code, response.body.decode())
"""


def test_a_container_started_with_no_aws_reachable_answers_503_and_logs_one_line(attack_log):
    """A fresh process, as Lambda starts one, with every AWS endpoint refusing connections.

    Importing the app makes no AWS call, so the container starts; each
    request answers a clean 503 JSON and logs one line naming the cause; no
    traceback reaches the logs or the client.
    """
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**child_environment(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    done = subprocess.run(
        [sys.executable, "-c", CONTAINER], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    answers = [line.split(" ", 1) for line in done.stdout.splitlines() if line[:3].isdigit()]
    # The app logs JSON lines (Powertools) to stdout, which Lambda sends to CloudWatch Logs
    logged = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    errors_logged = [line for line in logged if line.get("level") == "ERROR"]
    attack_log(
        "fault: container starts with AWS unreachable",
        len(answers),
        sum(status != "503" for status, _ in answers) + int("Traceback" in done.stderr + done.stdout),
        "503 JSON, one log line per request",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert [status for status, _ in answers] == ["503", "503"], done.stdout
    for _, body in answers:
        assert json.loads(body)["error"] == "service_unavailable"
    parameter = TEST_ENV["OTP_KEY_PARAMETER"]
    assert [(line["service"], line["message"].rstrip()) for line in errors_logged] == [
        ("simple-otp", f"code key unavailable: parameter={parameter} reason=EndpointConnectionError"),
        ("simple-otp", "AWS unavailable: EndpointConnectionError"),
    ], done.stdout[-2000:]
    assert all(line.get("request_id") for line in errors_logged)  # each names its request
    assert "Traceback" not in done.stderr + done.stdout
