"""What SES says became of each mail: its events, from the configuration set's SNS topic.

Each send goes through the stage's configuration set with tags naming its
session and send (chalicelib.delivery); SES publishes Send, Delivery,
DeliveryDelay, Bounce, Complaint and Reject events for it to an SNS topic,
and the ``delivery_events`` handler hands each message here.

An event moves the session's delivery state forward, for that send only:
SNS delivers at least once and in no set order, so the state has a rank
and a write holds only when it raises the rank (``delivered`` is never
overwritten by a late ``sent``). A permanent bounce or a complaint also
suppresses the address (chalicelib.store.suppress), whatever the mail was.

Round trips (DynamoDB): one UpdateItem per event of a session's mail, plus
one PutItem when it suppresses the address. A message that is not an SES
event, or an event of no session, is logged and dropped: raising would
only make Lambda deliver it again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib import mail, observe, store
from chalicelib.settings import Settings

log = logging.getLogger("simple-otp")

# state -> rank; a state is written only over a lower rank.
RANKS = {
    "queued": 0,
    "sent": 1,
    "delayed": 2,
    "delivered": 3,
    "rejected": 3,
    "bounced": 4,
    "complained": 5,
    "suppressed": 5,
}
SUPPRESSED = ("suppressed", RANKS["suppressed"])

_STATES = {
    "Send": "sent",
    "Delivery": "delivered",
    "DeliveryDelay": "delayed",
    "Bounce": "bounced",
    "Complaint": "complained",
    "Reject": "rejected",
}
# Where each event keeps its own details (and timestamp).
_DETAILS = {
    "Send": "send",
    "Delivery": "delivery",
    "DeliveryDelay": "deliveryDelay",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Reject": "reject",
}
# SES did not try: the address is on SES's global suppression list, or the account's.
_NOT_TRIED = {"Suppressed", "OnAccountSuppressionList"}


def _epoch(value: Any) -> int | None:
    """ISO 8601 (``2026-12-01T14:36:02.123Z``) as whole epoch seconds; None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def _tag(tags: Mapping[str, Any], name: str) -> str | None:
    values = tags.get(name)
    if isinstance(values, list) and values and isinstance(values[0], str):
        return values[0]
    return None


def _recipients(event: Mapping[str, Any], details: Mapping[str, Any], field: str) -> list[str]:
    """The addresses the event is about: the ones we sent to that it names (all, if it names none)."""
    sent_to = [a for a in event["mail"].get("destination", []) if isinstance(a, str)]
    named = {
        str(r.get("emailAddress", "")).lower() for r in details.get(field, []) or [] if isinstance(r, Mapping)
    }
    return [a for a in sent_to if a.lower() in named] or sent_to


def parse(message: str) -> dict[str, Any] | None:
    """An SES event as a dict, or None when ``message`` is not one."""
    try:
        event = json.loads(message)
    except (TypeError, ValueError):
        return None
    if not isinstance(event, dict) or not isinstance(event.get("mail"), dict):
        return None
    kind = event.get("eventType") or event.get("notificationType")  # event publishing, or notifications
    if kind not in _STATES:
        return None
    event["eventType"] = kind
    return event


def state_of(event: Mapping[str, Any]) -> str:
    """The delivery state an event stands for."""
    kind = event["eventType"]
    details = event.get(_DETAILS[kind]) or {}
    if kind == "Bounce" and details.get("bounceSubType") in _NOT_TRIED:
        return "rejected"
    return _STATES[kind]


def suppression_of(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, detail) when the event means the address must not be mailed again."""
    kind = event["eventType"]
    details = event.get(_DETAILS[kind]) or {}
    if kind == "Bounce" and details.get("bounceType") == "Permanent":
        return "bounce", str(details.get("bounceSubType", ""))
    if kind == "Complaint":
        return "complaint", str(details.get("complaintFeedbackType", "") or "")
    return None


def _record_one(cfg: Settings, event: dict[str, Any]) -> bool:
    kind = event["eventType"]
    details = event.get(_DETAILS[kind]) or {}
    message_id = str(event["mail"].get("messageId", ""))
    at = _epoch(details.get("timestamp")) or _epoch(event["mail"].get("timestamp")) or 0
    state = state_of(event)
    tags = event["mail"].get("tags") or {}
    session, send = _tag(tags, "session"), _tag(tags, "send")
    tag = (session or "")[:12]
    extra = observe.fields(session=tag or None, outcome=state, message_id=message_id)
    suppression = suppression_of(event)
    if suppression is not None:
        field = "bouncedRecipients" if kind == "Bounce" else "complainedRecipients"
        for address in _recipients(event, details, field):
            if store.suppress(cfg.table_name, address, *suppression, at, message_id):
                log.warning(
                    "address suppressed: to=%s reason=%s %s", mail.mask(address), *suppression, extra=extra
                )
    if kind == "Bounce":
        observe.count(observe.BOUNCE)
    elif kind == "Complaint":
        observe.count(observe.COMPLAINT)
    if session is None or send is None or not send.isdigit():
        log.info("delivery event of no session: %s", state, extra=extra)
        return False
    moved = store.record_delivery(cfg.table_name, session, int(send), state, RANKS[state], at)
    queued = _tag(tags, "queued")
    if moved and state == "delivered" and queued and queued.isdigit():
        observe.seconds(observe.SECONDS_TO_DELIVERED, at - int(queued))
    log.info(
        "delivery %s: session=%s send=%s%s",
        state,
        tag,
        send,
        "" if moved else " (not newer: kept)",
        extra=extra,
    )
    return moved


def record(cfg: Settings, messages: Iterable[str]) -> int:
    """Record each SES event of ``messages`` (SNS message bodies); return how many moved a state."""
    moved = 0
    for message in messages:
        event = parse(message)
        if event is None:
            log.warning("not an SES event, dropped", extra=observe.fields(outcome="dropped"))
            continue
        moved += _record_one(cfg, event)
    return moved
