"""Fixtures of the attack suite and the summary table it prints at the end.

Each attack test records one row (attack, tries, what got through, a figure)
with the ``attack_log`` fixture *before* it asserts, so a failing attack still
shows its numbers. Rows travel as the tests' ``user_properties``, which also
reach the controller under pytest-xdist; ``pytest_terminal_summary``
(tests/attacks/summary.py, hooked in tests/conftest.py, which the xdist
controller loads too) reads them back from the reports and prints the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.attacks.summary import ROW
from tests.support import serialize_dynamodb


@pytest.fixture
def attack_log(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``attack_log(attack, tries, got_through, figure="", note="")`` adds a row to the table.

    A ``note`` is printed in full under the table (for a figure that needs a sentence).
    """

    def record(attack: str, tries: int, got_through: int, figure: str = "", note: str = "") -> None:
        row = {
            "attack": attack,
            "tries": int(tries),
            "through": int(got_through),
            "figure": figure,
            "note": note,
        }
        request.node.user_properties.append((ROW, row))

    return record


@pytest.fixture
def atomic_moto() -> Iterator[None]:
    """moto's DynamoDB applying one request at a time, as DynamoDB does per item."""
    undo = serialize_dynamodb()
    yield
    for fn in undo:
        fn()


@pytest.fixture
def backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays botocore's retry handler asks for, recorded instead of slept.

    botocore sleeps in ``botocore.endpoint`` between attempts; the tests
    check those delays (the backoff is real) without waiting them out.
    """
    import types

    import botocore.endpoint

    delays: list[float] = []
    fake = types.SimpleNamespace(sleep=delays.append)
    monkeypatch.setattr(botocore.endpoint, "time", fake)
    return delays
