"""Cold start, honestly: a new container's first answer, against the floor of any boto3 function.

What a new Lambda container does before its first answer is: start the
interpreter, import the handler's module, and serve one event, creating the
AWS clients it needs on the way. Each measurement here is a fresh
interpreter (``PYTHON -c``) that does exactly that and times itself with
``perf_counter`` from its first statement to the answer (interpreter
start-up, the same for every subject, is reported apart):

* ``sign-in``: ``import app``, then ``app.app(event, context)`` with an API
  Gateway proxy event for ``POST /otp`` (a user of its own with a right
  password, a source IP of its own): what Lambda's runtime calls;
* ``verify``: the same with ``POST /otp/verify`` and the right code of a
  session opened beforehand (untimed, by another process);
* ``floor``: ``import boto3``, one DynamoDB client, one GetItem: the least any
  Python function that reads DynamoDB does in a new container.

Every AWS call goes to one warm moto server on 127.0.0.1 (the local stack's
emulator, ``python -m devstack.emulator``, on free ports, provisioned as the
tests provision it, stopped at the end). The three subjects run
alternately, after one untimed run each. Each child also reports where
its time went: the import, the creation of AWS clients (boto3's import comes
with the first), the AWS calls (the emulator's answers included), argon2,
and the rest.

A separate interpreter checks that importing the app creates no AWS client
and opens no connection (an audit hook and a spy on ``create_client``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from typing import Any

from bench.common import PYTHON, ROOT, Measure, Section, Table, median, ms, verdict

TARGET_RATIO = 1.15
TITLES = ("Cold start",)
PASSWORD = "bench-cold-password-1"
SUBJECTS = ("sign-in", "verify", "floor")

# What every timed child does first and last: its own clock, and what it learned, as one JSON line.
_PRELUDE = """
import json, sys, time
_t0 = time.perf_counter()
"""

# Instruments the app from the inside without importing anything it would not: the client
# factory is wrapped (its first call imports boto3), and each client counts and times its calls.
_APP_CHILD = (
    _PRELUDE
    + """
import app
_t_import = time.perf_counter()
from chalicelib import aws, credentials
_made = {"seconds": 0.0, "clients": []}
_calls = {"seconds": 0.0, "names": []}
_argon2 = {"seconds": 0.0}
_factory = aws._client

def _client(service):
    start = time.perf_counter()
    client = _factory(service)
    if service not in _made["clients"]:
        _made["clients"].append(service)
        _made["seconds"] += time.perf_counter() - start
        started = {}
        def before(event_name, **kwargs):
            started[event_name.split(".", 1)[1]] = time.perf_counter()
        def after(event_name, **kwargs):
            key = event_name.split(".", 1)[1]
            _calls["seconds"] += time.perf_counter() - started.pop(key, time.perf_counter())
            _calls["names"].append(key)
        client.meta.events.register("before-call", before)
        client.meta.events.register("after-call", after)
    return client

aws._client = _client
_matches = credentials._matches

def _timed_matches(encoded, password):
    start = time.perf_counter()
    try:
        return _matches(encoded, password)
    finally:
        _argon2["seconds"] += time.perf_counter() - start

credentials._matches = _timed_matches

class Context:
    function_name = "simple-otp-dev"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:simple-otp-dev"
    memory_limit_in_mb = 256
    aws_request_id = "c0ld5tar-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/simple-otp-dev"
    log_stream_name = "2026/12/01/[$LATEST]bench"
    def get_remaining_time_in_millis(self):
        return 15000

event = json.loads(sys.argv[1])
_t_call = time.perf_counter()
response = app.app(event, Context())
_t1 = time.perf_counter()
print(json.dumps({
    "seconds": _t1 - _t0,
    "import": _t_import - _t0,
    "handler": _t1 - _t_call,
    "clients": _made["seconds"],
    "client_names": _made["clients"],
    "aws": _calls["seconds"],
    "calls": _calls["names"],
    "argon2": _argon2["seconds"],
    "status": response.get("statusCode"),
    "modules": len(sys.modules),
}))
"""
)

_FLOOR_CHILD = (
    _PRELUDE
    + """
