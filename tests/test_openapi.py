"""docs/openapi.yaml against the code: a valid OpenAPI 3.1 document that lists
every route app.py defines, whose input rules are inputs.py's, and that the
running local stack answers to (schemathesis: no 5xx, every status code,
content type, header and body as documented, and input the document calls
invalid refused)."""

from __future__ import annotations

import functools
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from devstack.harness import LocalStack, code_of
from devstack.mailbox import code_in

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "openapi.yaml"

CHECKS = [
    negative_data_rejection,
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 25  # per operation and phase
# Limits high enough that random requests meet the rules they aim at, not a 429.
STACK_ENV = {
    "OTP_RESEND_COOLDOWN_SECONDS": "0",
    "OTP_SENDS_PER_EMAIL_PER_HOUR": "1000",
    "OTP_SENDS_PER_IP_PER_HOUR": "100000",
    "OTP_FAILED_SIGN_INS_PER_EMAIL_PER_HOUR": "1000",
    "OTP_FAILED_SIGN_INS_PER_IP_PER_HOUR": "100000",
    "OTP_MAILS_PER_EMAIL_PER_HOUR": "10000",
    "OTP_SIGNUP_ENABLED": "true",  # as in the local stage: /signup answers, not 403
}
# A password every rule of the policy takes (chalicelib.passwords).
STRONG_PASSWORD = "plum-harbor-quiet-7"


@functools.cache
def document() -> dict[str, Any]:
    return yaml.safe_load(DOC.read_text(encoding="utf-8"))


@functools.cache
def component(name: str) -> jsonschema_rs.Validator:
    """A validator for ``components/schemas/<name>``, with the document's other schemas to refer to."""
    schema = {**document()["components"]["schemas"][name], "components": document()["components"]}
    return jsonschema_rs.validator_for(schema)


# ------------------------------------------------------------ the document itself


def test_document_is_valid_openapi_3_1():
    from openapi_spec_validator import validate

    doc = document()
    assert doc["openapi"].startswith("3.1.")
    validate(doc)
    schemathesis.openapi.from_path(DOC)  # and schemathesis reads it


def test_document_lists_every_route_and_method_of_the_app():
    import app

    routes = {(path, method.lower()) for path, methods in app.app.routes.items() for method in methods}
    documented = {
        (path, method)
        for path, item in document()["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    }
    assert routes == documented


def test_every_error_code_is_documented():
    """The codes the domain raises, app.py's 500 and the documented enum are one set."""
    from chalicelib import errors

    def subclasses(cls: type) -> list[type]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    raised = {cls.code for cls in subclasses(errors.OtpError) if cls is not errors.OtpError}
    enum = set(document()["components"]["schemas"]["ErrorCode"]["enum"])
    assert enum == raised | {"internal_error"}
    consts = {
        schema["properties"]["error"]["const"]
        for schema in document()["components"]["schemas"].values()
        if "error" in schema.get("properties", {}) and "const" in schema["properties"]["error"]
    }
    assert consts == enum


def _deref(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _error_codes(schema: Any) -> set[str]:
    """The ``error`` consts a response schema allows (through $ref and oneOf)."""
    schema = _deref(schema)
    found = {code for alternative in schema.get("oneOf", []) for code in _error_codes(alternative)}
    const = schema.get("properties", {}).get("error", {}).get("const")
    return found | ({const} if const else set())


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_each_error_is_documented_under_the_status_app_answers_it_with():
    import app

    documented: defaultdict[str, set[int]] = defaultdict(set)
    for _, _, operation in _operations():
        for status, response in operation["responses"].items():
            for media in _deref(response).get("content", {}).values():
                for code in _error_codes(media["schema"]):
                    documented[code].add(int(status))
    assert {cls.code: {status} for cls, status in app.STATUS.items()} | {"internal_error": {500}} == dict(
        documented
    )


def test_every_routed_operation_may_answer_500_and_503():
    for path, method, operation in _operations():
        if set(operation["responses"]) != {"405"}:
            assert {"500", "503"} <= set(operation["responses"]), (method, path)


def test_weak_password_rules_are_the_policys():
    from chalicelib import passwords

    rules = document()["components"]["schemas"]["WeakPasswordError"]["properties"]["rule"]["enum"]
    assert sorted(rules) == sorted(passwords.MESSAGES)


def _accepted(rule: Any, value: Any) -> bool:
    from chalicelib.errors import InvalidRequest

    try:
        rule(value)
        return True
    except InvalidRequest:
        return False


EMAIL_EDGES = [
    "demo@example.com",
    "a@b.c",
    "a@b.1",
    "a@1.b",
    "a@b.1-2",
    "a..b@c.d",
    ".a@b.c",
    "a.@b.c",
    "a@-b.c",
    "a@b-.c",
    "a@b..c",
    "a@b.c.",
    "a@b.c\n",
    "a b@c.d",
    "a@b@c.d",
    "é@b.c",
    '"a"@b.c',
    "x" * 64 + "@e.com",
    "x" * 65 + "@e.com",
    "a@" + "b" * 63 + ".com",
    "a@" + "b" * 64 + ".com",
    "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57,  # 250
    "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 61,  # 254
    "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 62,  # 255
    "",
]
EMAIL_ALPHABET = st.sampled_from(list("aZ09.-@_+'`{|}~!#$%&*/=?^ \"\n\x7fé"))


@pytest.mark.parametrize("value", EMAIL_EDGES)
def test_email_rule_is_inputs_email(value):
    from chalicelib import inputs

    assert component("Email").is_valid(value) == _accepted(lambda v: inputs.email({"email": v}), value)


@settings(max_examples=300, deadline=None)
@given(st.text(EMAIL_ALPHABET, max_size=24) | st.from_regex(r"[a-z.]{1,5}@[a-z0-9.-]{1,8}", fullmatch=True))
def test_email_rule_is_inputs_email_for_random_text(value):
    from chalicelib import inputs

    assert component("Email").is_valid(value) == _accepted(lambda v: inputs.email({"email": v}), value)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300) | st.from_regex(r"[A-Za-z0-9_\-\n]{0,260}", fullmatch=True))
def test_session_id_code_and_password_rules_are_inputs(value):
    from chalicelib import inputs

    assert component("SessionId").is_valid(value) == _accepted(
        lambda v: inputs.session_id({"session_id": v}), value
    )
    assert component("Code").is_valid(value) == _accepted(lambda v: inputs.code({"code": v}, 6), value)
    assert component("Password").is_valid(value) == _accepted(
        lambda v: inputs.password({"password": v}), value
    )
    confirm = {"session_id": "abc", "code": "123456", "new_password": value}
    assert component("ResetConfirmRequest").is_valid(confirm) == _accepted(
        lambda v: inputs.password({"new_password": v}, "new_password"), value
    )


@pytest.mark.parametrize("value", ["", "x", "x" * 1024, "x" * 1025, "é" * 1024, "😀" * 1024])
def test_password_length_counts_characters_as_inputs_does(value):
    from chalicelib import inputs

    assert component("Password").is_valid(value) == _accepted(
        lambda v: inputs.password({"password": v}), value
    )


def test_request_bodies_allow_fields_the_code_does_not_read():
    """inputs.py reads the fields it needs and ignores the rest: the document says so."""
    from chalicelib import inputs

    body = {"email": DEMO_EMAIL, "password": DEMO_PASSWORD, "remember_me": True}
    assert inputs.email(body) == DEMO_EMAIL and inputs.password(body) == DEMO_PASSWORD
    for name in ("StartRequest", "VerifyRequest", "ResendRequest", "SignUpRequest", "ResetRequest"):
        assert document()["components"]["schemas"][name]["additionalProperties"] is True
    assert document()["components"]["schemas"]["ResetConfirmRequest"]["additionalProperties"] is True
    assert component("StartRequest").is_valid(body) and component("SignUpRequest").is_valid(body)


# ------------------------------------------------------------ the running stack


# "METHOD /path" -> status -> how many generated cases got it (printed with -s)
ANSWERS: defaultdict[str, Counter[int]] = defaultdict(Counter)


@pytest.fixture(scope="module")
def live() -> Iterator[LocalStack]:
    with LocalStack(env=STACK_ENV, wait_web=False) as stack:
        yield stack
    for operation, statuses in sorted(ANSWERS.items()):
        cases, seen = sum(statuses.values()), dict(sorted(statuses.items()))
        print(f"schemathesis: {operation}: {cases} cases, statuses {seen}")
    assert all(429 not in statuses for statuses in ANSWERS.values()), dict(ANSWERS)
    assert stack.returncode == 0, stack.output[-3000:]
    assert "Traceback" not in stack.output, stack.output[-3000:]


# Loaded at import, not from a fixture: schemathesis.pytest.from_fixture sets the test
# node's ``_nodeid``, which pytest 9 no longer has. The stack's URL goes to each call.
SCHEMA = schemathesis.openapi.from_path(DOC)
# Methods a path does not route are answered by the front door, not the app (API
# Gateway: 403; the local server: 405, or 501 for TRACE): not this document's to check.
SCHEMA.config.phases.coverage.unexpected_methods = set()


@pytest.mark.stack
@SCHEMA.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_the_document(case, live):
    response = case.call_and_validate(base_url=live.api_url, checks=CHECKS, timeout=30)
    ANSWERS[f"{case.method} {case.path}"][response.status_code] += 1


def _wrong(code: str) -> str:
    """A code of the same length that is not ``code``."""
    return "0" * len(code) if code != "0" * len(code) else "1" * len(code)


def _settled(live: LocalStack, to: str, quiet: float = 1.0) -> int:
    """How many messages ``to`` has, once none arrived for ``quiet`` seconds.

    The cases above may have queued mail for the address (the examples name
    the demo user); counting before it lands would take its code for ours.
    """
    count, since = len(live.messages(to)), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.1)
        now = len(live.messages(to))
        if now != count:
            count, since = now, time.monotonic()
    return count


def _fresh_address(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:12]}@example.com"


