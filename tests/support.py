"""Test helpers: the app in-process against moto with a hand on its stream, and
moto's DynamoDB made to apply one request at a time.

The settings and the sent mail of these runs are shared with the bench, in
``devstack.testenv``; the demo user is ``devstack.environment``'s.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from devstack.testenv import sent_mail
from tests import logscan


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
        if isinstance(body, (str, bytes)):
            try:
                body = json.loads(body)
            except ValueError:
                body = None
        logscan.remember(body)
        logscan.remember(response.data)
        return response

    def sign_in(self, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> Any:
        return self.post("/otp", {"email": email, "password": password})

    def stream_records(self) -> list[dict[str, Any]]:
        """Every record written since the last call (the reader pages 100 at a time)."""
        records: list[dict[str, Any]] = []
        while batch := self.reader.poll():
            records.extend(batch)
        return records

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
        logscan.secrets.update(m.code for m in mails)
        return mails[-1].code


moto_lock = threading.RLock()


def serialize_dynamodb() -> list[Any]:
    """Make moto's DynamoDB apply one request at a time, as DynamoDB applies
    writes to one item atomically. moto runs concurrent requests unlocked,
    which real DynamoDB never does; race tests need the real semantics.

    The lock spans each whole request, not only each backend call: moto's
    UpdateItem reads the old image (for ReturnValues) in one backend call and
    writes in a second one, so a thread paused between the two, as happens
    on a busy machine, would get an old image that misses another request's
    write. Returns undo callables."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    undo = []
    targets = [(DynamoHandler, "call_action")] + [
        (DynamoDBBackend, name)
        for name in ("get_item", "put_item", "update_item", "delete_item", "transact_write_items")
    ]
    for owner, name in targets:
        original = getattr(owner, name)

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with moto_lock:
                return __original(self, *args, **kwargs)

        setattr(owner, name, locked)
        undo.append(lambda owner=owner, name=name, original=original: setattr(owner, name, original))
    return undo


VERIFIED_FIELDS = {"verified", "email", "token", "token_type", "expires_in", "device_token"}


def verified_as(body: Any) -> str:
    """The email of a successful verify answer, after checking its shape (token fields included)."""
    assert isinstance(body, dict) and set(body) == VERIFIED_FIELDS, body
    assert body["verified"] is True and body["token_type"] == "Bearer", body
    assert body["token"].count(".") == 2 and isinstance(body["expires_in"], int)
    return str(body["email"])
