"""The stream side: mail the code of every new challenge, once.

The table's stream carries every write (sessions, counters, updates,
TTL deletions); only INSERTs of challenge items are mailed. Each one is
claimed with a conditional write before SES is called, so a record the
stream delivers twice is mailed once. A failed send is un-claimed, and the
batch raises at the end so that Lambda delivers it again: the claims make
the records already sent no-ops, and the failed one is tried again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib import codes, keys, mail, store
from chalicelib.challenges import now
from chalicelib.settings import Settings

log = logging.getLogger("simple-otp")


class DeliveryFailed(RuntimeError):
    """Some records of a batch were not sent; raising makes Lambda retry it."""


def _challenges(records: Iterable[tuple[str, Mapping[str, Any] | None]]) -> list[dict[str, Any]]:
    out = []
    for event_name, image in records:
        if event_name != "INSERT" or not image:
            continue
        if image.get("kind", {}).get("S") != "challenge":
            continue
        item = store.from_ddb(image)
        if item:
            out.append(item)
    return out


def deliver(cfg: Settings, records: Iterable[tuple[str, Mapping[str, Any] | None]]) -> int:
    """Mail each new challenge in ``records`` (event name, NewImage); return how many were sent."""
    pending = _challenges(records)
    if not pending:
        return 0
    key = keys.code_key(cfg.key_parameter)  # raises before anything is claimed
    sent = failed = 0
    for item in pending:
        label = f"session={item['session'][:12]} send={item['send_no']}"
        at = now()
        if int(item["expires_at"]) <= at:
            log.warning("not mailed, already expired: %s", label)
            continue
        if not store.claim_challenge(cfg.table_name, item["pk"], at):
            log.info("already mailed: %s", label)
            continue
        try:
            code = codes.derive_code(key, item["nonce"], cfg.code_length)
            message = mail.render(cfg.sender, item["email"], code, int(item["valid_seconds"]))
            mail.send(cfg.sender, item["email"], message)
        except Exception as error:  # noqa: BLE001 - any failure: un-claim, retry later
            failed += 1
            reason = getattr(error, "response", {}).get("Error", {}).get("Code") or type(error).__name__
            log.error("mail failed, will retry: %s to=%s reason=%s", label, mail.mask(item["email"]), reason)
            store.release_challenge(cfg.table_name, item["pk"], at)
            continue
        sent += 1
        log.info("mailed: %s to=%s", label, mail.mask(item["email"]))
    if failed:
        raise DeliveryFailed(f"{failed} of {len(pending)} codes not sent; the batch will be retried")
    return sent
