"""Account changes: set a password, disable or enable an account; its devices.

A new password or disabling also forgets every trusted device. Every change
bumps the account's version and ends its open sessions: a session begun
before the account was disabled, or before its password was replaced, can
neither be resent nor verified (410). The version makes a
sign-in that read the account before the change fail its own write, so no
session slips in between.
"""

from __future__ import annotations

import logging
from typing import Any

from chalicelib import codes, credentials, devices, store
from chalicelib.clock import now
from chalicelib.mail import mask
from chalicelib.settings import Settings

log = logging.getLogger("simple-otp")


class NoSuchAccount(LookupError):
    """There is no account with that address."""


def _end_sessions(cfg: Settings, user: dict[str, Any]) -> int:
    sessions = list((user.get("sessions") or {}).keys())
    store.close_sessions(cfg.table_name, sessions)
    log.info("account changed: email=%s sessions_closed=%d", mask(user["email"]), len(sessions))
    return len(sessions)


def set_password(cfg: Settings, email: str, password: str) -> int:
    """Create the account (enabled) or replace its password; returns the sessions it ended."""
    changes = {"password_hash": credentials.hash_password(password), "disabled": False}
    user = store.save_user(cfg.table_name, email, changes, now(), create=True, new_sub=codes.new_account_id())
    return _end_sessions(cfg, user or {"email": email})


def set_disabled(cfg: Settings, email: str, disabled: bool) -> int:
    """Disable or enable the account; NoSuchAccount when there is none."""
    user = store.save_user(
        cfg.table_name,
        email,
        {"disabled": disabled},
        now(),
        create=False,
        new_sub=codes.new_account_id(),
        revoke_devices=disabled,
    )
    if user is None:
        raise NoSuchAccount(email)
    return _end_sessions(cfg, user)


def list_devices(cfg: Settings, email: str) -> list[dict[str, Any]]:
    """The account's trusted devices (id, created, last used, expiry, label)."""
    user = store.get_user(cfg.table_name, email)
    if user is None:
        raise NoSuchAccount(email)
    return devices.listing(user)


def revoke_devices(cfg: Settings, email: str, device_id: str | None) -> int:
    """Forget one trusted device (by its listed id) or, with None, all; returns how many."""
    user = store.get_user(cfg.table_name, email)
    if user is None:
        raise NoSuchAccount(email)
    found = devices.matching(user, device_id) if device_id is not None else None
    count = len(found) if found is not None else len(devices.listing(user))
    if not store.remove_devices(cfg.table_name, email, found):
        raise NoSuchAccount(email)
    log.info("devices revoked: email=%s count=%d", mask(email), count)
    return count
