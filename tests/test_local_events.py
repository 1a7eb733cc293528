"""SES's delivery events in the local stack: what the emulator publishes, and the SNS pump.

The emulator (``python -m devstack.emulator``) runs on free ports on
127.0.0.1, provisioned with ``ops.provision`` as production is; the tests
send through its SES as the mailer does (SendRawEmail with the
configuration set and tags) and read SES's records from a queue
subscribed to the events topic, as the local stack's SNS pump does.
The record shapes are those of AWS's "Examples of event data that Amazon
SES publishes to Amazon SNS".
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import requests

from devstack import ses_events
from devstack.harness import ROOT, free_ports
from devstack.testenv import TEST_ENV, child_environment

REGION = TEST_ENV["AWS_DEFAULT_REGION"]
SENDER = TEST_ENV["OTP_SENDER"]
CONFIGURATION_SET = TEST_ENV["OTP_SES_CONFIGURATION_SET"]
TOPIC = TEST_ENV["OTP_SES_EVENTS_TOPIC"]
WAIT_SECONDS = 60.0
TAGS = [
    {"Name": "session", "Value": "5f2a" * 16},
    {"Name": "send", "Value": "1"},
    {"Name": "queued", "Value": "1900000000"},
]

# ------------------------------------------------------------ record shapes (the contract)

MAIL_KEYS = {
    "timestamp",
    "source",
    "sourceArn",
    "sendingAccountId",
    "messageId",
    "destination",
    "headersTruncated",
    "headers",
    "commonHeaders",
    "tags",
}
DETAILS = {
    "Send": ("send", set()),
    "Delivery": (
        "delivery",
        {"timestamp", "processingTimeMillis", "recipients", "smtpResponse", "reportingMTA", "remoteMtaIp"},
    ),
    "Bounce": (
        "bounce",
        {"bounceType", "bounceSubType", "bouncedRecipients", "timestamp", "feedbackId", "reportingMTA"},
    ),
    "Complaint": (
        "complaint",
        {
            "complainedRecipients",
            "timestamp",
            "feedbackId",
            "complaintFeedbackType",
            "arrivalDate",
            "userAgent",
        },
    ),
}


def is_timestamp(value: Any) -> bool:
    return (
        isinstance(value, str)
        and value.endswith("Z")
        and bool(time.strptime(value[:19], "%Y-%m-%dT%H:%M:%S"))
    )


def check_record(record: dict[str, Any], to: str, message_id: str | None = None) -> None:
    """One SES event record as SES publishes it to SNS, for a message to ``to``."""
    kind = record["eventType"]
    detail, keys = DETAILS[kind]
    assert set(record) == {"eventType", "mail", detail}, record.keys()
    assert keys <= set(record[detail]), (kind, record[detail].keys())
    mail = record["mail"]
    assert set(mail) == MAIL_KEYS, mail.keys()
    assert is_timestamp(mail["timestamp"])
    assert mail["source"] == SENDER and mail["destination"] == [to]
    assert mail["sourceArn"] == f"arn:aws:ses:{REGION}:{mail['sendingAccountId']}:identity/{SENDER}"
    assert mail["headersTruncated"] is False
    assert {"name": "Subject", "value": "Your sign-in code"} in mail["headers"]
    assert mail["commonHeaders"]["subject"] == "Your sign-in code"
    assert mail["commonHeaders"]["to"] == [to]
    if message_id is not None:
        assert mail["messageId"] == message_id == mail["commonHeaders"]["messageId"]
    tags = mail["tags"]
    assert all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in tags.values()), tags
    assert tags["ses:configuration-set"] == [CONFIGURATION_SET]
    assert tags["ses:from-domain"] == [SENDER.rpartition("@")[2]]
    assert tags["ses:source-ip"] and tags["ses:caller-identity"]
    for tag in TAGS:
        assert tags[tag["Name"]] == [tag["Value"]]
    for name in ("timestamp", "arrivalDate"):
        if name in record[detail]:
            assert is_timestamp(record[detail][name])


def raw_message(to: str) -> bytes:
    return (
        f"From: {SENDER}\r\nTo: {to}\r\nSubject: Your sign-in code\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Your sign-in code is: 123456\r\n"
    ).encode()


def accepted(to: str, **extra: Any) -> ses_events.Accepted:
    return ses_events.Accepted(
        message_id="0100018c-test",
        source=SENDER,
        destinations=[to],
        raw=raw_message(to).decode(),
        account="123456789012",
        region=REGION,
        timestamp=1_900_000_000.25,
        configuration_set=CONFIGURATION_SET,
        tags=TAGS,
        caller_identity="testing",
        **extra,
    )


# ------------------------------------------------------------ what SES and the receiving side do


@pytest.mark.parametrize(
    ("to", "scenario"),
    [
        ("success@simulator.amazonses.com", "success"),
        ("bounce@simulator.amazonses.com", "bounce"),
        ("bounce+sign-up-7@simulator.amazonses.com", "bounce"),
        ("Complaint+x@Simulator.AmazonSES.com", "complaint"),
        ("ooto@simulator.amazonses.com", "ooto"),
        ("suppressionlist+a+b@simulator.amazonses.com", "suppressionlist"),
        ("Someone <bounce@simulator.amazonses.com>", "bounce"),
        ("nobody@simulator.amazonses.com", None),
        ("bounce@example.com", None),
        ("demo@example.com", None),
    ],
)
def test_mailbox_simulator_addresses_as_ses_reads_them(to, scenario):
    assert ses_events.simulator_scenario(to) == scenario


@pytest.mark.parametrize(
    ("to", "events", "state"),
    [
        ("demo@example.com", ["Delivery"], "delivered"),
        ("success@simulator.amazonses.com", ["Delivery"], "delivered"),
        ("bounce@simulator.amazonses.com", ["Bounce"], "bounced"),
        ("bounce+label@simulator.amazonses.com", ["Bounce"], "bounced"),
        ("complaint@simulator.amazonses.com", ["Delivery", "Complaint"], "complained"),
        ("ooto@simulator.amazonses.com", ["Delivery"], "delivered"),
        ("suppressionlist@simulator.amazonses.com", ["Bounce"], "rejected"),
    ],
)
def test_what_the_receiving_side_makes_of_each_address(to, events, state):
    at = 1_900_000_001.5
    outcome = ses_events.receive(accepted(to), at)
    assert [r["eventType"] for r in outcome.events] == events
    assert outcome.state == state
    for record in outcome.events:
        check_record(record, to, "0100018c-test")
    first = outcome.events[0]
    if first["eventType"] == "Delivery":
        assert first["delivery"]["recipients"] == [to]
        assert first["delivery"]["processingTimeMillis"] == 1250
        assert first["delivery"]["smtpResponse"].startswith("250 ")
        assert first["mail"]["tags"]["ses:outgoing-ip"]
    assert len(outcome.replies) == (1 if "ooto" in to else 0)


def test_bounce_records_say_what_ses_says():
    hard = ses_events.receive(accepted("bounce@simulator.amazonses.com"), 1_900_000_001.0).events[0]["bounce"]
    assert (hard["bounceType"], hard["bounceSubType"]) == ("Permanent", "General")
    assert hard["bouncedRecipients"] == [
        {
            "emailAddress": "bounce@simulator.amazonses.com",
            "action": "failed",
            "status": "5.1.1",
            "diagnosticCode": "smtp; 550 5.1.1 user unknown",
        }
    ]
    listed = ses_events.receive(accepted("suppressionlist@simulator.amazonses.com"), 1_900_000_001.0)
    bounce = listed.events[0]["bounce"]
    assert (bounce["bounceType"], bounce["bounceSubType"]) == ("Permanent", "Suppressed")
    assert "suppression list" in bounce["bouncedRecipients"][0]["diagnosticCode"]
    complaint = ses_events.receive(accepted("complaint@simulator.amazonses.com"), 1_900_000_001.0).events[1]
    assert complaint["complaint"]["complaintFeedbackType"] == "abuse"
    assert complaint["complaint"]["complainedRecipients"] == [
        {"emailAddress": "complaint@simulator.amazonses.com"}
    ]


def test_out_of_office_reply_goes_to_the_sender():
    import email
    import email.policy

    raw = ses_events.receive(accepted("ooto+1@simulator.amazonses.com"), 1_900_000_001.0).replies[0]
    reply = email.message_from_string(raw, policy=email.policy.default)
    assert reply["From"] == "ooto+1@simulator.amazonses.com" and reply["To"] == SENDER
    assert reply["Auto-Submitted"] == "auto-replied"  # RFC 3834
    assert reply["Subject"] == "Auto: Your sign-in code"
    assert "0100018c-test" in reply["In-Reply-To"]


def test_send_record_and_iso_timestamps():
    record = ses_events.send_event(accepted("demo@example.com"))
    assert record["send"] == {}
    check_record(record, "demo@example.com", "0100018c-test")
    assert record["mail"]["timestamp"] == "2030-03-17T17:46:40.250Z"


# ------------------------------------------------------------ the emulator, as the local stack runs it


@dataclass
class Emulator:
    aws_url: str
    mailbox_url: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.aws_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def messages(self) -> list[dict[str, Any]]:
        response = requests.get(self.mailbox_url + "/api/messages", timeout=WAIT_SECONDS)
        response.raise_for_status()
        return list(response.json())

    def send(self, to: str, **extra: Any) -> str:
        arguments = {"ConfigurationSetName": CONFIGURATION_SET, "Tags": TAGS, **extra}
        arguments = {name: value for name, value in arguments.items() if value is not None}
        sent = self.client("ses").send_raw_email(
            Source=SENDER, Destinations=[to], RawMessage={"Data": raw_message(to)}, **arguments
        )
        return str(sent["MessageId"])


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
        return True
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    from chalicelib import aws
    from ops.provision import provision

    aws_port, mailbox_port = free_ports(2)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack.emulator",
            "--aws-port",
            str(aws_port),
            "--mailbox-port",
            str(mailbox_port),
        ],
        cwd=ROOT,
        env=child_environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    running = Emulator(f"http://127.0.0.1:{aws_port}", f"http://127.0.0.1:{mailbox_port}", process)
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: running.lines.extend(stdout), daemon=True).start()
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while not (
            _answers(running.aws_url + "/moto-api/") and _answers(running.mailbox_url + "/api/messages")
        ):
            assert process.poll() is None, "".join(running.lines)
            assert time.monotonic() < deadline, "the emulator did not answer"
            time.sleep(0.05)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AWS_ENDPOINT_URL", running.aws_url)
            aws.reset()
            try:
                provision(
                    TEST_ENV["OTP_TABLE_NAME"],
                    TEST_ENV["OTP_KEY_PARAMETER"],
                    SENDER,
                    TEST_ENV["OTP_TOKEN_KEY_ID"],
                    configuration_set=CONFIGURATION_SET,
                    events_topic=TOPIC,
                )
            finally:
                aws.reset()
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def queue(emulator: Emulator) -> tuple[str, str]:
    """A queue subscribed to the events topic, as the local stack's SNS pump has: (URL, subscription)."""
    from devstack.sns_pump import ensure_queue

    topic = f"arn:aws:sns:{REGION}:123456789012:{TOPIC}"
    return ensure_queue(emulator.client("sqs"), emulator.client("sns"), topic, "test-local-events")


