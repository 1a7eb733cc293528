"""SES's event publishing, done in the emulator: what moto's SES leaves out.

moto's SES accepts SendRawEmail and ignores its ``ConfigurationSetName``
and ``Tags``, and it has no SES API v2 event destinations. In the emulator
process this module adds what real SES does with them:

* :func:`install_event_destinations`: SES API v2's
  Create/Get/Update/DeleteConfigurationSetEventDestination(s) in moto, so
  ``ops.provision`` provisions locally exactly what it provisions on AWS;
* :func:`install_send_hook`: every SendRawEmail is checked as SES checks it
  (the configuration set must exist; tag names and values are letters,
  digits, ``_`` and ``-``) and, once moto accepted it, reported with its
  message id, configuration set and tags;
* :class:`LocalSes`: publishes the ``Send`` record of each accepted
  message to the SNS topics of its configuration set's event destinations
  (through moto's SNS backend, so subscribers, the local queue among them,
  get it as from SES), and, when the mailbox stores the message, what the
  receiving side made of it (:func:`devstack.ses_events.receive`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, NamedTuple

from devstack.ses_events import Accepted, receive

# SES API v1's event type names, in v2's spelling (one spelling below).
_V1_TYPES = {
    "send": "SEND",
    "reject": "REJECT",
    "bounce": "BOUNCE",
    "complaint": "COMPLAINT",
    "delivery": "DELIVERY",
    "open": "OPEN",
    "click": "CLICK",
    "renderingFailure": "RENDERING_FAILURE",
    "deliveryDelay": "DELIVERY_DELAY",
    "subscription": "SUBSCRIPTION",
}
# A record's eventType -> the MatchingEventTypes entry that selects it.
_RECORD_TYPES = {
    "Send": "SEND",
    "Reject": "REJECT",
    "Bounce": "BOUNCE",
    "Complaint": "COMPLAINT",
    "Delivery": "DELIVERY",
    "DeliveryDelay": "DELIVERY_DELAY",
}
_TAG = re.compile(r"[A-Za-z0-9_-]{1,255}")
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


@dataclass(frozen=True)
class Destination:
    """One enabled SNS event destination of a configuration set."""

    name: str
    types: frozenset[str]
    topic_arn: str


# ---------------------------------------------------------------- SES API v2 event destinations


def _v2_store(backend: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """configuration set -> destination name -> EventDestination, on moto's v1 SES backend."""
    store = getattr(backend, "simple_otp_v2_destinations", None)
    if store is None:
        store = {}
        backend.simple_otp_v2_destinations = store
    return store


def install_event_destinations() -> None:
    """Give moto's SES API v2 the configuration set event destination calls (idempotent)."""
    from moto.core.exceptions import JsonRESTError
    from moto.sesv2 import urls
    from moto.sesv2.responses import SESV2Response

    if getattr(SESV2Response, "simple_otp_destinations", False):
        return
    # moto server routes by these paths (its catch-all "/v2/.*" is a regex only in-process).
    base = "{0}/v2/email/configuration-sets/(?P<ConfigurationSetName>[^/]+)/event-destinations"
    urls.url_paths[base + "$"] = SESV2Response.dispatch
    urls.url_paths[base + "/(?P<EventDestinationName>[^/]+)$"] = SESV2Response.dispatch

    def _set(response: Any) -> tuple[dict[str, dict[str, Any]], str]:
        core = response.sesv2_backend.core_backend
        name = response._get_param("ConfigurationSetName")
        if name not in core.config_sets:
            raise JsonRESTError("NotFoundException", f"Configuration set <{name}> does not exist.")
        return _v2_store(core).setdefault(name, {}), name

    def create(self: Any) -> str:
        destinations, _ = _set(self)
        name = self._get_param("EventDestinationName")
        if name in destinations:
            raise JsonRESTError("AlreadyExistsException", f"Event destination {name} already exists.")
        destinations[name] = dict(self._get_param("EventDestination") or {})
        return json.dumps({})

    def update(self: Any) -> str:
        destinations, _ = _set(self)
        name = self._get_param("EventDestinationName")
        if name not in destinations:
            raise JsonRESTError("NotFoundException", f"Event destination {name} does not exist.")
        destinations[name] = dict(self._get_param("EventDestination") or {})
        return json.dumps({})

    def delete(self: Any) -> str:
        destinations, _ = _set(self)
        name = self._get_param("EventDestinationName")
        if destinations.pop(name, None) is None:
            raise JsonRESTError("NotFoundException", f"Event destination {name} does not exist.")
        return json.dumps({})

    def get(self: Any) -> str:
        destinations, _ = _set(self)
        listed = [{"Name": name, **destination} for name, destination in destinations.items()]
        return json.dumps({"EventDestinations": listed})

    moto_delete_set = SESV2Response.delete_configuration_set

    def delete_set(self: Any) -> str:  # its destinations go with it; a missing set is NotFound
        _, name = _set(self)
        _v2_store(self.sesv2_backend.core_backend).pop(name, None)
        return str(moto_delete_set(self))

    SESV2Response.delete_configuration_set = delete_set  # type: ignore[method-assign]
    SESV2Response.create_configuration_set_event_destination = create  # type: ignore[attr-defined]
    SESV2Response.update_configuration_set_event_destination = update  # type: ignore[attr-defined]
    SESV2Response.delete_configuration_set_event_destination = delete  # type: ignore[attr-defined]
    SESV2Response.get_configuration_set_event_destinations = get  # type: ignore[attr-defined]
    SESV2Response.simple_otp_destinations = True  # type: ignore[attr-defined]


