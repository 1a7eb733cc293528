"""Trusted devices: the rules, without AWS.

A browser that completed a sign-in gets a device token (256 random bits).
The account's item keeps a map of its devices, keyed by the token's SHA-256,
so the sign-in's one read of the user also says whether the client is
trusted: no extra round trip. A trusted device counts its failed sign-ins
and its sends in buckets of its own, so a stranger who fills the address's
shared buckets cannot keep the owner out.

Every verification from a device replaces its token with a new one (same
device, same creation time, a new expiry): a token lives
``OTP_DEVICE_TTL_DAYS`` from its issue, and one that was copied stops
working the next time the owner signs in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from chalicelib import codes

MAX_DEVICES = 20  # per account; the least recently used go first
ID_LENGTH = 16  # the part of the hash an operator sees and names
_LABEL_MAX = 60


@dataclass(frozen=True)
class Device:
    """A trusted device as the sign-in found it on the account."""

    digest: str  # SHA-256 of its token: its key in the account's map
    created_at: int
    label: str

    @property
    def ident(self) -> str:
        """What its limit and cooldown items are keyed by."""
        return self.digest[:32]


def _map(user: dict[str, Any] | None) -> dict[str, Any]:
    found = (user or {}).get("devices")
    return found if isinstance(found, dict) else {}


def trusted(user: dict[str, Any] | None, token: str | None, at: int) -> Device | None:
    """The device of ``token`` on this account, if it is one and has not expired.

    An unknown, expired, revoked or other account's token is simply None:
    the caller treats it exactly like no token.
    """
    if token is None:
        return None
    digest = codes.device_hash(token)
    entry = _map(user).get(digest)
    if not isinstance(entry, dict) or int(entry.get("expires_at", 0)) <= at:
        return None
    return Device(digest, int(entry.get("created_at", at)), str(entry.get("label", "")))


def to_prune(user: dict[str, Any] | None, at: int, keep: str | None) -> tuple[str, ...]:
    """Entries to drop at this sign-in: the expired, and the least recently
    used beyond room for the one the verify adds (or puts in ``keep``'s place)."""
    expired: list[str] = []
    live: list[tuple[int, str]] = []
    for digest, found in _map(user).items():
        if digest == keep:
            continue
        e = found if isinstance(found, dict) else {}
        if int(e.get("expires_at", 0)) <= at:
            expired.append(digest)
        else:
            live.append((int(e.get("last_used_at", 0)), digest))
    extra = [digest for _, digest in sorted(live)[: max(0, len(live) - (MAX_DEVICES - 1))]]
    return tuple(expired + extra)


def entry(created_at: int, at: int, ttl_days: int, label: str) -> dict[str, Any]:
    """What the account's map holds for one device (never the token)."""
    return {"created_at": created_at, "last_used_at": at, "expires_at": at + ttl_days * 86400, "label": label}


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"))
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def label(user_agent: str | None) -> str:
    """A short, readable name for the device, from the User-Agent it first signed in with."""
    text = re.sub(r"[^\x20-\x7e]", "", user_agent or "")
    browser = next((name for mark, name in _BROWSERS if mark in text), None)
    if browser is None and "Safari/" in text:
        browser = "Safari"
    system = next((name for mark, name in _SYSTEMS if mark in text), None)
    if browser and system:
        return f"{browser} on {system}"
    return (browser or system or text.strip() or "unknown")[:_LABEL_MAX]


def listing(user: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The account's devices for an operator: id, created, last used, expiry, label."""
    rows = [
        {
            "id": digest[:ID_LENGTH],
            "created_at": int(e.get("created_at", 0)),
            "last_used_at": int(e.get("last_used_at", 0)),
            "expires_at": int(e.get("expires_at", 0)),
            "label": str(e.get("label", "")),
        }
        for digest, e in _map(user).items()
        if isinstance(e, dict)
    ]
    return sorted(rows, key=lambda row: row["created_at"])


def matching(user: dict[str, Any] | None, device_id: str) -> list[str]:
    """The full hashes whose operator id is ``device_id``."""
    return [digest for digest in _map(user) if digest[:ID_LENGTH] == device_id.lower()]
