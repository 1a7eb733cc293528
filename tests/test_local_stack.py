"""The local stack (make run): end to end over HTTP, start-up errors, overrides,
the operator CLI against it, and its parts (environment, pump, mailbox)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from devstack import environment
from devstack.environment import (
    API,
    AWS,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    EXAMPLE,
    WEB,
    StackError,
    read_ports,
    stack_environment,
)
from devstack.harness import ROOT, WAIT_SECONDS, LocalStack, code_of, descendants, leftovers, run_command
from devstack.testenv import TEST_ENV
from tests.support import verified_as

# The operator command, as scripts/setup.sh installs it in the venv.
SIMPLE_OTP = Path(sys.executable).parent / "simple-otp"

# ------------------------------------------------------------ the real stack, as a user runs it


@pytest.mark.stack
def test_sign_in_end_to_end_then_nothing_left_running():
    stack = LocalStack()
    with stack:
        started = stack.post("/otp", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
        assert started.status_code == 200, started.text
        session_id = started.json()["session_id"]

        mail = stack.wait_for_mail(DEMO_EMAIL)
        assert mail["to"] == [DEMO_EMAIL]
        assert mail["subject"] == "Your sign-in code"
        code = code_of(mail)
        assert code in mail["html"]
        assert dt.datetime.fromisoformat(mail["sent_at"]).tzinfo is not None

        verified = stack.post("/otp/verify", {"session_id": session_id, "code": code})
        assert verified.status_code == 200, verified.text
        assert verified_as(verified.json()) == DEMO_EMAIL

        again = stack.post("/otp/verify", {"session_id": session_id, "code": code})
        assert again.status_code == 410, again.text
        assert again.json()["error"] == "session_expired"
        assert again.json()["reason"] == "used"

        page = stack.http.get(stack.mailbox_url + "/", timeout=WAIT_SECONDS)
        assert page.status_code == 200 and code in page.text
        if stack.wait_web:
            assert stack.http.get(stack.web_url + "/", timeout=WAIT_SECONDS).status_code == 200

    # Leaving the block sent Ctrl-C and checked that no process it started is left.
    assert stack.returncode == 0, stack.output
    out = stack.output
    assert f"mail to {DEMO_EMAIL}" in out  # one console line per message...
    assert code not in out  # ...without the code
    assert f"{DEMO_EMAIL} / {DEMO_PASSWORD}" in out  # the demo credentials, on purpose
    assert "Traceback" not in out


@pytest.fixture(scope="module")
def tuned_stack():
    """One stack with user overrides, shared by the tests below (no cooldown between sign-ins).

    The codes live 20 minutes, longer than any test may run, so that no test
    here can fail because a busy machine was slow between sign-in and verify.
    """
    with LocalStack(
        env={"OTP_TTL_SECONDS": "1200", "OTP_RESEND_COOLDOWN_SECONDS": "0"}, wait_web=False
    ) as stack:
        yield stack
    assert stack.returncode == 0, stack.output


@pytest.mark.stack
def test_env_override_reaches_the_api_and_the_mailer(tuned_stack):
    before = tuned_stack.messages(DEMO_EMAIL)
    response = tuned_stack.post("/otp", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] == 1200
    assert response.json()["resend_in"] == 0
    mail = tuned_stack.wait_for_mail(DEMO_EMAIL, count=len(before) + 1)
    assert "valid for 20 minutes" in mail["text"]  # the default 300 s would say "5 minutes"
    assert "OTP_TTL_SECONDS=1200" in tuned_stack.output


@pytest.mark.stack
def test_the_example_app_runs_with_the_stack(tuned_stack):
    out = tuned_stack.output
    assert f"example app  {tuned_stack.example_url}" in out  # in the ready output
    assert (
        f"example relying app on {tuned_stack.example_url}: issuer {tuned_stack.api_url}, "
        f"audience simple-otp-local, keys {tuned_stack.api_url}/.well-known/jwks.json, "
        f"login page {tuned_stack.web_url}/"
    ) in out
    page = tuned_stack.http.get(tuned_stack.example_url + "/", timeout=WAIT_SECONDS)
    assert page.status_code == 200 and '<a href="/login">Sign in</a>' in page.text
    login = tuned_stack.http.get(
        tuned_stack.example_url + "/login", allow_redirects=False, timeout=WAIT_SECONDS
    )
    assert login.status_code == 303
    assert login.headers["Location"].startswith(tuned_stack.web_url + "/?state=")


@pytest.mark.stack
def test_sign_in_from_the_example_app_over_http(tuned_stack):
    """The example app's journey without a browser: its /login, the API and the mailbox, its /callback."""
    app = tuned_stack.example_url
    browser = requests.Session()
    browser.trust_env = False
    login = browser.get(app + "/login", allow_redirects=False, timeout=WAIT_SECONDS)
    assert login.status_code == 303
    location = urlsplit(login.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == tuned_stack.web_url  # the login page...
    (state,) = parse_qs(location.query)["state"]  # ...given the state the app keeps in its cookie
    assert browser.cookies.get("state", path="/callback") == state

    token = tuned_stack.sign_in(DEMO_EMAIL, DEMO_PASSWORD)["token"]

    # What the login page's form does: token and state to the app's /callback.
    form = {"token": token, "state": state}
    signed_in = browser.post(app + "/callback", data=form, allow_redirects=False, timeout=WAIT_SECONDS)
    assert signed_in.status_code == 303, signed_in.text
    assert signed_in.headers["Location"] == "/"
    page = browser.get(app + "/", timeout=WAIT_SECONDS)
    assert f"Signed in as <strong>{DEMO_EMAIL}</strong>" in page.text

    # The same token again, even with the state and its cookie replayed: refused, no session.
    stranger = requests.Session()
    stranger.trust_env = False
    replayed = stranger.post(
        app + "/callback", data=form, cookies={"state": state}, allow_redirects=False, timeout=WAIT_SECONDS
    )
    assert replayed.status_code == 401 and "already used" in replayed.text
    assert "example_session" not in replayed.cookies
    assert token not in tuned_stack.output


@pytest.mark.stack
def test_admin_add_user_against_the_running_stack(tuned_stack):
    email = "new.person@example.com"
    added = subprocess.run(
        [str(SIMPLE_OTP), "add-user", email],
        cwd=ROOT,
        env=tuned_stack.operator_environment(),
        input="a long passphrase\n",
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )
    assert added.returncode == 0, added.stderr
    assert f"user {email} added" in added.stdout

    response = tuned_stack.post("/otp", {"email": email, "password": "a long passphrase"})
    assert response.status_code == 200, response.text
    assert tuned_stack.wait_for_mail(email)["to"] == [email]
    wrong = tuned_stack.post("/otp", {"email": email, "password": "not the passphrase"})
    assert wrong.status_code == 401


@pytest.mark.stack
def test_parallel_right_codes_verify_exactly_once(tuned_stack):
    """The emulator applies one request at a time, as DynamoDB applies writes to one item."""
    before = len(tuned_stack.messages(DEMO_EMAIL))
    started = tuned_stack.post("/otp", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert started.status_code == 200, started.text
    code = code_of(tuned_stack.wait_for_mail(DEMO_EMAIL, count=before + 1))
    body = {"session_id": started.json()["session_id"], "code": code}
    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = sorted(pool.map(lambda _: tuned_stack.post("/otp/verify", body).status_code, range(40)))
    assert statuses == [200] + [410] * 39


@pytest.mark.stack
def test_a_killed_supervisor_leaves_nothing_running():
    """Even without a clean stop (kill -9), every child notices and stops itself."""
    stack = LocalStack()
    stack.start()
    started = descendants(stack._process.pid)
    assert len(started) >= 3, started  # supervisor, emulator, API (and the login page's group)
    os.kill(stack._process.pid, signal.SIGKILL)
    deadline = time.monotonic() + WAIT_SECONDS  # a bound for a hung child; they stop in about a second
    while leftovers(started) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = leftovers(started)
    stack.stop(check=False)
    assert left == [], stack.output


@pytest.mark.stack
@pytest.mark.parametrize("variable", ["LOCAL_API_PORT", "LOCAL_EXAMPLE_PORT"])
def test_port_in_use_is_one_line_naming_the_port(variable):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_command({variable: str(port)})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(port) in lines[0] and variable in lines[0] and "in use" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert "starting" not in result.stdout  # nothing was started


@pytest.mark.stack
@pytest.mark.parametrize(
    ("name", "value"),
    [("OTP_CODE_LENGTH", "99"), ("OTP_ALLOWED_ORIGIN", "not an origin"), ("LOCAL_AWS_PORT", "http")],
)
def test_bad_setting_is_one_line_naming_the_variable(name, value):
    result = run_command({name: value})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and name in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert "starting" not in result.stdout


# ------------------------------------------------------------ the parts, without processes


def _ports(**numbers: int) -> dict[environment.Port, int]:
    return read_ports({f"LOCAL_{k.upper()}_PORT": str(v) for k, v in numbers.items()})


def test_user_settings_win_and_aws_is_pinned_to_the_emulator():
    user = {
        "OTP_TTL_SECONDS": "30",
        "OTP_TABLE_NAME": "mine",
        "AWS_ENDPOINT_URL": "https://dynamodb.eu-west-1.amazonaws.com",
        "AWS_ENDPOINT_URL_SES": "https://email.eu-west-1.amazonaws.com",
        "AWS_ACCESS_KEY_ID": "AKIAREALKEY",
        "AWS_PROFILE": "production",
        "PATH": "/usr/bin",
    }
    env = stack_environment(user, _ports(aws=4999, web=5999))
    assert env["OTP_TTL_SECONDS"] == "30" and env["OTP_TABLE_NAME"] == "mine"
    assert env["OTP_SENDER"] == "no-reply@simple-otp.local"  # from the local stage
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4999"
    assert "AWS_ENDPOINT_URL_SES" not in env and "AWS_PROFILE" not in env
    assert env["AWS_ACCESS_KEY_ID"] == "local"
    assert env["OTP_ALLOWED_ORIGIN"] == "http://127.0.0.1:5999"
    assert env["PATH"] == "/usr/bin"


def test_allowed_origin_set_by_the_user_is_kept():
    env = stack_environment({"OTP_ALLOWED_ORIGIN": "http://localhost:3000"}, _ports(web=5999))
    assert env["OTP_ALLOWED_ORIGIN"] == "http://localhost:3000"


def test_token_issuer_follows_the_api_port():
    assert stack_environment({}, _ports())["OTP_TOKEN_ISSUER"] == "http://127.0.0.1:8000"
    assert stack_environment({}, _ports(api=8100))["OTP_TOKEN_ISSUER"] == "http://127.0.0.1:8100"


def test_token_issuer_set_by_the_user_is_kept():
    env = stack_environment({"OTP_TOKEN_ISSUER": "https://sign-in.example.com"}, _ports(api=8100))
    assert env["OTP_TOKEN_ISSUER"] == "https://sign-in.example.com"


def test_example_app_trusts_the_local_api_for_the_local_audience():
    from devstack.run import example_environment

    ports = _ports(api=8100, web=5999, example=8181)
    example = example_environment(ports, stack_environment({}, ports))
    assert example == {
        "EXAMPLE_ISSUER": "http://127.0.0.1:8100",
        "EXAMPLE_AUDIENCE": "simple-otp-local",
        "EXAMPLE_JWKS_URL": "http://127.0.0.1:8100/.well-known/jwks.json",
        "EXAMPLE_LOGIN_URL": "http://127.0.0.1:5999/",
    }
    mine = {"OTP_TOKEN_ISSUER": "https://sign-in.example.com", "OTP_TOKEN_AUDIENCE": "my-app"}
    example = example_environment(ports, stack_environment(mine, ports))
    assert example["EXAMPLE_ISSUER"] == "https://sign-in.example.com"  # the tokens' iss...
    assert example["EXAMPLE_JWKS_URL"] == "http://127.0.0.1:8100/.well-known/jwks.json"  # ...keys still local
    assert example["EXAMPLE_AUDIENCE"] == "my-app"


def test_default_ports_and_duplicates():
    ports = read_ports({})
    assert (ports[AWS], ports[API], ports[WEB], ports[EXAMPLE]) == (4566, 8000, 5173, 8081)
    with pytest.raises(StackError, match="LOCAL_API_PORT and LOCAL_EXAMPLE_PORT are both 8081"):
        read_ports({"LOCAL_API_PORT": "8081"})
    with pytest.raises(StackError, match="LOCAL_AWS_PORT and LOCAL_API_PORT are both 9000"):
        read_ports({"LOCAL_AWS_PORT": "9000", "LOCAL_API_PORT": "9000"})
    with pytest.raises(StackError, match="LOCAL_WEB_PORT=70000"):
        read_ports({"LOCAL_WEB_PORT": "70000"})


def test_pump_keeps_a_failed_batch_and_delivers_it_once_later(stack):
    from devstack.pump import Pump, stream_handlers
    from devstack.testenv import sent_mail

    (target,) = stream_handlers(stack.app_module)
    assert target.name == "send_code" and target.batch_size == 25
    logged: list[str] = []
    pump = Pump(stack.reader, target, stack.stream_arn, logged.append)
    from tests.attacks.helpers import Fault, query_error

    outage = Fault("ses", "SendRawEmail", query_error("ServiceUnavailable", 503)).install()  # SES is down

    assert stack.sign_in().status_code == 200
    with pytest.raises(Exception, match="not sent"):
        pump.tick()
    assert pump.pending and sent_mail() == []
    with pytest.raises(Exception, match="not sent"):
        pump.tick()  # the same batch again, as Lambda retries it
    kept = len(pump.pending)

    outage.remove()  # SES is back
    assert pump.tick() == kept
    assert pump.pending == []
    assert [m.to for m in sent_mail()] == [[DEMO_EMAIL]]
    pump.tick()  # the claim's own MODIFY records: handed over, nothing mailed again
    assert len(sent_mail()) == 1


def test_mailbox_lists_newest_first_and_escapes_everything(stack):
    from chalicelib import aws
    from devstack.mailbox import Outbox, console_line, moto_sent_messages, render_page

    ses = aws.client("ses")
    sender = TEST_ENV["OTP_SENDER"]
    for subject in ("first", "<script>alert(1)</script>"):
        raw = f"From: {sender}\r\nTo: x@example.com\r\nSubject: {subject}\r\n\r\n<b>hi</b> & bye\r\n"
        ses.send_raw_email(Source=sender, Destinations=["x@example.com"], RawMessage={"Data": raw.encode()})
    seen = []
    outbox = Outbox(moto_sent_messages("us-east-1"), on_new=seen.append)
    messages = outbox.messages()
    assert [m.subject for m in messages] == ["<script>alert(1)</script>", "first"]
    assert messages[0].to == ["x@example.com"]  # moto's doubled destination, de-duplicated
    assert len(seen) == 2 and outbox.collect() == []
    page = render_page(messages)
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;hi&lt;/b&gt; &amp; bye" in page
    assert console_line(messages[1]) == "mail to x@example.com: 'first'"
    # No receiving side here: each message stays "sent", under SES's message id.
    shown = messages[0].as_json()
    assert (shown["delivery"], shown["message_id"]) == ("sent", shown["id"])
    assert '<dd class="delivery" data-delivery="sent">sent</dd>' in page


def test_emulator_takes_one_request_at_a_time():
    from devstack.emulator import Serialized

    inside = 0
    most = 0
    count = threading.Lock()

    def app(environ, start_response):
        nonlocal inside, most
        with count:
            inside += 1
            most = max(most, inside)
        time.sleep(0.01)
        with count:
            inside -= 1
        start_response("200 OK", [])
        return [environ["wsgi.input"].read()]

    after = []
    serialized = Serialized(app, after=lambda: after.append(1))

    def call(i):
        import io

        body = f"request {i}".encode()
        environ = {"CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
        return serialized(environ, lambda *a: None)

    with ThreadPoolExecutor(max_workers=8) as pool:
        bodies = list(pool.map(call, range(16)))
    assert most == 1
    assert bodies == [[f"request {i}".encode()] for i in range(16)]
    assert len(after) == 16


def test_leftover_check_sees_a_live_process_group():
    sleeper = subprocess.Popen(["sleep", "30"], process_group=0)
    try:
        started = descendants(sleeper.pid)
        assert leftovers(started) == [sleeper.pid]
    finally:
        sleeper.kill()
        sleeper.wait()
    assert leftovers(started) == []
