"""Every status code of the HTTP API, through chalice.test.Client against moto."""

from __future__ import annotations

import dataclasses
import json

import pytest

from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from devstack.testenv import sent_mail
from tests.support import verified_as


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.body
    body = response.data
    assert isinstance(body, dict)
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in response.body.decode()
    return body


def with_settings(monkeypatch, stack, **changes):
    monkeypatch.setattr(
        stack.app_module, "SETTINGS", dataclasses.replace(stack.app_module.SETTINGS, **changes)
    )


# ----------------------------------------------------------------- POST /otp


def test_sign_in_returns_session_and_timings(stack):
    response = stack.sign_in()
    assert response.status_code == 200
    assert set(response.data) == {"session_id", "expires_in", "resend_in"}
    assert len(response.data["session_id"]) >= 22
    assert response.headers["Content-Type"].startswith("application/json")


def test_email_is_case_insensitive(stack):
    assert stack.sign_in(email="Demo@Example.COM").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        "null",
        {},
        {"email": DEMO_EMAIL},
        {"password": DEMO_PASSWORD},
        {"email": 42, "password": DEMO_PASSWORD},
        {"email": DEMO_EMAIL, "password": ["x"]},
        {"email": "not-an-email", "password": DEMO_PASSWORD},
        {"email": "demo@example.com\r\nBcc: evil@example.net", "password": DEMO_PASSWORD},
        {"email": "a" * 250 + "@example.com", "password": DEMO_PASSWORD},
        {"email": DEMO_EMAIL, "password": ""},
        {"email": DEMO_EMAIL, "password": "x" * 1025},
    ],
)
def test_sign_in_bad_input_is_400(stack, body):
    assert_error(stack.post("/otp", body), 400, "invalid_request")
    stack.pump()
    assert sent_mail() == []


def test_wrong_content_type_is_400_json(stack):
    response = stack.client.http.post(
        "/otp",
        headers={"Content-Type": "text/plain"},
        body=json.dumps({"email": DEMO_EMAIL, "password": DEMO_PASSWORD}),
    )
    response.data = json.loads(response.body)
    assert_error(response, 400, "invalid_request")


def test_unknown_email_and_wrong_password_look_the_same(stack):
    unknown = stack.sign_in(email="nobody@example.com")
    wrong = stack.sign_in(password="wrong-password")
    assert_error(unknown, 401, "invalid_credentials")
    assert_error(wrong, 401, "invalid_credentials")
    assert unknown.body == wrong.body
    stack.pump()
    assert sent_mail() == []


def test_unknown_email_costs_one_hash_like_a_known_one(stack, monkeypatch):
    from chalicelib import credentials

    calls = []
    real = credentials.hasher()

    class Counting:
        def verify(self, encoded, password):
            calls.append(encoded)
            return real.verify(encoded, password)

    monkeypatch.setattr(credentials, "hasher", lambda: Counting())
    stack.sign_in(email="nobody@example.com")
    stack.sign_in(password="wrong-password")
    assert len(calls) == 2
    params = [c.split("$")[3] for c in calls]
    assert params[0] == params[1] == "m=19456,t=2,p=1"


def test_password_hash_meets_owasp_argon2id_minimum(stack):
    from chalicelib import credentials, store

    user = store.get_user(stack.app_module.SETTINGS.table_name, DEMO_EMAIL)
    encoded = user["password_hash"]
    assert encoded.startswith("$argon2id$")
    fields = dict(part.split("=") for part in encoded.split("$")[3].split(","))
    assert int(fields["m"]) >= 19456 and int(fields["t"]) >= 2
    assert credentials.DUMMY_HASH.split("$")[3] == encoded.split("$")[3]
    assert DEMO_PASSWORD not in json.dumps(user)


