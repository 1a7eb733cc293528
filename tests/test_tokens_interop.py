"""Tokens from the running local stack, checked by two libraries that did not
make them: PyJWT here (PyJWKClient on the stack's JWKS) and jose under Node
(tests/js/verify_token.mjs). Both accept the real token, agree on its claims,
and refuse it changed: a claim edited under the same signature, the same
claims signed by another key under the same kid, alg none, HS256 keyed with
the public key, expired, and for another audience.

Every check runs at a time given from the token's own ``iat`` (PyJWT's clock
frozen, jose's ``currentDate``), so no answer depends on how fast this
machine is. The stack runs with the shortest token life, 60 s.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import jwt.api_jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from devstack.harness import LocalStack

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "js" / "verify_token.mjs"
JOSE = ROOT / "frontend" / "node_modules" / "jose" / "package.json"
TTL = 60  # OTP_TOKEN_TTL_SECONDS for this stack: the shortest allowed
AUDIENCE = "simple-otp-local"  # the local stage's OTP_TOKEN_AUDIENCE
CLAIMS = {"iss", "aud", "sub", "email", "email_verified", "amr", "auth_time", "iat", "exp", "jti"}


# ------------------------------------------------------------ the stack and its tokens


@pytest.fixture(scope="module")
def live() -> Iterator[LocalStack]:
    env = {"OTP_TOKEN_TTL_SECONDS": str(TTL), "OTP_RESEND_COOLDOWN_SECONDS": "0"}
    with LocalStack(env=env, wait_web=False) as stack:
        yield stack
    assert stack.returncode == 0, stack.output[-3000:]
    assert "Traceback" not in stack.output, stack.output[-3000:]


def sign_in(stack: LocalStack) -> dict[str, Any]:
    """The demo user's whole sign-in: password, the code from the mailbox, verify."""
    return stack.sign_in(DEMO_EMAIL, DEMO_PASSWORD)


@pytest.fixture(scope="module")
def answers(live: LocalStack) -> list[dict[str, Any]]:
    """Two sign-ins of the same account, one after the other."""
    return [sign_in(live), sign_in(live)]


@pytest.fixture(scope="module")
def token(answers: list[dict[str, Any]]) -> str:
    return answers[0]["token"]


def get(url: str) -> requests.Response:
    """GET on this machine, never through a proxy."""
    with requests.Session() as http:
        http.trust_env = False
        return http.get(url, timeout=30)


def issuer(stack: LocalStack) -> str:
    return stack.api_url  # the local stack's OTP_TOKEN_ISSUER: its API URL, no trailing slash


def jwks_url(stack: LocalStack) -> str:
    return stack.api_url + "/.well-known/jwks.json"


# ------------------------------------------------------------ JWS by hand (to forge variants)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(header, claims, signature as sent) of a compact JWS, unverified."""
    header, payload, signature = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(payload)), signature


def compact(header: dict[str, Any], claims: dict[str, Any], signature: str) -> str:
    encode = lambda value: b64url(json.dumps(value, separators=(",", ":")).encode())  # noqa: E731
    return f"{encode(header)}.{encode(claims)}.{signature}"


def variants(token: str, other_token: str, public_jwk: dict[str, Any]) -> dict[str, str]:
    """The real token changed in the ways a forger would try; each must be refused."""
    header, claims, signature = parts(token)
    other_key = ec.generate_private_key(ec.SECP256R1())
    hs_header = {**header, "alg": "HS256"}
    hs_input = compact(hs_header, claims, "").rsplit(".", 1)[0].encode()
    # HS256 keyed with what the verifier holds: the public key (the classic algorithm confusion).
    public_secret = json.dumps(public_jwk, separators=(",", ":")).encode()
    return {
        "changed claim": compact(header, {**claims, "email": "mallory@example.com"}, signature),
        "changed sub": compact(header, {**claims, "sub": "someone-else"}, signature),
        "longer life": compact(header, {**claims, "exp": claims["exp"] + 86400}, signature),
        "another key, same kid": jwt.encode(
            claims, other_key, algorithm="ES256", headers={"kid": header["kid"]}
        ),
        "alg none": compact({**header, "alg": "none"}, claims, ""),
        "alg none, signature kept": compact({**header, "alg": "none"}, claims, signature),
        "HS256 with the public key": compact(
            hs_header, claims, b64url(hmac.new(public_secret, hs_input, hashlib.sha256).digest())
        ),
        "unknown kid": jwt.encode(claims, other_key, algorithm="ES256", headers={"kid": "not-a-key"}),
        "signature of the other token": compact(header, claims, parts(other_token)[2]),
    }


