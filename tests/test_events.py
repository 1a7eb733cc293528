"""Where the code is: SES events through SNS to delivery_events, and POST /otp/status.

moto's SES accepts the mail (and its configuration set and tags) but
publishes no events; the events here are the ones SES would publish for
it, shaped as AWS documents them (tests/ses_events.py), handed to the
handler as Lambda hands an SNS notification: twice, late and out of order.
"""

from __future__ import annotations

import json

import pytest

from chalicelib import codes, events, store
from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from devstack.testenv import sent_mail, sent_messages
from tests.attacks.helpers import check_error
from tests.ses_events import lambda_sns_event, ses_event

FINAL = ("delivered", "bounced", "complained", "rejected", "suppressed")


def _signed_in(stack, email=DEMO_EMAIL, password=None):
    started = stack.sign_in(email, password) if password else stack.sign_in(email)
    assert started.status_code == 200, started.data
    stack.pump()
    return started.data["session_id"]


def _challenge(stack, session_id, send_no=1):
    cfg = stack.app_module.SETTINGS
    pk = store.challenge_key(codes.session_hash(session_id), send_no)
    from chalicelib import aws

    item = aws.client("dynamodb").get_item(TableName=cfg.table_name, Key=store.to_ddb({"pk": pk}))
    return store.from_ddb(item.get("Item"))


def _tags(stack, session_id, send_no=1):
    item = _challenge(stack, session_id, send_no)
    return {"session": item["session"], "send": str(send_no), "queued": str(item["queued_at"])}


def _publish(stack, kind, session_id, at, send_no=1, to=DEMO_EMAIL, **options):
    item = _challenge(stack, session_id, send_no)
    message = ses_event(kind, item["message_id"], to, _tags(stack, session_id, send_no), at, **options)
    stack.client.lambda_.invoke("delivery_events", lambda_sns_event(message))


def _status(stack, session_id):
    answer = stack.post("/otp/status", {"session_id": session_id})
    assert answer.status_code == 200, answer.data
    assert set(answer.data) == {"delivery", "at"} and isinstance(answer.data["at"], int)
    return answer.data["delivery"], answer.data["at"]


def test_each_send_goes_through_the_configuration_set_and_its_message_id_is_kept(stack, clock):
    from chalicelib import aws

    requests = []
    aws.client("ses").meta.events.register(
        "provide-client-params.ses.SendRawEmail", lambda params, **_: requests.append(dict(params))
    )
    session_id = _signed_in(stack)
    item = _challenge(stack, session_id)
    (sent,) = sent_messages()
    assert item["message_id"] == sent.id  # SES's id, recorded on the challenge
    assert item["queued_at"] == int(clock.now)
    # what went to SES: the stage's configuration set and the tags that name the send
    (request,) = requests
    assert request["ConfigurationSetName"] == stack.app_module.SETTINGS.configuration_set
    tags = {t["Name"]: t["Value"] for t in request["Tags"]}
    assert tags == {"session": codes.session_hash(session_id), "send": "1", "queued": str(int(clock.now))}
    assert session_id not in json.dumps(request["Tags"])  # the hash, never the session id


def test_status_moves_forward_only_whatever_order_and_repeats_the_events_come_in(stack, clock):
    session_id = _signed_in(stack)
    queued_at = int(clock.now)
    assert _status(stack, session_id) == ("queued", queued_at)
    _publish(stack, "Send", session_id, clock.now + 1)
    assert _status(stack, session_id) == ("sent", queued_at + 1)
    _publish(stack, "DeliveryDelay", session_id, clock.now + 2)
    assert _status(stack, session_id) == ("delayed", queued_at + 2)
    _publish(stack, "Delivery", session_id, clock.now + 40)
    assert _status(stack, session_id) == ("delivered", queued_at + 40)
    for late in ("Send", "DeliveryDelay", "Delivery", "Send"):  # late, twice, out of order
        _publish(stack, late, session_id, clock.now + 50)
    assert _status(stack, session_id) == ("delivered", queued_at + 40)


def test_a_delivery_before_its_send_event_still_ends_delivered(stack, clock):
    session_id = _signed_in(stack)
    _publish(stack, "Delivery", session_id, clock.now + 3)
    _publish(stack, "Send", session_id, clock.now + 1)
    assert _status(stack, session_id) == ("delivered", int(clock.now) + 3)