def event_destinations(account: str, region: str, configuration_set: str) -> list[Destination]:
    """The enabled SNS destinations of a configuration set, made with SES API v2 or v1."""
    from moto.ses.models import ses_backends

    backend = ses_backends[account][region]
    if configuration_set not in backend.config_sets:
        return []
    found = []
    for name, spec in _v2_store(backend).get(configuration_set, {}).items():
        topic = (spec.get("SnsDestination") or {}).get("TopicArn")
        if spec.get("Enabled") and topic:
            types = frozenset(str(t) for t in spec.get("MatchingEventTypes") or [])
            found.append(Destination(name, types, str(topic)))
    v1 = backend.config_set_event_destination.get(configuration_set)
    if v1:
        topic = (v1.get("SNSDestination") or {}).get("TopicARN")
        enabled = str(v1.get("Enabled", "false")).lower() == "true"
        if enabled and topic:
            types = frozenset(_V1_TYPES.get(str(t), str(t)) for t in v1.get("MatchingEventTypes") or [])
            found.append(Destination(str(v1.get("Name", "")), types, str(topic)))
    return found


# ---------------------------------------------------------------- SendRawEmail


def _check_tags(tags: list[dict[str, str]]) -> None:
    from moto.ses.exceptions import InvalidParameterValue

    for tag in tags:
        for part in ("Name", "Value"):
            value = str(tag.get(part, ""))
            if not _TAG.fullmatch(value):
                raise InvalidParameterValue(
                    f"Invalid tag {part.lower()} <{value}>: only ASCII letters, numbers, '_' and '-' "
                    "are allowed, at most 255 characters."
                )


def _caller(response: Any) -> str:
    """The access key that signed the call (SES names the IAM identity; the key is what there is)."""
    found = _CREDENTIAL.search(str(response.headers.get("Authorization", "")))
    return found.group(1) if found else ""


def install_send_hook(
    on_accepted: Callable[[Accepted], None], clock: Callable[[], float] = time.time
) -> None:
    """Check each SendRawEmail as SES does and report what moto accepted to ``on_accepted``.

    Replaces moto's handler (the one before it stays under ``__wrapped__``;
    calling this again replaces the hook).
    """
    from moto.ses.exceptions import ConfigurationSetDoesNotExist
    from moto.ses.responses import EmailResponse

    original = getattr(EmailResponse.send_raw_email, "__wrapped__", EmailResponse.send_raw_email)

    def send_raw_email(self: Any) -> Any:
        backend = self.backend
        configuration_set = self._get_param("ConfigurationSetName") or None
        if configuration_set is not None and configuration_set not in backend.config_sets:
            raise ConfigurationSetDoesNotExist(f"Configuration set <{configuration_set}> does not exist.")
        tags = [dict(tag) for tag in self._get_param("Tags") or []]
        _check_tags(tags)
        destinations = [str(d) for d in self._get_param("Destinations") or []]
        result = original(self)
        sent = backend.sent_messages[-1]  # the one just accepted: requests are applied one at a time
        address = (sent.source or "").rpartition("<")[2].rstrip(">").strip()
        identity = address if address in backend.email_identities else address.rpartition("@")[2]
        remote = getattr(getattr(self, "request", None), "remote_addr", None) or "127.0.0.1"
        on_accepted(
            Accepted(
                message_id=str(sent.id),
                source=str(sent.source or ""),
                destinations=destinations,
                raw=str(sent.raw_data),
                account=str(self.current_account),
                region=str(self.region),
                timestamp=clock(),
                configuration_set=configuration_set,
                tags=tags,
                source_ip=str(remote),
                caller_identity=_caller(self),
                identity=identity,
            )
        )
        return result

    send_raw_email.__wrapped__ = original  # type: ignore[attr-defined]
    EmailResponse.send_raw_email = send_raw_email  # type: ignore[method-assign]