def test_disabled_user_cannot_sign_in(stack):
    from chalicelib import settings
    from ops.users import set_disabled

    set_disabled(settings.load(), DEMO_EMAIL, True)
    assert_error(stack.sign_in(), 401, "invalid_credentials")
    set_disabled(settings.load(), DEMO_EMAIL, False)
    assert stack.sign_in().status_code == 200


def test_cooldown_between_sends_is_429_with_retry_after(stack, clock):
    assert stack.sign_in().status_code == 200
    clock.advance(10)
    limited = stack.sign_in()
    body = assert_error(limited, 429, "rate_limited")
    assert body["retry_after"] == 20
    assert limited.headers["Retry-After"] == "20"
    clock.advance(20)
    assert stack.sign_in().status_code == 200


def test_per_email_hourly_limit(stack, clock, monkeypatch):
    with_settings(monkeypatch, stack, sends_per_email_per_hour=3, resend_cooldown_seconds=0)
    clock.now = 1_900_000_000 // 3600 * 3600 + 100  # early in a clock hour
    for _ in range(3):
        assert stack.sign_in().status_code == 200
        clock.advance(1)
    body = assert_error(stack.sign_in(), 429, "rate_limited")
    # three sends this hour are carried into the next: free two hours from the hour's start
    assert body["retry_after"] == 2 * 3600 - 103
    clock.advance(3600)
    assert_error(stack.sign_in(), 429, "rate_limited")  # still within 60 min of those sends
    clock.advance(3600)
    assert stack.sign_in().status_code == 200


def test_hourly_limit_holds_across_the_hour_boundary(stack, clock, monkeypatch):
    with_settings(monkeypatch, stack, sends_per_email_per_hour=4, resend_cooldown_seconds=0)
    hour_end = 1_900_000_000 // 3600 * 3600 + 3600
    clock.now = hour_end - 60
    for _ in range(4):
        assert stack.sign_in().status_code == 200
    clock.now = hour_end + 60  # two minutes later, in the next clock hour
    body = assert_error(stack.sign_in(), 429, "rate_limited")
    assert 0 < body["retry_after"] <= 3600


def test_per_ip_hourly_limit(stack, clock, monkeypatch):
    from chalicelib import settings
    from ops.users import add_user

    with_settings(monkeypatch, stack, sends_per_ip_per_hour=2)
    for name in ("a", "b", "c"):
        add_user(settings.load(), f"{name}@example.com", "pw-" + name, allow_weak=True)
    assert stack.sign_in("a@example.com", "pw-a").status_code == 200
    assert stack.sign_in("b@example.com", "pw-b").status_code == 200
    body = assert_error(stack.sign_in("c@example.com", "pw-c"), 429, "rate_limited")
    assert body["retry_after"] > 0
    stack.pump()
    assert len(sent_mail()) == 2


def test_failed_sign_ins_per_email_are_limited_before_hashing(stack, clock, monkeypatch):
    from chalicelib import credentials

    with_settings(monkeypatch, stack, failed_sign_ins_per_email_per_hour=3)
    clock.now = 1_900_000_000 // 3600 * 3600 + 50
    for _ in range(3):
        assert_error(stack.sign_in(password="guess"), 401, "invalid_credentials")
    hashed = []
    monkeypatch.setattr(credentials, "_matches", lambda encoded, pw: hashed.append(pw) or True)
    body = assert_error(stack.sign_in(), 429, "rate_limited")  # even the right password waits
    assert hashed == []
    assert body["retry_after"] == 2 * 3600 - 50
    assert "failed sign-ins" in body["message"]
    monkeypatch.undo()
    with_settings(monkeypatch, stack, failed_sign_ins_per_email_per_hour=3)
    clock.advance(2 * 3600)
    assert stack.sign_in().status_code == 200


def test_failed_sign_ins_count_the_same_for_unknown_addresses(stack, monkeypatch):
    with_settings(monkeypatch, stack, failed_sign_ins_per_email_per_hour=2)
    for _ in range(2):
        assert_error(stack.sign_in(email="nobody@example.com"), 401, "invalid_credentials")
    assert_error(stack.sign_in(email="nobody@example.com"), 429, "rate_limited")
    assert stack.sign_in().status_code == 200  # another address is not affected