@pytest.mark.parametrize(
    ("kind", "options", "state"),
    [
        ("Send", {}, "sent"),
        ("Delivery", {}, "delivered"),
        ("DeliveryDelay", {}, "delayed"),
        ("Bounce", {"bounce_type": "Permanent", "bounce_subtype": "General"}, "bounced"),
        ("Bounce", {"bounce_type": "Transient", "bounce_subtype": "MailboxFull"}, "bounced"),
        ("Bounce", {"bounce_type": "Permanent", "bounce_subtype": "OnAccountSuppressionList"}, "rejected"),
        ("Bounce", {"bounce_type": "Permanent", "bounce_subtype": "Suppressed"}, "rejected"),
        ("Complaint", {}, "complained"),
        ("Reject", {}, "rejected"),
    ],
)
def test_status_names_every_state(stack, clock, kind, options, state):
    session_id = _signed_in(stack)
    _publish(stack, kind, session_id, clock.now + 5, **options)
    assert _status(stack, session_id) == (state, int(clock.now) + 5)


def test_a_resend_starts_again_from_queued_and_old_events_do_not_touch_it(stack, clock):
    cfg = stack.app_module.SETTINGS
    session_id = _signed_in(stack)
    _publish(stack, "Delivery", session_id, clock.now + 1)
    clock.advance(cfg.resend_cooldown_seconds + 1)
    assert stack.post("/otp/resend", {"session_id": session_id}).status_code == 200
    assert _status(stack, session_id) == ("queued", int(clock.now))
    stack.pump()
    _publish(stack, "Bounce", session_id, clock.now + 2, send_no=1)  # the first mail's late bounce
    assert _status(stack, session_id) == ("queued", int(clock.now))
    _publish(stack, "Send", session_id, clock.now + 3, send_no=2)
    assert _status(stack, session_id) == ("sent", int(clock.now) + 3)


def test_a_permanent_bounce_suppresses_the_address_and_no_more_mail_goes_to_it(stack, clock):
    cfg = stack.app_module.SETTINGS
    session_id = _signed_in(stack)
    _publish(stack, "Bounce", session_id, clock.now + 1)
    suppression = store.get_suppression(cfg.table_name, DEMO_EMAIL)
    assert suppression["reason"] == "bounce" and suppression["detail"] == "General"
    assert suppression["message_id"] == _challenge(stack, session_id)["message_id"]
    clock.advance(cfg.resend_cooldown_seconds + 1)
    again = _signed_in(stack)  # the sign-in answers as ever; the mailer sends nothing
    assert len(sent_mail()) == 1
    assert _status(stack, again) == ("suppressed", int(clock.now))
    assert "message_id" not in _challenge(stack, again)
    # until an operator lifts it
    assert store.unsuppress(cfg.table_name, DEMO_EMAIL) is True
    assert store.unsuppress(cfg.table_name, DEMO_EMAIL) is False
    clock.advance(cfg.resend_cooldown_seconds + 1)
    _signed_in(stack)
    assert len(sent_mail()) == 2


def test_a_complaint_suppresses_and_a_transient_bounce_does_not(stack, clock):
    cfg = stack.app_module.SETTINGS
    session_id = _signed_in(stack)
    _publish(
        stack, "Bounce", session_id, clock.now + 1, bounce_type="Transient", bounce_subtype="MailboxFull"
    )
    _publish(
        stack, "Bounce", session_id, clock.now + 1, bounce_type="Undetermined", bounce_subtype="Undetermined"
    )
    assert store.get_suppression(cfg.table_name, DEMO_EMAIL) is None
    _publish(stack, "Complaint", session_id, clock.now + 2)
    first = store.get_suppression(cfg.table_name, DEMO_EMAIL)
    assert (first["reason"], first["detail"]) == ("complaint", "abuse")
    _publish(stack, "Bounce", session_id, clock.now + 3)  # a second reason keeps the first
    assert store.get_suppression(cfg.table_name, DEMO_EMAIL) == first
    assert [s["email"] for s in store.list_suppressed(cfg.table_name)] == [DEMO_EMAIL]


