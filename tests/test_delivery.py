"""The stream handler, driven by the records moto's stream really produced."""

from __future__ import annotations

import pytest

from chalicelib import mail
from devstack.environment import DEMO_EMAIL
from devstack.streams import lambda_event
from devstack.testenv import sent_mail


def test_only_challenge_inserts_are_mailed(stack, clock):
    session_id = stack.sign_in().data["session_id"]
    code = stack.latest_code()
    stack.post("/otp/verify", {"session_id": session_id, "code": code})
    records = stack.pump()  # session MODIFY from verify (and the audit trail's own writes)
    mine = [r for r in records if r["dynamodb"]["Keys"]["pk"]["S"].split("#")[0] != "audit"]
    assert mine and {r["eventName"] for r in mine} == {"MODIFY"}
    events = [r for event in stack.invocations for r in event["Records"]]
    kinds = {(r["eventName"], r["dynamodb"].get("NewImage", {}).get("kind", {}).get("S")) for r in events}
    assert (
        ("INSERT", "session") in kinds and ("INSERT", "limit") in kinds and ("MODIFY", "challenge") in kinds
    )
    assert len(sent_mail()) == 1


def test_message_has_text_and_html_with_code_validity_and_ignore_line(stack):
    stack.sign_in()
    stack.pump()
    (message,) = sent_mail()
    assert message.subject == mail.SUBJECT
    assert message.sender == "no-reply@simple-otp.test"
    for part in (message.text, message.html):
        assert message.code in part
        assert "5 minutes" in part
        assert "did not try to sign in" in part


def test_a_record_delivered_twice_is_mailed_once(stack):
    stack.sign_in()
    records = stack.stream_records()
    event = lambda_event(records, stack.stream_arn)
    stack.client.lambda_.invoke("send_code", event)
    stack.client.lambda_.invoke("send_code", event)
    assert len(sent_mail()) == 1


def test_failed_send_is_retried_and_others_not_resent(stack, monkeypatch):
    from chalicelib import settings
    from ops.users import add_user

    add_user(settings.load(), "second@example.com", "second-password")
    assert stack.sign_in().status_code == 200
    assert stack.sign_in("second@example.com", "second-password").status_code == 200
    event = lambda_event(stack.stream_records(), stack.stream_arn)

    real_send = mail.send
    failures = {"left": 1}

    def flaky(sender, recipient, message, *args):
        if recipient == "second@example.com" and failures["left"]:
            failures["left"] -= 1
            from botocore.exceptions import ClientError

            raise ClientError(
                {"Error": {"Code": "Throttling", "Message": "Maximum sending rate exceeded."}}, "SendRawEmail"
            )
        return real_send(sender, recipient, message, *args)

    monkeypatch.setattr(mail, "send", flaky)
    with pytest.raises(Exception, match="not sent"):
        stack.app_module.send_code(event, None)
    assert [m.to for m in sent_mail()] == [[DEMO_EMAIL]]

    stack.app_module.send_code(event, None)  # Lambda redelivers the batch
    assert sorted(m.to[0] for m in sent_mail()) == [DEMO_EMAIL, "second@example.com"]
    stack.app_module.send_code(event, None)  # and once more: nothing new
    assert len(sent_mail()) == 2


def test_expired_challenge_is_not_mailed(stack, clock):
    stack.sign_in()
    clock.advance(301)
    stack.pump()
    assert sent_mail() == []


def test_code_key_unavailable_fails_the_batch_before_claiming(stack, monkeypatch):
    from chalicelib import delivery, errors, keys

    stack.sign_in()
    event = lambda_event(stack.stream_records(), stack.stream_arn)

    def no_key(parameter, version):
        raise errors.ServiceUnavailable()

    monkeypatch.setattr(keys, "key_at", no_key)
    with pytest.raises(delivery.DeliveryFailed):
        stack.app_module.send_code(event, None)
    monkeypatch.undo()
    stack.app_module.send_code(event, None)
    assert len(sent_mail()) == 1


def test_mail_goes_to_exactly_the_one_address(stack):
    stack.sign_in()
    stack.pump()
    (message,) = sent_mail()
    assert message.to == [DEMO_EMAIL]
