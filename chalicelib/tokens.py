"""The token: the service's signed word that a person verified.

A compact JWS (ES256, ``typ`` JWT) signed in AWS KMS with an asymmetric key
(``ECC_NIST_P256``, ``SIGN_VERIFY``): the private key never leaves KMS. PyJWT
lays out the JWS (header, base64url, signing input); the one thing it does
not do is the KMS call, which is a PyJWT ``Algorithm`` here. KMS answers a
DER signature; JOSE wants R||S, and ``ecdsa`` converts it.

Keys: ``OTP_TOKEN_KEY_ID`` names the current key (an alias, in every stage
that rotates); after a rotation ``<alias>-previous`` names the key before
it. What the keys are is read from KMS once per container and trusted for
:data:`CACHE_SECONDS`. A new key signs only once it has been published for
:data:`PUBLISH_LEAD_SECONDS` (until then the previous key signs), so every
cache of the JWKS knows a key before any token carries its ``kid``; the
previous key stays published for ``OTP_TOKEN_GRACE_SECONDS``.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from chalicelib import aws
from chalicelib.errors import ServiceUnavailable, error_code
from chalicelib.settings import Settings

log = logging.getLogger("simple-otp")

CACHE_SECONDS = 300.0  # a container's view of the keys; also the JWKS's Cache-Control max-age
PUBLISH_LEAD_SECONDS = 2 * CACHE_SECONDS
AMR = ["pwd", "otp"]  # RFC 8176: a password, then a one-time code

monotonic = time.monotonic  # the cache's own clock (tests move it)


@dataclass(frozen=True)
class SigningKey:
    """One KMS key as the service uses it."""

    kid: str  # the KMS key id, as the tokens' header names it
    arn: str
    created_at: float  # epoch seconds: when it was made (a rotation's time)
    jwk: dict[str, str]


_lock = threading.Lock()
_cache: dict[str, tuple[float, SigningKey, SigningKey | None]] = {}


def alias_name(key_id: str) -> str | None:
    """``alias/NAME`` of an alias setting (name or ARN), None for a key id or key ARN."""
    name = key_id.rpartition(":")[2] if key_id.startswith("arn:") else key_id
    return name if name.startswith("alias/") else None


def previous_alias(key_id: str) -> str | None:
    """The alias of the key before the current one, for an alias setting (else None)."""
    name = alias_name(key_id)
    return f"{name}-previous" if name else None


def _jwk(kid: str, public_key_der: bytes) -> dict[str, str]:
    from ecdsa import NIST256p, VerifyingKey
    from jwt.utils import base64url_encode

    key = VerifyingKey.from_der(public_key_der)
    if key.curve != NIST256p:
        raise ValueError("the public key is not on P-256")
    point = key.to_string()  # x || y, 32 bytes each
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": base64url_encode(point[:32]).decode("ascii"),
        "y": base64url_encode(point[32:]).decode("ascii"),
        "kid": kid,
        "alg": "ES256",
        "use": "sig",
    }


def _read_key(key_id: str) -> SigningKey | None:
    """DescribeKey + GetPublicKey; None when there is no such key (or alias)."""
    kms = aws.client("kms")
    try:
        meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    except kms.exceptions.NotFoundException:
        return None
    if meta.get("KeySpec") != "ECC_NIST_P256" or meta.get("KeyUsage") != "SIGN_VERIFY":
        raise ValueError(f"{key_id} is not an ECC_NIST_P256 SIGN_VERIFY key")
    public = kms.get_public_key(KeyId=meta["Arn"])
    return SigningKey(
        meta["KeyId"], meta["Arn"], meta["CreationDate"].timestamp(), _jwk(meta["KeyId"], public["PublicKey"])
    )


def _keys(cfg: Settings) -> tuple[SigningKey, SigningKey | None]:
    """(current, previous) signing keys, read once per :data:`CACHE_SECONDS`."""
    with _lock:
        known = _cache.get(cfg.token_key_id)
        if known is not None and monotonic() - known[0] < CACHE_SECONDS:
            return known[1], known[2]
        try:
            current = _read_key(cfg.token_key_id)
            if current is None:
                raise ValueError(f"no KMS key {cfg.token_key_id}")
            alias = previous_alias(cfg.token_key_id)
            previous = _read_key(alias) if alias else None
        except Exception as error:  # noqa: BLE001 - any failure here means "no key": 503, one line
            reason = (
                str(error) if isinstance(error, ValueError) else error_code(error) or type(error).__name__
            )
            log.error("token key unavailable: key=%s reason=%s", cfg.token_key_id, reason)
            raise ServiceUnavailable() from None
        _cache[cfg.token_key_id] = (monotonic(), current, previous)
        return current, previous


def forget() -> None:
    """Drop the cached keys (tests; a new container)."""
    with _lock:
        _cache.clear()


def _signer(cfg: Settings, at: int) -> SigningKey:
    current, previous = _keys(cfg)
    if previous is not None and at < current.created_at + PUBLISH_LEAD_SECONDS:
        return previous  # the new key is not yet known to every cache of the JWKS
    return current


@cache
def _jws() -> Any:
    """A PyJWS that signs ES256 with KMS (and knows no other algorithm)."""
    import jwt
    from jwt.algorithms import Algorithm

    class KmsES256(Algorithm):  # type: ignore[misc]
        """ES256 where the "key" is a KMS key ARN and KMS does the signing."""

        def prepare_key(self, key: Any) -> Any:
            return key

        def sign(self, msg: bytes, key: Any) -> bytes:
            from ecdsa import NIST256p
            from ecdsa.util import sigdecode_der

            der = aws.client("kms").sign(
                KeyId=key, Message=msg, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
            )["Signature"]
            r, s = sigdecode_der(der, NIST256p.order)
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        def verify(self, msg: bytes, key: Any, sig: bytes) -> bool:
            raise NotImplementedError("the service never verifies its own tokens")

        @staticmethod
        def to_jwk(key_obj: Any, as_dict: bool = False) -> Any:
            raise NotImplementedError

        @staticmethod
        def from_jwk(jwk: Any) -> Any:
            raise NotImplementedError

    jws = jwt.PyJWS(algorithms=[])
    jws.register_algorithm("ES256", KmsES256())
    return jws


def issue(cfg: Settings, *, sub: str, email: str, auth_time: int, at: int) -> dict[str, Any]:
    """The token fields of a verify answer: ``token``, ``token_type``, ``expires_in``. One KMS Sign."""
    key = _signer(cfg, at)
    claims = {
        "iss": cfg.token_issuer,
        "aud": cfg.token_audience,
        "sub": sub,
        "email": email,
        "email_verified": True,
        "amr": AMR,
        "auth_time": auth_time,
        "iat": at,
        "exp": at + cfg.token_ttl_seconds,
        "jti": secrets.token_urlsafe(16),
    }
    payload = json.dumps(claims, separators=(",", ":")).encode("utf-8")
    try:
        token = _jws().encode(payload, key=key.arn, algorithm="ES256", headers={"kid": key.kid, "typ": "JWT"})
    except Exception as error:  # noqa: BLE001 - the reason is logged by name; the answer is a 503
        log.error("token not signed: key=%s reason=%s", key.kid, error_code(error) or type(error).__name__)
        raise ServiceUnavailable() from None
    return {"token": token, "token_type": "Bearer", "expires_in": cfg.token_ttl_seconds}


def jwks(cfg: Settings, at: int) -> dict[str, Any]:
    """``GET /.well-known/jwks.json``: the current key, and the previous one during its grace."""
    current, previous = _keys(cfg)
    keys = [current.jwk]
    if previous is not None and at < current.created_at + cfg.token_grace_seconds:
        keys.append(previous.jwk)
    return {"keys": keys}


def discovery(cfg: Settings) -> dict[str, Any]:
    """``GET /.well-known/openid-configuration``: what JWT middlewares and API Gateway read.

    A minimal document: the service issues tokens after its own sign-in and
    is not an OpenID provider (no authorization endpoint, no userinfo).
    """
    return {
        "issuer": cfg.token_issuer,
        "jwks_uri": f"{cfg.token_issuer}/.well-known/jwks.json",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "claims_supported": [
            "iss",
            "aud",
            "sub",
            "email",
            "email_verified",
            "amr",
            "auth_time",
            "iat",
            "exp",
            "jti",
        ],
    }