def test_failed_sign_ins_per_ip_are_limited(stack, monkeypatch):
    with_settings(monkeypatch, stack, failed_sign_ins_per_ip_per_hour=3)
    for name in ("a", "b", "c"):
        assert_error(stack.sign_in(email=f"{name}@example.com"), 401, "invalid_credentials")
    body = assert_error(stack.sign_in(), 429, "rate_limited")
    assert "network" in body["message"]


def test_cors_origin_from_configuration(stack):
    response = stack.sign_in()
    assert response.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:5173"
    error = stack.sign_in(password="nope")
    assert error.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:5173"


# ----------------------------------------------------------------- POST /otp/verify


def start(stack) -> tuple[str, str]:
    session_id = stack.sign_in().data["session_id"]
    return session_id, stack.latest_code()


def test_verify_ok(stack):
    session_id, code = start(stack)
    response = stack.post("/otp/verify", {"session_id": session_id, "code": code})
    assert response.status_code == 200
    assert verified_as(response.data) == DEMO_EMAIL


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"session_id": "abc"},
        {"code": "123456"},
        {"session_id": 5, "code": "123456"},
        {"session_id": "abc", "code": 123456},
        {"session_id": "abc", "code": "12345"},
        {"session_id": "abc", "code": "1234567"},
        {"session_id": "abc", "code": "12a456"},
        {"session_id": "a b", "code": "123456"},
        {"session_id": "x" * 300, "code": "123456"},
        [],
    ],
)
def test_verify_bad_input_is_400(stack, body):
    assert_error(stack.post("/otp/verify", body), 400, "invalid_request")


def test_wrong_code_counts_attempts_then_locks(stack):
    session_id, code = start(stack)
    wrong = "000000" if code != "000000" else "111111"
    for remaining in (4, 3, 2, 1, 0):
        body = assert_error(
            stack.post("/otp/verify", {"session_id": session_id, "code": wrong}), 401, "invalid_code"
        )
        assert body["attempts_remaining"] == remaining
    locked = assert_error(
        stack.post("/otp/verify", {"session_id": session_id, "code": code}), 410, "session_expired"
    )
    assert locked["reason"] == "too_many_attempts"


def test_unknown_session_is_expired(stack):
    body = assert_error(
        stack.post("/otp/verify", {"session_id": "A" * 43, "code": "123456"}), 410, "session_expired"
    )
    assert body["reason"] == "expired"


def test_code_expires_even_before_ttl_deletes_the_item(stack, clock):
    session_id, code = start(stack)
    clock.advance(301)
    body = assert_error(
        stack.post("/otp/verify", {"session_id": session_id, "code": code}), 410, "session_expired"
    )
    assert body["reason"] == "expired"


def test_code_works_until_expiry(stack, clock):
    session_id, code = start(stack)
    clock.advance(299)
    assert stack.post("/otp/verify", {"session_id": session_id, "code": code}).status_code == 200


def test_code_works_once(stack):
    session_id, code = start(stack)
    assert stack.post("/otp/verify", {"session_id": session_id, "code": code}).status_code == 200
    for _ in range(3):
        body = assert_error(
            stack.post("/otp/verify", {"session_id": session_id, "code": code}), 410, "session_expired"
        )
        assert body["reason"] == "used"


def test_session_of_another_email_does_not_verify_this_one(stack):
    from chalicelib import settings
    from ops.users import add_user

    add_user(settings.load(), "other@example.com", "other-password")
    mine = stack.sign_in().data["session_id"]
    my_code = stack.latest_code()
    theirs = stack.sign_in("other@example.com", "other-password").data["session_id"]
    response = stack.post("/otp/verify", {"session_id": theirs, "code": my_code})
    assert response.status_code == 401 or my_code == stack.latest_code("other@example.com")
    ok = stack.post("/otp/verify", {"session_id": mine, "code": my_code})
    assert ok.data["email"] == DEMO_EMAIL


