"""An account's audit trail from the command line: ``simple-otp audit EMAIL [--days N]``."""

from __future__ import annotations

import time
from typing import TextIO

from chalicelib import audit, settings
from ops import OpsError
from ops.users import address

IP_SHOWN = 12  # hex digits of the network's hash printed: enough to tell networks apart


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def show(cfg: settings.Settings, email: str, days: int, out: TextIO) -> int:
    """Print one line an entry, oldest first: time, event, outcome, network hash, detail.

    Returns how many entries were printed.
    """
    email = address(email)
    if not 1 <= days <= audit.RETENTION_DAYS:
        raise OpsError(f"--days must be from 1 to {audit.RETENTION_DAYS} (entries are kept that long)")
    rows = audit.listing(cfg, email, days)
    if not rows:
        print(f"no audit entries for {email} in the last {days} day(s)", file=out)
        return 0
    for row in rows:
        ip = f"ip={row['ip'][:IP_SHOWN]}" if row["ip"] else "ip=-"
        line = f"{_iso(row['at'])}  {row['event']:<20} {row['outcome']:<14} {ip:<15} {row['detail']}"
        print(line.rstrip(), file=out)
    return len(rows)