def test_a_suppressed_address_gets_no_reset_code_and_no_notice(stack, clock):
    """Codes and the password-changed notice: every mail's claim checks the suppression."""
    cfg = stack.app_module.SETTINGS
    store.suppress(cfg.table_name, DEMO_EMAIL, "bounce", "General", int(clock.now), "id-1")
    refused = stack.post("/password/reset", {"email": DEMO_EMAIL})
    assert refused.status_code == 202
    stack.pump()
    assert sent_mail() == []
    assert _status(stack, refused.data["session_id"])[0] == "suppressed"
    store.unsuppress(cfg.table_name, DEMO_EMAIL)
    clock.advance(cfg.resend_cooldown_seconds + 1)
    reset = stack.post("/password/reset", {"email": DEMO_EMAIL})
    stack.pump()
    (mailed,) = sent_mail()
    store.suppress(cfg.table_name, DEMO_EMAIL, "complaint", "abuse", int(clock.now), "id-2")
    body = {
        "session_id": reset.data["session_id"],
        "code": mailed.code,
        "new_password": "another long phrase 9",
    }
    assert stack.post("/password/reset/confirm", body).status_code == 200
    stack.pump()
    assert len(sent_mail()) == 1  # no "your password was changed" to a suppressed address


def test_status_of_sign_up_and_reset_sessions(stack, clock, monkeypatch):
    import dataclasses

    cfg = dataclasses.replace(stack.app_module.SETTINGS, signup_enabled=True)
    monkeypatch.setattr(stack.app_module, "SETTINGS", cfg)
    signup = stack.post("/signup", {"email": "new.person@example.com", "password": "a long new passphrase 7"})
    reset = stack.post("/password/reset", {"email": "nobody@example.com"})
    assert signup.status_code == reset.status_code == 202
    stack.pump()
    for answer, to in ((signup, "new.person@example.com"), (reset, "nobody@example.com")):
        session_id = answer.data["session_id"]
        assert _status(stack, session_id)[0] == "queued"
        _publish(stack, "Delivery", session_id, clock.now + 2, to=to)
        assert _status(stack, session_id) == ("delivered", int(clock.now) + 2)


def test_status_of_unknown_or_closed_sessions_is_410_and_bad_input_400(stack, clock):
    cfg = stack.app_module.SETTINGS
    unknown = stack.post("/otp/status", {"session_id": codes.new_session_id()})
    assert check_error(unknown, 410)["error"] == "session_expired"
    session_id = _signed_in(stack)
    code = stack.latest_code()
    assert stack.post("/otp/verify", {"session_id": session_id, "code": code}).status_code == 200
    assert (
        check_error(stack.post("/otp/status", {"session_id": session_id}), 410)["error"] == "session_expired"
    )
    clock.advance(cfg.resend_cooldown_seconds + 1)
    expiring = _signed_in(stack)
    clock.advance(cfg.ttl_seconds + 1)
    assert check_error(stack.post("/otp/status", {"session_id": expiring}), 410)["error"] == "session_expired"
    for body in (
        {},
        {"session_id": 12},
        {"session_id": ""},
        {"session_id": "x" * 5000},
        [],
        "not json",
        b"\xff",
    ):
        assert check_error(stack.post("/otp/status", body), 400)["error"] == "invalid_request"


def test_status_makes_one_read_and_nothing_else(stack, clock):
    from chalicelib import aws

    session_id = _signed_in(stack)
    calls = []
    for service in ("dynamodb", "ses", "kms", "ssm"):
        aws.client(service).meta.events.register("before-call", lambda model, **_: calls.append(model.name))
    assert _status(stack, session_id)[0] == "queued"
    assert calls == ["GetItem"]


