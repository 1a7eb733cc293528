"""The password policy of NIST SP 800-63B: long enough, not known, not the address.

Section 5.1.1.2 asks for at least 8 characters, at least 64 allowed, every
printable character and space allowed, no composition rules (no "one digit,
one capital"), and a check against passwords that are common or known to
have leaked. So a password is refused only when it is:

* ``too_short``: fewer than :data:`MIN_LENGTH` characters;
* ``too_long``: more than :data:`MAX_LENGTH` characters, the most a sign-in
  takes (``inputs.MAX_PASSWORD``), so no password can be set that could
  never be typed in again;
* ``matches_email``: the account's address, or its local part;
* ``common``: on the list in ``chalicelib/data/common-passwords.txt``
  (zxcvbn's ranked list; see ``data/README.md``, written by
  ``python -m ops.password_list``).

Characters are Unicode code points after NFC normalisation, as 800-63B
counts them: a letter typed as one composed character or as a letter plus a
combining accent counts once either way, and an emoji is one character.
The comparisons (list, address) are made on :func:`folded`: NFC, surrounding
whitespace stripped, case folded, so "Password " and "PASSWORD" are as
known as "password". Spaces inside a password are kept and count.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from pathlib import Path

from chalicelib.inputs import MAX_PASSWORD

MIN_LENGTH = 8
MAX_LENGTH = MAX_PASSWORD
# Packaged with the Lambda: Chalice copies every file under chalicelib/.
COMMON_LIST = Path(__file__).resolve().parent / "data" / "common-passwords.txt"

MESSAGES = {
    "too_short": f"Use at least {MIN_LENGTH} characters.",
    "too_long": f"Use at most {MAX_LENGTH} characters.",
    "matches_email": "Choose a password that is not your email address.",
    "common": "This password is on a list of common or leaked passwords: choose another.",
}


def length(password: str) -> int:
    """Characters as the policy counts them: code points after NFC."""
    return len(unicodedata.normalize("NFC", password))


def folded(text: str) -> str:
    """The form compared with the list and the address: NFC, stripped, case folded.

    ``ops.password_list`` writes the list in this form too, so one set lookup
    is the whole check.
    """
    return unicodedata.normalize("NFC", text).strip().casefold()


@cache
def common_passwords() -> frozenset[str]:
    """The list, read on first use only (a cold Lambda that only verifies codes never reads it)."""
    lines = COMMON_LIST.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line)


def weakness(password: str, email: str) -> tuple[str, str] | None:
    """None when the password may be set for ``email``, else ``(rule, message)``.

    ``rule`` is one of the keys of :data:`MESSAGES`, for a program to act on;
    the message is one sentence for the person choosing the password. The
    rules are checked in that order, the cheap ones first.
    """
    count = length(password)
    if count < MIN_LENGTH:
        return _refused("too_short")
    if count > MAX_LENGTH:
        return _refused("too_long")
    candidate = folded(password)
    address = folded(email)
    local_part = address.rpartition("@")[0]
    if candidate in {name for name in (address, local_part) if name}:
        return _refused("matches_email")
    if candidate in common_passwords():
        return _refused("common")
    return None


def _refused(rule: str) -> tuple[str, str]:
    return rule, MESSAGES[rule]
