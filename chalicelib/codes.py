"""Pure crypto helpers: session ids, nonces, derived codes and guess tags.

Nothing here touches AWS. The code for a challenge is never stored: it is
derived from the challenge's random nonce with HMAC-SHA256 under a secret key
(held in SSM), truncated HOTP-style (RFC 4226 dynamic truncation, widened to
63 bits so that 10-digit codes are uniform). Whoever reads the table without
the key learns nothing usable.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

SESSION_ID_BYTES = 32  # 256 bits of randomness, well above the 128-bit floor
NONCE_BYTES = 16
DEVICE_TOKEN_BYTES = 32


def new_session_id() -> str:
    """A URL-safe random session id (256 bits from ``secrets``)."""
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def new_account_id() -> str:
    """An opaque, stable id for an account (the tokens' ``sub``): random, not the email."""
    return str(uuid.uuid4())


def new_device_token() -> str:
    """A trusted device's token: 256 random bits, URL-safe. Stored only as :func:`device_hash`."""
    return secrets.token_urlsafe(DEVICE_TOKEN_BYTES)


def device_hash(token: str) -> str:
    """The only form of a device token the table holds (plain SHA-256: the token is random).

    Any string hashes, even one no UTF-8 can spell: an odd value is simply unknown.
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def session_hash(session_id: str) -> str:
    """The only form of a session id the table ever holds.

    A plain SHA-256 is enough: the id carries 256 random bits, so there is
    nothing to guess or look up in a table of hashes.
    """
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def session_tag(session_id: str) -> str:
    """A short, non-reversible label for logs (never the id itself)."""
    return session_hash(session_id)[:12]


def derive_code(key: bytes, nonce: bytes, length: int) -> str:
    """The ``length``-digit code for ``nonce`` (RFC 4226 dynamic truncation)."""
    digest = hmac.new(key, b"simple-otp/code\x00" + nonce, hashlib.sha256).digest()
    offset = digest[-1] & 0x0F
    number = int.from_bytes(digest[offset : offset + 8], "big") & 0x7FFF_FFFF_FFFF_FFFF
    return str(number % (10**length)).zfill(length)


def guess_tag(key: bytes, session_hash: str, code: str) -> str:
    """A keyed tag of one code submitted to one session.

    The session records the tags of the codes tried since its last send; the
    tag of the right code among them means the session was used. Keyed with
    the secret, so a stored tag cannot be brute-forced back into a code.
    """
    message = b"simple-otp/guess\x00" + session_hash.encode("ascii") + b"\x00" + code.encode("ascii")
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def unmatchable_tag() -> str:
    """A right-code tag for a session whose mail holds no code: random, and
    not of :func:`guess_tag`'s form (another length), so no guess matches it."""
    return "none-" + secrets.token_hex(16)


def codes_equal(expected: str, submitted: str) -> bool:
    """Constant-time comparison of two codes."""
    return hmac.compare_digest(expected.encode("ascii"), submitted.encode("ascii"))
