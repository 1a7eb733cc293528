"""Request bodies in, clean values out; anything else is InvalidRequest.

The rules mirror what the login page checks, and are strict on purpose:
addresses are plain ASCII ``local@domain`` (no display names, no lists, no
control characters, no look-alike Unicode), so exactly one mailbox can ever
receive a code.
"""

from __future__ import annotations

import json
import re
from typing import Any

from chalicelib.errors import InvalidRequest

MAX_BODY_BYTES = 16 * 1024
MAX_EMAIL = 254
MAX_PASSWORD = 1024
MAX_SESSION_ID = 256

_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]+")  # used with fullmatch: no trailing newline


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidRequest(f"The field '{key[:40]}' appears more than once.")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise InvalidRequest(f"{name} is not valid JSON.")


def parse_body(raw: bytes | str | None, content_type: str | None) -> dict[str, Any]:
    """The JSON object in a request body, or InvalidRequest saying what is wrong."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise InvalidRequest("Send the body as JSON with Content-Type: application/json.")
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidRequest(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        body = json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except InvalidRequest:
        raise
    except (ValueError, RecursionError):
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise InvalidRequest(f"The field '{name}' is required.")
    if not isinstance(value, str):
        raise InvalidRequest(f"The field '{name}' must be a string.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # JSON can spell a lone UTF-16 surrogate ("\ud800"); UTF-8 cannot
        raise InvalidRequest(f"The field '{name}' is not valid Unicode text.") from None
    return value


def email(body: dict[str, Any]) -> str:
    """The address, lower-cased, or InvalidRequest."""
    value = _string(body, "email")
    if not value or len(value) > MAX_EMAIL:
        raise InvalidRequest(f"The email must be 1 to {MAX_EMAIL} characters.")
    if not value.isascii() or any(ord(ch) < 33 or ord(ch) == 127 for ch in value):
        raise InvalidRequest("The email may contain no spaces, control or non-ASCII characters.")
    local, at, domain = value.rpartition("@")
    labels = domain.split(".")
    if (
        not at
        or len(local) > 64
        or not _LOCAL.match(local)
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise InvalidRequest("The email is not a valid address.")
    return value.lower()


def password(body: dict[str, Any], name: str = "password") -> str:
    value = _string(body, name)
    if not value or len(value) > MAX_PASSWORD:
        raise InvalidRequest(f"The {name.replace('_', ' ')} must be 1 to {MAX_PASSWORD} characters.")
    return value


def device_token(body: dict[str, Any]) -> str | None:
    """The optional ``device_token``: a string, or None when absent.

    Any string is taken (an unknown one is simply not trusted, never an
    error); only another JSON type is a bad request.
    """
    if "device_token" not in body:
        return None
    value = body["device_token"]
    if not isinstance(value, str):
        raise InvalidRequest("The field 'device_token' must be a string.")
    return value


def session_id(body: dict[str, Any]) -> str:
    value = _string(body, "session_id")
    if not value or len(value) > MAX_SESSION_ID or not _SESSION_ID.fullmatch(value):
        raise InvalidRequest("The session_id is not valid.")
    return value


def network(source_ip: str | None) -> str:
    """The client's network as limits count it: an IPv4 address, or an IPv6 /64.

    One IPv6 host is usually given a whole /64, so counting single IPv6
    addresses would let it walk past every per-IP limit. An IPv4 address
    mapped into IPv6 counts as the IPv4 address.
    """
    import ipaddress

    try:
        address = ipaddress.ip_address((source_ip or "").strip())
    except ValueError:
        return source_ip or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def code(body: dict[str, Any], length: int) -> str:
    value = _string(body, "code")
    if len(value) != length or not value.isascii() or not value.isdigit():
        raise InvalidRequest(f"The code must be exactly {length} digits.")
    return value
