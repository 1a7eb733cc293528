"""The service's safety rules, each checked against moto."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import challenges, errors
from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from tests.support import serialize_dynamodb, verified_as


@pytest.fixture
def atomic_moto():
    undo = serialize_dynamodb()
    yield
    for fn in undo:
        fn()


def _parallel(count: int, fn):
    barrier = threading.Barrier(count)

    def run(_):
        barrier.wait()
        try:
            return fn()
        except errors.OtpError as error:
            return error

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_parallel_wrong_guesses_never_exceed_the_limit(stack, atomic_moto):
    cfg = stack.app_module.SETTINGS
    session_id = stack.sign_in().data["session_id"]
    code = stack.latest_code()
    wrong = "000000" if code != "000000" else "111111"
    results = _parallel(20, lambda: challenges.verify(cfg, {"session_id": session_id, "code": wrong}))
    counted = [r for r in results if isinstance(r, errors.InvalidCode)]
    refused = [r for r in results if isinstance(r, errors.SessionClosed)]
    assert len(counted) == cfg.max_attempts
    assert len(refused) == 20 - cfg.max_attempts
    assert {r.reason for r in refused} == {"too_many_attempts"}
    assert sorted(r.fields["attempts_remaining"] for r in counted) == list(range(cfg.max_attempts))
    with pytest.raises(errors.SessionClosed):
        challenges.verify(cfg, {"session_id": session_id, "code": code})


def test_parallel_right_codes_verify_exactly_once(stack, atomic_moto):
    cfg = stack.app_module.SETTINGS
    session_id = stack.sign_in().data["session_id"]
    code = stack.latest_code()
    results = _parallel(20, lambda: challenges.verify(cfg, {"session_id": session_id, "code": code}))
    ok = [r for r in results if isinstance(r, dict)]
    assert [verified_as(r) for r in ok] == [DEMO_EMAIL]
    assert all(isinstance(r, errors.SessionClosed) for r in results if not isinstance(r, dict))


def _every_value(obj):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield str(key)
            yield from _every_value(value)
    elif isinstance(obj, (list, tuple, set)):
        for value in obj:
            yield from _every_value(value)
    else:
        yield str(obj)


def test_neither_table_nor_stream_holds_a_code_or_session_id(stack, clock):
    from chalicelib import aws

    session_id = stack.sign_in().data["session_id"]
    first = stack.latest_code()
    clock.advance(30)
    stack.post("/otp/resend", {"session_id": session_id})
    second = stack.latest_code()
    stack.post("/otp/verify", {"session_id": session_id, "code": "000000" if second != "000000" else "1" * 6})
    items = aws.client("dynamodb").scan(TableName=stack.app_module.SETTINGS.table_name)["Items"]
    stream = [record for event in stack.invocations for record in event["Records"]]
    assert items and stream
    dumped = list(_every_value(items)) + list(_every_value(stream))
    for secret in (first, second, session_id, DEMO_PASSWORD):
        assert not any(secret in value for value in dumped), secret
    kinds = {item["kind"]["S"] for item in items}
    assert {"user", "session", "challenge", "limit", "cooldown"} <= kinds
    for item in items:
        if item["kind"]["S"] != "user":
            assert "expires_at" in item  # every short-lived item carries the TTL attribute


def test_table_has_ttl_on_expires_at_and_a_new_image_stream(stack):
    from chalicelib import aws

    client = aws.client("dynamodb")
    name = stack.app_module.SETTINGS.table_name
    ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "expires_at"
    spec = client.describe_table(TableName=name)["Table"]["StreamSpecification"]
    assert spec == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_code_key_is_read_once_per_container(stack, monkeypatch):
    from chalicelib import aws, keys

    keys.forget()
    calls = []
    ssm = aws.client("ssm")
    real = ssm.get_parameter
    monkeypatch.setattr(ssm, "get_parameter", lambda **kw: calls.append(kw) or real(**kw))
    session_id = stack.sign_in().data["session_id"]
    for _ in range(3):
        stack.post("/otp/verify", {"session_id": session_id, "code": "000001"})
    stack.pump()
    assert len(calls) == 1
    assert calls[0]["WithDecryption"] is True


def test_no_log_line_carries_a_code_password_session_id_or_token(stack, clock, caplog):
    caplog.set_level(logging.DEBUG, logger="simple-otp")
    session_id = stack.sign_in().data["session_id"]
    stack.sign_in(password="wrong-password-123")
    first = stack.latest_code()
    stack.post("/otp/verify", {"session_id": session_id, "code": "000000" if first != "000000" else "111111"})
    clock.advance(30)
    stack.post("/otp/resend", {"session_id": session_id})
    second = stack.latest_code()
    token = stack.post("/otp/verify", {"session_id": session_id, "code": second}).data["token"]
    text = caplog.text
    assert "verified" in text and "mailed" in text and "sign-in refused" in text
    header, claims, signature = token.split(".")
    for secret in (first, second, session_id, DEMO_PASSWORD, "wrong-password-123", DEMO_EMAIL, token):
        assert secret not in text, secret
    for part in (claims, signature):  # no piece of the token either
        assert part not in text
