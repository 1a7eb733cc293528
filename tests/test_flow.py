"""The whole flow in-process: POST /otp -> moto stream -> handler -> moto SES -> verify."""

from __future__ import annotations

from devstack.environment import DEMO_EMAIL
from devstack.testenv import sent_mail
from tests.support import verified_as


def test_sign_in_mail_verify(stack):
    response = stack.sign_in()
    assert response.status_code == 200, response.body
    assert set(response.data) >= {"session_id", "expires_in", "resend_in"}
    assert response.data["expires_in"] == 300
    assert response.data["resend_in"] == 30

    records = stack.pump()
    assert any(r["eventName"] == "INSERT" for r in records)
    mails = sent_mail()
    assert len(mails) == 1
    mail = mails[0]
    assert mail.to == [DEMO_EMAIL]
    assert mail.subject
    assert mail.code in mail.html
    assert "5 minutes" in mail.text
    assert "did not" in mail.text

    verified = stack.post("/otp/verify", {"session_id": response.data["session_id"], "code": mail.code})
    assert verified.status_code == 200, verified.body
    assert verified_as(verified.data) == DEMO_EMAIL

    again = stack.post("/otp/verify", {"session_id": response.data["session_id"], "code": mail.code})
    assert again.status_code == 410
    assert again.data["reason"] == "used"
