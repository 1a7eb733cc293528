"""Injection: hostile addresses, JSON and bodies on every route.

Every one is answered 4xx with the JSON error shape, never 5xx, and none
of them mails anyone. The cases live in payloads.py, shared with the HTTP
run against the local stack.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from devstack.testenv import sent_mail
from tests.attacks.helpers import error_shape
from tests.attacks.payloads import cases

GROUPS = {
    "email": "injection: hostile email addresses",
    "types": "injection: wrong JSON types",
    "body": "injection: huge, nested, duplicate, non-JSON",
    "content type": "injection: wrong content types",
}


def group_of(label: str) -> str:
    head = label.split(":", 1)[0]
    return GROUPS.get(head, "injection: session id and code fields")


def post_raw(stack, route: str, body: bytes, content_type: str | None):
    headers = {} if content_type is None else {"Content-Type": content_type}
    return stack.client.http.post(route, headers=headers, body=body)


def test_every_hostile_request_is_a_json_4xx_and_mails_nobody(stack, caplog, attack_log):
    caplog.set_level(logging.INFO)
    session_id = stack.sign_in().data["session_id"]  # a real session, so verify/resend reach the table
    code = stack.latest_code()
    mails_before = len(sent_mail())

    tries: dict[str, int] = defaultdict(int)
    bad: dict[str, list[str]] = defaultdict(list)
    for label, route, body, content_type in cases():
        if route != "/otp":
            body = body.replace(b'"abc"', f'"{session_id}"'.encode())
        group = group_of(label)
        tries[group] += 1
        response = post_raw(stack, route, body, content_type)
        try:
            assert 400 <= response.status_code < 500, response.status_code
            error_shape(response.status_code, response.headers, response.body)
        except (AssertionError, ValueError) as failure:
            bad[group].append(f"{label}: {response.status_code} {failure!s:.120}")
    stack.pump()
    new_mail = sent_mail()[mails_before:]
    for group in tries:
        attack_log(group, tries[group], len(bad[group]), "4xx JSON")
    attack_log("injection: mail sent by any of the above", 0, len(new_mail), f"{len(new_mail)} messages")
    assert not any(bad.values()), dict(bad)
    assert new_mail == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], [r.getMessage() for r in errors]
    # malformed requests are not guesses: the session still has every attempt and its code works
    assert stack.post("/otp/verify", {"session_id": session_id, "code": code}).status_code == 200
