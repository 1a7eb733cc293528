"""The one clock of the service, so tests move time instead of sleeping.

Every piece of code that needs "now" (the routes' rules, the mailer, the
operator commands) calls :func:`now`; tests replace :data:`clock`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

clock: Callable[[], float] = time.time


def now() -> int:
    """Whole epoch seconds from :data:`clock`."""
    return int(clock())
