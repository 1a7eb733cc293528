"""Pure units: codes, settings, input rules."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from chalicelib import codes, inputs, settings
from chalicelib.errors import InvalidRequest
from devstack.testenv import TEST_ENV

ROOT = Path(__file__).resolve().parent.parent


def test_session_ids_carry_at_least_128_random_bits():
    ids = {codes.new_session_id() for _ in range(1000)}
    assert len(ids) == 1000
    for sid in list(ids)[:50]:
        # url-safe base64: 6 bits per character
        assert len(sid) * 6 >= 128 + 6
    assert codes.SESSION_ID_BYTES * 8 >= 128


def test_derived_code_is_deterministic_digits_of_configured_length():
    key = b"k" * 32
    nonce = codes.new_nonce()
    for length in range(6, 11):
        code = codes.derive_code(key, nonce, length)
        assert len(code) == length and code.isdigit()
        assert code == codes.derive_code(key, nonce, length)


def test_codes_differ_by_nonce_and_key_and_look_uniform():
    key = b"k" * 32
    seen = [codes.derive_code(key, i.to_bytes(16, "big"), 6) for i in range(2000)]  # fixed inputs: no flakes
    assert len(set(seen)) > 1990  # 2000 draws from 10^6 collide rarely
    first_digits = [int(c[0]) for c in seen]
    counts = [first_digits.count(d) for d in range(10)]
    # chi-square with 9 degrees of freedom; 27.9 is the 0.1% critical value
    chi = sum((c - 200) ** 2 / 200 for c in counts)
    assert chi < 27.9, counts
    nonce = codes.new_nonce()
    assert codes.derive_code(b"a" * 32, nonce, 10) != codes.derive_code(b"b" * 32, nonce, 10)


def test_ten_digit_codes_use_the_whole_range():
    key = b"k" * 32
    big = max(int(codes.derive_code(key, i.to_bytes(16, "big"), 10)) for i in range(400))
    assert big > 2**31  # plain 31-bit HOTP truncation could never exceed this
    assert math.log10(big) <= 10


def test_codes_compare_in_constant_time_helper():
    assert codes.codes_equal("123456", "123456")
    assert not codes.codes_equal("123456", "123457")


def test_no_module_of_the_service_uses_random():
    for path in [ROOT / "app.py", *sorted((ROOT / "chalicelib").glob("*.py"))]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert all(alias.name != "random" for alias in node.names), path
            if isinstance(node, ast.ImportFrom):
                assert node.module != "random", path


def test_settings_defaults():
    cfg = settings.load(TEST_ENV)
    assert (cfg.code_length, cfg.ttl_seconds, cfg.max_attempts) == (6, 300, 5)
    assert (cfg.resend_cooldown_seconds, cfg.sends_per_email_per_hour, cfg.sends_per_ip_per_hour) == (
        30,
        10,
        50,
    )
    assert (cfg.failed_sign_ins_per_email_per_hour, cfg.failed_sign_ins_per_ip_per_hour) == (20, 100)


@pytest.mark.parametrize("name", ["OTP_TABLE_NAME", "OTP_STREAM_ARN", "OTP_SENDER", "OTP_KEY_PARAMETER"])
def test_settings_missing_required_names_the_variable(name):
    env = {k: v for k, v in TEST_ENV.items() if k != name}
    with pytest.raises(settings.ConfigError, match=name):
        settings.load(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTP_CODE_LENGTH", "5"),
        ("OTP_CODE_LENGTH", "11"),
        ("OTP_CODE_LENGTH", "six"),
        ("OTP_TTL_SECONDS", "-1"),
        ("OTP_MAX_ATTEMPTS", "0"),
        ("OTP_SENDS_PER_EMAIL_PER_HOUR", "1.5"),
        ("OTP_STREAM_ARN", "not-an-arn"),
        ("OTP_SENDER", "nobody"),
        ("OTP_ALLOWED_ORIGIN", "http://x.test/path"),
    ],
)
def test_settings_bad_value_names_the_variable(name, value):
    with pytest.raises(settings.ConfigError, match=name):
        settings.load({**TEST_ENV, name: value})


def test_settings_accept_allowed_range():
    cfg = settings.load({**TEST_ENV, "OTP_CODE_LENGTH": "10", "OTP_TTL_SECONDS": "30"})
    assert cfg.code_length == 10 and cfg.ttl_seconds == 30


GOOD_EMAILS = ["demo@example.com", "A.B+tag@Sub.Example.org", "x@y.co"]
BAD_EMAILS = [
    "",
    "plain",
    "@example.com",
    "a@b",
    "a@@example.com",
    "a b@example.com",
    "a@example.com\r\nBcc: x@evil.test",
    "a@example.com\n",
    "a\x00@example.com",
    "a@exаmple.com",  # Cyrillic 'а'
    "ａ@example.com",  # fullwidth
    "a@example.com, b@example.com",
    "a@example.com;b@example.com",
    "Name <a@example.com>",
    "a" * 65 + "@example.com",
    "a@" + "b" * 250 + ".com",
    "a..b@example.com",
    "a@-example.com",
    "a@example.123",
]


@pytest.mark.parametrize("value", GOOD_EMAILS)
def test_email_accepts(value):
    assert inputs.email({"email": value}) == value.lower()


@pytest.mark.parametrize("value", BAD_EMAILS)
def test_email_rejects(value):
    with pytest.raises(InvalidRequest):
        inputs.email({"email": value})


@pytest.mark.parametrize("value", [None, 5, ["a@b.co"], {"a": 1}, True])
def test_email_wrong_type(value):
    with pytest.raises(InvalidRequest):
        inputs.email({"email": value} if value is not None else {})


def test_password_bounds():
    assert inputs.password({"password": "x" * 1024})
    for bad in ["", "x" * 1025, 12345]:
        with pytest.raises(InvalidRequest):
            inputs.password({"password": bad})


def test_code_must_be_exact_digits():
    assert inputs.code({"code": "012345"}, 6) == "012345"
    for bad in ["12345", "1234567", "12345a", "١٢٣٤٥٦", 123456, " 12345"]:
        with pytest.raises(InvalidRequest):
            inputs.code({"code": bad}, 6)


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b'{"a": 1}', "text/plain"),
        (b'{"a": 1}', None),
        (b"", "application/json"),
        (b"not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"text"', "application/json"),
        (b'{"a": 1, "a": 2}', "application/json"),
        (b'{"a": NaN}', "application/json"),
        (b"[" * 100000 + b"]" * 100000, "application/json"),
        (b'{"a": "' + b"x" * 1_000_000 + b'"}', "application/json"),
        (b"\xff\xfe", "application/json"),
    ],
)
def test_bodies_rejected(raw, content_type):
    with pytest.raises(InvalidRequest):
        inputs.parse_body(raw, content_type)


def test_body_accepted_with_charset():
    assert inputs.parse_body(b'{"a": 1}', "application/json; charset=utf-8") == {"a": 1}
