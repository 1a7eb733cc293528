"""No secret in any log line: every line the app logs during a test, checked at its end.

:func:`tests.support.Stack.post` hands each request and answer to
:func:`remember`, which keeps the values of the fields that are secrets
(passwords, codes, session ids, tokens); the ``no_secret_in_logs`` fixture
(tests/conftest.py, on every test) keeps each line the ``simple-otp`` logger
writes, formatted as Powertools writes it, and fails the test when a line
holds one of them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

SECRET_FIELDS = ("password", "new_password", "code", "session_id", "token", "device_token")
MIN_LENGTH = 6  # shorter values (a 5-digit guess, "x") would match by chance

_TOKEN = re.compile(r"[^\s\"'=,:;()\[\]{}<>]+")

secrets: set[str] = set()


def remember(value: Any) -> None:
    """Keep the secret fields of a request or answer body (a dict; anything else is ignored)."""
    if not isinstance(value, dict):
        return
    for name in SECRET_FIELDS:
        field = value.get(name)
        if isinstance(field, str) and len(field) >= MIN_LENGTH:
            secrets.add(field)


def leaks(lines: Iterable[str], known: Iterable[str]) -> list[tuple[str, str]]:
    """(secret, line) for each line that holds one of ``known``."""
    plain = {s for s in known if _TOKEN.fullmatch(s)}
    spaced = [s for s in known if s not in plain]
    found = []
    for line in lines:
        hits = plain.intersection(_TOKEN.findall(line)) | {s for s in spaced if s in line}
        found += [(secret, line) for secret in sorted(hits)]
    return found


class Lines(logging.Handler):
    """Keeps every record of the app's logger as the line Powertools prints for it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is kept as its message
            self.lines.append(str(record.msg))
