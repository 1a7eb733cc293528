"""Account changes: set a password, disable or enable an account.

Every change bumps the account's version and ends its open sessions: a
session begun before the account was disabled, or before its password was
replaced, can neither be resent nor verified (410). The version makes a
sign-in that read the account before the change fail its own write, so no
session slips in between.
"""

from __future__ import annotations

import logging
from typing import Any

from chalicelib import codes, credentials, store
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
        cfg.table_name, email, {"disabled": disabled}, now(), create=False, new_sub=codes.new_account_id()
    )
    if user is None:
        raise NoSuchAccount(email)
    return _end_sessions(cfg, user)
