"""SES's event records, shaped as SES publishes them to SNS, and its mailbox simulator.

moto's SES accepts a message and stops there. What real SES does next, the
local stack does here: an event record for each step of the message (the
JSON body of the SNS notification, as in AWS's "Examples of event data
that Amazon SES publishes to Amazon SNS"), and, standing where the
recipient's mail server stands, an outcome for each recipient:

* any ordinary address: the mailbox stores the message, ``Delivery``;
* SES's mailbox simulator (``...@simulator.amazonses.com``, with or
  without a ``+label``), as SES answers it: ``success`` delivers,
  ``bounce`` bounces (Permanent, General: 550 5.1.1 user unknown),
  ``complaint`` delivers and then complains (abuse), ``ooto`` delivers and
  the "recipient" sends an out-of-office reply to the sender, and
  ``suppressionlist`` is a hard bounce SES makes itself without trying, as
  for an address on SES's global suppression list (bounceSubType
  Suppressed).

Nothing here touches moto; :mod:`devstack.local_ses` publishes the records.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from typing import Any

SIMULATOR_DOMAIN = "simulator.amazonses.com"
SIMULATOR = ("success", "bounce", "ooto", "complaint", "suppressionlist")
# The local stand-ins for SES's and the receiving server's host names.
REPORTING_MTA = "localhost"
REMOTE_MTA_IP = "127.0.0.1"

# What the receiving side made of a message, by recipient; the mailbox shows it.
DELIVERED, BOUNCED, COMPLAINED, REJECTED, SENT = "delivered", "bounced", "complained", "rejected", "sent"
# The mailbox's one word for a message of several recipients: the furthest along.
_RANK = {SENT: 0, DELIVERED: 1, REJECTED: 1, BOUNCED: 2, COMPLAINED: 3}

SUPPRESSED_DIAGNOSTIC = (
    "Amazon SES did not send the message to this address because it is on the suppression list "
    "for your account. For more information about removing addresses from the suppression list, "
    "see the Amazon SES Developer Guide at "
    "https://docs.aws.amazon.com/ses/latest/dg/sending-email-suppression-list.html"
)


def iso(moment: float) -> str:
    """Epoch seconds as SES writes its timestamps: ``2026-12-01T14:36:02.123Z``."""
    stamp = dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def feedback_id() -> str:
    """An id shaped like SES's feedbackId."""
    parts = [secrets.token_hex(n) for n in (8, 4, 2, 2, 6)]
    return "-".join(parts) + "-000000"


def simulator_scenario(address: str) -> str | None:
    """The mailbox simulator's scenario of ``address`` (``bounce+x@simulator...`` is ``bounce``)."""
    local, _, domain = parseaddr(address)[1].rpartition("@")
    if domain.lower() != SIMULATOR_DOMAIN:
        return None
    scenario = local.split("+", 1)[0].lower()
    return scenario if scenario in SIMULATOR else None


def overall(states: Sequence[str]) -> str:
    """One state for a message from its recipients' states."""
    return max(states, key=lambda state: _RANK.get(state, 0)) if states else SENT


@dataclass(frozen=True)
class Accepted:
    """One message SES accepted (SendRawEmail), with what the call named."""

    message_id: str
    source: str
    destinations: list[str]
    raw: str
    account: str
    region: str
    timestamp: float
    configuration_set: str | None = None
    tags: list[dict[str, str]] = field(default_factory=list)
    source_ip: str = "127.0.0.1"
    caller_identity: str = ""
    identity: str = ""  # the verified identity the source was sent as (address or domain)


