"""The attack suite's table, printed at the end of the run from the reports' rows.

Hooked in tests/conftest.py: a conftest below the test paths is loaded only
where tests are collected, which under pytest-xdist is the workers, while
the table is printed by the controller.
"""

from __future__ import annotations

from typing import Any

ROW = "attack_row"


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