def test_the_handler_drops_what_is_not_an_ses_event_of_a_session(stack, clock, caplog):
    session_id = _signed_in(stack)
    for message in ("not json", "[]", json.dumps({"eventType": "Open", "mail": {}}), json.dumps({"mail": 3})):
        stack.client.lambda_.invoke("delivery_events", lambda_sns_event(message))
    item = _challenge(stack, session_id)
    no_session = ses_event("Delivery", item["message_id"], DEMO_EMAIL, {"notice": "abc"}, clock.now)
    stack.client.lambda_.invoke("delivery_events", lambda_sns_event(no_session))
    assert _status(stack, session_id)[0] == "queued"
    assert "not an SES event, dropped" in caplog.text and "delivery event of no session" in caplog.text
    # a bounce of a mail of no session (a notice) still suppresses its address
    bounce = ses_event("Bounce", "notice-mail", DEMO_EMAIL, {"notice": "abc"}, clock.now)
    stack.client.lambda_.invoke("delivery_events", lambda_sns_event(bounce))
    assert (
        store.get_suppression(stack.app_module.SETTINGS.table_name, DEMO_EMAIL)["message_id"] == "notice-mail"
    )


def test_ranks_only_grow_along_what_ses_can_report():
    order = ["queued", "sent", "delayed", "delivered", "bounced", "complained"]
    assert [events.RANKS[s] for s in order] == sorted(events.RANKS[s] for s in order)
    assert len({events.RANKS[s] for s in order}) == len(order)
    assert all(events.RANKS[s] >= events.RANKS["delivered"] for s in FINAL)


def _emf(text):
    """The EMF metric lines printed, as {metric name: [values]}."""
    found = {}
    for line in text.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        blob = json.loads(line)
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "simple-otp" and blob["service"] == "simple-otp"
        for metric in directive["Metrics"]:
            values = blob[metric["Name"]]
            found.setdefault(metric["Name"], []).extend(values if isinstance(values, list) else [values])
    return found


def test_metrics_of_a_sign_in_its_mail_its_events_and_its_verification(stack, clock, capsys):
    cfg = stack.app_module.SETTINGS
    assert stack.sign_in(DEMO_EMAIL, "wrong password").status_code == 401
    session_id = _signed_in(stack)
    _publish(stack, "Delivery", session_id, clock.now + 12)
    assert stack.post("/otp/verify", {"session_id": session_id, "code": "000000"}).status_code in (401, 410)
    assert (
        stack.post("/otp/verify", {"session_id": session_id, "code": stack.latest_code()}).status_code == 200
    )
    clock.advance(cfg.resend_cooldown_seconds + 1)
    other = _signed_in(stack)
    _publish(stack, "Complaint", other, clock.now + 1)
    _publish(stack, "Bounce", other, clock.now + 1)
    metrics = _emf(capsys.readouterr().out)
    assert metrics["SignInRefused"] == [1.0] and metrics["SignInStarted"] == [1.0, 1.0]
    assert metrics["CodeMailed"] == [1.0, 1.0]
    assert metrics["SecondsToAccepted"] == [0.0, 0.0]  # the test clock does not move while mailing
    assert metrics["SecondsToDelivered"] == [12.0]
    assert metrics["VerifyFailed"] == [1.0] and metrics["VerifySucceeded"] == [1.0]
    assert metrics["Complaint"] == [1.0] and metrics["Bounce"] == [1.0]
    assert "MailFailed" not in metrics


@pytest.fixture
def json_logs():
    """Each line the app logs, formatted as Powertools writes it (JSON, with the appended keys)."""
    import logging

    from chalicelib import observe

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    keep = Keep()
    keep.setFormatter(observe.logger.registered_formatter)
    logging.getLogger("simple-otp").addHandler(keep)
    yield lines
    logging.getLogger("simple-otp").removeHandler(keep)


def test_every_log_line_is_json_with_the_request_id_and_no_secret(stack, clock, capsys, json_logs):
    started = stack.sign_in()
    session_id = started.data["session_id"]
    stack.pump()
    code = stack.latest_code()
    verified = stack.post("/otp/verify", {"session_id": session_id, "code": code})
    _publish(stack, "Delivery", session_id, clock.now + 1)
    logs = [json.loads(line) for line in json_logs]
    lines = logs + [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert (
        logs
        and [line for line in logs if line["service"] != "simple-otp" or not line.get("request_id")] == []
    )
    outcomes = {line.get("outcome") for line in logs}
    assert {"started", "mailed", "verified", "delivered"} <= outcomes
    text = json.dumps(lines)
    for secret in (session_id, code, verified.data["token"], verified.data["device_token"], DEMO_PASSWORD):
        assert secret not in text
    assert codes.session_tag(session_id) in text  # the short tag names the session
