"""Helpers of the attack suite: response checks, wrong codes, AWS faults."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devstack.environment import DEMO_EMAIL
from devstack.testenv import sent_mail

ERROR_CODES = {
    "invalid_request",
    "invalid_credentials",
    "invalid_code",
    "session_expired",
    "rate_limited",
    "service_unavailable",
    "internal_error",
    "method_not_allowed",
    "weak_password",
    "signup_disabled",
    "signup_not_allowed",
    "account_exists",
}


def error_shape(status: int, headers: dict[str, str], raw: bytes | str) -> dict[str, Any]:
    """Check an error answer is our JSON shape, with nothing leaked; return its body."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    assert content_type.startswith("application/json"), (status, content_type, text[:200])
    body = json.loads(text)
    assert isinstance(body, dict), text[:200]
    assert body.get("error") in ERROR_CODES, text[:200]
    assert isinstance(body.get("message"), str) and body["message"], text[:200]
    assert "Traceback" not in text and 'File "' not in text, text[:200]
    if body["error"] == "rate_limited":
        retry_after = body["retry_after"]
        assert isinstance(retry_after, int) and retry_after >= 1
        assert {k.lower(): v for k, v in headers.items()}["retry-after"] == str(retry_after)
    if body["error"] == "invalid_code":
        assert isinstance(body["attempts_remaining"], int) and body["attempts_remaining"] >= 0
    if body["error"] == "session_expired":
        assert body["reason"] in {"expired", "used", "too_many_attempts"}
    if body["error"] == "weak_password":
        assert body["rule"] in {"too_short", "too_long", "common", "matches_email"}
    return body


def check_error(response: Any, *statuses: int) -> dict[str, Any]:
    """A chalice.test response that is an error of one of ``statuses`` (default: any 4xx)."""
    if statuses:
        assert response.status_code in statuses, (response.status_code, response.body[:300])
    else:
        assert 400 <= response.status_code < 500, (response.status_code, response.body[:300])
    return error_shape(response.status_code, response.headers, response.body)


def wrong_codes(right: str, count: int, length: int = 6) -> list[str]:
    """``count`` distinct codes of ``length`` digits, none of them ``right``."""
    out = []
    n = 0
    while len(out) < count:
        guess = str(n * 7919 % 10**length).zfill(length)
        if guess != right and guess not in out:
            out.append(guess)
        n += 1
    return out


def mail_counts() -> dict[str, int]:
    """How many messages moto's SES sent to each address."""
    counts: dict[str, int] = {}
    for message in sent_mail():
        for address in message.to:
            counts[address] = counts.get(address, 0) + 1
    return counts


def only_mail_to(allowed: set[str] | None = None) -> set[str]:
    """The recipients of every message sent that are not in ``allowed``."""
    allowed = allowed if allowed is not None else {DEMO_EMAIL}
    return set(mail_counts()) - allowed


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def success_probability(attempts: int, sessions: int, digits: int) -> float:
    """Chance that ``sessions`` sessions of ``attempts`` distinct guesses each hit a code.

    Each session's code is uniform over 10**digits values and independent of
    the others, and an attacker's best play is distinct guesses per session:
    1 - (1 - a/10^d)^s.
    """
    per_session = attempts / 10**digits
    return -math.expm1(sessions * math.log1p(-per_session))


# ----------------------------------------------------------------- AWS faults


class _Raw:
    """The raw body botocore reads from a response (what urllib3 would hand it)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def dynamodb_error(code: str, status: int = 400, extra: dict[str, Any] | None = None) -> Callable[..., Any]:
    """A DynamoDB (JSON 1.0 protocol) error answer, as the service sends it."""
    body = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": f"{code} (injected)"}
    body.update(extra or {})
    payload = json.dumps(body).encode()

    def build(request: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "fault"}
        return AWSResponse(request.url, status, headers, _Raw(payload))

    return build


def query_error(code: str, status: int = 400, namespace: str = "http://ses.amazonaws.com/doc/2010-12-01/"):
    """An error answer of a query-protocol service (SES)."""
    payload = (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{code} (injected)</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
    ).encode()

    def build(request: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        return AWSResponse(request.url, status, {"Content-Type": "text/xml"}, _Raw(payload))

    return build


def json11_error(code: str, status: int = 400) -> Callable[..., Any]:
    """An error answer of a JSON 1.1 protocol service (SSM)."""
    payload = json.dumps({"__type": code, "message": f"{code} (injected)"}).encode()

    def build(request: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        return AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.1"}, _Raw(payload))

    return build


def _stubber() -> Any:
    from moto.core.models import botocore_stubber

    return botocore_stubber


@dataclass
class Fault:
    """Answer some calls of one operation with an error before they reach moto.

    Registered first on the client's ``before-send`` event, so its answer
    is the one botocore reads. botocore calls every ``before-send`` handler,
    so while answering it also switches moto's stub off until a handler
    registered last on the generic event switches it back on: a call it refuses never reaches the
    emulator, exactly like a request AWS refused. ``when(request)`` picks
    the calls; ``times`` bounds how many are refused (None: all of them).
    """

    service: str
    operation: str
    answer: Callable[[Any], Any] | None = None
    raise_error: Callable[[Any], Exception] | None = None
    times: int | None = None
    when: Callable[[Any], bool] = lambda request: True
    calls: list[Any] = field(default_factory=list)
    refused: int = 0
    _stub_off: bool = False

    def __call__(self, request: Any, **_: Any) -> Any:
        self.calls.append(request)
        if not self.when(request):
            return None
        if self.times is not None and self.refused >= self.times:
            return None
        self.refused += 1
        if self.raise_error is not None:
            raise self.raise_error(request)  # stops the event: moto never sees the call
        assert self.answer is not None
        _stubber().enabled = False
        self._stub_off = True
        return self.answer(request)

    def _stub_back_on(self, **_: Any) -> None:
        if self._stub_off:
            _stubber().enabled = True
            self._stub_off = False

    def install(self) -> Fault:
        from chalicelib import aws

        self._stub_off = False
        events = aws.client(self.service).meta.events
        events.register_first(self._event, self)
        # Handlers of the generic event run after those of the specific one, so this is after moto's.
        events.register_last("before-send", self._stub_back_on)
        return self

    def remove(self) -> None:
        from chalicelib import aws

        events = aws.client(self.service).meta.events
        events.unregister(self._event, self)
        events.unregister("before-send", self._stub_back_on)

    @property
    def _event(self) -> str:
        return f"before-send.{self.event_service}.{self.operation}"

    @property
    def event_service(self) -> str:
        from chalicelib import aws

        return aws.client(self.service).meta.service_model.service_id.hyphenize()


def request_text(request: Any) -> str:
    body = request.body
    if body is None:
        return ""
    if hasattr(body, "read"):
        position = body.tell()
        data = body.read()
        body.seek(position)
        body = data
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
