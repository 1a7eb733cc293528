"""docs/openapi.yaml against the code: a valid OpenAPI 3.1 document that lists
every route app.py defines, whose input rules are inputs.py's, and that the
running local stack answers to (schemathesis: no 5xx, every status code,
content type, header and body as documented, and input the document calls
invalid refused)."""

from __future__ import annotations

import functools
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
}


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
    for name in ("StartRequest", "VerifyRequest", "ResendRequest"):
        assert document()["components"]["schemas"][name]["additionalProperties"] is True
    assert component("StartRequest").is_valid(body)


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


@pytest.mark.stack
def test_a_whole_sign_in_conforms_to_the_document(live):
    """The answers random input cannot reach: 200 of /otp/verify and /otp/resend, 410 used."""
    start = SCHEMA["/otp"]["POST"]
    verify = SCHEMA["/otp/verify"]["POST"]
    resend = SCHEMA["/otp/resend"]["POST"]

    before = len(live.messages(DEMO_EMAIL))
    started = live.post("/otp", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert started.status_code == 200, started.text
    start.validate_response(started)
    session_id = started.json()["session_id"]
    live.wait_for_mail(DEMO_EMAIL, count=before + 1)

    resent = live.post("/otp/resend", {"session_id": session_id})
    assert resent.status_code == 200, resent.text
    resend.validate_response(resent)
    code = code_of(live.wait_for_mail(DEMO_EMAIL, count=before + 2))

    wrong = live.post(
        "/otp/verify", {"session_id": session_id, "code": "0" * 6 if code != "0" * 6 else "1" * 6}
    )
    assert wrong.status_code == 401, wrong.text
    verify.validate_response(wrong)

    verified = live.post("/otp/verify", {"session_id": session_id, "code": code})
    assert verified.status_code == 200, verified.text
    verify.validate_response(verified)

    used = live.post("/otp/verify", {"session_id": session_id, "code": code})
    assert used.status_code == 410 and used.json()["reason"] == "used", used.text
    verify.validate_response(used)

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
