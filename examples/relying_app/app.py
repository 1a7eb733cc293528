"""An app that lets simple-otp sign its users in: copy this file and adapt it.

    EXAMPLE_ISSUER=https://<id>.execute-api.<region>.amazonaws.com/api \\
    EXAMPLE_AUDIENCE=my-app \\
    EXAMPLE_LOGIN_URL=https://login.example.com/ \\
    python app.py --port 8081

The flow, from the app's side:

1. ``GET /login`` makes a random ``state``, keeps it in a short-lived cookie
   and sends the browser to the login page with ``?state=...``;
2. after the code is verified, the login page posts ``token`` and ``state``
   as a form to ``POST /callback`` (the URL it was built with);
3. the callback checks that the posted state is the cookie's (so nobody can
   sign a visitor in with someone else's token), checks the token against
   the service's published keys (the JWKS, fetched and cached by PyJWT's
   ``PyJWKClient``): ES256 only, signature, issuer, audience, expiry, and
   that each token is used once; then starts its own session (Flask's signed
   cookie) and sends the browser to ``/``.

Nothing here imports the service: all it knows is the issuer's URL, its own
audience and the login page's URL. The token itself is never logged.
"""

from __future__ import annotations

import argparse
import hmac
import os
import secrets
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt
from flask import Flask, Response, redirect, render_template_string, request, session

ALGORITHMS = ["ES256"]  # the service signs with ES256; anything else (none, HS256, RS256) is refused
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti"]
LEEWAY_SECONDS = 30  # clock difference tolerated between the service and this app
JWKS_CACHE_SECONDS = 300  # as the service's Cache-Control: max-age
STATE_COOKIE = "state"
STATE_SECONDS = 900  # time to sign in: password, then the emailed code
MAX_TOKEN_CHARS = 8192


class ConfigError(Exception):
    """A missing or bad setting; the message is one line naming the variable."""


@dataclass(frozen=True)
class Config:
    issuer: str  # EXAMPLE_ISSUER: the service's URL, exactly as in the token's "iss"
    audience: str  # EXAMPLE_AUDIENCE: this app's name at the service, the token's "aud"
    jwks_url: str  # EXAMPLE_JWKS_URL: default issuer + /.well-known/jwks.json
    login_url: str  # EXAMPLE_LOGIN_URL: the login page
    secret_key: str  # EXAMPLE_SECRET_KEY: signs the session cookie; random per start if unset
    session_seconds: int = 3600  # EXAMPLE_SESSION_SECONDS: how long a sign-in here lasts
    https: bool = False  # EXAMPLE_HTTPS=1: served over HTTPS (Secure cookies, cross-site state)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Config:
        def get(name: str) -> str:
            return environ.get(name, "").strip()

        def url(name: str, value: str) -> str:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(f"{name}={value!r} is not an http(s) URL")
            return value

        issuer = get("EXAMPLE_ISSUER")
        if not issuer:
            raise ConfigError("EXAMPLE_ISSUER is not set: the sign-in service's URL (the tokens' iss)")
        url("EXAMPLE_ISSUER", issuer)
        audience = get("EXAMPLE_AUDIENCE")
        if not audience:
            raise ConfigError(
                "EXAMPLE_AUDIENCE is not set: this app's audience at the service (OTP_TOKEN_AUDIENCE)"
            )
        login_url = get("EXAMPLE_LOGIN_URL")
        if not login_url:
            raise ConfigError("EXAMPLE_LOGIN_URL is not set: the URL of the login page")
        jwks_url = get("EXAMPLE_JWKS_URL") or issuer.rstrip("/") + "/.well-known/jwks.json"
        secret_key = get("EXAMPLE_SECRET_KEY") or secrets.token_urlsafe(32)
        if len(secret_key) < 32:
            raise ConfigError("EXAMPLE_SECRET_KEY is too short: use 32 or more random characters")
        raw_seconds = get("EXAMPLE_SESSION_SECONDS") or "3600"
        try:
            session_seconds = int(raw_seconds, 10)
        except ValueError:
            raise ConfigError(f"EXAMPLE_SESSION_SECONDS={raw_seconds!r} is not a number of seconds") from None
        if not 60 <= session_seconds <= 86400:
            raise ConfigError(
                f"EXAMPLE_SESSION_SECONDS={session_seconds} is out of range: allowed 60 to 86400"
            )
        https = get("EXAMPLE_HTTPS")
        if https not in ("", "0", "1"):
            raise ConfigError(f"EXAMPLE_HTTPS={https!r} must be 1 or 0")
        return cls(
            issuer=issuer,
            audience=audience,
            jwks_url=url("EXAMPLE_JWKS_URL", jwks_url),
            login_url=url("EXAMPLE_LOGIN_URL", login_url),
            secret_key=secret_key,
            session_seconds=session_seconds,
            https=https == "1",
        )


class Rejected(Exception):
    """The callback is refused; the message says why (it never holds the token)."""


class KeysUnavailable(Exception):
    """The service's keys could not be fetched (or made no sense): try again later."""