BAD_SIGNATURE = ("InvalidSignatureError", "ERR_JWS_SIGNATURE_VERIFICATION_FAILED")
BAD_ALGORITHM = ("InvalidAlgorithmError", "ERR_JOSE_ALG_NOT_ALLOWED")
# variant -> (PyJWT's error, jose's code): each refused, and for the reason it should be
REFUSED_FOR = {
    "changed claim": BAD_SIGNATURE,
    "changed sub": BAD_SIGNATURE,
    "longer life": BAD_SIGNATURE,
    "another key, same kid": BAD_SIGNATURE,
    "signature of the other token": BAD_SIGNATURE,
    "alg none": BAD_ALGORITHM,
    "alg none, signature kept": BAD_ALGORITHM,
    "HS256 with the public key": BAD_ALGORITHM,
    "unknown kid": ("PyJWKClientError", "ERR_JWKS_NO_MATCHING_KEY"),
}


# ------------------------------------------------------------ the two libraries


@contextlib.contextmanager
def pyjwt_clock(at: float) -> Iterator[None]:
    """PyJWT's "now" (jwt.api_jwt reads datetime.now) frozen at ``at``."""
    real = dt.datetime

    class Frozen(real):  # type: ignore[misc, valid-type]
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:  # type: ignore[override]
            return real.fromtimestamp(at, tz)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jwt.api_jwt, "datetime", Frozen)
        yield


@pytest.fixture(scope="module")
def pyjwk_client(live: LocalStack) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(jwks_url(live), lifespan=300, timeout=10)


def pyjwt_check(
    stack: LocalStack, client: jwt.PyJWKClient, token: str, at: float, audience: str = AUDIENCE
) -> dict[str, Any]:
    """The claims as PyJWT verifies them at ``at`` (raises PyJWT's errors otherwise)."""
    key = client.get_signing_key_from_jwt(token)
    with pyjwt_clock(at):
        return jwt.decode(
            token,
            key,
            algorithms=["ES256"],
            audience=audience,
            issuer=issuer(stack),
            leeway=0,
            options={"require": ["iss", "aud", "sub", "exp", "iat", "jti"]},
        )


def pyjwt_refuses(stack: LocalStack, client: jwt.PyJWKClient, token: str, at: float, **kwargs: Any) -> str:
    """The name of PyJWT's error for ``token`` (fails the test when PyJWT accepts it)."""
    try:
        pyjwt_check(stack, client, token, at, **kwargs)
    except (jwt.InvalidTokenError, jwt.PyJWKClientError) as error:
        return type(error).__name__
    raise AssertionError(f"PyJWT accepted {token[:40]}...")


