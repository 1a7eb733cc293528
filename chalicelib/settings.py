"""Typed settings read from environment variables, validated once.

Every setting is named ``OTP_*``; a missing or malformed value raises
:class:`ConfigError` whose message names the variable, so a bad deploy fails
at start-up with one readable line instead of a stack trace at the first
request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass


class ConfigError(ValueError):
    """A setting is missing or not valid; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    table_name: str
    stream_arn: str
    sender: str
    key_parameter: str
    allowed_origin: str
    token_key_id: str
    token_audience: str
    token_issuer: str
    configuration_set: str  # the SES configuration set every send goes through
    events_topic: str  # the SNS topic its event destination publishes to (name or ARN)
    code_length: int = 6
    ttl_seconds: int = 300
    max_attempts: int = 5
    resend_cooldown_seconds: int = 30
    sends_per_email_per_hour: int = 10
    sends_per_ip_per_hour: int = 50
    failed_sign_ins_per_email_per_hour: int = 20
    failed_sign_ins_per_ip_per_hour: int = 100
    session_max_seconds: int = 1800
    token_ttl_seconds: int = 300
    token_grace_seconds: int = 86400
    device_ttl_days: int = 30
    failed_sign_ins_per_device_per_hour: int = 10
    sends_per_device_per_hour: int = 10
    mails_per_email_per_hour: int = 30
    signup_enabled: bool = False
    signup_allowed_domains: tuple[str, ...] = ()  # empty: any domain


# name -> (field, minimum, maximum)
_INTEGERS: dict[str, tuple[str, int, int]] = {
    "OTP_CODE_LENGTH": ("code_length", 6, 10),
    "OTP_TTL_SECONDS": ("ttl_seconds", 10, 3600),
    "OTP_MAX_ATTEMPTS": ("max_attempts", 1, 20),
    "OTP_RESEND_COOLDOWN_SECONDS": ("resend_cooldown_seconds", 0, 3600),
    "OTP_SENDS_PER_EMAIL_PER_HOUR": ("sends_per_email_per_hour", 1, 1000),
    "OTP_SENDS_PER_IP_PER_HOUR": ("sends_per_ip_per_hour", 1, 100000),
    "OTP_FAILED_SIGN_INS_PER_EMAIL_PER_HOUR": ("failed_sign_ins_per_email_per_hour", 1, 1000),
    "OTP_FAILED_SIGN_INS_PER_IP_PER_HOUR": ("failed_sign_ins_per_ip_per_hour", 1, 100000),
    "OTP_SESSION_MAX_SECONDS": ("session_max_seconds", 10, 86400),
    "OTP_TOKEN_TTL_SECONDS": ("token_ttl_seconds", 60, 3600),
    # a previous signing key stays published this long after a rotation; at least
    # what a token lives plus the time caches take to learn of the new key
    "OTP_TOKEN_GRACE_SECONDS": ("token_grace_seconds", 4200, 30 * 86400),
    "OTP_DEVICE_TTL_DAYS": ("device_ttl_days", 1, 400),
    "OTP_FAILED_SIGN_INS_PER_DEVICE_PER_HOUR": ("failed_sign_ins_per_device_per_hour", 1, 1000),
    "OTP_SENDS_PER_DEVICE_PER_HOUR": ("sends_per_device_per_hour", 1, 1000),
    # every code mailed to one address, whoever asked: the mailbox's own ceiling
    "OTP_MAILS_PER_EMAIL_PER_HOUR": ("mails_per_email_per_hour", 1, 10000),
}

_REQUIRED: dict[str, str] = {
    "OTP_TABLE_NAME": "table_name",
    "OTP_STREAM_ARN": "stream_arn",
    "OTP_SENDER": "sender",
    "OTP_KEY_PARAMETER": "key_parameter",
    "OTP_ALLOWED_ORIGIN": "allowed_origin",
    "OTP_TOKEN_KEY_ID": "token_key_id",
    "OTP_TOKEN_AUDIENCE": "token_audience",
    "OTP_TOKEN_ISSUER": "token_issuer",
    "OTP_SES_CONFIGURATION_SET": "configuration_set",
    "OTP_SES_EVENTS_TOPIC": "events_topic",
}

