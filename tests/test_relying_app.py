"""The example relying app (examples/relying_app/app.py), driven with Flask's
test client against keys served over real HTTP from 127.0.0.1.

The tokens are made here with PyJWT and an EC P-256 key of the test; the app
fetches the matching JWKS from a small http.server, as it fetches the
service's ``/.well-known/jwks.json``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import importlib.util
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from devstack.environment import ROOT

ISSUER = "http://issuer.test/api"
AUDIENCE = "example-audience"
LOGIN_URL = "http://login.test/sign-in?theme=plain"
EMAIL = "person@example.com"
KID = "key-1"
SESSION_COOKIE = "example_session"


def _load_example() -> ModuleType:
    """The example is a file to copy, not a package: load it from its path."""
    path = ROOT / "examples" / "relying_app" / "app.py"
    spec = importlib.util.spec_from_file_location("example_relying_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


example = _load_example()


class Keys:
    """An EC P-256 key pair of the test, published as a JWKS over HTTP."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        public = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwks = {"keys": [{**public, "kid": KID, "alg": "ES256", "use": "sig"}]}
        self.fetches = 0
        self.down = False
        keys = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if keys.down or self.path != "/.well-known/jwks.json":
                    self.send_error(503 if keys.down else 404)
                    return
                keys.fetches += 1
                body = json.dumps(keys.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def claims(**changes: Any) -> dict[str, Any]:
    """The claims the service puts in a token, with ``changes`` (None drops a claim)."""
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "acct-3f9c2e",
        "email": EMAIL,
        "email_verified": True,
        "amr": ["pwd", "otp"],
        "auth_time": now,
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def keys() -> Iterator[Keys]:
    served = Keys()
    yield served
    served.stop()


@pytest.fixture
def config(keys: Keys) -> Any:
    return example.Config.from_environ(
        {
            "EXAMPLE_ISSUER": ISSUER,
            "EXAMPLE_AUDIENCE": AUDIENCE,
            "EXAMPLE_JWKS_URL": keys.url,
            "EXAMPLE_LOGIN_URL": LOGIN_URL,
        }
    )


@pytest.fixture
def client(config: Any) -> Any:
    app = example.create_app(config)
    app.testing = True
    return app.test_client()


def token(keys: Keys, **changes: Any) -> str:
    return jwt.encode(claims(**changes), keys.private, algorithm="ES256", headers={"kid": KID})


def start_login(client: Any) -> str:
    """GET /login as a browser would; the state the login page was given."""
    response = client.get("/login")
    assert response.status_code == 303
    return parse_qs(urlsplit(response.headers["Location"]).query)["state"][0]


def callback(client: Any, token_text: str, state: str) -> Any:
    return client.post("/callback", data={"token": token_text, "state": state})


def set_cookies(response: Any) -> list[str]:
    return response.headers.getlist("Set-Cookie")


def assert_signed_out(client: Any, response: Any) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert not any(c.startswith(SESSION_COOKIE + "=") for c in set_cookies(response))
    assert client.get_cookie(SESSION_COOKIE) is None
    page = client.get("/").get_data(as_text=True)
    assert "You are not signed in" in page and EMAIL not in page


# ------------------------------------------------------------ the happy path


def test_signed_out_page_has_the_sign_in_link(client):
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<a href="/login">Sign in</a>' in page
    assert EMAIL not in page


def test_login_sets_the_state_cookie_and_sends_to_the_login_page_with_it(client):
    response = client.get("/login")
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == "http://login.test/sign-in"
    assert query["theme"] == ["plain"]  # the login URL's own query is kept
    (state,) = query["state"]
    assert len(state) >= 40  # 32 random bytes
    (cookie,) = set_cookies(response)
    assert cookie.startswith(f"state={state};")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/callback" in cookie
    assert f"Max-Age={example.STATE_SECONDS}" in cookie
    assert client.get_cookie("state", path="/callback").value == state
    assert start_login(client) != state  # a new one each time


def test_callback_with_good_token_and_state_signs_in(client, keys):
    state = start_login(client)
    response = callback(client, token(keys), state)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert response.headers["Location"] == "/"
    (session_cookie,) = [c for c in set_cookies(response) if c.startswith(SESSION_COOKIE + "=")]
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie
    page = client.get("/").get_data(as_text=True)
    assert f"Signed in as <strong>{EMAIL}</strong>" in page
    assert "acct-3f9c2e" in page
    assert "Sign in</a>" not in page


def test_keys_are_fetched_once_and_cached(client, keys):
    for _ in range(3):
        assert callback(client, token(keys), start_login(client)).status_code == 303
    assert keys.fetches == 1


def test_sign_out_ends_the_session(client, keys):
    assert callback(client, token(keys), start_login(client)).status_code == 303
    assert client.post("/logout").status_code == 303
    assert "You are not signed in" in client.get("/").get_data(as_text=True)


def test_the_session_ends_after_its_own_lifetime(client, keys, monkeypatch):
    assert callback(client, token(keys), start_login(client)).status_code == 303
    later = time.time() + example.Config.session_seconds + 1
    monkeypatch.setattr(example, "time", SimpleNamespace(time=lambda: later))
    assert "You are not signed in" in client.get("/").get_data(as_text=True)


def test_the_email_is_escaped(client, keys):
    email = "<script>alert(1)</script>@example.com"
    assert callback(client, token(keys, email=email), start_login(client)).status_code == 303
    page = client.get("/").get_data(as_text=True)
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# ------------------------------------------------------------ what is refused


def _other_key(keys: Keys, kid: str) -> str:
    other = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims(), other, algorithm="ES256", headers={"kid": kid})