class Records:
    """SES's records for some messages, read from the subscribed queue (each kept by message id)."""

    seen: dict[str, list[dict[str, Any]]] = {}

    def __init__(self, emulator: Emulator, url: str) -> None:
        self.sqs = emulator.client("sqs")
        self.url = url

    def of(self, message_id: str, count: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + WAIT_SECONDS
        while len(self.seen.get(message_id, [])) < count:
            assert time.monotonic() < deadline, f"{self.seen.get(message_id)} of {message_id}"
            got = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            for message in got.get("Messages", []):
                notification = json.loads(message["Body"])
                record = json.loads(notification["Message"])
                self.seen.setdefault(record["mail"]["messageId"], []).append(record)
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            time.sleep(0.02)
        time.sleep(0.2)  # nothing more comes for it
        return self.seen[message_id]


@pytest.fixture
def records(emulator: Emulator, queue: tuple[str, str]) -> Records:
    return Records(emulator, queue[0])


@pytest.mark.parametrize(
    ("to", "events", "state"),
    [
        ("person@example.com", ["Send", "Delivery"], "delivered"),
        ("success+local@simulator.amazonses.com", ["Send", "Delivery"], "delivered"),
        ("bounce@simulator.amazonses.com", ["Send", "Bounce"], "bounced"),
        ("bounce+label@simulator.amazonses.com", ["Send", "Bounce"], "bounced"),
        ("complaint@simulator.amazonses.com", ["Send", "Delivery", "Complaint"], "complained"),
        ("ooto@simulator.amazonses.com", ["Send", "Delivery"], "delivered"),
        ("suppressionlist@simulator.amazonses.com", ["Send", "Bounce"], "rejected"),
    ],
)
def test_emulator_publishes_ses_records_and_the_mailbox_shows_the_outcome(
    emulator, records, to, events, state
):
    message_id = emulator.send(to)

    got = records.of(message_id, len(events))
    assert [r["eventType"] for r in got] == events
    for record in got:
        check_record(record, to, message_id)
    if "Bounce" in events:
        expected = "Suppressed" if to.startswith("suppressionlist") else "General"
        assert got[-1]["bounce"]["bounceSubType"] == expected

    [stored] = [m for m in emulator.messages() if m["message_id"] == message_id]
    assert stored["id"] == message_id and stored["to"] == [to]
    assert stored["delivery"] == state
    assert {"id", "from", "to", "subject", "text", "html", "sent_at", "delivery", "message_id"} == set(stored)


def test_out_of_office_reply_lands_in_the_mailbox(emulator, records):
    message_id = emulator.send("ooto+reply@simulator.amazonses.com")
    records.of(message_id, 2)
    replies = [m for m in emulator.messages() if m["to"] == [SENDER]]
    assert any(r["from"] == "ooto+reply@simulator.amazonses.com" for r in replies), replies
    reply = next(r for r in replies if r["from"] == "ooto+reply@simulator.amazonses.com")
    assert reply["subject"] == "Auto: Your sign-in code"
    assert reply["message_id"] is None and reply["delivery"] == "delivered"


def test_without_a_configuration_set_ses_publishes_nothing(emulator, records):
    plain = emulator.send("no-events@example.com", ConfigurationSetName=None, Tags=None)
    marker = emulator.send("after-plain@example.com")
    records.of(marker, 2)
    assert plain not in records.seen
    [stored] = [m for m in emulator.messages() if m["message_id"] == plain]
    assert stored["delivery"] == "delivered"  # the receiving server still took it


def test_a_simple_send_is_answered_too(emulator):
    sent = emulator.client("ses").send_email(
        Source=SENDER,
        Destination={"ToAddresses": ["bounce+simple@simulator.amazonses.com"]},
        Message={"Subject": {"Data": "Hello"}, "Body": {"Text": {"Data": "no code"}}},
    )
    [stored] = [m for m in emulator.messages() if m["message_id"] == sent["MessageId"]]
    assert stored["delivery"] == "bounced"


def test_emulator_refuses_what_ses_refuses(emulator):
    ses = emulator.client("ses")
    with pytest.raises(ses.exceptions.ConfigurationSetDoesNotExistException):
        emulator.send("x@example.com", ConfigurationSetName="no-such-set")
    with pytest.raises(ses.exceptions.ClientError, match="InvalidParameterValue"):
        emulator.send("x@example.com", Tags=[{"Name": "session#1", "Value": "x"}])


def test_mailbox_page_shows_each_delivery_state_escaped(emulator, records):
    message_id = emulator.send("bounce+page@simulator.amazonses.com")
    records.of(message_id, 2)
    page = requests.get(emulator.mailbox_url + "/", timeout=WAIT_SECONDS)
    assert page.status_code == 200
    assert f'<article data-id="{message_id}" data-delivery="bounced">' in page.text
    assert '<dd class="delivery" data-delivery="bounced">bounced</dd>' in page.text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'; script-src 'self'")
    assert "<script>" not in page.text  # the only script is /mailbox.js
    script = requests.get(emulator.mailbox_url + "/mailbox.js", timeout=WAIT_SECONDS).text
    assert "m.delivery" in script  # the page reloads when a state changes too


def test_provisioning_again_changes_nothing(emulator):
    from chalicelib import aws
    from ops.provision import EVENT_TYPES, ensure_ses_events

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", emulator.aws_url)
        aws.reset()
        try:
            again = ensure_ses_events(CONFIGURATION_SET, TOPIC)
        finally:
            aws.reset()
    assert again["configuration_set_created"] is False and again["event_destination"] == "kept"
    [destination] = emulator.client("sesv2").get_configuration_set_event_destinations(
        ConfigurationSetName=CONFIGURATION_SET
    )["EventDestinations"]
    assert sorted(destination["MatchingEventTypes"]) == sorted(EVENT_TYPES)
    assert "DELIVERY_DELAY" in EVENT_TYPES
    assert destination["SnsDestination"]["TopicArn"] == again["events_topic_arn"]
    policy = json.loads(
        emulator.client("sns").get_topic_attributes(TopicArn=again["events_topic_arn"])["Attributes"][
            "Policy"
        ]
    )
    ours = [s for s in policy["Statement"] if s.get("Sid") == "AllowSESEventPublishing"]
    assert len(ours) == 1 and ours[0]["Principal"] == {"Service": "ses.amazonaws.com"}
    assert ours[0]["Condition"]["StringEquals"]["AWS:SourceArn"].endswith(
        f":configuration-set/{CONFIGURATION_SET}"
    )


@pytest.fixture
def in_process_aws() -> Iterator[None]:
    from moto import mock_aws

    from chalicelib import aws
    from devstack.local_ses import install_event_destinations

    with mock_aws():
        aws.reset()
        install_event_destinations()
        yield
        aws.reset()


def test_events_topic_keeps_its_other_policy_statements_and_an_arn_must_exist(in_process_aws):
    from chalicelib import aws
    from ops import OpsError
    from ops.provision import delete_ses_events, ensure_events_topic, ensure_ses_events

    sns = aws.client("sns")
    arn = sns.create_topic(Name="shared-topic")["TopicArn"]
    theirs = {"Sid": "Theirs", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "SNS:Subscribe"}
    policy = {"Version": "2012-10-17", "Statement": [theirs]}
    sns.set_topic_attributes(TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(policy))

    assert ensure_events_topic(arn, CONFIGURATION_SET) == arn  # an ARN is used as it is
    assert ensure_events_topic("shared-topic", CONFIGURATION_SET) == arn  # and a name finds it
    statements = json.loads(sns.get_topic_attributes(TopicArn=arn)["Attributes"]["Policy"])["Statement"]
    assert [s["Sid"] for s in statements] == ["Theirs", "AllowSESEventPublishing"]

    with pytest.raises(OpsError, match="does not exist"):
        ensure_events_topic(f"arn:aws:sns:{REGION}:123456789012:nowhere", CONFIGURATION_SET)

    made = ensure_ses_events(CONFIGURATION_SET, "shared-topic")
    assert (made["configuration_set_created"], made["event_destination"]) == (True, "created")
    assert delete_ses_events(CONFIGURATION_SET, "shared-topic") == [
        f"configuration set {CONFIGURATION_SET}",
        f"SNS topic {arn}",
    ]
    assert delete_ses_events(CONFIGURATION_SET, "shared-topic") == []  # again: nothing left


def test_an_event_destination_that_differs_is_put_right(in_process_aws):
    from chalicelib import aws
    from ops.provision import EVENT_DESTINATION, ensure_event_destination, ensure_ses_events

    made = ensure_ses_events(CONFIGURATION_SET, TOPIC)
    sesv2 = aws.client("sesv2")
    sesv2.update_configuration_set_event_destination(
        ConfigurationSetName=CONFIGURATION_SET,
        EventDestinationName=EVENT_DESTINATION,
        EventDestination={"Enabled": False, "MatchingEventTypes": ["SEND"]},
    )
    assert ensure_event_destination(CONFIGURATION_SET, made["events_topic_arn"]) == "updated"
    assert ensure_event_destination(CONFIGURATION_SET, made["events_topic_arn"]) == "kept"


def test_provision_takes_both_ses_names_or_neither():
    from ops import OpsError
    from ops.provision import provision

    with pytest.raises(OpsError, match="give both"):
        provision("t", "/p", SENDER, "alias/k", configuration_set=CONFIGURATION_SET)


def test_console_names_each_message_without_its_text(emulator, records):
    message_id = emulator.send("console@example.com")
    records.of(message_id, 2)
    deadline = time.monotonic() + WAIT_SECONDS
    while not any("mail to console@example.com" in line for line in emulator.lines):
        assert time.monotonic() < deadline, emulator.lines
        time.sleep(0.05)
    assert not any("123456" in line for line in emulator.lines)


# ------------------------------------------------------------ the SNS pump


def _app_module(handler_log: list[Any], fail: dict[str, int], topic: str = TOPIC) -> types.ModuleType:
    """A Chalice app with one SNS handler, as app.py registers its own; it raises for the first
    ``fail[eventType]`` records of each type."""
    from chalice import Chalice

    module = types.ModuleType("events_app")
    app = Chalice(app_name="events-app")

    @app.on_sns_message(topic=topic, name="delivery_events")
    def delivery_events(event: Any) -> None:
        kind = json.loads(event.message)["eventType"]
        if fail.get(kind, 0) > 0:
            fail[kind] -= 1
            raise RuntimeError("handler down")
        handler_log.append(event)

    @app.on_sns_message(topic="another-topic", name="other")
    def other(event: Any) -> None:
        raise AssertionError("not fed")

    module.app = app
    module.delivery_events = delivery_events
    module.other = other
    return module


def test_sns_pump_finds_the_handlers_and_feeds_only_those_of_the_events_topic(emulator):
    from devstack.sns_pump import SnsPumps, queue_name, sns_handlers, subscribes_to

    module = _app_module([], {})
    assert [(h.name, h.topic) for h in sns_handlers(module)] == [
        ("delivery_events", TOPIC),
        ("other", "another-topic"),
    ]
    arn = f"arn:aws:sns:{REGION}:123456789012:{TOPIC}"
    assert subscribes_to(TOPIC, arn) and subscribes_to(arn, arn) and not subscribes_to("another-topic", arn)
    assert queue_name(arn, "delivery_events") == f"{TOPIC}-delivery_events"
    pumps = SnsPumps(module, emulator.client("sqs"), emulator.client("sns"), arn, log=print)
    try:
        assert [t.name for t in pumps.targets] == ["delivery_events"]
        assert [o.name for o in pumps.others] == ["other"]
    finally:
        pumps.stop()


def test_sns_pump_hands_each_record_to_the_handler_in_lambdas_shape_and_retries(emulator):
    from devstack.sns_pump import SnsPump, ensure_queue, sns_handlers

    got: list[Any] = []
    module = _app_module(got, {"Send": 2})
    target = sns_handlers(module)[0]
    sqs = emulator.client("sqs")
    arn = f"arn:aws:sns:{REGION}:123456789012:{TOPIC}"
    url, subscription = ensure_queue(sqs, emulator.client("sns"), arn, "test-sns-pump")
    assert ensure_queue(sqs, emulator.client("sns"), arn, "test-sns-pump") == (
        url,
        subscription,
    )  # again: same
    lines: list[str] = []
    pump = SnsPump(sqs, url, subscription, target, log=lines.append)

    message_id = emulator.send("pumped@example.com")
    deadline = time.monotonic() + WAIT_SECONDS
    while len(got) < 2:  # Send (after two failures of the handler) and Delivery
        assert time.monotonic() < deadline, (got, lines)
        pump.tick()
        time.sleep(0.1)

    failures = [line for line in lines if "failed" in line and "trying again" in line]
    assert failures and all(line.startswith("delivery_events failed (RuntimeError)") for line in failures)
    assert len(failures) == 2, lines
    assert [line for line in lines if "handled after" in line] == [
        "delivery_events: handled after 2 failed attempts"
    ]
    assert [json.loads(event.message)["eventType"] for event in got] == [
        "Delivery",
        "Send",
    ]  # no waiting behind
    kinds = []
    for event in got:  # what Chalice made of Lambda's event: an SNSEvent
        assert event.subject is None and event.message_attributes == {}
        raw = event.to_dict()
        [record] = raw["Records"]
        assert record["EventSource"] == "aws:sns" and record["EventVersion"] == "1.0"
        assert record["EventSubscriptionArn"] == subscription
        sns = record["Sns"]
        assert {
            "Type",
            "MessageId",
            "TopicArn",
            "Subject",
            "Message",
            "Timestamp",
            "SignatureVersion",
            "Signature",
            "SigningCertUrl",
            "UnsubscribeUrl",
            "MessageAttributes",
        } == set(sns)
        assert sns["Type"] == "Notification" and sns["TopicArn"] == arn
        ses_record = json.loads(event.message)
        check_record(ses_record, "pumped@example.com", message_id)
        kinds.append(ses_record["eventType"])
    assert sorted(kinds) == ["Delivery", "Send"]
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []) == []  # deleted