import boto3
_t_import = time.perf_counter()
client = boto3.session.Session().client("dynamodb")
_t_client = time.perf_counter()
client.get_item(TableName=sys.argv[1], Key={"pk": {"S": sys.argv[2]}}, ConsistentRead=True)
_t1 = time.perf_counter()
print(json.dumps({
    "seconds": _t1 - _t0,
    "import": _t_import - _t0,
    "handler": _t1 - _t_import,
    "clients": _t_client - _t_import,
    "client_names": ["dynamodb"],
    "aws": _t1 - _t_client,
    "calls": ["dynamodb.GetItem"],
    "argon2": 0.0,
    "status": 200,
    "modules": len(sys.modules),
}))
"""
)

# Provisions the emulator with what a first sign-in and verify touch (table, code key, sender,
# token key: no mail is sent here, so no SES event path), the demo user and one user per run.
_PROVISION = """
import json, sys
from chalicelib import settings
from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from devstack.testenv import TEST_ENV
from ops.provision import provision
from ops.users import add_user
names = ("OTP_TABLE_NAME", "OTP_KEY_PARAMETER", "OTP_SENDER", "OTP_TOKEN_KEY_ID")
result = provision(*(TEST_ENV[name] for name in names))
cfg = settings.load()
add_user(cfg, DEMO_EMAIL, DEMO_PASSWORD)
password = sys.stdin.readline().rstrip("\\n")
for email in sys.argv[1:]:
    add_user(cfg, email, password)
print(json.dumps({"table": result["table"]}))
"""

# Between two rounds, untimed: deletes every item but the users (moto server copies the whole
# table on each TransactWriteItems, so a growing table would make each sign-in slower than the
# last: the emulator's cost, not the app's), then opens the next verify run's session (a user of
# its own) and says its right code.
_ROUND = """
import json, sys
from chalicelib import aws, challenges, codes, keys, settings, store
cfg = settings.load()
ddb = aws.client("dynamodb")
for page in ddb.get_paginator("scan").paginate(TableName=cfg.table_name, ConsistentRead=True):
    for item in page["Items"]:
        if not item["pk"]["S"].startswith("user#"):
            ddb.delete_item(TableName=cfg.table_name, Key={"pk": item["pk"]})
email, ip = sys.argv[1], sys.argv[2]
password = sys.stdin.readline().rstrip("\\n")
started = challenges.start(cfg, {"email": email, "password": password}, ip)
session = store.get_session(cfg.table_name, codes.session_hash(started["session_id"]))
key = keys.key_at(cfg.key_parameter, int(session["key_version"]))
code = codes.derive_code(key, session["nonce"], cfg.code_length)
print(json.dumps({"session_id": started["session_id"], "code": code}))
"""

# botocore is imported first only so that client creation can be watched (its
# own import probes IPv6 support with a local socket, before the watch starts).
_IMPORT_CHECK = """
import json, sys
import botocore.session

created = []
_create = botocore.session.Session.create_client

def spy(self, *args, **kwargs):
    created.append(args[0] if args else kwargs.get("service_name"))
    return _create(self, *args, **kwargs)

botocore.session.Session.create_client = spy
seen = []

def audit(event, args):
    if event.startswith(("socket.", "http.client.", "urllib.Request", "ssl.")):
        seen.append(event)