def _alg_none(keys: Keys) -> str:
    return jwt.encode(claims(), None, algorithm="none", headers={"kid": KID})


def _hs256_with_the_public_key(keys: Keys) -> str:
    """The classic confusion: HMAC keyed with the public key, which anyone has."""
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}).encode())
    payload = b64(json.dumps(claims()).encode())
    signature = hmac.new(keys.public_pem(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def _changed_claim(keys: Keys) -> str:
    header, payload, signature = token(keys).split(".")
    edited = json.loads(unb64(payload))
    assert edited["email"] == EMAIL
    edited["email"] = "mallory@example.com"
    return f"{header}.{b64(json.dumps(edited).encode())}.{signature}"


BAD_TOKENS = {
    "signed with another key, same kid": lambda keys: _other_key(keys, KID),
    "signed with another key, unknown kid": lambda keys: _other_key(keys, "key-2"),
    "alg none": _alg_none,
    "HS256 with the public key as secret": _hs256_with_the_public_key,
    "expired": lambda keys: token(keys, iat=int(time.time()) - 600, exp=int(time.time()) - 120),
    "issued in the future": lambda keys: token(keys, iat=int(time.time()) + 600),
    "wrong aud": lambda keys: token(keys, aud="another-app"),
    "wrong iss": lambda keys: token(keys, iss="http://evil.test/api"),
    "no exp": lambda keys: token(keys, exp=None),
    "no sub": lambda keys: token(keys, sub=None),
    "no jti": lambda keys: token(keys, jti=None),
    "email not verified": lambda keys: token(keys, email_verified=False),
    "changed claim (payload edited)": _changed_claim,
    "not a token": lambda keys: "not.a.token",
    "empty": lambda keys: "",
}


@pytest.mark.parametrize("make", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_bad_token_is_refused_and_no_session_is_set(client, keys, make):
    response = callback(client, make(keys), start_login(client))
    assert_signed_out(client, response)


def test_the_same_key_and_token_shape_is_accepted(client, keys):
    """The control for the table above: only the named difference is refused."""
    assert callback(client, token(keys), start_login(client)).status_code == 303


def test_state_that_does_not_match_the_cookie_is_refused(client, keys):
    start_login(client)
    response = callback(client, token(keys), "a-state-from-somewhere-else")
    assert_signed_out(client, response)
    assert "state does not match" in response.get_data(as_text=True)


def test_callback_without_the_state_cookie_is_refused(client, keys):
    state = start_login(client)
    client.delete_cookie("state", path="/callback")
    response = callback(client, token(keys), state)
    assert_signed_out(client, response)
    assert "no state cookie" in response.get_data(as_text=True)


def test_state_is_single_use(client, keys):
    state = start_login(client)
    first = callback(client, token(keys), state)
    assert first.status_code == 303
    assert any(c.startswith("state=;") and "Max-Age=0" in c for c in set_cookies(first))
    assert client.get_cookie("state", path="/callback") is None
    client.post("/logout")
    again = callback(client, token(keys), state)
    assert_signed_out(client, again)


def test_a_refused_callback_uses_up_the_state_too(client, keys):
    state = start_login(client)
    assert callback(client, token(keys, aud="another-app"), state).status_code == 401
    assert_signed_out(client, callback(client, token(keys), state))


def test_a_token_signs_in_once(client, keys):
    used = token(keys)
    assert callback(client, used, start_login(client)).status_code == 303
    client.post("/logout")
    response = callback(client, used, start_login(client))
    assert_signed_out(client, response)
    assert "already used" in response.get_data(as_text=True)


def test_keys_out_of_reach_is_503_and_no_session(client, keys):
    keys.down = True
    response = callback(client, token(keys), start_login(client))
    assert response.status_code == 503
    assert client.get_cookie(SESSION_COOKIE) is None


def test_the_token_is_not_logged(client, keys, caplog):
    bad = token(keys, aud="another-app")
    with caplog.at_level("DEBUG"):
        assert callback(client, bad, start_login(client)).status_code == 401
    assert "sign-in refused" in caplog.text
    assert bad not in caplog.text and bad.split(".")[1] not in caplog.text


# ------------------------------------------------------------ settings


def test_settings_default_the_keys_url_and_a_random_secret():
    environ = {"EXAMPLE_ISSUER": ISSUER + "/", "EXAMPLE_AUDIENCE": AUDIENCE, "EXAMPLE_LOGIN_URL": LOGIN_URL}
    first = example.Config.from_environ(environ)
    assert first.jwks_url == ISSUER + "/.well-known/jwks.json"
    assert len(first.secret_key) >= 32
    assert example.Config.from_environ(environ).secret_key != first.secret_key


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EXAMPLE_ISSUER", ""),
        ("EXAMPLE_ISSUER", "issuer.test"),
        ("EXAMPLE_AUDIENCE", ""),
        ("EXAMPLE_LOGIN_URL", ""),
        ("EXAMPLE_JWKS_URL", "file:///etc/passwd"),
        ("EXAMPLE_SECRET_KEY", "short"),
        ("EXAMPLE_SESSION_SECONDS", "forever"),
        ("EXAMPLE_HTTPS", "yes"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(name, value, capsys, monkeypatch):
    environ = {"EXAMPLE_ISSUER": ISSUER, "EXAMPLE_AUDIENCE": AUDIENCE, "EXAMPLE_LOGIN_URL": LOGIN_URL}
    environ[name] = value
    for variable in list(example.os.environ):
        if variable.startswith("EXAMPLE_"):
            monkeypatch.delenv(variable)
    for variable, text in environ.items():
        monkeypatch.setenv(variable, text)
    assert example.main(["--port", "1"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0], captured.err
    assert captured.out == ""


def test_over_https_the_cookies_are_secure_and_the_state_crosses_sites(config, keys):
    app = example.create_app(dataclasses.replace(config, https=True))
    client = app.test_client()
    response = client.get("/login", base_url="https://app.test")
    (cookie,) = set_cookies(response)
    assert "Secure" in cookie and "SameSite=None" in cookie
    state = parse_qs(urlsplit(response.headers["Location"]).query)["state"][0]
    signed_in = client.post(
        "/callback", data={"token": token(keys), "state": state}, base_url="https://app.test"
    )
    (session_cookie,) = [c for c in set_cookies(signed_in) if c.startswith(SESSION_COOKIE + "=")]
    assert "Secure" in session_cookie and "SameSite=Lax" in session_cookie
