"""What every part of the bench shares: paths, the test environment, statistics."""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support import TEST_ENV  # noqa: E402

# Variables that would send boto3 anywhere but the in-process emulator.
_DROPPED = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE")


def child_environment() -> dict[str, str]:
    """The environment for a child Python that imports ``app``: the test settings, no real AWS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTP_", "AWS_", "LOCAL_"))}
    env.update(TEST_ENV)
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["AWS_CONFIG_FILE"] = os.devnull
    return env


def use_test_environment() -> None:
    """Point this process at the test settings (moto in-process), before ``app`` is imported."""
    for name in _DROPPED:
        os.environ.pop(name, None)
    os.environ.update(TEST_ENV)
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_CONFIG_FILE"] = os.devnull


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