def jose_check(stack: LocalStack, cases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """jose's verdict on each case ({name, token, audience, at}), by name."""
    node = shutil.which("node")
    assert node, "node is not on PATH (the project needs Node.js 20.19+)"
    assert JOSE.is_file(), "jose is not installed: run `npm ci` in frontend/"
    done = subprocess.run(
        [node, str(SCRIPT), jwks_url(stack), issuer(stack)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return {result["name"]: result for result in json.loads(done.stdout)}


# ------------------------------------------------------------ the tests


def test_the_token_as_the_contract_says(live, answers, token):
    first, second = answers
    assert first["token_type"] == "Bearer" and first["expires_in"] == TTL
    assert first["verified"] is True and first["email"] == DEMO_EMAIL
    header, claims, _ = parts(token)
    assert header["alg"] == "ES256" and header["typ"] == "JWT" and header["kid"]
    assert set(claims) == CLAIMS
    assert claims["iss"] == issuer(live) and claims["aud"] == AUDIENCE
    assert claims["email"] == DEMO_EMAIL and claims["email_verified"] is True
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["exp"] == claims["iat"] + TTL
    assert claims["auth_time"] <= claims["iat"]
    _, again, _ = parts(second["token"])
    assert again["sub"] == claims["sub"]  # one account, one stable id
    assert again["jti"] != claims["jti"]


def test_discovery_and_jwks_lead_to_the_signing_key(live, token):
    discovery = get(live.api_url + "/.well-known/openid-configuration")
    assert discovery.status_code == 200, discovery.text
    document = discovery.json()
    assert document["issuer"] == parts(token)[1]["iss"]
    assert document["jwks_uri"] == jwks_url(live)
    assert document["id_token_signing_alg_values_supported"] == ["ES256"]
    keys = get(document["jwks_uri"])
    assert keys.headers["Cache-Control"] == "public, max-age=300"
    kids = [key["kid"] for key in keys.json()["keys"]]
    assert parts(token)[0]["kid"] in kids


def test_pyjwt_accepts_the_real_token(live, pyjwk_client, token):
    claims = parts(token)[1]
    assert pyjwt_check(live, pyjwk_client, token, at=claims["iat"]) == claims
    assert pyjwt_check(live, pyjwk_client, token, at=claims["exp"] - 1) == claims


def test_jose_accepts_the_real_token_and_agrees_with_pyjwt(live, pyjwk_client, answers):
    cases = [
        {"name": f"sign-in {n}", "token": a["token"], "audience": AUDIENCE, "at": parts(a["token"])[1]["iat"]}
        for n, a in enumerate(answers)
    ]
    verdicts = jose_check(live, cases)
    for case in cases:
        verdict = verdicts[case["name"]]
        assert verdict["ok"], verdict
        assert verdict["payload"] == pyjwt_check(live, pyjwk_client, case["token"], at=case["at"])
        assert verdict["header"] == parts(case["token"])[0]


def test_both_refuse_a_token_past_its_expiry(live, pyjwk_client, token):
    claims = parts(token)[1]
    late = claims["exp"] + 1  # 61 s after it was signed
    assert pyjwt_refuses(live, pyjwk_client, token, at=late) == "ExpiredSignatureError"
    verdicts = jose_check(
        live,
        [
            {"name": "just before", "token": token, "audience": AUDIENCE, "at": claims["exp"] - 1},
            {"name": "expired", "token": token, "audience": AUDIENCE, "at": late},
        ],
    )
    assert verdicts["just before"]["ok"], verdicts
    assert not verdicts["expired"]["ok"] and verdicts["expired"]["code"] == "ERR_JWT_EXPIRED", verdicts


def test_both_refuse_a_token_for_another_audience(live, pyjwk_client, token):
    at = parts(token)[1]["iat"]
    assert pyjwt_refuses(live, pyjwk_client, token, at=at, audience="another-app") == "InvalidAudienceError"
    verdict = jose_check(live, [{"name": "aud", "token": token, "audience": "another-app", "at": at}])["aud"]
    assert not verdict["ok"] and verdict["code"] == "ERR_JWT_CLAIM_VALIDATION_FAILED", verdict


def test_both_refuse_forged_variants(live, pyjwk_client, answers, token):
    header, claims, _ = parts(token)
    published = get(jwks_url(live)).json()["keys"]
    public_jwk = next(key for key in published if key["kid"] == header["kid"])
    forged = variants(token, answers[1]["token"], public_jwk)
    at = claims["iat"]
    refused_by_pyjwt = {
        name: pyjwt_refuses(live, pyjwk_client, value, at=at) for name, value in forged.items()
    }
    verdicts = jose_check(
        live,
        [{"name": name, "token": value, "audience": AUDIENCE, "at": at} for name, value in forged.items()],
    )
    seen = {name: (refused_by_pyjwt[name], verdicts[name]["code"]) for name in forged}
    assert seen == REFUSED_FOR