def test_sns_retry_pause_grows_to_five_seconds():
    from devstack.sns_pump import retry_seconds

    assert [retry_seconds(n) for n in range(1, 7)] == [1, 2, 4, 5, 5, 5]


def test_lambda_event_from_a_queued_notification():
    from devstack.sns_pump import lambda_event

    notification = {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
        "Message": '{"eventType": "Send"}',
        "Timestamp": "2026-12-01T14:36:02.123Z",
        "SignatureVersion": "2",
        "Signature": "c2ln",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/c.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }
    [record] = lambda_event(notification, "arn:aws:sns:us-east-1:123456789012:t:sub")["Records"]
    assert record["Sns"]["SigningCertUrl"] == notification["SigningCertURL"]
    assert record["Sns"]["UnsubscribeUrl"] == notification["UnsubscribeURL"]
    assert record["Sns"]["Subject"] is None and record["Sns"]["MessageAttributes"] == {}
    assert record["Sns"]["Message"] == notification["Message"]


# ------------------------------------------------------------ the whole local stack


@pytest.mark.stack
def test_local_stack_hands_ses_events_to_the_apps_handler():
    """Sign in as the demo user; the mailbox stores the code, and the app hears it was delivered."""
    from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
    from devstack.harness import LocalStack

    with LocalStack(wait_web=False, wait_example=False) as stack:
        started = stack.post("/otp", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
        assert started.status_code == 200, started.text
        mail = stack.wait_for_mail(DEMO_EMAIL)
        assert mail["message_id"] and mail["delivery"] in ("sent", "delivered")
        session = started.json()["session_id"]
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            status = stack.post("/otp/status", {"session_id": session})
            assert status.status_code == 200, status.text
            if status.json()["delivery"] == "delivered":
                break
            assert time.monotonic() < deadline, (status.json(), stack.output)
            time.sleep(0.1)
        assert stack.wait_for_mail(DEMO_EMAIL)["delivery"] == "delivered"
    assert "SNS pump:" in stack.output and "delivery_events" in stack.output
    assert "Traceback" not in stack.output
