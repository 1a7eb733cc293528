"""The SNS pump: Lambda's subscription of an ``@app.on_sns_message`` handler, done locally.

On AWS, SNS invokes the app's ``delivery_events`` function with each
message of the SES events topic. ``chalice local`` runs no event sources,
so the local stack subscribes an SQS queue of its own to the topic (in
moto, which delivers each notification to it as SNS delivers to any
queue) and this pump reads that queue every 0.2 s, through the SQS API,
and calls the handler with each message in Lambda's SNS event shape, one
record per call as Lambda does. A message is deleted once the handler
returns; when the handler raises, it stays in the queue, hidden for a
growing pause (1, 2, 4, then 5 s), and is handed over again, the failure
logged in one line. The other messages do not wait behind it: each SNS
message is its own invocation.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from chalicelib.errors import error_code
from devstack.pump import lambda_context, registered

POLL_SECONDS = 0.2
MAX_RETRY_SECONDS = 5
HANDLER_SECONDS = 60  # how long a received message stays hidden while the handler runs

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class SnsHandler:
    """One ``@app.on_sns_message`` function of the app."""

    name: str
    handler: Handler
    topic: str  # as the app names it: a topic name or ARN


def sns_handlers(app_module: ModuleType) -> list[SnsHandler]:
    """The app's SNS handlers, found as Chalice registered them."""
    from chalice.app import SNSEventConfig

    return [
        SnsHandler(source.name, function, source.topic)
        for source, function in registered(app_module, SNSEventConfig)
    ]


def subscribes_to(topic: str, topic_arn: str) -> bool:
    """Whether a handler's ``topic`` (name or ARN, as Chalice takes it) is ``topic_arn``."""
    return topic == topic_arn if topic.startswith("arn:") else topic == topic_arn.rsplit(":", 1)[-1]


def queue_name(topic_arn: str, handler: str) -> str:
    """The local queue of one handler's subscription (SQS: 80 of A-Z a-z 0-9 - _)."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", f"{topic_arn.rsplit(':', 1)[-1]}-{handler}")
    return name[:80]


def ensure_queue(sqs: Any, sns: Any, topic_arn: str, name: str) -> tuple[str, str]:
    """The queue ``name`` subscribed to the topic (both made if missing): (queue URL, subscription ARN)."""
    url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TopicSends",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    subscription = sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True
    )["SubscriptionArn"]
    return url, str(subscription)


def lambda_event(notification: dict[str, Any], subscription_arn: str) -> dict[str, Any]:
    """Lambda's SNS event for one notification as SNS delivers it to a queue (its JSON body)."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": notification.get("Type", "Notification"),
                    "MessageId": notification["MessageId"],
                    "TopicArn": notification["TopicArn"],
                    "Subject": notification.get("Subject"),
                    "Message": notification["Message"],
                    "Timestamp": notification["Timestamp"],
                    "SignatureVersion": notification.get("SignatureVersion", "1"),
                    "Signature": notification.get("Signature", ""),
                    "SigningCertUrl": notification.get("SigningCertURL", ""),
                    "UnsubscribeUrl": notification.get("UnsubscribeURL", ""),
                    "MessageAttributes": notification.get("MessageAttributes") or {},
                },
            }
        ]
    }


def _reason(error: Exception) -> str:
    return f"{type(error).__name__} {error_code(error)}".strip()


def retry_seconds(receives: int) -> int:
    """The pause before the next attempt after the ``receives``-th failed one: 1, 2, 4, 5, 5, ... s."""
    return int(min(2 ** max(receives - 1, 0), MAX_RETRY_SECONDS))


class SnsPump:
    """Moves messages from one subscription's queue to one handler; :meth:`tick` is one poll."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        subscription_arn: str,
        target: SnsHandler,
        log: Callable[[str], None] = print,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.subscription_arn = subscription_arn
        self.target = target
        self.log = log

    def tick(self) -> int:
        """Hand each visible message to the handler; return how many it took.

        A message whose handler raised stays in the queue, hidden for
        :func:`retry_seconds`; the failure is logged, not raised.
        """
        received = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=HANDLER_SECONDS,
            AttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
        handled = 0
        for message in received:
            receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            try:
                event = lambda_event(json.loads(message["Body"]), self.subscription_arn)
                self.target.handler(event, lambda_context(self.target.name))
            except Exception as error:  # noqa: BLE001 - Lambda retries whatever the handler raised
                delay = retry_seconds(receives)
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=delay
                )
                self.log(
                    f"{self.target.name} failed ({_reason(error)}); message kept, trying again in {delay} s"
                )
                continue
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            handled += 1
            if receives > 1:
                failed = receives - 1
                plural = "s" if failed != 1 else ""
                self.log(f"{self.target.name}: handled after {failed} failed attempt{plural}")
        return handled

    def run(self, stop: threading.Event, interval: float = POLL_SECONDS) -> None:
        """Tick until ``stop`` is set; a failing poll (the queue unreachable) is logged and retried."""
        failures = 0
        while True:
            delay = interval
            try:
                self.tick()
                failures = 0
            except Exception as error:  # noqa: BLE001 - keep pumping; the emulator may be restarting
                failures += 1
                delay = float(retry_seconds(failures))
                reason = _reason(error)
                self.log(f"{self.target.name}: reading its queue failed ({reason}); again in {delay:.0f} s")
            if stop.wait(delay):
                return


class SnsPumps:
    """One running pump thread per SNS handler of the app that subscribes to ``topic_arn``."""

    def __init__(
        self, app_module: ModuleType, sqs: Any, sns: Any, topic_arn: str, log: Callable[[str], None]
    ) -> None:
        handlers = sns_handlers(app_module)
        self.targets = [h for h in handlers if subscribes_to(h.topic, topic_arn)]
        self.others = [h for h in handlers if h not in self.targets]  # topics the local stack does not feed
        self.queues: dict[str, str] = {}
        self._stop = threading.Event()
        self._threads = []
        for target in self.targets:
            url, subscription = ensure_queue(sqs, sns, topic_arn, queue_name(topic_arn, target.name))
            self.queues[target.name] = url
            pump = SnsPump(sqs, url, subscription, target, log)
            self._threads.append(
                threading.Thread(target=pump.run, args=(self._stop,), name=f"sns-{target.name}", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
