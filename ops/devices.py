"""Trusted devices from the command line: list an account's, revoke one or all."""

from __future__ import annotations

import time
from typing import TextIO

from chalicelib import accounts, settings
from ops import OpsError
from ops.users import address


def _when(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch)) if epoch else "-"


def show(cfg: settings.Settings, email: str, out: TextIO) -> int:
    """Print one line a device: id, created, last used, expires, label. Returns how many."""
    email = address(email)
    try:
        rows = accounts.list_devices(cfg, email)
    except accounts.NoSuchAccount:
        raise OpsError(f"no user {email}") from None
    if not rows:
        print(f"user {email} has no trusted devices", file=out)
        return 0
    print(f"{'id':16}  {'created':20}  {'last used':20}  {'expires':20}  label", file=out)
    for row in rows:
        print(
            f"{row['id']:16}  {_when(row['created_at']):20}  {_when(row['last_used_at']):20}  "
            f"{_when(row['expires_at']):20}  {row['label']}",
            file=out,
        )
    return len(rows)


def revoke(cfg: settings.Settings, email: str, device_id: str | None) -> int:
    """Revoke the device with this id (None: every device of the account); returns how many."""
    email = address(email)
    try:
        count = accounts.revoke_devices(cfg, email, device_id)
    except accounts.NoSuchAccount:
        raise OpsError(f"no user {email}") from None
    if device_id is not None and count == 0:
        raise OpsError(f"user {email} has no device {device_id} (see: simple-otp devices {email})")
    return count
