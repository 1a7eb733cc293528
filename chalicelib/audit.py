"""The audit trail of each account, derived from the table's stream.

The stream handler already sees every write the service makes; after the
mail it hands the same records here, and this module turns the ones that
matter to an account into entries: sign-ins that sent a code, were refused
or limited, codes verified or refused, password changes and resets, devices
added and revoked, the account created, disabled or enabled, the address
suppressed. No request path makes an extra call for it: where a record alone
could not tell (the client's network, the time of a guess, whether the
address has an account), the write that happens anyway carries it (see
``chalicelib.store``).

Each entry has a time, an event, an outcome, the hash of the client's
network where a client made the change (never the address itself: the same
hash the per-IP limits use), and a short detail; never a code, password,
token or session id (at most 16 hex digits of a session's or a device's
hash, as the operator's device list shows them).

Storage: one item per account and clock hour, ``audit#<email>#<hour>``,
each entry an attribute ``e:<name>``. The name comes from the change itself
(the session, the attempt number, the device, the account version), so a
record delivered twice, or seen in two batches, writes nothing twice. Items
expire 90 days after their hour (TTL), and hold at most :data:`MAX_ENTRIES`
entries: the send and failure limits keep a real account far below that.

A sign-in's password check takes a slot before the hash, and only a wrong
password leaves it taken; the slot write notes an attempt id, which the
session repeats when the password was right (or the refund, when a send
limit refused it). The slot's record writes the entry "refused" if there is
none yet, the session's record (or the refund's) sets it to what happened:
in whichever order the two records come, the entry ends right.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib import devices, store
from chalicelib.clock import now
from chalicelib.errors import error_code
from chalicelib.mail import mask
from chalicelib.settings import Settings

log = logging.getLogger("simple-otp")

RETENTION_DAYS = 90
MAX_ENTRIES = 400  # per account and hour: about 60 KB, far below DynamoDB's 400 KB
PREFIX = "e:"  # the attributes of an audit item that are entries
_PER_WRITE = 40  # entries per UpdateItem: its expression stays well inside 4 KB
_SHORT = devices.ID_LENGTH  # hex digits of a session's or device's hash an entry names

Record = tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]  # event name, new, old image

# Mails that go to an address with no account: nothing to audit.
_NO_ACCOUNT = {"none", "reset-unknown"}

# The limit buckets that belong to one account, and what each counts.
_LIMITS = {
    "fail-email": "failed sign-ins for the address",
    "fail-device": "failed sign-ins from a trusted device",
    "email": "codes sent to the address",
    "mail": "mails to the address",
    "device": "codes sent for a trusted device",
}


@dataclass(frozen=True)
class Entry:
    """One line of an account's audit trail."""

    email: str
    name: str  # stable: the same change always gives the same name
    at: int
    event: str
    outcome: str
    ip: str = ""  # hash of the client's network; "" when no client made the change
    detail: str = ""
    settles: bool = False  # replaces an entry of the same name (an outcome known only later)

    def value(self) -> dict[str, Any]:
        return {
            "t": self.at,
            "ev": self.event,
            "out": self.outcome,
            **({"ip": self.ip} if self.ip else {}),
            **({"d": self.detail} if self.detail else {}),
        }


def expires_at(hour: int) -> int:
    """The TTL of the audit item of clock hour ``hour``: 90 days after it ends."""
    return (hour + 1) * 3600 + RETENTION_DAYS * 86400


