"""The secret code key, read from SSM Parameter Store, by version.

Each session records the version of the key its code was made with, and
every derivation for that session uses that version: a rotation (a new
version of the parameter) never changes the code of a session already
open. The current version is cached for :data:`CURRENT_SECONDS`, so a warm
container picks a rotation up within minutes; a given version never
changes, so it is cached for the container's life.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time

from chalicelib import aws
from chalicelib.errors import ServiceUnavailable, error_code

log = logging.getLogger("simple-otp")

MIN_KEY_BYTES = 32
CURRENT_SECONDS = 300.0  # how long a container trusts its idea of the current version

_lock = threading.Lock()
_versions: dict[tuple[str, int], bytes] = {}
_current: dict[str, tuple[int, float]] = {}  # parameter -> (version, monotonic time read)
monotonic = time.monotonic  # the cache's own clock (tests move it)


def decode_key(text: str) -> bytes:
    """The raw key from its stored form (base64 of at least 32 random bytes)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the code key is not base64") from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the code key is shorter than {MIN_KEY_BYTES} bytes")
    return key


def _fetch(name: str, parameter: str) -> tuple[int, bytes]:
    """One GetParameter; any failure is logged by name and becomes ServiceUnavailable."""
    try:
        found = aws.client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]
        return int(found["Version"]), decode_key(found["Value"])
    except Exception as error:  # noqa: BLE001 - any failure here means "no key"
        reason = str(error) if isinstance(error, ValueError) else error_code(error) or type(error).__name__
        log.error("code key unavailable: parameter=%s reason=%s", parameter, reason)
        raise ServiceUnavailable() from None


def current_key(parameter: str) -> tuple[int, bytes]:
    """(version, key) of the parameter's current version; what new codes are made with."""
    with _lock:
        known = _current.get(parameter)
        if known is not None and monotonic() - known[1] < CURRENT_SECONDS:
            return known[0], _versions[(parameter, known[0])]
        version, key = _fetch(parameter, parameter)
        _versions[(parameter, version)] = key
        _current[parameter] = (version, monotonic())
        return version, key


def key_at(parameter: str, version: int) -> bytes:
    """The key of one version of the parameter (fetched once, then kept)."""
    with _lock:
        key = _versions.get((parameter, version))
        if key is None:
            _, key = _fetch(f"{parameter}:{version}", parameter)
            _versions[(parameter, version)] = key
        return key


def forget() -> None:
    """Drop every cached key (tests)."""
    with _lock:
        _versions.clear()
        _current.clear()
