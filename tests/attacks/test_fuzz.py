"""Property-based fuzzing of the three routes with hypothesis.

Whatever the body and content type: no 5xx, every error is the JSON error
shape with a documented status, every success has the documented fields,
and mail only ever goes to the one registered address.
"""

from __future__ import annotations

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from tests.attacks.helpers import error_shape, mail_counts
from tests.support import VERIFIED_FIELDS, verified_as

EXAMPLES = 500
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

STATUSES = {
    "/otp": {200, 400, 401, 429},
    "/otp/verify": {200, 400, 401, 410},
    "/otp/resend": {200, 400, 410, 429},
}
SUCCESS_FIELDS = {
    "/otp": {"session_id", "expires_in", "resend_in"},
    "/otp/verify": VERIFIED_FIELDS,
    "/otp/resend": {"expires_in", "resend_in"},
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
nasty_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"])
    | st.sampled_from("\r\n\x00\t @<>,;\"'\\"),
    max_size=300,
)
local_part = st.text(
    alphabet=string.ascii_letters + string.digits + ".+-_%!#$&'*/=?^`{|}~\r\n\x00 ", min_size=0, max_size=70
)
domain = st.sampled_from(
    ["example.com", "example.net", "EXAMPLE.com", "localhost", "[127.0.0.1]", "ex\u0430mple.com", ""]
)
emails = st.one_of(
    st.just(DEMO_EMAIL),
    st.just(DEMO_EMAIL.upper()),
    st.emails(),
    st.builds(lambda local, dom: f"{local}@{dom}", local_part, domain),
    nasty_text,
    json_values,
)
passwords = st.one_of(st.just(DEMO_PASSWORD), st.text(max_size=1100), json_values)
content_types = st.one_of(
    st.just("application/json"),
    st.just("application/json; charset=utf-8"),
    st.sampled_from(["APPLICATION/JSON", "text/plain", "application/x-www-form-urlencoded", "", "*/*"]),
)
extra_fields = st.dictionaries(
    st.sampled_from(["email", "session_id", "code", "admin", "__proto__"]), json_values, max_size=2
)


def bodies(fields: st.SearchStrategy[dict]) -> st.SearchStrategy[bytes]:
    """Mostly JSON objects with the route's fields; sometimes anything at all."""
    as_json = st.builds(lambda extra, body: json.dumps({**extra, **body}).encode(), extra_fields, fields)
    return st.one_of(
        as_json,
        as_json,
        as_json,
        json_values.map(lambda value: json.dumps(value).encode()),
        st.binary(max_size=300),
        nasty_text.map(lambda text: text.encode("utf-8")),
    )


def check(stack, route: str, body: bytes, content_type: str, seen: dict[str, int]):
    response = stack.client.http.post(route, headers={"Content-Type": content_type}, body=body)
    seen["tries"] += 1
    status = response.status_code
    if status not in STATUSES[route]:
        seen["bad"] += 1
    assert status in STATUSES[route], (status, response.body[:300])
    if status == 200:
        data = json.loads(response.body)
        assert set(data) == SUCCESS_FIELDS[route], data
        seen["ok"] += 1
        stack.pump()  # mail as it happens, before the fuzzed clock lets codes expire
        return data
    try:
        error_shape(status, response.headers, response.body)
    except AssertionError:
        seen["bad"] += 1
        raise
    return None


def _report(attack_log, route: str, seen: dict[str, int]) -> None:
    strangers = set(mail_counts()) - {DEMO_EMAIL}
    attack_log(
        f"fuzz: POST {route}",
        seen["tries"],
        seen["bad"] + len(strangers),
        f"{seen['ok']} x 200, no 5xx, error shape held",
    )
    assert seen["bad"] == 0
    assert not strangers, strangers


def test_fuzz_sign_in(stack, clock, attack_log):
    seen = {"tries": 0, "bad": 0, "ok": 0}
    fields = st.fixed_dictionaries({}, optional={"email": emails, "password": passwords})

    @FUZZ
    @given(body=bodies(fields), content_type=content_types, wait=st.integers(0, 7200))
    def run(body, content_type, wait):
        clock.advance(wait)
        data = check(stack, "/otp", body, content_type, seen)
        if data is not None:
            assert json.loads(body)["email"].lower() == DEMO_EMAIL

    run()
    _report(attack_log, "/otp", seen)


def _sessions(stack, clock, count: int) -> list[tuple[str, str]]:
    out = []
    for _ in range(count):
        session_id = stack.sign_in().data["session_id"]
        out.append((session_id, stack.latest_code()))
        clock.advance(stack.app_module.SETTINGS.resend_cooldown_seconds)
    return out


def test_fuzz_verify(stack, clock, attack_log):
    seen = {"tries": 0, "bad": 0, "ok": 0}
    real = _sessions(stack, clock, 4)
    session_ids = st.one_of(
        st.sampled_from([sid for sid, _ in real]),
        st.from_regex(r"[A-Za-z0-9_-]{1,300}", fullmatch=True),
        nasty_text,
        json_values,
    )
    codes = st.one_of(
        st.from_regex(r"[0-9]{6}", fullmatch=True),
        st.sampled_from([code for _, code in real]),
        st.text(alphabet="0123456789\uff10\u0660 \r\n\x00+-e.", max_size=12),
        json_values,
    )
    fields = st.fixed_dictionaries({}, optional={"session_id": session_ids, "code": codes})
    pairs = st.sampled_from(real).map(
        lambda pair: json.dumps({"session_id": pair[0], "code": pair[1]}).encode()
    )

    @FUZZ
    @given(body=st.one_of(bodies(fields), pairs), content_type=content_types)
    def run(body, content_type):
        data = check(stack, "/otp/verify", body, content_type, seen)
        if data is not None:
            assert verified_as(data) == DEMO_EMAIL

    run()
    _report(attack_log, "/otp/verify", seen)
    assert seen["ok"] <= len(real)  # each session verifies at most once


def test_fuzz_resend(stack, clock, attack_log):
    seen = {"tries": 0, "bad": 0, "ok": 0}
    pool = [sid for sid, _ in _sessions(stack, clock, 2)]
    fuzzed_ids = st.one_of(st.from_regex(r"[A-Za-z0-9_-]{1,300}", fullmatch=True), nasty_text, json_values)

    @FUZZ
    @given(data=st.data(), content_type=content_types, wait=st.sampled_from([0, 1, 29, 30, 31, 90]))
    def run(data, content_type, wait):
        if seen["tries"] % 25 == 24:  # a fresh session now and then; the old ones expire
            clock.advance(2 * 3600)  # past every limit, so the sign-in opens a session
            pool.append(stack.sign_in().data["session_id"])
        clock.advance(wait)
        kind = data.draw(st.sampled_from(["latest", "older", "fuzzed"]), label="session")
        session_id = {"latest": pool[-1], "older": pool[0]}.get(kind) or data.draw(
            fuzzed_ids, label="session_id"
        )
        fields = st.fixed_dictionaries({}, optional={"session_id": st.just(session_id)})
        body = data.draw(bodies(fields), label="body")
        check(stack, "/otp/resend", body, content_type, seen)

    run()
    _report(attack_log, "/otp/resend", seen)
