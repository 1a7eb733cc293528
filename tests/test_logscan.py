"""The log scan itself: it finds a secret in a line, and it runs on every test's lines."""

from __future__ import annotations

import logging

from devstack.environment import DEMO_PASSWORD
from tests import logscan


def test_leaks_finds_each_kind_of_secret_and_nothing_else():
    known = {"123456", "correct horse battery", "tok.en-1_x"}
    lines = [
        '{"message": "code=123456"}',
        '{"message": "password correct horse battery staple"}',
        '{"message": "attempts_remaining=3 1234567 session=abc123def456"}',
        '{"message": "bearer tok.en-1_x"}',
    ]
    found = logscan.leaks(lines, known)
    assert [secret for secret, _ in found] == ["123456", "correct horse battery", "tok.en-1_x"]
    assert logscan.leaks(lines[2:3], known) == []  # 1234567 is not 123456


def test_the_fixture_keeps_what_the_app_logs_and_what_the_requests_carried(stack, no_secret_in_logs):
    started = stack.sign_in()
    assert DEMO_PASSWORD in logscan.secrets and started.data["session_id"] in logscan.secrets
    assert any("session started" in line for line in no_secret_in_logs.lines)
    logging.getLogger("simple-otp").info("a careless line: %s", DEMO_PASSWORD)
    found = logscan.leaks(no_secret_in_logs.lines, logscan.secrets)
    assert [secret for secret, _ in found] == [DEMO_PASSWORD]
    no_secret_in_logs.lines.pop()  # this test planted it; the fixture checks the rest