class UsedTokens:
    """The ``jti`` of every token accepted, until it expires: a token signs in once.

    In memory, so per process; an app with several processes keeps them in a
    shared store (a cache or a table with a TTL) instead.
    """

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def claim(self, jti: str, exp: float) -> bool:
        now = time.time()
        with self._lock:
            self._expiry = {k: v for k, v in self._expiry.items() if v + LEEWAY_SECONDS > now}
            if jti in self._expiry:
                return False
            self._expiry[jti] = exp
            return True


PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Example app</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem">
<h1>Example app</h1>
{% if problem %}
  <p role="alert">Sign-in refused: {{ problem }}.</p>
  <p><a href="/login">Sign in again</a></p>
{% elif email %}
  <p>Signed in as <strong>{{ email }}</strong>.</p>
  <p>Account id (the token's <code>sub</code>): <code>{{ sub }}</code></p>
  <form method="post" action="/logout"><button type="submit">Sign out</button></form>
{% else %}
  <p>You are not signed in.</p>
  <p><a href="/login">Sign in</a></p>
{% endif %}
</body>
</html>
"""


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query string."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def create_app(config: Config, jwks_client: jwt.PyJWKClient | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=config.secret_key,
        SESSION_COOKIE_NAME="example_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.https,
        SESSION_REFRESH_EACH_REQUEST=False,
        PERMANENT_SESSION_LIFETIME=config.session_seconds,
    )
    keys = jwks_client or jwt.PyJWKClient(
        config.jwks_url, cache_keys=True, lifespan=JWKS_CACHE_SECONDS, timeout=10
    )
    used = UsedTokens()

    def verify(token: str) -> dict[str, Any]:
        """The token's claims once every check passed; :class:`Rejected` otherwise."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise Rejected("no token, or not one of ours")
        try:
            key = keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=config.audience,
                issuer=config.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS},
            )
        except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError) as error:
            raise KeysUnavailable(f"the service's keys could not be read ({error})") from None
        except jwt.PyJWTError as error:  # bad signature, algorithm, issuer, audience, expiry, unknown key
            raise Rejected(f"the token is not valid ({type(error).__name__})") from None
        if not isinstance(claims.get("email"), str) or claims.get("email_verified") is not True:
            raise Rejected("the token names no verified email address")
        if not used.claim(str(claims["jti"]), float(claims["exp"])):
            raise Rejected("the token was already used")
        return claims

    def page(status: int = 200, **values: Any) -> Response:
        response = Response(render_template_string(PAGE, **values), status=status)
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        )
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/")
    def home() -> Response:
        if session.get("expires_at", 0) <= time.time():
            if session:
                session.clear()  # ended: the browser drops the cookie
            return page()
        return page(email=session["email"], sub=session["sub"])

    @app.get("/login")
    def login() -> Response:
        state = secrets.token_urlsafe(32)
        response = redirect(with_query(config.login_url, state=state), code=303)
        response.set_cookie(
            STATE_COOKIE,
            state,
            max_age=STATE_SECONDS,
            path="/callback",
            httponly=True,
            secure=config.https,
            # The login page posts the form back from its own site. Lax cookies come along when
            # that site is this one (127.0.0.1 locally, or subdomains of one domain); from
            # another site only a SameSite=None cookie does, and that needs HTTPS.
            samesite="None" if config.https else "Lax",
        )
        return response

    @app.post("/callback")
    def callback() -> Response:
        expected = request.cookies.get(STATE_COOKIE, "")
        posted = request.form.get("state", "")
        try:
            if not expected:
                raise Rejected("this sign-in did not start here, or took too long (no state cookie)")
            if not hmac.compare_digest(posted.encode(), expected.encode()):
                raise Rejected("this sign-in did not start here (the state does not match)")
            claims = verify(request.form.get("token", ""))
        except Rejected as refused:
            app.logger.warning("sign-in refused: %s", refused)
            response = page(401, problem=str(refused))
        except KeysUnavailable as error:
            app.logger.error("sign-in failed: %s", error)
            response = page(503, problem="the sign-in service cannot be reached, try again shortly")
        else:
            session.clear()
            session.permanent = True
            session.update(
                email=claims["email"],
                sub=claims["sub"],
                expires_at=time.time() + config.session_seconds,
            )
            response = redirect("/", code=303)
        # The state is single use: whatever happened, it is gone.
        response.delete_cookie(STATE_COOKIE, path="/callback", secure=config.https, httponly=True)
        return response

    @app.post("/logout")
    def logout() -> Response:
        session.clear()
        return redirect("/", code=303)

    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="An example app that signs people in with simple-otp.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args(argv)
    try:
        config = Config.from_environ(os.environ)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    print(
        f"example relying app on http://{args.host}:{args.port}: issuer {config.issuer}, "
        f"audience {config.audience}, keys {config.jwks_url}, login page {config.login_url}",
        flush=True,
    )
    from werkzeug.serving import run_simple

    run_simple(args.host, args.port, create_app(config), threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
