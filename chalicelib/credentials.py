"""Password hashing (argon2id, OWASP parameters) and the credential check.

An unknown or disabled user costs exactly the hash work of a known one: the
password is verified against a dummy hash made with the same parameters, so
response time does not tell whether an address has an account.
"""

from __future__ import annotations

from functools import cache
from typing import Any

# OWASP Password Storage Cheat Sheet, argon2id minimum: m=19 MiB, t=2, p=1.
TIME_COST = 2
MEMORY_COST_KIB = 19456
PARALLELISM = 1

# A hash of a random, discarded password made with the parameters above.
# Verifying against it costs what a real check costs.
DUMMY_HASH = (
    "$argon2id$v=19$m=19456,t=2,p=1$bSUJu+hdzZ7aqvXTWwtgJQ$oG7oiH0VEEBurRVPMKHmDwisAvY59P3hdSacENAlqGg"
)


@cache
def hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM)


def hash_password(password: str) -> str:
    return str(hasher().hash(password))


def _matches(encoded: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(hasher().verify(encoded, password))
    except (VerificationError, InvalidHashError):
        return False


def check(user: dict[str, Any] | None, password: str) -> bool:
    """True when ``user`` (the stored item, None if unknown) is enabled and
    ``password`` is theirs. Always exactly one argon2 verification.
    """
    usable = user is not None and not user.get("disabled") and "password_hash" in user
    encoded = user["password_hash"] if usable and user else DUMMY_HASH
    matched = _matches(encoded, password)
    return usable and matched