def _message(raw: str) -> EmailMessage:
    parsed = email.message_from_string(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _addresses(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(address for _, address in getaddresses(list(values)) if address))


def recipients(accepted: Accepted) -> list[str]:
    """The envelope recipients: the call's Destinations, else the To, Cc and Bcc headers."""
    named = _addresses(accepted.destinations)
    if named:
        return named
    message = _message(accepted.raw)
    return _addresses([str(v) for key in ("To", "Cc", "Bcc") for v in message.get_all(key, [])])


def mail_object(accepted: Accepted, extra_tags: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
    """The ``mail`` object of every event record of this message."""
    message = _message(accepted.raw)
    sender = accepted.source or str(message.get("From", ""))
    address = parseaddr(sender)[1]
    headers = [{"name": str(name), "value": str(value)} for name, value in message.items()]
    common: dict[str, Any] = {
        "from": [str(v) for v in message.get_all("From", [])] or [sender],
        "to": [str(v) for v in message.get_all("To", [])],
        "messageId": accepted.message_id,
        "subject": str(message.get("Subject", "")),
    }
    if message.get("Date"):
        common["date"] = str(message["Date"])
    if message.get("Cc"):
        common["cc"] = [str(v) for v in message.get_all("Cc", [])]
    tags: dict[str, list[str]] = {}
    if accepted.configuration_set:
        tags["ses:configuration-set"] = [accepted.configuration_set]
    tags["ses:source-ip"] = [accepted.source_ip]
    tags["ses:from-domain"] = [address.rpartition("@")[2]]
    tags["ses:caller-identity"] = [accepted.caller_identity]
    tags.update(extra_tags or {})
    for tag in accepted.tags:
        tags.setdefault(tag["Name"], []).append(tag["Value"])
    identity = accepted.identity or address
    return {
        "timestamp": iso(accepted.timestamp),
        "source": sender,
        "sourceArn": f"arn:aws:ses:{accepted.region}:{accepted.account}:identity/{identity}",
        "sendingAccountId": accepted.account,
        "messageId": accepted.message_id,
        "destination": recipients(accepted),
        "headersTruncated": False,
        "headers": headers,
        "commonHeaders": common,
        "tags": tags,
    }


def send_event(accepted: Accepted) -> dict[str, Any]:
    return {"eventType": "Send", "mail": mail_object(accepted), "send": {}}


def delivery_event(accepted: Accepted, recipient: str, at: float) -> dict[str, Any]:
    return {
        "eventType": "Delivery",
        "mail": mail_object(accepted, {"ses:outgoing-ip": [REMOTE_MTA_IP]}),
        "delivery": {
            "timestamp": iso(at),
            "processingTimeMillis": max(0, round((at - accepted.timestamp) * 1000)),
            "recipients": [recipient],
            "smtpResponse": "250 2.6.0 Message received",
            "reportingMTA": REPORTING_MTA,
            "remoteMtaIp": REMOTE_MTA_IP,
        },
    }


def _hard_bounce(
    accepted: Accepted, recipient: str, at: float, subtype: str, diagnostic: str, mta: dict[str, str]
) -> dict[str, Any]:
    """A permanent bounce event: who reported it (``mta``) and why."""
    return {
        "eventType": "Bounce",
        "mail": mail_object(accepted),
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": subtype,
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": diagnostic,
                }
            ],
            "timestamp": iso(at),
            "feedbackId": feedback_id(),
            **mta,
        },
    }


def bounce_event(accepted: Accepted, recipient: str, at: float) -> dict[str, Any]:
    """The simulator's bounce: the receiving server answered 550 5.1.1."""
    mta = {"reportingMTA": f"dsn; {REPORTING_MTA}", "remoteMtaIp": REMOTE_MTA_IP}
    return _hard_bounce(accepted, recipient, at, "General", "smtp; 550 5.1.1 user unknown", mta)


def suppressed_event(accepted: Accepted, recipient: str, at: float) -> dict[str, Any]:
    """The hard bounce SES makes itself for an address on the suppression list (nothing was tried)."""
    mta = {"reportingMTA": "dns; amazonses.com"}
    return _hard_bounce(accepted, recipient, at, "Suppressed", SUPPRESSED_DIAGNOSTIC, mta)


def complaint_event(accepted: Accepted, recipient: str, delivered_at: float, at: float) -> dict[str, Any]:
    """The recipient marked the delivered message as spam (a feedback report of type abuse)."""
    return {
        "eventType": "Complaint",
        "mail": mail_object(accepted),
        "complaint": {
            "complainedRecipients": [{"emailAddress": recipient}],
            "timestamp": iso(at),
            "feedbackId": feedback_id(),
            "userAgent": "Amazon SES Mailbox Simulator",
            "complaintFeedbackType": "abuse",
            "arrivalDate": iso(delivered_at),
        },
    }


def auto_reply(accepted: Accepted, recipient: str, at: float) -> str:
    """The out-of-office answer (RFC 3834) of ``recipient``, to the message's Return-Path or sender."""
    original = _message(accepted.raw)
    to = str(original.get("Return-Path", "")).strip("<> ") or parseaddr(accepted.source)[1]
    reply = EmailMessage()
    reply["From"] = recipient
    reply["To"] = to
    reply["Subject"] = f"Auto: {original.get('Subject', '')}".strip()
    reply["Date"] = formatdate(at, usegmt=True)
    reply["Message-ID"] = make_msgid(domain=SIMULATOR_DOMAIN)
    reply["In-Reply-To"] = f"<{accepted.message_id}@email.amazonses.com>"
    reply["Auto-Submitted"] = "auto-replied"
    reply.set_content(
        "I am out of the office and will answer your message when I am back.\n\n"
        "(An automatic reply from the SES mailbox simulator's ooto address.)\n"
    )
    return reply.as_string()


@dataclass
class Outcome:
    """What became of one message: each event record in order, the mailbox's state, any reply."""

    events: list[dict[str, Any]] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        return overall(self.states)


def receive(accepted: Accepted, at: float) -> Outcome:
    """Each recipient's fate, as SES and the recipient's server decide it (module docstring)."""
    outcome = Outcome()
    for recipient in recipients(accepted):
        scenario = simulator_scenario(recipient)
        if scenario == "bounce":
            outcome.events.append(bounce_event(accepted, recipient, at))
            outcome.states.append(BOUNCED)
        elif scenario == "suppressionlist":
            outcome.events.append(suppressed_event(accepted, recipient, at))
            outcome.states.append(REJECTED)
        else:
            outcome.events.append(delivery_event(accepted, recipient, at))
            outcome.states.append(DELIVERED)
            if scenario == "complaint":
                outcome.events.append(complaint_event(accepted, recipient, at, at))
                outcome.states[-1] = COMPLAINED
            elif scenario == "ooto":
                outcome.replies.append(auto_reply(accepted, recipient, at))
    return outcome
