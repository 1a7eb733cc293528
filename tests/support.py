"""Shared test helpers: an in-process AWS (moto) with the app's resources."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

TEST_ENV = {
    "OTP_TABLE_NAME": "simple-otp-test",
    "OTP_STREAM_ARN": "arn:aws:dynamodb:us-east-1:123456789012:table/simple-otp-test/stream/test",
    "OTP_SENDER": "no-reply@simple-otp.test",
    "OTP_KEY_PARAMETER": "/simple-otp/test/code-key",
    "OTP_ALLOWED_ORIGIN": "http://127.0.0.1:5173",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
}

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"
CODE_RE = re.compile(r"code is:\s*(\d{6,10})")


@dataclass
class Mail:
    to: list[str]
    subject: str
    text: str
    html: str
    sender: str

    @property
    def code(self) -> str:
        match = CODE_RE.search(self.text)
        assert match, f"no code in message text: {self.text!r}"
        return match.group(1)


def parse_raw(raw: str | bytes, destinations: list[str], source: str) -> Mail:
    """The message as the local mailbox shows it (the same parser)."""
    from devstack.mailbox import parse_raw as mailbox_parse

    to, subject, text, html = mailbox_parse(raw, destinations, source)
    return Mail(to=to, subject=subject, text=text, html=html, sender=source)


def sent_mail() -> list[Mail]:
    """Every message moto's SES accepted, oldest first."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    backend = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    return [parse_raw(m.raw_data, m.destinations, m.source) for m in backend.sent_messages]


@dataclass
class Stack:
    """The app in-process against moto, with a hand on its stream."""

    client: Any
    app_module: Any
    stream_arn: str
    reader: Any = None
    invocations: list[dict[str, Any]] = field(default_factory=list)

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        payload = body if isinstance(body, (str, bytes)) else json.dumps(body)
        response = self.client.http.post(
            path, headers={"Content-Type": "application/json", **(headers or {})}, body=payload
        )
        response.data = json.loads(response.body) if response.body else None
        return response

    def sign_in(self, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> Any:
        return self.post("/otp", {"email": email, "password": password})

    def stream_records(self) -> list[dict[str, Any]]:
        return self.reader.poll()

    def pump(self) -> list[dict[str, Any]]:
        """Hand every new stream record to the app's stream handler, as Lambda does."""
        from devstack.streams import lambda_event

        records = self.stream_records()
        if records:
            event = lambda_event(records, self.stream_arn)
            self.invocations.append(event)
            self.client.lambda_.invoke("send_code", event)
        return records

    def latest_code(self, to: str = DEMO_EMAIL) -> str:
        self.pump()
        mails = [m for m in sent_mail() if to in m.to]
        assert mails, f"no mail to {to}"
        return mails[-1].code


moto_lock = threading.RLock()


def serialize_dynamodb() -> list[Any]:
    """Make moto's DynamoDB apply one request at a time, as DynamoDB applies
    writes to one item atomically. moto runs concurrent requests unlocked,
    which real DynamoDB never does; race tests need the real semantics.
    Returns undo callables."""
    from moto.dynamodb.models import DynamoDBBackend

    undo = []
    for name in ("get_item", "put_item", "update_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with moto_lock:
                return __original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, locked)
        undo.append(lambda name=name, original=original: setattr(DynamoDBBackend, name, original))
    return undo
