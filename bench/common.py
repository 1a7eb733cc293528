"""What every part of the bench shares: paths, statistics, and the shapes of a report.

Each part (``coldstart``, ``inprocess``, ``load``, ``frontend``, ``package``)
has ``measure(size)``, which returns its figures (plain data, also written as
JSON), and says itself what they mean: ``TITLES``, ``summary(figures)``
(its rows of the summary table, each with its target, also when the part
did not run: ``figures`` is None) and ``sections(figures)`` (its tables and
paragraphs). ``bench.report`` only lays them out as Markdown.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass
class Measure:
    """One row of the summary: what is measured and its target; once measured, the result
    and whether it met the target (None: a figure with no target)."""

    what: str
    target: str
    result: str | None = None
    met: bool | None = None

    def measured(self, result: str, met: bool | None = None) -> Measure:
        self.result, self.met = result, met
        return self


@dataclass
class Table:
    header: list[str]
    rows: list[list[Any]]


@dataclass
class Section:
    """One section of the report: tables and paragraphs (Markdown text), in order.

    ``console``: also printed at the end of a run that writes the report to a file.
    """

    title: str
    blocks: list[Table | str]
    console: bool = False


def verdict(met: bool | None) -> str:
    if met is None:
        return "not measured"
    return "met" if met else "**not met**"


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank, 0 < pct <= 100) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil without floats
    return ordered[int(rank) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def ms(seconds: float) -> str:
    """Seconds as milliseconds with sensible precision."""
    value = seconds * 1000
    if value != value:  # NaN
        return "n/a"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
