"""The app in this very process against moto, as the tests and the bench run it.

``TEST_ENV`` holds the settings of those runs: a stage that exists nowhere,
moto's dummy credentials, and no AWS file of the user read. Before ``app``
is imported, :func:`use_test_environment` points this process at them;
:func:`child_environment` is the same for a child Python. :func:`sent_mail`
reads back what moto's SES accepted, parsed as the local mailbox parses it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devstack.environment import ISOLATED_AWS, STACK_VARIABLES, without
from devstack.mailbox import code_in, moto_sent_messages, parse_raw

REGION = "us-east-1"

TEST_ENV = {
    "OTP_TABLE_NAME": "simple-otp-test",
    "OTP_STREAM_ARN": f"arn:aws:dynamodb:{REGION}:123456789012:table/simple-otp-test/stream/test",
    "OTP_SENDER": "no-reply@simple-otp.test",
    "OTP_KEY_PARAMETER": "/simple-otp/test/code-key",
    "OTP_ALLOWED_ORIGIN": "http://127.0.0.1:5173",
    "OTP_TOKEN_KEY_ID": "alias/simple-otp-test-token",
    "OTP_TOKEN_AUDIENCE": "simple-otp-test",
    "OTP_TOKEN_ISSUER": "http://127.0.0.1:8000",
    "OTP_SES_CONFIGURATION_SET": "simple-otp-test",
    "OTP_SES_EVENTS_TOPIC": "simple-otp-test-ses-events",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    **ISOLATED_AWS,
}


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (this process's) without any settings, AWS or port variable, plus ``TEST_ENV``."""
    return {**without(os.environ if environ is None else environ), **TEST_ENV}


def use_test_environment() -> None:
    """Point this process at ``TEST_ENV`` (before ``app`` is imported); nothing of the caller's stays."""
    for name in [name for name in os.environ if name.startswith(STACK_VARIABLES)]:
        del os.environ[name]
    os.environ.update(TEST_ENV)


@dataclass
class Mail:
    to: list[str]
    subject: str
    text: str
    html: str
    sender: str

    @property
    def code(self) -> str:
        return code_in(self.text)


# moto's own list of what its SES accepted (a raw send each), oldest first.
sent_messages = moto_sent_messages(REGION)


def mail_of(sent: Any) -> Mail:
    """One of :func:`sent_messages` as the local mailbox shows it (the same parser)."""
    to, subject, text, html = parse_raw(sent.raw_data, sent.destinations, sent.source)
    return Mail(to=to, subject=subject, text=text, html=html, sender=sent.source)


def sent_mail() -> list[Mail]:
    """Every message moto's SES accepted, oldest first."""
    return [mail_of(sent) for sent in sent_messages()]


def forget_containers() -> None:
    """What a new Lambda container starts without: AWS clients, the code key, the token keys."""
    from chalicelib import aws, keys, tokens

    aws.reset()
    keys.forget()
    tokens.forget()


def provision_demo() -> dict[str, Any]:
    """Provision the in-process moto as production is provisioned (TEST_ENV's names), with the
    demo user; returns what provisioning returns (the stream ARN and the events topic's ARN among it).

    moto has no SES API v2 event destinations: the local stack's emulator adds them
    (:func:`devstack.local_ses.install_event_destinations`), and so does this."""
    from chalicelib import settings
    from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
    from devstack.local_ses import install_event_destinations
    from ops.provision import provision
    from ops.users import add_user

    install_event_destinations()
    result = provision(
        TEST_ENV["OTP_TABLE_NAME"],
        TEST_ENV["OTP_KEY_PARAMETER"],
        TEST_ENV["OTP_SENDER"],
        TEST_ENV["OTP_TOKEN_KEY_ID"],
        configuration_set=TEST_ENV["OTP_SES_CONFIGURATION_SET"],
        events_topic=TEST_ENV["OTP_SES_EVENTS_TOPIC"],
    )
    add_user(settings.load(), DEMO_EMAIL, DEMO_PASSWORD)
    return result
