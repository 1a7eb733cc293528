"""boto3 clients, created on first use and reused for the container's life.

Nothing is created at import, so importing the app costs no AWS call. The
endpoint comes from boto3's own ``AWS_ENDPOINT_URL`` handling: the local stack
points it at moto server and the code paths stay exactly those of production.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

_lock = threading.Lock()


# SES gets one attempt per call: botocore would resend a mail whose answer
# was lost (a read timeout), and a retried batch would send it again. The
# mailer retries throttling itself, the only answer that surely sent nothing.
ATTEMPTS = {"ses": 1}


def _config(service: str) -> Any:
    from botocore.config import Config

    # Three attempts in all (botocore's "max_attempts" counts retries, not
    # attempts): the backoff of a throttled call is then at most 1 + 2 s, so
    # a request's three calls at most (resend with a cold key) wait out 9 s
    # and still answer 503 inside the 10 s Lambda timeout.
    return Config(
        retries={"mode": "standard", "total_max_attempts": ATTEMPTS.get(service, 3)},
        connect_timeout=2,
        read_timeout=5,
    )


@cache
def _session() -> Any:
    """One botocore session per container: its loaded models and endpoint data serve every client."""
    import boto3

    return boto3.session.Session()


@cache
def _client(service: str) -> Any:
    return _session().client(service, config=_config(service))


def client(service: str) -> Any:
    """The shared client for ``service`` ("dynamodb", "ses", "ssm", ...)."""
    with _lock:  # boto3 client creation is not thread-safe; use is.
        return _client(service)


def reset() -> None:
    """Forget every client (tests that switch endpoints or credentials)."""
    with _lock:
        _client.cache_clear()
        _session.cache_clear()
