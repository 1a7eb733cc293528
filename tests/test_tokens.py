"""The token after verification, the published keys, rotation, account ids (against moto's KMS)."""

from __future__ import annotations

import json
import time

import jwt
import pytest

from chalicelib import aws, store, tokens
from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from devstack.testenv import TEST_ENV
from tests.support import verified_as

CLAIMS = {"iss", "aud", "sub", "email", "email_verified", "amr", "auth_time", "iat", "exp", "jti"}


def _get(stack, path: str):
    response = stack.client.http.get(path)
    response.data = json.loads(response.body)
    return response


def _token(stack, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> str:
    started = stack.sign_in(email, password)
    assert started.status_code == 200, started.body
    code = stack.latest_code(email)
    response = stack.post("/otp/verify", {"session_id": started.data["session_id"], "code": code})
    assert response.status_code == 200, response.body
    verified_as(response.data)
    return response.data["token"]


def _decode(stack, token: str) -> dict:
    """Verify with PyJWT against the JWKS the service publishes (as a relying backend does)."""
    keys = {key["kid"]: key for key in _get(stack, "/.well-known/jwks.json").data["keys"]}
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.decode(
        token,
        key=jwt.PyJWK(keys[kid]),
        algorithms=["ES256"],
        audience=TEST_ENV["OTP_TOKEN_AUDIENCE"],
        issuer=TEST_ENV["OTP_TOKEN_ISSUER"],
        options={"verify_exp": False, "verify_iat": False},  # the app's clock is moved in some tests
    )


def test_verify_answers_a_token_a_backend_can_check(stack, clock):
    clock.now = time.time()
    started = stack.sign_in()
    code = stack.latest_code()
    response = stack.post("/otp/verify", {"session_id": started.data["session_id"], "code": code})
    body = response.data
    assert verified_as(body) == DEMO_EMAIL
    assert body["expires_in"] == stack.app_module.SETTINGS.token_ttl_seconds == 300
    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "ES256" and header["typ"] == "JWT" and header["kid"]
    claims = _decode(stack, body["token"])
    assert set(claims) == CLAIMS
    assert claims["email"] == DEMO_EMAIL and claims["email_verified"] is True
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["exp"] - claims["iat"] == 300 and claims["iat"] == int(clock.now)
    assert claims["auth_time"] <= claims["iat"]
    assert claims["sub"] and DEMO_EMAIL not in claims["sub"]
    jwt.decode(  # and with the real clock, exp checked too
        body["token"],
        key=jwt.PyJWK(_get(stack, "/.well-known/jwks.json").data["keys"][0]),
        algorithms=["ES256"],
        audience=TEST_ENV["OTP_TOKEN_AUDIENCE"],
        issuer=TEST_ENV["OTP_TOKEN_ISSUER"],
    )


def test_sub_is_stable_and_jti_unique_across_sign_ins(stack, clock):
    first = _decode(stack, _token(stack))
    clock.advance(60)
    second = _decode(stack, _token(stack))
    assert first["sub"] == second["sub"]
    assert first["jti"] != second["jti"]
    user = store.get_user(TEST_ENV["OTP_TABLE_NAME"], DEMO_EMAIL)
    assert user["sub"] == first["sub"]


def test_an_account_from_before_ids_gets_one_on_its_next_sign_in(stack, clock):
    table = TEST_ENV["OTP_TABLE_NAME"]
    aws.client("dynamodb").update_item(
        TableName=table,
        Key=store.to_ddb({"pk": store.user_key(DEMO_EMAIL)}),
        UpdateExpression="REMOVE #s",
        ExpressionAttributeNames={"#s": "sub"},
    )
    assert "sub" not in store.get_user(table, DEMO_EMAIL)
    first = _decode(stack, _token(stack))
    assert store.get_user(table, DEMO_EMAIL)["sub"] == first["sub"]
    clock.advance(60)
    assert _decode(stack, _token(stack))["sub"] == first["sub"]


def test_backfill_gives_ids_to_old_accounts_only(stack):
    from chalicelib import settings
    from ops.users import add_user, backfill_ids

    cfg = settings.load()
    table = cfg.table_name
    add_user(cfg, "old@example.com", "old-password")
    kept = store.get_user(table, DEMO_EMAIL)["sub"]
    aws.client("dynamodb").update_item(
        TableName=table,
        Key=store.to_ddb({"pk": store.user_key("old@example.com")}),
        UpdateExpression="REMOVE #s",
        ExpressionAttributeNames={"#s": "sub"},
    )
    assert backfill_ids(cfg) == 1
    assert store.get_user(table, "old@example.com")["sub"]
    assert store.get_user(table, DEMO_EMAIL)["sub"] == kept
    assert backfill_ids(cfg) == 0


def test_the_token_is_never_stored(stack):
    token = _token(stack)
    items = aws.client("dynamodb").scan(TableName=TEST_ENV["OTP_TABLE_NAME"])["Items"]
    text = str(items)
    for part in token.split("."):
        assert part not in text


def test_jwks_and_discovery(stack):
    jwks = _get(stack, "/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert jwks.headers["Cache-Control"] == "public, max-age=300"
    (key,) = jwks.data["keys"]
    assert {k: key[k] for k in ("kty", "crv", "alg", "use")} == {
        "kty": "EC",
        "crv": "P-256",
        "alg": "ES256",
        "use": "sig",
    }
    assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    described = aws.client("kms").describe_key(KeyId=TEST_ENV["OTP_TOKEN_KEY_ID"])["KeyMetadata"]
    assert key["kid"] == described["KeyId"]
    discovery = _get(stack, "/.well-known/openid-configuration")
    assert discovery.status_code == 200
    assert discovery.data["issuer"] == TEST_ENV["OTP_TOKEN_ISSUER"]
    assert discovery.data["jwks_uri"] == TEST_ENV["OTP_TOKEN_ISSUER"] + "/.well-known/jwks.json"
    assert discovery.data["id_token_signing_alg_values_supported"] == ["ES256"]


@pytest.mark.parametrize("path", ["/.well-known/jwks.json", "/.well-known/openid-configuration"])
@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_well_known_answers_get_only(stack, path, method):
    response = getattr(stack.client.http, method)(
        path, headers={"Content-Type": "application/json"}, body="{}"
    )
    body = json.loads(response.body)
    assert response.status_code == 405
    assert body["error"] == "method_not_allowed" and body["message"]
    assert response.headers["Allow"] == "GET"


def _kms_calls() -> list[str]:
    calls: list[str] = []
    aws.client("kms").meta.events.register(
        "before-call.kms", lambda event_name, **_: calls.append(event_name)
    )
    return calls


def test_round_trips_jwks_warm_is_free_verify_adds_one_sign(stack):
    token_calls = _kms_calls()
    _get(stack, "/.well-known/jwks.json")  # a cold container reads the keys once
    before = len(token_calls)
    for _ in range(3):
        _get(stack, "/.well-known/jwks.json")
        _get(stack, "/.well-known/openid-configuration")
    assert len(token_calls) == before  # warm: no AWS call
    started = stack.sign_in()
    code = stack.latest_code()
    ddb: list[str] = []
    aws.client("dynamodb").meta.events.register(
        "before-call.dynamodb", lambda event_name, **_: ddb.append(event_name)
    )
    wrong = "000000" if code != "000000" else "111111"
    assert (
        stack.post("/otp/verify", {"session_id": started.data["session_id"], "code": wrong}).status_code
        == 401
    )
    assert (len(ddb), len(token_calls)) == (1, before)  # a wrong code: one write, no signature
    assert (
        stack.post("/otp/verify", {"session_id": started.data["session_id"], "code": code}).status_code == 200
    )
    # the right code: the guess and the device token's write, and one signature
    assert ddb[1:] == ["before-call.dynamodb.UpdateItem"] * 2 and token_calls[before:] == [
        "before-call.kms.Sign"
    ]


# ----------------------------------------------------------------- rotation


def _rotate() -> tuple[str, str]:
    from ops.provision import rotate_token_key

    return rotate_token_key(TEST_ENV["OTP_TOKEN_KEY_ID"])


def _kids(stack) -> list[str]:
    return [key["kid"] for key in _get(stack, "/.well-known/jwks.json").data["keys"]]


def test_rotation_publishes_the_new_key_first_and_keeps_the_old_one_for_the_grace(stack, clock):
    cfg = stack.app_module.SETTINGS
    clock.now = time.time()  # KMS dates its keys with the real clock
    old_token = _token(stack)
    (old,) = _kids(stack)
    new, previous = _rotate()
    assert previous == old
    tokens.forget()  # a new container (a warm one re-reads within tokens.CACHE_SECONDS)
    rotated_at = aws.client("kms").describe_key(KeyId=new)["KeyMetadata"]["CreationDate"].timestamp()

    clock.now = rotated_at + 10  # just after: both published, the previous key still signs
    assert _kids(stack) == [new, old]
    clock.advance(60)
    assert jwt.get_unverified_header(_token(stack))["kid"] == old
    clock.now = rotated_at + tokens.PUBLISH_LEAD_SECONDS + 1  # every cache has seen the new key
    clock.advance(60)
    fresh = _token(stack)
    assert jwt.get_unverified_header(fresh)["kid"] == new
    assert _decode(stack, fresh)["email"] == DEMO_EMAIL
    assert _decode(stack, old_token)["email"] == DEMO_EMAIL  # old tokens still check during the grace
    clock.now = rotated_at + cfg.token_grace_seconds + 1
    assert _kids(stack) == [new]
    with pytest.raises(KeyError):
        _decode(stack, old_token)


def test_rotate_token_key_command(stack, tmp_path, monkeypatch):
    import io

    from ops import cli, stage

    config = tmp_path / "config.json"  # a stage that points at the in-process moto
    config.write_text(json.dumps({"version": "2.0", "stages": {"test": {"environment_variables": TEST_ENV}}}))
    monkeypatch.setattr(stage, "CONFIG", config)
    (old,) = _kids(stack)
    out = io.StringIO()
    assert cli.main(["rotate-token-key", "--stage", "test"], out=out) == 0
    assert "new key" in out.getvalue()
    tokens.forget()
    current = aws.client("kms").describe_key(KeyId=TEST_ENV["OTP_TOKEN_KEY_ID"])["KeyMetadata"]["KeyId"]
    assert current != old
    previous = aws.client("kms").describe_key(KeyId=tokens.previous_alias(TEST_ENV["OTP_TOKEN_KEY_ID"]))
    assert previous["KeyMetadata"]["KeyId"] == old