sys.addaudithook(audit)
import app  # noqa: F401
print(json.dumps({"clients": created, "network_events": seen}))
"""


def _environment(aws_url: str | None = None) -> dict[str, str]:
    from devstack.testenv import child_environment

    env = child_environment()
    if aws_url:
        env["AWS_ENDPOINT_URL"] = aws_url
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def _child(code: str, args: list[str], env: dict[str, str], stdin: str | None = None) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; its last stdout line as JSON, and its wall time from outside."""
    started = time.perf_counter()
    done = subprocess.run(
        [PYTHON, "-c", code, *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"child python failed:\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.strip().splitlines() if line.startswith(("{", "["))]
    value = json.loads(lines[-1])
    if isinstance(value, dict):
        value["process"] = wall
    return value


def import_check() -> dict[str, Any]:
    """AWS clients created and socket/HTTP audit events raised while importing ``app``."""
    return _child(_IMPORT_CHECK, [], _environment())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Emulator:
    """``python -m devstack.emulator`` on free 127.0.0.1 ports, for the duration of a ``with``."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Emulator:
        self.process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "devstack.emulator",
                "--aws-port",
                str(self.port),
                "--mailbox-port",
                str(_free_port()),
            ],
            cwd=ROOT,
            env=_environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the emulator exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError("the emulator did not come up within 60 s")

    def __exit__(self, *_: Any) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the group it leads, started above
            process.wait(timeout=15)


def _api_event(path: str, body: dict[str, Any], source_ip: str) -> dict[str, Any]:
    """The API Gateway (REST, proxy) event Lambda hands the app for one POST."""
    return {
        "resource": path,
        "path": path,
        "httpMethod": "POST",
        "headers": {
            "content-type": "application/json",
            "user-agent": "Mozilla/5.0 (X11; Linux x86_64) bench",
            "origin": "http://127.0.0.1:5173",
        },
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": "POST",
            "path": f"/api{path}",
            "stage": "api",
            "requestId": "c0ld5tar-0000-4000-8000-000000000001",
            "identity": {"sourceIp": source_ip, "userAgent": "bench"},
        },
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def run(repeats: int) -> dict[str, Any]:
    from devstack.environment import DEMO_EMAIL

    runs = repeats + 1  # one untimed run of each subject first
    sign_in_users = [f"cold-signin-{n}@example.com" for n in range(runs)]
    verify_users = [f"cold-verify-{n}@example.com" for n in range(runs)]
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in SUBJECTS}
    started = time.perf_counter()
    with Emulator() as emulator:
        env = _environment(emulator.url)
        table = _child(_PROVISION, sign_in_users + verify_users, env, PASSWORD + "\n")["table"]
        floor_args = [table, f"user#{DEMO_EMAIL}"]
        for i in range(runs):
            session = _child(_ROUND, [verify_users[i], f"198.51.100.{i % 250 + 1}"], env, PASSWORD + "\n")
            session.pop("process", None)
            order = list(SUBJECTS) if i % 2 == 0 else list(reversed(SUBJECTS))
            for name in order:
                if name == "floor":
                    sample = _child(_FLOOR_CHILD, floor_args, env)
                elif name == "sign-in":
                    body = {"email": sign_in_users[i], "password": PASSWORD}
                    event = _api_event("/otp", body, f"203.0.113.{i % 250 + 1}")
                    sample = _child(_APP_CHILD, [json.dumps(event)], env)
                else:
                    event = _api_event("/otp/verify", session, f"192.0.2.{i % 250 + 1}")
                    sample = _child(_APP_CHILD, [json.dumps(event)], env)
                expected = 200
                if sample["status"] != expected:
                    raise RuntimeError(f"cold {name} answered {sample['status']}, expected {expected}")
                if i > 0:
                    sample["rest"] = sample["handler"] - sample["clients"] - sample["aws"] - sample["argon2"]
                    sample["without_aws"] = sample["seconds"] - sample["aws"]
                    sample["startup"] = (
                        sample["process"] - sample["seconds"]
                    )  # start-up and exit, from outside
                    samples[name].append(sample)
    check = import_check()
    keys = (
        "seconds",
        "import",
        "handler",
        "clients",
        "aws",
        "argon2",
        "rest",
        "without_aws",
        "process",
        "startup",
    )
    medians = {
        name: {key: median([s[key] for s in values]) for key in keys} for name, values in samples.items()
    }
    ratio = {name: medians[name]["seconds"] / medians["floor"]["seconds"] for name in ("sign-in", "verify")}
    ratio_without_aws = {
        name: medians[name]["without_aws"] / medians["floor"]["without_aws"] for name in ("sign-in", "verify")
    }
    return {
        "repeats": repeats,
        "seconds_total": time.perf_counter() - started,
        "times": {name: [s["seconds"] for s in values] for name, values in samples.items()},
        "median": medians,
        "min": {name: min(s["seconds"] for s in values) for name, values in samples.items()},
        "calls": {name: values[0]["calls"] for name, values in samples.items()},
        "client_names": {name: values[0]["client_names"] for name, values in samples.items()},
        "modules": {name: values[0]["modules"] for name, values in samples.items()},
        "ratio": ratio,
        "ratio_without_aws": ratio_without_aws,
        "target_ratio": TARGET_RATIO,
        "met": {name: value <= TARGET_RATIO for name, value in ratio.items()},
        "clients_at_import": check["clients"],
        "network_at_import": check["network_events"],
    }


def measure(size: dict[str, int]) -> dict[str, Any]:
    return run(size["cold_repeats"])


def summary(cold: dict[str, Any] | None) -> list[Measure]:
    rows = []
    for name in ("sign-in", "verify"):
        row = Measure(f"Cold start: first {name} / floor (boto3 + client + 1 GetItem)", f"<= {TARGET_RATIO}")
        if cold is not None:
            m = cold["median"]
            row.measured(
                f"{cold['ratio'][name]:.2f} ({ms(m[name]['seconds'])} ms / {ms(m['floor']['seconds'])} ms)",
                cold["met"][name],
            )
        rows.append(row)
    apart = Measure("Cold start, AWS calls' time left out: first sign-in, verify / floor", "-")
    if cold is not None and "ratio_without_aws" in cold:
        r = cold["ratio_without_aws"]
        apart.measured(f"{r['sign-in']:.2f}, {r['verify']:.2f}")
    rows.append(apart)
    quiet = Measure("AWS clients / network calls at import", "0 / 0")
    if cold is not None:
        clients, network = cold["clients_at_import"], cold["network_at_import"]
        quiet.measured(f"{len(clients)} / {len(network)}", not clients and not network)
    rows.append(quiet)
    return rows


def sections(cold: dict[str, Any]) -> list[Section]:
    m = cold["median"]
    labels = {
        "sign-in": "`import app` + first `POST /otp` (200)",
        "verify": "`import app` + first `POST /otp/verify` (200, token)",
        "floor": "floor: `import boto3` + client + 1 GetItem",
    }
    rows = []
    for name in SUBJECTS:
        parts = m[name]
        rest = parts["rest"]
        rows.append(
            [
                labels[name],
                f"**{ms(parts['seconds'])}**",
                ms(cold["min"][name]),
                ms(parts["import"]),
                ms(parts["clients"]),
                f"{ms(parts['aws'])} ({len(cold['calls'][name])})",
                ms(parts["argon2"]) if parts["argon2"] else "-",
                ms(rest),
                ms(parts["startup"]),
                cold["modules"][name],
            ]
        )
    ratio = cold["ratio"]
    calls = {name: ", ".join(cold["calls"][name]) for name in SUBJECTS}
    return [
        Section(
            TITLES[0],
            [
                Table(
                    [
                        "fresh interpreter",
                        "median ms",
                        "min ms",
                        "import",
                        "AWS clients (boto3 import with the first)",
                        "AWS calls (n)",
                        "argon2",
                        "the rest (lazy imports, the app's own work)",
                        "interpreter start + exit (apart)",
                        "modules",
                    ],
                    rows,
                ),
                f"Ratio to the floor: first sign-in **{ratio['sign-in']:.2f}**, first verify "
                f"**{ratio['verify']:.2f}** (target <= {TARGET_RATIO}: sign-in "
                f"{verdict(cold['met']['sign-in'])}, verify {verdict(cold['met']['verify'])}). "
                f"Clients created while importing app: {cold['clients_at_import'] or 'none'}; "
                f"socket/HTTP audit events: {cold['network_at_import'] or 'none'}.",
                "Left out the time spent waiting on AWS calls (here the emulator's, on AWS the network's "
                f"and the service's), the ratios are sign-in {cold['ratio_without_aws']['sign-in']:.2f} and "
                f"verify {cold['ratio_without_aws']['verify']:.2f}: what the app's own start-up adds "
                "(its import, its clients, argon2, its lazy imports) against boto3's import and one client.",
                f"AWS calls of the first sign-in: {calls['sign-in']}; of the first verify: {calls['verify']} "
                f"(clients: {', '.join(cold['client_names']['verify'])}).",
                f"Each figure: the median of {cold['repeats']} fresh interpreters per subject, the three "
                "alternated, after one untimed run each (each column its own median: they need not add up);"
                " between two rounds, untimed, every item but the users is deleted, so that moto's copy of "
                "the table on each transaction does not grow; each times itself from its first statement to"
                " the handler's answer (`perf_counter`); the start-up and exit of the interpreter, the same"
                " for all three, are measured from outside and shown apart. All AWS calls go to one warm "
                "moto server on 127.0.0.1 (`devstack.emulator`, provisioned as the tests provision it), so "
                "each call's column includes the emulator's own work, as on AWS it would include the "
                "network. The first sign-in and verify are the app's own Lambda entry, `app.app(event, "
                "context)`, with an API Gateway proxy event; each sign-in is a user of its own from an "
                "address of its own (no limit trips), each verify a session opened beforehand by another "
                "process. The import check is a separate interpreter with an audit hook on socket and HTTP "
                "events and a spy on `botocore.session.Session.create_client`.",
                "Why the ratio is what it is: the floor makes one call with one client; a cold "
                "sign-in makes the calls of its flow (the user, the password-check slot, the code "
                "key's SSM read once per container, the session transaction) and one argon2 hash, "
                "whose cost is chosen; a cold verify reads the code key from SSM and the token key "
                "from KMS (DescribeKey, GetPublicKey, the previous alias) before its two DynamoDB "
                'writes and the Sign. Importing the app itself costs the "import" column.',
            ],
            console=True,
        )
    ]
