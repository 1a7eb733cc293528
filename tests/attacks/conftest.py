"""Fixtures of the attack suite and the summary table it prints at the end.

Each attack test records one row (attack, tries, what got through, a figure)
with the ``attack_log`` fixture *before* it asserts, so a failing attack still
shows its numbers. Rows travel as the tests' ``user_properties``, which also
reach the controller under pytest-xdist; ``pytest_terminal_summary`` reads
them back from the reports and prints the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import serialize_dynamodb

ROW = "attack_row"


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


def _rows(terminalreporter: Any) -> list[dict[str, Any]]:
    rows = []
    for key in ("passed", "failed", "error", "xfailed"):
        for report in terminalreporter.stats.get(key, []):
            if getattr(report, "when", "call") != "call":
                continue
            for name, value in getattr(report, "user_properties", []):
                if name == ROW:
                    rows.append({**value, "failed": report.failed, "xfailed": hasattr(report, "wasxfail")})
    return rows


def pytest_terminal_summary(terminalreporter: Any) -> None:
    rows = _rows(terminalreporter)
    if not rows:
        return
    headers = ("attack", "tries", "got through", "figure")
    table = [
        (
            row["attack"] + (" (FAILED)" if row["failed"] else " (xfail)" if row["xfailed"] else ""),
            str(row["tries"]),
            str(row["through"]),
            row["figure"],
        )
        for row in rows
    ]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(w) if i in (1, 2) else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    terminalreporter.write_sep("=", "attack and fault suite")
    terminalreporter.write_line(line(headers))
    terminalreporter.write_line(line(tuple("-" * w for w in widths)))
    for cells in table:
        terminalreporter.write_line(line(cells))
    through = sum(row["through"] for row in rows)
    tries = sum(row["tries"] for row in rows)
    terminalreporter.write_line(f"{len(rows)} attacks, {tries} tries, {through} got through")
    for row in rows:
        if row.get("note"):
            terminalreporter.write_line(row["note"])
