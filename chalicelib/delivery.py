"""The stream side: mail the code of every new challenge, at most once.

The table's stream carries every write (sessions, counters, updates,
TTL deletions); only INSERTs of challenge items are mailed. Each one is
claimed before SES is called, with a transaction that also checks that its
code can still work (the session is on this send, not used, not locked, not
expired), so a record the stream delivers twice is mailed once and a
superseded code is never mailed.

What happens after a failed send depends on what SES's answer says:

* surely not sent (throttling that outlasted a few tries, SES's own 5xx, no
  connection at all): the claim is released and the batch raises at the
  end, so Lambda delivers it again; the claims make the records already
  sent no-ops;
* refused for good (``MessageRejected``, an unverified sender, ...): logged,
  kept claimed, not retried: a record that can never be sent must not hold
  up the shard and everybody else's codes behind it;
* unknown (the answer was lost: a read timeout, a dropped connection): SES
  may have sent it, so the claim stays and nothing is sent again; the
  person can ask for another code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib import audit, codes, events, keys, mail, observe, store
from chalicelib.clock import now
from chalicelib.errors import OtpError, error_code
from chalicelib.settings import Settings

log = logging.getLogger("simple-otp")

RETRY, FINAL, UNKNOWN = "retry", "final", "unknown"

# Transport errors that happen before a byte of the request left: nothing was sent.
_NOT_CONNECTED = {"ConnectTimeoutError", "EndpointConnectionError", "ProxyConnectionError"}


class DeliveryFailed(RuntimeError):
    """Some records of a batch were not sent; raising makes Lambda retry it."""


def outcome(error: Exception) -> str:
    """What a failed send means: RETRY (surely not sent), FINAL (never will be) or UNKNOWN."""
    code = error_code(error)
    if code:
        return RETRY if code in mail.TRANSIENT else FINAL
    if type(error).__name__ in _NOT_CONNECTED:
        return RETRY
    if type(error).__module__.startswith(("botocore", "urllib3")):
        return UNKNOWN  # the request may have reached SES: a lost answer
    return RETRY  # our own failure before the call (no key, say): nothing was sent


Record = tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]  # event name, new, old image


def _challenges(records: Iterable[Record]) -> list[dict[str, Any]]:
    out = []
    for event_name, image, _ in records:
        if event_name != "INSERT" or not image:
            continue
        if image.get("kind", {}).get("S") not in ("challenge", "notice"):
            continue
        item = store.from_ddb(image)
        if item:
            out.append(item)
    return out


def _key(cfg: Settings, item: Mapping[str, Any]) -> bytes:
    version = item.get("key_version")
    if version is None:  # a challenge from before key versions were recorded
        return keys.current_key(cfg.key_parameter)[1]
    return keys.key_at(cfg.key_parameter, int(version))


def _claim(cfg: Settings, item: dict[str, Any], at: int) -> store.Claim:
    """Claim the item for mailing; the Claim says whether it was."""
    if item["kind"] == "notice":
        return store.claim_notice(cfg.table_name, item, at)
    return store.claim_challenge(cfg.table_name, item, at, cfg.max_attempts)


def _tags(item: Mapping[str, Any]) -> dict[str, str]:
    """What SES hands back with each event of this mail: which session and send it was."""
    if item["kind"] == "notice":
        return {"notice": item["pk"].partition("#")[2]}
    return {"session": item["session"], "send": str(item["send_no"]), "queued": str(item.get("queued_at", 0))}


def _mail_one(cfg: Settings, item: dict[str, Any]) -> str:
    """Mail one challenge or notice; returns "sent", "skipped" or the outcome of its failure."""
    kind = item.get("mail", "signin")
    tag = str(item["session"])[:12]
    label = f"session={tag} send={item.get('send_no', 0)} mail={kind}"
    to = mail.mask(item["email"])
    at = now()
    if int(item["expires_at"]) <= at:
        log.warning(
            "not mailed, already expired: %s", label, extra=observe.fields(session=tag, outcome="expired")
        )
        return "skipped"
    if kind == "none":  # a reset for no account, from before such resets were mailed
        return "skipped"
    try:  # the key first: without it nothing is claimed
        key = _key(cfg, item) if mail.KINDS[kind].has_code else None
    except OtpError:
        return RETRY
    claim = _claim(cfg, item, at)
    if not claim.claimed:
        log.info(
            "not mailed, %s: %s", claim.reason, label, extra=observe.fields(session=tag, outcome=claim.reason)
        )
        if claim.reason == "suppressed" and item["kind"] == "challenge":
            store.record_delivery(
                cfg.table_name, item["session"], int(item["send_no"]), *events.SUPPRESSED, at
            )
        return "skipped"
    try:
        code = codes.derive_code(key, item["nonce"], cfg.code_length) if key is not None else None
        message = mail.render(cfg.sender, item["email"], code, int(item.get("valid_seconds", 0)), kind)
        message_id = mail.send(cfg.sender, item["email"], message, cfg.configuration_set, _tags(item))
    except Exception as error:  # noqa: BLE001 - every failure is sorted below
        result = outcome(error)
        reason = error_code(error) or type(error).__name__
        extra = observe.fields(session=tag, outcome=f"mail {result}", reason=reason)
        observe.count(observe.MAIL_FAILED)
        if result == RETRY:
            log.error("mail failed, will retry: %s to=%s reason=%s", label, to, reason, extra=extra)
            store.release_challenge(cfg.table_name, item["pk"], at)  # a notice's mark too
        elif result == FINAL:
            log.error(
                "mail refused for good, not retried: %s to=%s reason=%s", label, to, reason, extra=extra
            )
        else:
            log.error("mail outcome unknown, not resent: %s to=%s reason=%s", label, to, reason, extra=extra)
        return result
    store.record_message_id(cfg.table_name, item["pk"], message_id)
    observe.count(observe.CODE_MAILED)
    if "queued_at" in item:
        observe.seconds(observe.SECONDS_TO_ACCEPTED, now() - float(item["queued_at"]))
    log.info("mailed: %s to=%s", label, to, extra=observe.fields(session=tag, outcome="mailed"))
    return "sent"


def deliver(cfg: Settings, records: Iterable[Record]) -> int:
    """Mail each new challenge in ``records``; return how many were sent."""
    pending = _challenges(records)
    results = [_mail_one(cfg, item) for item in pending]
    retry = results.count(RETRY)
    if retry:
        raise DeliveryFailed(f"{retry} of {len(pending)} codes not sent; the batch will be retried")
    return results.count("sent")


def on_stream(cfg: Settings, records: Iterable[Record]) -> int:
    """The stream handler: mail what is new in the batch, then write its audit trail.

    Mail first, so no code waits behind the audit; a batch that raises for
    a mail to retry is audited when it comes again (audit entries are named
    by what they record, so a batch seen twice writes each once).
    Returns how many mails were sent.
    """
    batch = list(records)
    sent = deliver(cfg, batch)
    audit.record_stream(cfg, batch)
    return sent
