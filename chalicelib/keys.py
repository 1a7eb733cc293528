"""The secret code key, read from SSM Parameter Store once per container."""

from __future__ import annotations

import base64
import binascii
import logging
import threading

from chalicelib import aws
from chalicelib.errors import ServiceUnavailable

log = logging.getLogger("simple-otp")

MIN_KEY_BYTES = 32

_lock = threading.Lock()
_cache: dict[str, bytes] = {}


def decode_key(text: str) -> bytes:
    """The raw key from its stored form (base64 of at least 32 random bytes)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the code key is not base64") from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the code key is shorter than {MIN_KEY_BYTES} bytes")
    return key


def code_key(parameter: str) -> bytes:
    """The key under ``parameter``; fetched on first use, then kept in memory.

    Any failure (SSM down, missing parameter, bad value) is logged once per
    attempt, by error name only, and raised as ServiceUnavailable: the
    request gets a clean 503 and the next request tries again.
    """
    key = _cache.get(parameter)
    if key is not None:
        return key
    with _lock:
        key = _cache.get(parameter)
        if key is not None:
            return key
        try:
            response = aws.client("ssm").get_parameter(Name=parameter, WithDecryption=True)
            key = decode_key(response["Parameter"]["Value"])
        except Exception as error:  # noqa: BLE001 - any failure here means "no key"
            reason = getattr(error, "response", {}).get("Error", {}).get("Code") or type(error).__name__
            if isinstance(error, ValueError):
                reason = str(error)
            log.error("code key unavailable: parameter=%s reason=%s", parameter, reason)
            raise ServiceUnavailable() from None
        _cache[parameter] = key
        return key


def forget() -> None:
    """Drop the cached key (tests; a rotated key in a warm container)."""
    with _lock:
        _cache.clear()
