"""SES events as SES publishes them to SNS through a configuration set, for tests.

The shapes follow AWS's "Examples of event data that Amazon SES publishes to
Amazon SNS" (SES Developer Guide, event publishing): a top-level
``eventType``, the ``mail`` object with the message id, destination and the
send's tags (as lists), and one object named after the event with its own
details and timestamp. :func:`lambda_sns_event` wraps messages the way
Lambda hands an SNS notification to a function.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

ACCOUNT = "123456789012"
TOPIC_ARN = f"arn:aws:sns:us-east-1:{ACCOUNT}:simple-otp-test-ses-events"


def iso(epoch: float) -> str:
    """Epoch seconds as SES writes its timestamps: ``2026-12-01T14:36:02.123Z``."""
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _mail(message_id: str, to: str, sent_at: float, tags: dict[str, str]) -> dict[str, Any]:
    return {
        "timestamp": iso(sent_at),
        "source": "no-reply@simple-otp.test",
        "sourceArn": f"arn:aws:ses:us-east-1:{ACCOUNT}:identity/no-reply@simple-otp.test",
        "sendingAccountId": ACCOUNT,
        "messageId": message_id,
        "destination": [to],
        "headersTruncated": False,
        "headers": [
            {"name": "From", "value": "no-reply@simple-otp.test"},
            {"name": "To", "value": to},
            {"name": "Subject", "value": "Your sign-in code"},
        ],
        "commonHeaders": {
            "from": ["no-reply@simple-otp.test"],
            "to": [to],
            "messageId": message_id,
            "subject": "Your sign-in code",
        },
        "tags": {
            "ses:configuration-set": ["simple-otp-test"],
            "ses:source-ip": ["192.0.2.0"],
            "ses:from-domain": ["simple-otp.test"],
            "ses:caller-identity": ["send_code"],
            **{name: [value] for name, value in tags.items()},
        },
    }


def _details(kind: str, to: str, at: float, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    when = iso(at)
    if kind == "Send":
        return "send", {}
    if kind == "Delivery":
        return "delivery", {
            "timestamp": when,
            "processingTimeMillis": 546,
            "recipients": [to],
            "smtpResponse": "250 2.6.0 Message received",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
            "remoteMtaIp": "192.0.2.10",
        }
    if kind == "DeliveryDelay":
        return "deliveryDelay", {
            "timestamp": when,
            "delayType": "TransientCommunicationFailure",
            "expirationTime": iso(at + 6 * 3600),
            "delayedRecipients": [
                {"emailAddress": to, "status": "4.4.1", "diagnosticCode": "smtp; 421 4.4.1 Unable to connect"}
            ],
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
        }
    if kind == "Bounce":
        return "bounce", {
            "feedbackId": "0100015a-bounce-feedback",
            "bounceType": options.get("bounce_type", "Permanent"),
            "bounceSubType": options.get("bounce_subtype", "General"),
            "bouncedRecipients": [
                {
                    "emailAddress": to,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": when,
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
        }
    if kind == "Complaint":
        return "complaint", {
            "feedbackId": "0100015a-complaint-feedback",
            "complaintSubType": None,
            "complainedRecipients": [{"emailAddress": to}],
            "timestamp": when,
            "userAgent": "Mozilla/5.0",
            "complaintFeedbackType": "abuse",
            "arrivalDate": when,
        }
    if kind == "Reject":
        return "reject", {"reason": "Bad content"}
    raise ValueError(kind)


def ses_event(
    kind: str,
    message_id: str,
    to: str,
    tags: dict[str, str],
    at: float,
    sent_at: float | None = None,
    **options: Any,
) -> str:
    """One SES event (``kind``: Send, Delivery, DeliveryDelay, Bounce, Complaint, Reject) as SNS's message."""
    name, details = _details(kind, to, at, options)
    event = {"eventType": kind, "mail": _mail(message_id, to, at if sent_at is None else sent_at, tags)}
    event[name] = details
    return json.dumps(event)


def lambda_sns_event(message: str) -> dict[str, Any]:
    """The event Lambda passes to an SNS-subscribed function for one notification."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{TOPIC_ARN}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                    "TopicArn": TOPIC_ARN,
                    "Subject": None,
                    "Message": message,
                    "Timestamp": "2026-12-01T14:36:03.000Z",
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-EXAMPLE.pem",
                    "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {},
                },
            }
        ]
    }