def record_stream(cfg: Settings, records: Iterable[Record]) -> int:
    """Write the audit entries of a batch of stream records; returns how many were new.

    One UpdateItem per account and hour the batch touches (per 40 entries).
    A failed write is logged and not retried: a code must never wait
    behind its audit entry.
    """
    groups: dict[tuple[str, int], dict[str, Entry]] = {}
    for event_name, new, old in records:
        try:
            found = entries(cfg, event_name, store.from_ddb(new), store.from_ddb(old))
        except (KeyError, TypeError, ValueError) as error:
            log.error("audit: record skipped: %s", type(error).__name__)
            continue
        for entry in found:
            group = groups.setdefault((entry.email, entry.at // 3600), {})
            if entry.name not in group or entry.settles:
                group[entry.name] = entry
    written = 0
    for (email, hour), named in groups.items():
        pending = list(named.values())
        for start in range(0, len(pending), _PER_WRITE):
            written += _write(cfg, email, hour, pending[start : start + _PER_WRITE])
    return written


def _write(cfg: Settings, email: str, hour: int, batch: list[Entry]) -> int:
    values = {PREFIX + entry.name: entry.value() for entry in batch}
    settled = [PREFIX + entry.name for entry in batch if entry.settles]
    try:
        added = store.add_audit(cfg.table_name, email, hour, values, settled, expires_at(hour), MAX_ENTRIES)
    except Exception as error:  # noqa: BLE001 - the mail went out; the audit must not hold up the shard
        log.error(
            "audit write failed: email=%s entries=%d reason=%s",
            mask(email),
            len(batch),
            error_code(error) or type(error).__name__,
        )
        return 0
    if added is None:
        log.warning("audit item full: email=%s hour=%d entries dropped=%d", mask(email), hour, len(batch))
        return 0
    return added


def entries(
    cfg: Settings, event_name: str, new: dict[str, Any] | None, old: dict[str, Any] | None
) -> list[Entry]:
    """The audit entries one stream record gives (plain images; ``old`` None on a NEW_IMAGE stream)."""
    item = new or old
    if not item or str(item.get("pk", "")).startswith("audit#"):
        return []  # audit items themselves: never recorded again
    derive = _BY_KIND.get(str(item.get("kind", "")))
    return derive(cfg, event_name, new, old) if derive else []


def _changed(new: Mapping[str, Any], old: Mapping[str, Any] | None, name: str) -> bool:
    """Whether this record set ``name``; without an old image, assume it did (names dedupe)."""
    return old is None or old.get(name) != new.get(name)


def _limit(
    cfg: Settings, event_name: str, new: dict[str, Any] | None, old: dict[str, Any] | None
) -> list[Entry]:
    if new is None:
        return []  # expired
    _, scope, rest = str(new["pk"]).split("#", 2)
    ident, _, hour_text = rest.rpartition("#")
    if scope not in _LIMITS or new.get("account") == "none":
        return []  # a network's bucket, or an address with no account
    email = ident if scope in ("email", "fail-email", "mail") else str(new.get("email", ""))
    at, ip = int(new.get("last_at", 0)), str(new.get("last_ip", ""))
    if not email or not at:
        return []  # a carry into the next hour: nobody counted in it yet
    found = []
    attempt = new.get("last_attempt")
    if attempt and scope.startswith("fail-") and _changed(new, old, "last_attempt"):
        why = "account disabled" if new.get("account") == "disabled" else "wrong password"
        found.append(Entry(email, f"a:{attempt}", at, "sign-in", "refused", ip, why))
    if attempt and new.get("refunded") == attempt and _changed(new, old, "refunded"):
        detail = "password right; a send limit refused the code"
        found.append(Entry(email, f"a:{attempt}", at, "sign-in", "limited", ip, detail, settles=True))
    cap = _cap(cfg, scope)
    count = int(new.get("n", 0))
    reached = count >= cap and (old is None or int(old.get("n", 0)) < cap)
    if reached and "own" in new and at // 3600 == int(hour_text):
        name = f"l:{scope}:{hour_text}" + (f":{ident[:12]}" if "device" in scope else "")
        detail = f"{_LIMITS[scope]}: {cap} in 60 minutes; more are refused for up to an hour"
        found.append(Entry(email, name, at, "limit reached", "limited", ip, detail))
    return found


def _cap(cfg: Settings, scope: str) -> int:
    return {
        "fail-email": cfg.failed_sign_ins_per_email_per_hour,
        "fail-device": cfg.failed_sign_ins_per_device_per_hour,
        "email": cfg.sends_per_email_per_hour,
        "mail": cfg.mails_per_email_per_hour,
        "device": cfg.sends_per_device_per_hour,
    }[scope]


def _session(
    cfg: Settings, event_name: str, new: dict[str, Any] | None, old: dict[str, Any] | None
) -> list[Entry]:
    if new is None or new.get("mail") in _NO_ACCOUNT:
        return []  # closed or expired; or a reset for no account
    email = str(new["email"])
    short = str(new["pk"]).partition("#")[2][:_SHORT]
    purpose = str(new.get("purpose") or "signin")
    if event_name == "INSERT":
        at, ip = int(new.get("created_at", 0)) or now(), str(new.get("ip", ""))
        if purpose == "signin":
            device = new.get("device")
            detail = f"trusted device {str(device)[:_SHORT]}" if device else "new device"
            name = f"a:{new['attempt']}" if new.get("attempt") else f"s:{short}"
            return [Entry(email, name, at, "sign-in", "code sent", ip, detail, settles=True)]
        if purpose == "signup":
            exists = new.get("mail") == "signup-exists"
            outcome, detail = ("account exists", "mailed that it exists") if exists else ("code sent", "")
            return [Entry(email, f"s:{short}", at, "sign-up", outcome, ip, detail)]
        if purpose == "reset":
            return [Entry(email, f"s:{short}", at, "reset requested", "code sent", ip)]
        return []
    attempts = int(new.get("attempts", 0))
    if "last_tag" not in new or (old is not None and int(old.get("attempts", 0)) == attempts):
        return []  # a resend, a delivery state: not a guess
    at, ip = int(new.get("guessed_at", 0)) or now(), str(new.get("last_ip", ""))
    name = f"g:{short}:{attempts}"
    if new.get("last_tag") == new.get("code_tag"):
        return [Entry(email, name, at, "code verified", "ok", ip, f"{purpose}, session {short}")]
    left = max(cfg.max_attempts - attempts, 0)
    outcome = "locked" if left == 0 else "wrong code"
    return [Entry(email, name, at, "code refused", outcome, ip, f"{purpose}, {left} attempt(s) left")]


def _challenge(
    cfg: Settings, event_name: str, new: dict[str, Any] | None, old: dict[str, Any] | None
) -> list[Entry]:
    if event_name != "INSERT" or new is None or new.get("mail") in _NO_ACCOUNT:
        return []
    send_no = int(new.get("send_no", 1))
    if send_no < 2:
        return []  # the first send is the session's own entry
    at = int(new.get("queued_at", 0)) or int(new["expires_at"]) - int(new.get("valid_seconds", 0))
    short = str(new.get("session", ""))[:_SHORT]
    detail = f"send {send_no}, {new.get('mail', 'signin')}"
    return [
        Entry(
            str(new["email"]),
            f"c:{short}:{send_no}",
            at,
            "code resent",
            "code sent",
            str(new.get("ip", "")),
            detail,
        )
    ]


def _device_map(item: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    found = (item or {}).get("devices")
    return {k: v for k, v in found.items() if isinstance(v, dict)} if isinstance(found, dict) else {}


def _user(
    cfg: Settings, event_name: str, new: dict[str, Any] | None, old: dict[str, Any] | None
) -> list[Entry]:
    if new is None:
        return []
    email = str(new["email"])
    found: list[Entry] = []
    if event_name == "INSERT":
        at = int(new.get("created_at") or new.get("updated_at") or now())
        how = "by sign-up" if "created_at" in new else "by an operator"
        found.append(Entry(email, f"u:{at}", at, "account created", "ok", "", how))
        before: dict[str, Any] = {}
    elif old is None:
        return []  # a NEW_IMAGE stream: no change to compare
    else:
        before = old
    version = new.get("version")
    moved = before.get("version") != version  # an account change (save_user), with its time
    at = int(new.get("updated_at") or 0) if moved else 0
    at = at or now()
    password = event_name != "INSERT" and before.get("password_hash") != new.get("password_hash")
    if password:
        ended = sum(1 for end in (new.get("sessions") or {}).values() if int(end) > at)
        found.append(
            Entry(email, f"p:{version}", at, "password changed", "ok", "", f"sessions ended: {ended}")
        )
    disabled = bool(new.get("disabled"))
    if event_name != "INSERT" and bool(before.get("disabled")) != disabled:
        event = "account disabled" if disabled else "account enabled"
        found.append(Entry(email, f"x:{version}", at, event, "ok"))
    return found + _device_changes(
        email, _device_map(before), _device_map(new), at, password, disabled, before, new
    )


def _device_changes(
    email: str,
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    at: int,
    password: bool,
    disabled: bool,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
) -> list[Entry]:
    """Devices added and removed; a token replaced by the next sign-in (same device) is neither."""
    added = {d: e for d, e in after.items() if d not in before}
    removed = {d: e for d, e in before.items() if d not in after}
    for digest, entry in list(added.items()):
        same = next(
            (
                gone
                for gone, was in removed.items()
                if was.get("created_at") == entry.get("created_at") and was.get("label") == entry.get("label")
            ),
            None,
        )
        if same is not None:
            del added[digest], removed[same]
    found = [
        Entry(
            email,
            f"d+:{digest[:_SHORT]}",
            int(entry.get("created_at") or at),
            "device added",
            "ok",
            "",
            f"{digest[:_SHORT]} {entry.get('label', '')}".rstrip(),
        )
        for digest, entry in added.items()
    ]
    for digest, entry in removed.items():
        if password:
            why = "with the new password"
        elif disabled:
            why = "account disabled"
        elif int(entry.get("expires_at", 0)) <= at:
            why = "expired"
        elif old.get("sessions") != new.get("sessions"):
            why = "dropped at sign-in: too many devices"
        else:
            why = "revoked by an operator"
        detail = f"{digest[:_SHORT]} {entry.get('label', '')}: {why}"
        found.append(Entry(email, f"d-:{digest[:_SHORT]}", at, "device revoked", "ok", "", detail))
    return found


def _notice(
    cfg: Settings, event_name: str, new: dict[str, Any] | None, old: dict[str, Any] | None
) -> list[Entry]:
    if event_name != "INSERT" or new is None or new.get("mail") != "password-changed":
        return []
    short = str(new.get("session", ""))[:_SHORT]
    at = int(new.get("created_at", 0)) or now()
    detail = "by emailed code; the owner is mailed that it changed"
    return [Entry(str(new["email"]), f"n:{short}", at, "password reset", "ok", "", detail)]


def _suppressed(
    cfg: Settings, event_name: str, new: dict[str, Any] | None, old: dict[str, Any] | None
) -> list[Entry]:
    if new is not None and event_name == "INSERT":
        at = int(new.get("at", 0)) or now()
        reason = str(new.get("reason", "")) or "suppressed"
        detail = str(new.get("detail", ""))
        return [Entry(str(new["email"]), f"q:{at}", at, "address suppressed", reason, "", detail)]
    if new is None and old is not None and event_name == "REMOVE":
        detail = "mail to it resumes"
        return [
            Entry(
                str(old["email"]), f"q-:{old.get('at', 0)}", now(), "address unsuppressed", "ok", "", detail
            )
        ]
    return []


_BY_KIND = {
    "limit": _limit,
    "session": _session,
    "challenge": _challenge,
    "user": _user,
    "notice": _notice,
    "suppressed": _suppressed,
}


# ---------------------------------------------------------------- reading (operator)


def listing(cfg: Settings, email: str, days: int, at: int | None = None) -> list[dict[str, Any]]:
    """The account's entries of the last ``days`` days, oldest first.

    BatchGetItem of the hourly items (100 keys a call; 2,160 for 90 days:
    22 calls), no Scan. Each row: at, event, outcome, ip (hash or ""), detail.
    """
    at = now() if at is None else at
    since = at - days * 86400
    pending = [store.audit_key(email, hour) for hour in range(since // 3600, at // 3600 + 1)]
    items: list[dict[str, Any]] = []
    rounds = 0
    while pending:
        found, left = store.get_audit(cfg.table_name, pending[:100])
        items += found
        pending = left + pending[100:]
        if left:
            rounds += 1
            if rounds > 8:
                raise RuntimeError("DynamoDB kept keys unprocessed; try again")
            time.sleep(min(0.1 * 2**rounds, 2.0))
    rows = [
        {
            "at": int(value.get("t", 0)),
            "event": str(value.get("ev", "")),
            "outcome": str(value.get("out", "")),
            "ip": str(value.get("ip", "")),
            "detail": str(value.get("d", "")),
            "name": name[len(PREFIX) :],
        }
        for item in items
        for name, value in item.items()
        if name.startswith(PREFIX) and isinstance(value, dict)
    ]
    return sorted((row for row in rows if row["at"] >= since), key=_order)


# Within one second, the order in which a flow makes its changes.
_RANK = {
    event: rank
    for rank, events in enumerate(
        (
            ("sign-in", "sign-up", "reset requested"),
            ("limit reached",),
            ("code resent",),
            ("code refused", "code verified"),
            ("account created",),
            ("device added",),
            ("password changed",),
            ("device revoked",),
            ("password reset", "account disabled", "account enabled"),
            ("address suppressed",),
            ("address unsuppressed",),
        )
    )
    for event in events
}


def _order(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """Time, then the flow's order, then the name with its numbers as numbers (guess 10 after 9)."""
    name = tuple(part.zfill(12) if part.isdigit() else part for part in re.split(r"(\d+)", str(row["name"])))
    return row["at"], _RANK.get(str(row["event"]), len(_RANK)), name
