from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.testenv import forget_containers, provision_demo, use_test_environment  # noqa: E402
from tests import logscan  # noqa: E402
from tests.attacks.summary import pytest_terminal_summary  # noqa: E402, F401 - the attack table
from tests.support import Stack  # noqa: E402

use_test_environment()


@pytest.fixture(autouse=True)
def no_secret_in_logs() -> Iterator[logscan.Lines]:
    """Every test: no line the app logs holds a password, code, session id or token it handled."""
    import logging

    from chalicelib import observe

    lines = logscan.Lines()
    lines.setFormatter(observe.logger.registered_formatter)
    app_logger = logging.getLogger("simple-otp")
    app_logger.addHandler(lines)
    logscan.secrets.clear()
    try:
        yield lines
    finally:
        app_logger.removeHandler(lines)
    found = logscan.leaks(lines.lines, logscan.secrets)
    if found:
        pytest.fail(f"{len(found)} log line(s) hold a secret, first: {found[0][1][:300]}")


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The app against a fresh in-process moto, provisioned as production is."""
    from moto import mock_aws

    with mock_aws():
        from chalice.test import Client

        from chalicelib import aws

        forget_containers()
        import app as app_module
        from devstack.emulator import keep_streams_across_rollbacks

        keep_streams_across_rollbacks()  # the same emulator fidelity fix as the local stack

        result = provision_demo()
        from devstack.streams import StreamReader

        with Client(app_module.app) as client:
            yield Stack(
                client=client,
                app_module=app_module,
                stream_arn=result["stream_arn"],
                reader=StreamReader(aws.client("dynamodbstreams"), result["stream_arn"]),
            )
        forget_containers()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch):
    """A settable clock for the app: move time, never sleep."""
    from chalicelib import clock as clock_module

    class Clock:
        def __init__(self) -> None:
            self.now = 1_900_000_000.0

        def __call__(self) -> float:
            return self.now

        def advance(self, seconds: float) -> None:
            self.now += seconds

    fake = Clock()
    monkeypatch.setattr(clock_module, "clock", fake)
    return fake