# ----------------------------------------------------------------- POST /otp/resend


def test_resend_mails_a_new_code_and_voids_the_old(stack, clock):
    session_id, old = start(stack)
    clock.advance(30)
    response = stack.post("/otp/resend", {"session_id": session_id})
    assert response.status_code == 200
    assert response.data == {"expires_in": 300, "resend_in": 30}
    new = stack.latest_code()
    assert len(sent_mail()) == 2
    if new != old:
        body = assert_error(
            stack.post("/otp/verify", {"session_id": session_id, "code": old}), 401, "invalid_code"
        )
        assert body["attempts_remaining"] == 4
    assert stack.post("/otp/verify", {"session_id": session_id, "code": new}).status_code == 200


def test_resend_cooldown_is_429(stack, clock):
    session_id, _ = start(stack)
    clock.advance(5)
    limited = stack.post("/otp/resend", {"session_id": session_id})
    body = assert_error(limited, 429, "rate_limited")
    assert body["retry_after"] == 25
    assert limited.headers["Retry-After"] == "25"


def test_resend_counts_toward_hourly_limit(stack, clock, monkeypatch):
    with_settings(monkeypatch, stack, sends_per_email_per_hour=2, resend_cooldown_seconds=0)
    clock.now = 1_900_000_000 // 3600 * 3600 + 10
    session_id, _ = start(stack)
    assert stack.post("/otp/resend", {"session_id": session_id}).status_code == 200
    assert_error(stack.post("/otp/resend", {"session_id": session_id}), 429, "rate_limited")
    stack.pump()
    assert len(sent_mail()) == 2


def test_resend_of_unknown_used_or_locked_session_is_410(stack, clock):
    body = assert_error(stack.post("/otp/resend", {"session_id": "B" * 43}), 410, "session_expired")
    assert body["reason"] == "expired"
    session_id, code = start(stack)
    stack.post("/otp/verify", {"session_id": session_id, "code": code})
    clock.advance(60)
    body = assert_error(stack.post("/otp/resend", {"session_id": session_id}), 410, "session_expired")
    assert body["reason"] == "used"


def test_resend_after_expiry_is_410(stack, clock):
    session_id, _ = start(stack)
    clock.advance(400)
    body = assert_error(stack.post("/otp/resend", {"session_id": session_id}), 410, "session_expired")
    assert body["reason"] == "expired"


def test_resend_bad_input_is_400(stack):
    assert_error(stack.post("/otp/resend", {}), 400, "invalid_request")
    assert_error(stack.post("/otp/resend", {"session_id": 7}), 400, "invalid_request")


# ----------------------------------------------------------------- failures


def test_unexpected_error_is_json_500_without_trace(stack, monkeypatch):
    from chalicelib import store

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals demo-password")

    monkeypatch.setattr(store, "get_user", boom)
    response = stack.sign_in()
    assert_error(response, 500, "internal_error")
    assert b"secret internals" not in response.body


def test_throttled_dynamodb_is_503_json(stack, monkeypatch):
    from botocore.exceptions import ClientError

    from chalicelib import store

    def throttled(*args, **kwargs):
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
            "GetItem",
        )

    monkeypatch.setattr(store, "get_user", throttled)
    assert_error(stack.sign_in(), 503, "service_unavailable")


def test_missing_code_key_is_503_json(stack, caplog):
    from chalicelib import aws, keys

    session_id = stack.sign_in().data["session_id"]
    keys.forget()
    aws.client("ssm").delete_parameter(Name="/simple-otp/test/code-key")
    response = stack.post("/otp/verify", {"session_id": session_id, "code": "123456"})
    assert_error(response, 503, "service_unavailable")
    assert "code key unavailable" in caplog.text
    assert "ParameterNotFound" in caplog.text