@pytest.mark.stack
def test_a_whole_sign_in_conforms_to_the_document(live):
    """The answers random input cannot reach: 200 of /otp/verify and /otp/resend, 410 used."""
    start = SCHEMA["/otp"]["POST"]
    verify = SCHEMA["/otp/verify"]["POST"]
    resend = SCHEMA["/otp/resend"]["POST"]
    status = SCHEMA["/otp/status"]["POST"]

    before = _settled(live, DEMO_EMAIL)
    started = live.post("/otp", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert started.status_code == 200, started.text
    start.validate_response(started)
    session_id = started.json()["session_id"]
    live.wait_for_mail(DEMO_EMAIL, count=before + 1)

    resent = live.post("/otp/resend", {"session_id": session_id})
    assert resent.status_code == 200, resent.text
    resend.validate_response(resent)
    code = code_of(live.wait_for_mail(DEMO_EMAIL, count=before + 2))

    wrong = live.post("/otp/verify", {"session_id": session_id, "code": _wrong(code)})
    assert wrong.status_code == 401, wrong.text
    verify.validate_response(wrong)

    where = live.post("/otp/status", {"session_id": session_id})
    assert where.status_code == 200 and where.json()["delivery"] in ("queued", "sent", "delivered"), (
        where.text
    )
    status.validate_response(where)

    verified = live.post("/otp/verify", {"session_id": session_id, "code": code})
    assert verified.status_code == 200, verified.text
    verify.validate_response(verified)

    used = live.post("/otp/verify", {"session_id": session_id, "code": code})
    assert used.status_code == 410 and used.json()["reason"] == "used", used.text
    verify.validate_response(used)
    closed = live.post("/otp/status", {"session_id": session_id})
    assert closed.status_code == 410, closed.text
    status.validate_response(closed)

    bad_type = live.http.post(
        live.api_url + "/otp", data=b'{"email": 1}', headers={"Content-Type": "text/plain"}, timeout=30
    )
    assert bad_type.status_code == 400, bad_type.text
    start.validate_response(bad_type)
    not_json = live.http.post(
        live.api_url + "/otp", data=b"{", headers={"Content-Type": "application/json"}, timeout=30
    )
    assert not_json.status_code == 400, not_json.text
    start.validate_response(not_json)


def _sign_up(live: LocalStack, email: str, password: str = STRONG_PASSWORD) -> dict[str, Any]:
    """A whole sign-up over HTTP (the address has no account and no mail yet): its 201 body."""
    started = live.post("/signup", {"email": email, "password": password})
    assert started.status_code == 202, started.text
    code = code_of(live.wait_for_mail(email))
    verified = live.post("/signup/verify", {"session_id": started.json()["session_id"], "code": code})
    assert verified.status_code == 201, verified.text
    return dict(verified.json())


@pytest.mark.stack
def test_a_whole_sign_up_conforms_to_the_document(live):
    """202, a wrong code 401, the right one 201, again 410; an existing address 202, never 201; 409."""
    signup = SCHEMA["/signup"]["POST"]
    verify = SCHEMA["/signup/verify"]["POST"]
    email = _fresh_address("signup")

    for password, rule in (
        ("short", "too_short"),
        (email.upper(), "matches_email"),
        ("password123", "common"),
    ):
        weak = live.post("/signup", {"email": email, "password": password})
        assert weak.status_code == 400 and weak.json()["rule"] == rule, weak.text
        signup.validate_response(weak)

    started = live.post("/signup", {"email": email, "password": STRONG_PASSWORD})
    assert started.status_code == 202, started.text
    signup.validate_response(started)
    session_id = started.json()["session_id"]
    mail = live.wait_for_mail(email)
    assert "To finish creating your account, enter this code:" in mail["text"], mail["text"]
    code = code_of(mail)

    wrong = live.post("/signup/verify", {"session_id": session_id, "code": _wrong(code)})
    assert wrong.status_code == 401, wrong.text
    verify.validate_response(wrong)
    as_sign_in = live.post("/otp/verify", {"session_id": session_id, "code": code})
    assert as_sign_in.status_code == 410 and as_sign_in.json()["reason"] == "expired", as_sign_in.text
    SCHEMA["/otp/verify"]["POST"].validate_response(as_sign_in)

    created = live.post("/signup/verify", {"session_id": session_id, "code": code})
    assert created.status_code == 201, created.text
    verify.validate_response(created)
    assert created.json()["email"] == email
    assert set(created.json()) == set(document()["components"]["schemas"]["VerifyResponse"]["required"])

    used = live.post("/signup/verify", {"session_id": session_id, "code": code})
    assert used.status_code == 410 and used.json()["reason"] == "used", used.text
    verify.validate_response(used)

    again = live.post("/signup", {"email": email, "password": "amber-fjord-walrus-9"})
    assert again.status_code == 202, again.text
    signup.validate_response(again)
    exists = live.wait_for_mail(email, count=2)
    with pytest.raises(ValueError):  # "you already have an account": no code
        code_in(exists["text"])
    for guess in ("123456", code):  # no code creates anything
        refused = live.post("/signup/verify", {"session_id": again.json()["session_id"], "code": guess})
        assert refused.status_code == 401, refused.text
        verify.validate_response(refused)
    assert live.sign_in(email, STRONG_PASSWORD)["email"] == email  # the first password stays

    # Two sign-ups of one address before either is verified: the second right code finds an account.
    other = _fresh_address("signup-twice")
    first = live.post("/signup", {"email": other, "password": STRONG_PASSWORD})
    first_code = code_of(live.wait_for_mail(other))
    second = live.post("/signup", {"email": other, "password": "amber-fjord-walrus-9"})
    second_code = code_of(live.wait_for_mail(other, count=2))
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    won = live.post("/signup/verify", {"session_id": first.json()["session_id"], "code": first_code})
    assert won.status_code == 201, won.text
    lost = live.post("/signup/verify", {"session_id": second.json()["session_id"], "code": second_code})
    assert lost.status_code == 409, lost.text
    verify.validate_response(lost)


@pytest.mark.stack
def test_a_whole_password_reset_conforms_to_the_document(live):
    """202, a weak new password 400, a wrong code 401, the right one 200, used 410; then the new password."""
    reset = SCHEMA["/password/reset"]["POST"]
    confirm = SCHEMA["/password/reset/confirm"]["POST"]
    email = _fresh_address("reset")
    _sign_up(live, email)
    new_password = "amber-fjord-walrus-9"

    nobody = live.post("/password/reset", {"email": _fresh_address("nobody")})
    assert nobody.status_code == 202, nobody.text  # the same answer for an address with no account
    reset.validate_response(nobody)

    started = live.post("/password/reset", {"email": email})
    assert started.status_code == 202, started.text
    reset.validate_response(started)
    assert set(started.json()) == set(nobody.json())
    session_id = started.json()["session_id"]
    mail = live.wait_for_mail(email, count=2)
    assert "To choose a new password, enter this code:" in mail["text"], mail["text"]
    code = code_of(mail)

    def confirm_with(code: str, password: str) -> Any:
        return live.post(
            "/password/reset/confirm", {"session_id": session_id, "code": code, "new_password": password}
        )

    for password, rule in (("short", "too_short"), (email, "matches_email")):
        weak = confirm_with(code, password)  # refused before the code is looked at: no attempt spent
        assert weak.status_code == 400 and weak.json()["rule"] == rule, weak.text
        confirm.validate_response(weak)

    wrong = confirm_with(_wrong(code), new_password)
    assert wrong.status_code == 401, wrong.text
    assert wrong.json()["attempts_remaining"] == 4, wrong.text
    confirm.validate_response(wrong)

    done = confirm_with(code, new_password)
    assert done.status_code == 200 and done.json() == {"reset": True}, done.text
    confirm.validate_response(done)

    used = confirm_with(code, new_password)
    assert used.status_code == 410 and used.json()["reason"] == "used", used.text
    confirm.validate_response(used)

    notice = live.wait_for_mail(email, count=3)
    assert notice["subject"] == "Your password was changed", notice
    old = live.post("/otp", {"email": email, "password": STRONG_PASSWORD})
    assert old.status_code == 401, old.text
    SCHEMA["/otp"]["POST"].validate_response(old)
    assert live.sign_in(email, new_password)["email"] == email


@pytest.mark.stack
def test_config_is_public_and_for_the_login_page(live):
    """What schemathesis does not check: the CORS headers, on the 200 and on the 405."""
    origin = live.web_url  # OTP_ALLOWED_ORIGIN follows the web port (devstack.environment)
    got = live.http.get(live.api_url + "/config", timeout=30)
    assert got.status_code == 200 and got.json() == {"signup_enabled": True}, got.text
    assert got.headers["Access-Control-Allow-Origin"] == origin
    SCHEMA["/config"]["GET"].validate_response(got)
    posted = live.http.post(live.api_url + "/config", json={}, timeout=30)
    assert posted.status_code == 405 and posted.headers["Allow"] == "GET", posted.text
    assert posted.headers["Access-Control-Allow-Origin"] == origin
    SCHEMA["/config"]["POST"].validate_response(posted)
    jwks = live.http.get(live.api_url + "/.well-known/jwks.json", timeout=30)
    assert "Access-Control-Allow-Origin" not in jwks.headers