# ---------------------------------------------------------------- publishing


class Receipt(NamedTuple):
    """What the receiving side made of one stored message: its state, and any replies it sent."""

    state: str
    replies: list[str]


class LocalSes:
    """SES after the send: the events of each accepted message, to its configuration set's topics.

    ``lock`` is the emulator's request lock: a publish from outside a
    request (the mailbox) then waits for the request in progress, as every
    AWS call does. It must be reentrant, since a ``Send`` is published from
    inside the SendRawEmail request.
    """

    def __init__(
        self,
        lock: AbstractContextManager[Any] | None = None,
        clock: Callable[[], float] = time.time,
        log: Callable[[str], None] = print,
    ) -> None:
        self.lock = lock if lock is not None else threading.RLock()
        self.clock = clock
        self.log = log
        self._accepted: dict[str, Accepted] = {}
        self._guard = threading.Lock()
        # (topic ARN, record) of the latest records published, oldest first (for tests)
        self.published: deque[tuple[str, dict[str, Any]]] = deque(maxlen=1000)

    def accepted(self, message: Accepted) -> None:
        """SES accepted ``message``: its ``Send`` record (a failure here never fails the send)."""
        from devstack.ses_events import send_event

        with self._guard:
            self._accepted[message.message_id] = message
        try:
            self.publish(message, send_event(message))
        except Exception as error:  # noqa: BLE001 - the message was accepted whatever happens here
            self.log(f"SES event Send of {message.message_id} not published: {type(error).__name__}: {error}")

    def receive(self, message: Any) -> Receipt:
        """The mailbox stored ``message`` (a :class:`devstack.mailbox.Message`): the receiving
        side's answer, and its records."""
        with self._guard:
            accepted = self._accepted.pop(message.id, None)
        if accepted is None:  # not a SendRawEmail this emulator saw: no configuration set, no records
            plain = EmailMessage()
            plain["From"], plain["To"], plain["Subject"] = (
                message.sender,
                ", ".join(message.to),
                message.subject,
            )
            accepted = Accepted(
                message.id, message.sender, list(message.to), plain.as_string(), "", "", self.clock()
            )
        try:
            outcome = receive(accepted, self.clock())
            for record in outcome.events:
                self.publish(accepted, record)
        except Exception as error:  # noqa: BLE001 - the mailbox keeps the message, "sent"
            self.log(f"no answer for {message.id}: {type(error).__name__}: {error}")
            return Receipt("sent", [])
        return Receipt(outcome.state, outcome.replies)

    def publish(self, message: Accepted, record: dict[str, Any]) -> None:
        """``record`` to every destination of the message's configuration set that selects it."""
        if not message.configuration_set:
            return
        wanted = _RECORD_TYPES[record["eventType"]]
        body = json.dumps(record)
        with self.lock:
            from moto.sns.models import sns_backends

            for destination in event_destinations(message.account, message.region, message.configuration_set):
                if wanted not in destination.types:
                    continue
                _, _, _, region, account, _ = destination.topic_arn.split(":", 5)
                try:
                    sns_backends[account][region].publish(body, arn=destination.topic_arn)
                except Exception as error:  # noqa: BLE001 - SES does not fail a send over its topic
                    self.log(
                        f"SES event {record['eventType']} not published to {destination.topic_arn}: {error}"
                    )
                    continue
                self.published.append((destination.topic_arn, record))