_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_STREAM_ARN = re.compile(r"^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:\d{12}:table/[A-Za-z0-9_.-]+/stream/\S+$")
_SENDER = re.compile(r"^(?:[^<>\r\n]*<)?[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+>?$")
_PARAMETER = re.compile(r"^/?[A-Za-z0-9_.\-/]{1,1011}$")
# https for any host; plain http only for this machine (the local stack).
_ORIGIN = re.compile(r"(https://[A-Za-z0-9.\-]+|http://(localhost|127\.0\.0\.1|\[::1\]))(:\d{1,5})?")

# A KMS key id, key ARN, alias name or alias ARN.
_KMS_KEY = re.compile(
    r"(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:)?(key/[A-Za-z0-9-]{1,64}|alias/[A-Za-z0-9/_-]{1,250})|[A-Za-z0-9-]{1,64}"
)
_AUDIENCE = re.compile(r"[\x21-\x7e]{1,256}")
# The API's public base URL: https (http only on this machine), no trailing slash, no query.
_ISSUER = re.compile(
    r"(https://[A-Za-z0-9.\-]+|http://(localhost|127\.0\.0\.1|\[::1\]))(:\d{1,5})?(/[A-Za-z0-9._~-]+)*"
)

_CONFIGURATION_SET = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TOPIC = re.compile(r"(arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:)?[A-Za-z0-9_-]{1,256}")

_LOCAL = "http only for localhost or 127.0.0.1"
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_BOOLEANS = {"true": True, "false": False}

_CHECKS: dict[str, tuple[re.Pattern[str], str]] = {
    "OTP_TABLE_NAME": (_TABLE_NAME, "a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)"),
    "OTP_STREAM_ARN": (
        _STREAM_ARN,
        "the table's stream ARN (arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL)",
    ),
    "OTP_SENDER": (_SENDER, "an email address such as no-reply@example.com"),
    "OTP_KEY_PARAMETER": (_PARAMETER, "an SSM parameter name such as /simple-otp/dev/code-key"),
    "OTP_ALLOWED_ORIGIN": (
        _ORIGIN,
        f"one https origin such as https://login.example.com (no path, no *; {_LOCAL})",
    ),
    "OTP_TOKEN_KEY_ID": (_KMS_KEY, "a KMS key id, key ARN or alias such as alias/simple-otp-dev-token"),
    "OTP_TOKEN_AUDIENCE": (_AUDIENCE, "the audience of the tokens, such as https://app.example.com"),
    "OTP_TOKEN_ISSUER": (_ISSUER, f"the API's public base URL, no trailing slash ({_LOCAL})"),
    "OTP_SES_CONFIGURATION_SET": (
        _CONFIGURATION_SET,
        "an SES configuration set name (1-64 of A-Z a-z 0-9 _ -) such as simple-otp-dev",
    ),
    "OTP_SES_EVENTS_TOPIC": (
        _TOPIC,
        "the SNS topic of SES's events, a name such as simple-otp-dev-ses-events or its ARN",
    ),
}


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every ``OTP_*`` setting; raise ConfigError on the first bad one."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name, field in _REQUIRED.items():
        raw = env.get(name, "").strip()
        pattern, expected = _CHECKS[name]
        if not raw:
            raise ConfigError(f"{name} is not set: expected {expected}")
        if not pattern.fullmatch(raw):
            raise ConfigError(f"{name}={raw!r} is not valid: expected {expected}")
        values[field] = raw
    for name, (field, low, high) in _INTEGERS.items():
        raw = env.get(name, "").strip()
        if not raw:
            continue
        try:
            number = int(raw, 10)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number") from None
        if not low <= number <= high:
            raise ConfigError(f"{name}={number} is out of range: allowed {low} to {high}")
        values[field] = number
    raw = env.get("OTP_SIGNUP_ENABLED", "").strip().lower()
    if raw:
        if raw not in _BOOLEANS:
            raise ConfigError(f"OTP_SIGNUP_ENABLED={raw!r} is not valid: expected true or false")
        values["signup_enabled"] = _BOOLEANS[raw]
    raw = env.get("OTP_SIGNUP_ALLOWED_DOMAINS", "").strip()
    if raw:
        domains = tuple(part.strip().lower() for part in raw.split(","))
        for domain in domains:
            if not _DOMAIN.fullmatch(domain):
                raise ConfigError(
                    f"OTP_SIGNUP_ALLOWED_DOMAINS has {domain!r}: expected domains such as "
                    "example.com,example.org (comma-separated)"
                )
        values["signup_allowed_domains"] = domains
    return Settings(**values)  # type: ignore[arg-type]
