"""Structured logs and CloudWatch metrics, with AWS Lambda Powertools.

Every module logs through the standard logger ``simple-otp``; Powertools'
:class:`Logger` owns that logger and writes each line as one JSON object
with the request id (appended per invocation by the app) and whatever the
call names in ``extra``. Nothing logged may carry a code, a password, a
token or a whole session id: sessions appear as their short tag.

Metrics are CloudWatch embedded metric format (EMF) lines, printed when an
invocation ends (:func:`flush`). The names are a contract with the
alarms in the deployment template.

Powertools comes from the AWS-managed Lambda layer in the deployment and
from requirements-dev.txt on this machine; it is not in the function's zip.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "simple-otp"
NAMESPACE = "simple-otp"

# Counted events and measured durations (the alarms and dashboards use these names).
SIGN_IN_STARTED = "SignInStarted"
SIGN_IN_REFUSED = "SignInRefused"
SIGN_IN_LIMITED = "SignInLimited"
CODE_MAILED = "CodeMailed"
MAIL_FAILED = "MailFailed"
SECONDS_TO_ACCEPTED = "SecondsToAccepted"
SECONDS_TO_DELIVERED = "SecondsToDelivered"
VERIFY_SUCCEEDED = "VerifySucceeded"
VERIFY_FAILED = "VerifyFailed"
VERIFY_LOCKED = "VerifyLocked"
BOUNCE = "Bounce"
COMPLAINT = "Complaint"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def count(name: str, value: int = 1) -> None:
    """Count ``value`` events of ``name`` in this invocation."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def seconds(name: str, value: float) -> None:
    """Record one duration of ``name``, in seconds (never negative)."""
    metrics.add_metric(name=name, unit=MetricUnit.Seconds, value=max(0.0, value))


def begin(request_id: str | None) -> None:
    """A new invocation: its log lines carry ``request_id``."""
    logger.append_keys(request_id=request_id)


def flush() -> None:
    """The invocation ended: print its metrics (nothing when there were none)."""
    if metrics.metric_set:  # an invocation that counted nothing prints nothing
        metrics.flush_metrics()
    logger.remove_keys(["request_id"])


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call: the values as JSON keys of the line (None left out)."""
    return {key: value for key, value in values.items() if value is not None}
