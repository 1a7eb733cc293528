"""Round trips, request units, log bytes and own CPU per request: the app in one process on moto.

One run does all of it. The app is provisioned as in the tests (table with
stream and TTL, code key in SSM, sender, the demo user) inside ``mock_aws``;
requests go through ``chalice.test.Client``, the stream handler gets the
records moto's stream really produced, as Lambda would hand them over, and
the SNS handler of SES's delivery events (when the app has one) gets the
events SES would publish for each mail.

Each iteration is one person's whole sign-in, with one failure of each kind
on the way (:data:`LOOP`): a wrong password, its stream batch, the sign-in,
delivery of its code, SES's events for that mail, a status poll, a resend,
delivery, a wrong code and the right one. botocore's hooks
(:mod:`bench.calls`) count and record every AWS call of each flow, and size
every DynamoDB item each call touches (:mod:`bench.capacity`); a log meter
(:mod:`bench.logmeter`) counts the bytes each request writes. The settings
are the production defaults; a fake clock moves two hours between
iterations so the send limits never trip (no sleeping, no setting changed).
Flows the app does not have yet (the status route, the SNS handler) are
reported as not present.

Own cost: the recorded calls are then made again, in the same order,
directly on the same kind of client against a freshly provisioned moto,
with no app around them. Per request: own = through the app - the same
calls made bare - argon2 (timed inside the request, reported on its own).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.calls import Recorder, Recording, prepare, replay
from bench.common import Measure, Section, Table, mean, median, ms, verdict


@dataclass(frozen=True)
class Target:
    """A flow's round-trip target: ``op`` ("<=" or "==") ``limit`` calls per ``per``.

    ``counts``: "dynamodb" (DynamoDB round trips only: KMS, SES and SSM calls
    are shown beside them and priced in the cost model) or "aws" (every AWS call).
    """

    op: str
    limit: int
    counts: str = "dynamodb"
    per: str = "request"  # or "mail" (per mail sent), "message" (per SNS message)

    def met(self, value: float) -> bool:
        return value == self.limit if self.op == "==" else value <= self.limit

    def __str__(self) -> str:
        what = "DynamoDB calls" if self.counts == "dynamodb" else "AWS calls"
        return f"{self.op} {self.limit} {what}" + ("" if self.per == "request" else f" per {self.per}")


# Every flow's target, in one place; the smoke test asserts them (they are facts, not timings).
TARGETS: dict[str, Target] = {
    "sign-in": Target("<=", 3),  # the user, a password-check slot, the session transaction
    "sign-in, wrong password": Target("<=", 2),  # the user, the slot (kept: a failed sign-in)
    "resend": Target("<=", 2),
    "verify": Target("<=", 2),  # the guess and the device token; the token's KMS Sign beside it
    "verify, wrong code": Target("==", 1),
    "status": Target("<=", 1),
    "delivery": Target("<=", 2, per="mail"),  # the claim, the SES message id on the challenge
    "delivery, nothing to mail": Target("<=", 1),  # a batch of counter updates only
    "delivery event": Target("<=", 1, per="message"),  # one SES event moves one session's state
    "sign-up": Target("<=", 2),
    "sign-up verify": Target("<=", 2),
    "reset": Target("<=", 2),
    "reset confirm": Target("<=", 4),
    "GET /.well-known/jwks.json, warm": Target("==", 0, counts="aws"),
    "GET /.well-known/openid-configuration, warm": Target("==", 0, counts="aws"),
}
# The flows of one iteration, in order (a flow the app lacks is skipped, see OPTIONAL).
LOOP = (
    "sign-in, wrong password",
    "delivery, nothing to mail",
    "sign-in",
    "delivery",
    "delivery event",
    "status",
    "resend",
    "verify, wrong code",
    "verify",
)
# flow -> what the app must have for it: a route, or a Lambda function's name
OPTIONAL = {"status": ("route", "/otp/status"), "delivery event": ("function", "delivery_events")}
# What a complete sign-in's SNS handler receives per mail: the events SES publishes for a delivered mail.
SES_EVENTS_PER_MAIL = ("Send", "Delivery")
ROUTES = {
    "sign-in": "/otp",
    "sign-in, wrong password": "/otp",
    "resend": "/otp/resend",
    "verify": "/otp/verify",
    "verify, wrong code": "/otp/verify",
    "status": "/otp/status",
    "sign-up": "/signup",
    "sign-up verify": "/signup/verify",
    "reset": "/password/reset",
    "reset confirm": "/password/reset/confirm",
}
TITLES = ("AWS round trips and request units per flow", "Own CPU per request")
HOURS_2 = 7200
NEW_PASSWORD = "a-new-bench-passphrase-7"


def meets(flow: str, value: float) -> bool:
    return TARGETS[flow].met(value)


def target(flow: str) -> str:
    return str(TARGETS[flow])


@dataclass
class Sample:
    flow: str
    status: Any  # HTTP status, or mails sent (delivery), or states moved (delivery event)
    wall: float
    cpu: float
    recording: Recording
    iteration: int = -1  # -1: not part of the loop (an extra)
    log_bytes: int = 0
    log_lines: int = 0
    mails: int = 0
    hash_wall: float = 0.0
    hash_cpu: float = 0.0
    warmup: bool = False
    bare_wall: float = 0.0
    bare_cpu: float = 0.0


@dataclass
class Result:
    iterations: int
    warmup: int
    present: dict[str, bool] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    extras: list[tuple[str, Sample]] = field(default_factory=list)
    argon2: dict[str, float] = field(default_factory=dict)
    floor: dict[str, float] = field(default_factory=dict)
    replay_failures: int = 0
    original_failures: int = 0
    memory_mb: int | None = None


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _clocked(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    value = fn()
    return value, time.perf_counter() - wall0, time.process_time() - cpu0


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Wall and CPU seconds of ``fn()``, with the garbage collector off (as timeit does).

    Garbage is collected between sign-ins instead (:func:`_collect`).
    """
    gc.disable()
    try:
        return _clocked(fn)
    finally:
        gc.enable()


def _collect() -> None:
    """Collect, then freeze what survived, so the next collections stay cheap (moto's heap is big)."""
    gc.collect()
    gc.freeze()


def _tidy(table: str) -> None:
    """Delete every item but the users, untimed, between two sign-ins.

    moto deep-copies the whole table on each TransactWriteItems (to roll
    back), so its cost grows with the table; real DynamoDB's does not. Both
    runs, the app's and the bare one, start every sign-in from the same
    small table (see also :func:`_trim_stream`).
    """
    from chalicelib import aws

    ddb = aws.client("dynamodb")
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            if not item["pk"]["S"].startswith("user#"):
                ddb.delete_item(TableName=table, Key={"pk": item["pk"]})


def _trim_stream(table: str) -> None:
    """Drop the stream records already read, as the stream's retention would.

    moto keeps them in the table object that TransactWriteItems copies, so
    without this every transaction would cost more than the one before.
    Sequence numbers go on from where they were.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    shard = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables[table].stream_shard
    shard.starting_sequence_number += len(shard.items)
    shard.items.clear()


@contextmanager
def _moto(recorder: Recorder, meter: Any) -> Iterator[dict[str, Any]]:
    """A fresh in-process moto, provisioned, with the app imported against it.

    ``meter`` (a :class:`bench.logmeter.LogMeter`) takes every log line from
    the app's import on, provisioning's included, so none reaches the console.
    """
    from devstack.testenv import forget_containers, provision_demo, use_test_environment

    use_test_environment()
    from moto import mock_aws

    import app  # noqa: F401 - its log handlers must exist before the meter takes them
    from bench.capacity import MotoSizer

    meter.install()
    try:
        with mock_aws():
            recorder.install()
            recorder.sizer = MotoSizer()
            forget_containers()
            result = provision_demo()
            meter.take()
            try:
                yield result
            finally:
                forget_containers()
                recorder.sizer = None
                recorder.uninstall()
    finally:
        meter.uninstall()


def _sent() -> list[Any]:
    from devstack.testenv import sent_messages

    return list(sent_messages())


def _code_of(sent: Any) -> str:
    from devstack.testenv import mail_of

    return mail_of(sent).code


def _present(app_module: Any) -> dict[str, bool]:
    """Which optional flows the app has (a route, a Lambda function)."""
    app = app_module.app
    functions = {getattr(source, "name", None) for source in app.event_sources}
    functions |= {getattr(f, "name", None) for f in getattr(app, "pure_lambda_functions", [])}
    found = {}
    for flow, (kind, name) in OPTIONAL.items():
        found[flow] = name in app.routes if kind == "route" else name in functions
    return found


def _ses_event(kind: str, sent: Any, send_call: Any, at: float) -> str:
    """An SES event-publishing record (``eventType`` ``kind``) for one sent mail, as SNS carries it.

    The shape of https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html;
    the tags are the ones the app sent with the mail.
    """
    stamp = dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    params = send_call.params if send_call is not None else {}
    destination = list(params.get("Destinations") or getattr(sent, "destinations", []) or [])
    tags = {t["Name"]: [t["Value"]] for t in params.get("Tags") or []}
    if params.get("ConfigurationSetName"):
        tags["ses:configuration-set"] = [params["ConfigurationSetName"]]
    event: dict[str, Any] = {
        "eventType": kind,
        "mail": {
            "timestamp": stamp,
            "source": params.get("Source", getattr(sent, "source", "")),
            "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/simple-otp.test",
            "sendingAccountId": "123456789012",
            "messageId": getattr(sent, "id", "0100000000000000-bench"),
            "destination": destination,
            "headersTruncated": False,
            "tags": tags,
        },
    }
    if kind == "Send":
        event["send"] = {}
    elif kind == "Delivery":
        event["delivery"] = {
            "timestamp": stamp,
            "processingTimeMillis": 1200,
            "recipients": destination,
            "smtpResponse": "250 2.6.0 Message received",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
        }
    return json.dumps(event)


class _Driver:
    """Drives the app and records each request."""

    def __init__(self, client: Any, reader: Any, stream_arn: str, recorder: Recorder, meter: Any) -> None:
        self.client = client
        self.reader = reader
        self.stream_arn = stream_arn
        self.recorder = recorder
        self.meter = meter
        self.hash_times: list[tuple[float, float]] = []
        self.iteration = -1

    def _sample(self, flow: str, status: Any, wall: float, cpu: float, recording: Recording) -> Sample:
        log_bytes, log_lines = self.meter.take()
        sample = Sample(flow, status, wall, cpu, recording, self.iteration, log_bytes, log_lines)
        sample.hash_wall = sum(w for w, _ in self.hash_times)
        sample.hash_cpu = sum(c for _, c in self.hash_times)
        return sample

    def post(self, flow: str, body: dict[str, Any]) -> tuple[Any, Sample]:
        payload = json.dumps(body)
        headers = {"Content-Type": "application/json", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) bench"}
        path = ROUTES[flow]
        self.hash_times.clear()
        self.meter.take()
        with self.recorder.record() as recording:
            response, wall, cpu = _timed(lambda: self.client.http.post(path, headers=headers, body=payload))
        data = json.loads(response.body) if response.body else None
        return data, self._sample(flow, response.status_code, wall, cpu, recording)

    def get(self, flow: str, path: str) -> Sample:
        self.hash_times.clear()
        self.meter.take()
        with self.recorder.record() as recording:
            response, wall, cpu = _timed(lambda: self.client.http.get(path))
        return self._sample(flow, response.status_code, wall, cpu, recording)

    def event(self) -> dict[str, Any]:
        from devstack.streams import lambda_event

        return lambda_event(self.reader.poll(), self.stream_arn)

    def deliver(self, flow: str, event: dict[str, Any]) -> Sample:
        before = len(_sent())
        self.hash_times.clear()
        self.meter.take()
        with self.recorder.record() as recording:
            _, wall, cpu = _timed(lambda: self.client.lambda_.invoke("send_code", event))
        mails = len(_sent()) - before
        sample = self._sample(flow, mails, wall, cpu, recording)
        sample.mails = mails
        return sample

    def ses_event(self, message: str) -> Sample:
        event = self.client.events.generate_sns_event(message=message, subject="Amazon SES Email Event")
        self.hash_times.clear()
        self.meter.take()
        with self.recorder.record() as recording:
            response, wall, cpu = _timed(lambda: self.client.lambda_.invoke("delivery_events", event))
        return self._sample("delivery event", getattr(response, "payload", None), wall, cpu, recording)


def _check(sample: Sample, expected: Any) -> Sample:
    if sample.status != expected:
        raise RuntimeError(f"{sample.flow}: got {sample.status}, expected {expected}")
    return sample


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def _send_call(sample: Sample) -> Any:
    return next((c for c in sample.recording.calls if c.name.startswith("ses.Send")), None)


def _mail_events(driver: _Driver, delivery: Sample, clock: FakeClock) -> list[Sample]:
    """SES's events for the mail ``delivery`` sent, handed to the SNS handler one message each."""
    sent = _sent()[-1]
    return [
        driver.ses_event(_ses_event(kind, sent, _send_call(delivery), clock.now))
        for kind in SES_EVENTS_PER_MAIL
    ]


def _one_sign_in(driver: _Driver, email: str, password: str, present: dict[str, bool]) -> list[Sample]:
    """One iteration of :data:`LOOP`; the clock moves as a person would."""
    from chalicelib import clock as clock_module

    clock = clock_module.clock
    samples = []
    _, failed = driver.post("sign-in, wrong password", {"email": email, "password": password + "x"})
    samples.append(_check(failed, 401))
    samples.append(_check(driver.deliver("delivery, nothing to mail", driver.event()), 0))
    data, sign_in = driver.post("sign-in", {"email": email, "password": password})
    samples.append(_check(sign_in, 200))
    session_id = data["session_id"]
    first = _check(driver.deliver("delivery", driver.event()), 1)
    samples.append(first)
    clock.now += 2
    if present["delivery event"]:
        samples += _mail_events(driver, first, clock)
        driver.event()  # the state's MODIFY records: their own batch, not part of the next delivery's
    if present["status"]:
        _, status = driver.post("status", {"session_id": session_id})
        samples.append(_check(status, 200))
    clock.now += 31  # past the 30 s resend cooldown
    _, resend = driver.post("resend", {"session_id": session_id})
    samples.append(_check(resend, 200))
    samples.append(_check(driver.deliver("delivery", driver.event()), 1))
    clock.now += 1
    code = _code_of(_sent()[-1])
    _, wrong = driver.post("verify, wrong code", {"session_id": session_id, "code": _wrong(code)})
    samples.append(_check(wrong, 401))
    _, verify = driver.post("verify", {"session_id": session_id, "code": code})
    samples.append(_check(verify, 200))
    clock.now += HOURS_2  # fresh hourly windows for the next person
    return samples


def _extras(
    driver: _Driver, app_module: Any, email: str, password: str, present: dict[str, bool]
) -> list[tuple[str, Sample]]:
    """Round trips of the other outcomes and flows, counted once each in a warm container."""
    from chalicelib import clock as clock_module
    from chalicelib import keys

    clock = clock_module.clock
    out: list[tuple[str, Sample]] = []

    def add(label: str, sample: Sample) -> Sample:
        out.append((label, sample))
        return sample

    _, s = driver.post("sign-in", {"email": "nobody@example.com", "password": password})
    add("sign-in, unknown email (401)", s)
    driver.event()
    data, _ = driver.post("sign-in", {"email": email, "password": password})
    session_id = data["session_id"]
    _, s = driver.post("sign-in", {"email": email, "password": password})
    add("sign-in within the resend cooldown (429)", s)
    event = driver.event()
    driver.deliver("delivery", event)
    add("delivery of a record already mailed (stream redelivery)", driver.deliver("delivery", event))
    _, s = driver.post("resend", {"session_id": session_id})
    add("resend within the cooldown (429)", s)
    code = _code_of(_sent()[-1])
    _, s = driver.post("verify", {"session_id": session_id, "code": code})
    _, s = driver.post("verify", {"session_id": session_id, "code": code})
    add("verify, code already used (410)", s)
    if present["status"]:
        _, s = driver.post("status", {"session_id": session_id})
        add("status of a used session (410)", s)
    add(
        "delivery of a batch with no new challenge (MODIFY records)",
        driver.deliver("delivery", driver.event()),
    )

    for path in ("/.well-known/jwks.json", "/.well-known/openid-configuration"):
        driver.get(path, path)  # the keys are read once per container...
        add(f"GET {path}, warm", driver.get(f"GET {path}, warm", path))  # ...then no AWS call

    # sign-up (on for these requests only: off by default) and its code
    clock.now += HOURS_2
    settings = app_module.SETTINGS
    app_module.SETTINGS = dataclasses.replace(settings, signup_enabled=True)
    try:
        newcomer = "newcomer@example.com"
        data, s = driver.post("sign-up", {"email": newcomer, "password": NEW_PASSWORD})
        add("sign-up", _check(s, 202))
        add("delivery (sign-up code)", driver.deliver("delivery", driver.event()))
        code = _code_of(_sent()[-1])
        _, s = driver.post("sign-up verify", {"session_id": data["session_id"], "code": code})
        add("sign-up verify", _check(s, 201))
        driver.event()
    finally:
        app_module.SETTINGS = settings

    clock.now += HOURS_2
    data, _ = driver.post("sign-in", {"email": email, "password": password})
    driver.event()  # its records are not part of any count
    keys.forget()  # a new container: the code key is not in memory yet
    _, s = driver.post("verify, wrong code", {"session_id": data["session_id"], "code": "000000"})
    add("verify in a new container: + the code key's SSM read", s)

    # reset last: it changes the demo user's password
    clock.now += HOURS_2
    data, s = driver.post("reset", {"email": email})
    add("reset", _check(s, 202))
    add("delivery (reset code)", driver.deliver("delivery", driver.event()))
    code = _code_of(_sent()[-1])
    body = {"session_id": data["session_id"], "code": code, "new_password": NEW_PASSWORD}
    _, s = driver.post("reset confirm", body)
    add("reset confirm", _check(s, 200))
    add("delivery (the 'password changed' notice)", driver.deliver("delivery", driver.event()))
    clock.now += HOURS_2
    return out


def _argon2(repeats: int) -> dict[str, float]:
    from chalicelib import credentials

    credentials.hasher()
    walls, cpus = [], []
    for _ in range(repeats):
        _, wall, cpu = _timed(lambda: credentials._matches(credentials.DUMMY_HASH, "not-the-password"))
        walls.append(wall)
        cpus.append(cpu)
    return {
        "repeats": repeats,
        "wall_median": median(walls),
        "cpu_median": median(cpus),
        "time_cost": credentials.TIME_COST,
        "memory_kib": credentials.MEMORY_COST_KIB,
        "parallelism": credentials.PARALLELISM,
    }


def chalice_floor(requests: int) -> dict[str, float]:
    """One request to a one-line route through the same test client: Chalice's share of "own".

    Same route options as the app (POST, CORS, any content type), a JSON
    body parsed and a JSON answer; no AWS call.
    """
    from chalice import Chalice, CORSConfig, Response
    from chalice.test import Client

    from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD

    floor = Chalice(app_name="bench-floor")
    cors = CORSConfig(allow_origin="http://127.0.0.1:5173", allow_headers=["Content-Type"], max_age=600)

    @floor.route("/otp", methods=["POST"], cors=cors, content_types=["*/*"])
    def answer() -> Response:
        body = json.loads(floor.current_request.raw_body)
        return Response(
            body={"ok": bool(body)}, status_code=200, headers={"Content-Type": "application/json"}
        )

    payload = json.dumps({"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    headers = {"Content-Type": "application/json"}
    walls, cpus = [], []
    with Client(floor) as client:
        _collect()
        for n in range(requests + 5):
            _, wall, cpu = _timed(lambda: client.http.post("/otp", headers=headers, body=payload))
            if n >= 5:
                walls.append(wall)
                cpus.append(cpu)
    return {"requests": requests, "cpu_median": median(cpus), "wall_median": median(walls)}


def _memory_mb() -> int | None:
    """The API function's configured memory (stage dev of .chalice/config.json)."""
    from bench.common import ROOT

    try:
        config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    except (OSError, ValueError):
        return None
    dev = config.get("stages", {}).get("dev", {})
    return dev.get("lambda_memory_size", config.get("lambda_memory_size"))


def run(iterations: int, warmup: int = 2, argon2_repeats: int = 20) -> Result:
    """``warmup`` + ``iterations`` iterations of :data:`LOOP`, the extras, then the replay of the calls."""
    from bench.logmeter import LogMeter
    from chalicelib import clock as clock_module
    from chalicelib import credentials
    from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD

    recorder = Recorder()
    result = Result(iterations=iterations, warmup=warmup, memory_mb=_memory_mb())
    real_clock, real_matches = clock_module.clock, credentials._matches
    clock = FakeClock(float(int(time.time()) // 3600 * 3600 + 60))
    clock_module.clock = clock
    meter = LogMeter()
    try:
        with _moto(recorder, meter) as provisioned:
            from chalice.test import Client

            import app as app_module
            from chalicelib import aws
            from devstack.streams import StreamReader

            stream_arn, table = provisioned["stream_arn"], provisioned["table"]
            result.present = _present(app_module)
            reader = StreamReader(aws.client("dynamodbstreams"), stream_arn)
            with Client(app_module.app) as client:
                driver = _Driver(client, reader, stream_arn, recorder, meter)

                def timed_matches(encoded: str, password: str) -> bool:
                    matched, wall, cpu = _clocked(lambda: real_matches(encoded, password))
                    driver.hash_times.append((wall, cpu))
                    return matched

                credentials._matches = timed_matches
                driver.event()  # provisioning's own records are not the app's
                _collect()
                for i in range(warmup + iterations):
                    driver.iteration = i
                    samples = _one_sign_in(driver, DEMO_EMAIL, DEMO_PASSWORD, result.present)
                    for sample in samples:
                        sample.warmup = i < warmup
                    result.samples.extend(samples)
                    _tidy(table)
                    driver.event()  # the deletions' REMOVE records are not part of the next batch
                    _trim_stream(table)
                    _collect()
                driver.iteration = -1
                result.extras = _extras(driver, app_module, DEMO_EMAIL, DEMO_PASSWORD, result.present)
                credentials._matches = real_matches
            result.argon2 = _argon2(argon2_repeats)
            result.floor = chalice_floor(max(iterations, 20))
        result.original_failures = sum(sum(s.recording.errors.values()) for s in result.samples)
        with _moto(recorder, LogMeter()):
            from chalicelib import aws
            from devstack.testenv import TEST_ENV

            # this emulator made its own signing key: the same calls, aimed at it
            signing_key = aws.client("kms").describe_key(KeyId=TEST_ENV["OTP_TOKEN_KEY_ID"])["KeyMetadata"][
                "Arn"
            ]
            for n, sample in enumerate(result.samples):  # same calls, same order, nothing around them
                for call in sample.recording.calls:
                    if call.service == "kms" and call.params.get("KeyId", "").startswith("arn:"):
                        call.params["KeyId"] = signing_key
                prepared = prepare(sample.recording.calls)
                with recorder.record() as again:
                    failed, wall, cpu = _timed(lambda p=prepared: replay(p))
                if again.count != sample.recording.count:
                    raise RuntimeError(f"replay of {sample.flow} made {again.count} calls")
                result.replay_failures += failed
                sample.bare_wall, sample.bare_cpu = wall, cpu
                last = n + 1 == len(result.samples) or result.samples[n + 1].iteration != sample.iteration
                if last:
                    _tidy(table)
                    _trim_stream(table)
                    _collect()
    finally:
        clock_module.clock, credentials._matches = real_clock, real_matches
        gc.unfreeze()
    return result


# ---------------------------------------------------------------- summaries


def _ops(recording: Recording) -> str:
    return " + ".join(recording.names) or "(none)"


def _others(recording: Recording) -> dict[str, int]:
    return dict(Counter(call.name for call in recording.others))


AUDIT_PREFIX = "audit#"  # the audit trail's items (chalicelib/audit.py), written by the stream handler


def _is_audit(call: Any) -> bool:
    """A DynamoDB call that writes only the audit trail's items (one per account and hour)."""
    found = call._targets or []
    return bool(found) and all(
        str(key.get("pk", {}).get("S", "")).startswith(AUDIT_PREFIX) for _, _, key in found
    )


def _audit_calls(recording: Recording) -> int:
    return sum(1 for call in recording.dynamodb if _is_audit(call))


def _per(flow: str, sample: Sample, count: int) -> float:
    """DynamoDB calls per what the flow's target counts them by.

    A delivery's target is per mail and counts the mailer's own calls: the
    audit trail's writes, one per account and hour of the batch whatever
    it mails, are counted on their own (``audit_calls``).
    """
    if TARGETS[flow].per == "mail":
        count -= _audit_calls(sample.recording)
        return count / sample.mails if sample.mails else float(count)
    return float(count)


def _counted(flow: str, sample: Sample) -> int:
    rec = sample.recording
    return rec.count if TARGETS[flow].counts == "aws" else len(rec.dynamodb)


def flow_rows(result: Result) -> list[dict[str, Any]]:
    """Per flow of :data:`LOOP`: calls (DynamoDB and the others), request units, log bytes, target, met."""
    rows = []
    for flow in LOOP:
        if not result.present.get(flow, True):
            rows.append({"flow": flow, "present": False, "target": target(flow)})
            continue
        samples = [s for s in result.samples if s.flow == flow and not s.warmup]
        dynamo = [len(s.recording.dynamodb) for s in samples]
        per = [_per(flow, s, _counted(flow, s)) for s in samples]
        units = [s.recording.units for s in samples]
        worst = max(per) if per else float("nan")
        others = Counter()
        for s in samples:
            others.update(_others(s.recording))
        rows.append(
            {
                "flow": flow,
                "present": True,
                "requests": len(samples),
                "dynamodb_calls": max(dynamo) if dynamo else 0,
                "dynamodb_counts_seen": sorted(set(dynamo)),
                "audit_calls": max((_audit_calls(s.recording) for s in samples), default=0),
                "per_target": worst,
                "mails": sum(s.mails for s in samples),
                "operations": sorted({_ops(s.recording) for s in samples}),
                "dynamodb_operations": sorted(
                    {" + ".join(c.name for c in s.recording.dynamodb) for s in samples}
                ),
                "other_calls": {name: n / len(samples) for name, n in sorted(others.items())}
                if samples
                else {},
                "attempts": max((s.recording.attempts for s in samples), default=0),
                "read_units": median([u.read for u in units]),
                "write_units": median([u.write for u in units]),
                "units_sized": all(u.sized for u in units),
                "log_bytes": median([s.log_bytes for s in samples]),
                "log_lines": median([s.log_lines for s in samples]),
                "stream_records": median([s.recording.stream_records for s in samples]),
                "items_created": median([s.recording.items_created for s in samples]),
                "statuses": sorted({str(s.status) for s in samples}),
                "target": target(flow),
                "met": bool(samples) and meets(flow, worst),
            }
        )
    return rows


def extra_rows(result: Result) -> list[dict[str, Any]]:
    rows = []
    for label, sample in result.extras:
        rec = sample.recording
        units = rec.units
        row: dict[str, Any] = {
            "flow": label,
            "status": sample.status,
            "dynamodb_calls": len(rec.dynamodb),
            "audit_calls": _audit_calls(rec),
            "other_calls": _others(rec),
            "operations": _ops(rec),
            "read_units": units.read,
            "write_units": units.write,
            "log_bytes": sample.log_bytes,
        }
        if label in TARGETS:
            value = _per(label, sample, _counted(label, sample))
            row.update(target=target(label), per_target=value, met=meets(label, value))
        rows.append(row)
    return rows


def own_cost(result: Result) -> list[dict[str, Any]]:
    """Per flow: medians of app, bare calls, argon2 and the paired difference (seconds)."""
    rows = []
    for flow in LOOP:
        samples = [s for s in result.samples if s.flow == flow and not s.warmup]
        if not samples:
            continue
        own_cpu = [s.cpu - s.bare_cpu - s.hash_cpu for s in samples]
        own_wall = [s.wall - s.bare_wall - s.hash_wall for s in samples]
        rows.append(
            {
                "flow": flow,
                "requests": len(samples),
                "aws_calls": max(s.recording.count for s in samples),
                "app_cpu": median([s.cpu for s in samples]),
                "app_wall": median([s.wall for s in samples]),
                "bare_cpu": median([s.bare_cpu for s in samples]),
                "bare_wall": median([s.bare_wall for s in samples]),
                "hash_cpu": median([s.hash_cpu for s in samples]),
                "own_cpu": median(own_cpu),
                "own_cpu_mean": mean(own_cpu),
                "own_wall": median(own_wall),
                # what the function itself spends on a CPU: own + its argon2 (the cost model's input;
                # never below argon2 alone: a noisy machine can make a single "own" negative)
                "function_cpu": max(
                    median([s.hash_cpu for s in samples]),
                    median([o + s.hash_cpu for o, s in zip(own_cpu, samples, strict=True)]),
                ),
            }
        )
    return rows


def measure(size: dict[str, int]) -> dict[str, Any]:
    """One run (:func:`run`), as the figures the report and the JSON file hold."""
    result = run(size["iterations"], size["warmup"], size["argon2_repeats"])
    return {
        "iterations": result.iterations,
        "warmup": result.warmup,
        "present": result.present,
        "memory_mb": result.memory_mb,
        "flows": flow_rows(result),
        "extras": extra_rows(result),
        "own": own_cost(result),
        "argon2": result.argon2,
        "chalice_floor": result.floor,
        "replay_failures": result.replay_failures,
        "original_failures": result.original_failures,
        "original_errors": sorted({code for sample in result.samples for code in sample.recording.errors}),
    }


# ---------------------------------------------------------------- the report

_SUMMARY_FLOWS = ("sign-in", "delivery", "resend", "verify", "verify, wrong code", "status")


def _calls_text(row: dict[str, Any]) -> str:
    """The calls of a row as the summary writes them: 2 DynamoDB + 1 kms.Sign."""
    others = " + ".join(f"{n:g} {name}" for name, n in row.get("other_calls", {}).items())
    return f"{row['dynamodb_calls']} DynamoDB" + (f" + {others}" if others else "")


def summary(figures: dict[str, Any] | None) -> list[Measure]:
    found = {row["flow"]: row for row in figures["flows"]} if figures else {}
    extras = {row["flow"]: row for row in figures["extras"]} if figures else {}
    rows = []
    for flow in _SUMMARY_FLOWS:
        row = Measure(f"Round trips: {flow}", target(flow))
        r = found.get(flow)
        if r is not None and not r["present"]:
            row.measured("not present (the app has no such flow yet)", None)
        elif r is not None:
            per = f" ({r['per_target']:g} per mail)" if TARGETS[flow].per == "mail" else ""
            if r.get("audit_calls"):
                per += f"; {r['audit_calls']} of them the audit trail's"
            row.measured(_calls_text(r) + per, r["met"])
        rows.append(row)
    row = Measure(
        "Round trips: every other flow (sign-up, reset, SNS events, JWKS...)", "each its own target"
    )
    if figures:
        checked = [r for r in list(found.values()) + list(extras.values()) if "met" in r]
        missed = [r["flow"] for r in checked if not r["met"]]
        row.measured(
            f"{len(checked) - len(missed)} of {len(checked)} met"
            + (f"; not: {', '.join(missed)}" if missed else ""),
            not missed,
        )
    rows.append(row)
    return rows


def sections(figures: dict[str, Any]) -> list[Section]:
    return [_round_trips_section(figures), _own_section(figures)]


def _units(row: dict[str, Any]) -> str:
    text = f"{row['read_units']:g} / {row['write_units']:g}"
    return text if row.get("units_sized", True) else text + " (some calls not sized)"


def _round_trips_section(figures: dict[str, Any]) -> Section:
    flows = []
    for r in figures["flows"]:
        if not r["present"]:
            flows.append(
                [
                    r["flow"],
                    "not present: the app has no such route or handler yet",
                    "",
                    "",
                    "",
                    "",
                    r["target"],
                    "-",
                ]
            )
            continue
        per = f" ({r['per_target']:g} per mail)" if TARGETS[r["flow"]].per == "mail" else ""
        if r.get("audit_calls"):
            per += f", of which {r['audit_calls']} audit trail"
        others = ", ".join(f"{name} × {n:g}" for name, n in r["other_calls"].items()) or "-"
        flows.append(
            [
                r["flow"],
                r["requests"],
                f"{r['dynamodb_calls']}{per}",
                "; ".join(r["dynamodb_operations"]) or "(none)",
                others,
                _units(r),
                f"{r['log_bytes']:,.0f}",
                r["target"],
                verdict(r["met"]),
            ]
        )
    extras = Table(
        [
            "flow",
            "status",
            "DynamoDB",
            "other AWS calls",
            "calls",
            "read / write units",
            "log bytes",
            "target",
            "",
        ],
        [
            [
                e["flow"],
                e["status"],
                e["dynamodb_calls"],
                ", ".join(f"{k} × {v}" for k, v in e["other_calls"].items()) or "-",
                e["operations"],
                _units(e),
                f"{e['log_bytes']:,}",
                e.get("target", "-"),
                verdict(e["met"]) if "met" in e else "-",
            ]
            for e in figures["extras"]
        ],
    )
    present = figures.get("present", {})
    missing = [flow for flow, there in present.items() if not there]
    return Section(
        TITLES[0],
        [
            Table(
                [
                    "flow",
                    "requests",
                    "DynamoDB calls",
                    "DynamoDB operations",
                    "other AWS calls (per request)",
                    "read / write units",
                    "log bytes",
                    "target",
                    "",
                ],
                flows,
            ),
            "Other outcomes and flows, each counted once in a warm container:",
            extras,
            "The targets count DynamoDB round trips (the DynamoDB calls a request waits for; the one "
            "place they are written is `TARGETS` in `bench/inprocess.py`), except JWKS and discovery, "
            "whose 0 counts every AWS call. The other AWS calls are listed beside them and priced in "
            "the cost model: verify with the right code makes 2 DynamoDB calls (the guess, the device "
            "token on the account) **and one KMS Sign** (the token), 3 AWS round trips in all; a "
            "delivery makes its DynamoDB calls and one SES SendRawEmail per mail.",
            "Counted with botocore's `before-call` event (one per API call, whatever its retries), "
            "registered through `botocore.handlers.BUILTIN_HANDLERS` so that every client the app "
            "creates carries it. Read / write units: DynamoDB on-demand request units of the request "
            "(median), from the exact size of every item each call touched, read from the emulator "
            "before and after the call (`bench/capacity.py`: 1 write unit per started KB of the larger "
            "of before and after, 1 read unit per started 4 KB for a strongly consistent read, twice "
            "that for every item of a transaction; a ConditionCheck as a transactional read). Log bytes: "
            "what the request wrote to stdout, stderr and the app's log handlers (median), as "
            "CloudWatch Logs would ingest it, without Lambda's own START/END/REPORT lines. "
            '"Delivery" is one invocation of the stream handler with the batch moto\'s stream '
            'produced for one send; "delivery, nothing to mail" the batch of a wrong password\'s '
            'counter updates; "delivery event" one SNS message of SES\'s events for a mail ('
            + ", ".join(SES_EVENTS_PER_MAIL)
            + "), each invoking the SNS handler once. When the app keeps an audit trail "
            "(`chalicelib/audit.py`), the stream handler also writes its items (one UpdateItem per "
            "account and hour of the batch): those are shown apart and not counted in the per-mail "
            "target, which counts the mailer's own calls (the claim, the SES message id). Warm "
            "container: the code key's SSM read happens "
            "once per container and is shown on its own."
            + (f" Not present in this app yet: {', '.join(missing)}." if missing else ""),
        ],
        console=True,
    )


def _own_section(figures: dict[str, Any]) -> Section:
    own = Table(
        [
            "flow",
            "requests",
            "AWS calls",
            "through the app",
            "same calls, bare",
            "argon2",
            "own (median)",
            "own (mean)",
            "own, wall time (median)",
        ],
        [
            [r["flow"], r["requests"], r["aws_calls"], ms(r["app_cpu"]), ms(r["bare_cpu"])]
            + [ms(r["hash_cpu"]) if r["hash_cpu"] else "-", f"**{ms(r['own_cpu'])}**"]
            + [ms(r["own_cpu_mean"]), ms(r["own_wall"])]
            for r in figures["own"]
        ],
    )
    argon2, floor = figures["argon2"], figures["chalice_floor"]
    notes = [
        f"- Password hashing on its own: argon2id m={argon2['memory_kib']} KiB, t={argon2['time_cost']}, "
        f"p={argon2['parallelism']} (OWASP minimum, `chalicelib/credentials.py`): "
        f"**{ms(argon2['cpu_median'])} ms CPU** per verification (median of {argon2['repeats']}). "
        "Every sign-in pays exactly one, also for unknown users and wrong passwords. Its cost is chosen.",
        f'- Of "own", Chalice\'s routing and the test client: {ms(floor["cpu_median"])} ms '
        f"(a one-line JSON route with the same options, median of {floor['requests']}).",
        f"- {figures['iterations']} iterations measured (after {figures['warmup']} untimed), each: "
        + ", ".join(f for f in LOOP if figures.get("present", {}).get(f, True))
        + ", through `chalice.test.Client`, with moto's `mock_aws` answering in the same process. "
        "Settings are the production defaults; a fake clock moves 2 hours between iterations so no "
        "send limit trips.",
        "- Bare: every call recorded (its arguments as the app passed them, through "
        "`provide-client-params`) is made again, in the same order, on the same kind of client, "
        "against a freshly provisioned moto, with nothing around it. Calls that failed in the "
        f"app run: {figures['original_failures']}; in the bare run: {figures['replay_failures']}.",
        "- Between two iterations, untimed, both runs delete every item but the users and drop "
        "the stream records already read: moto deep-copies the whole table (stream included) "
        "on each TransactWriteItems, so without this each transaction would cost more than the "
        "last. The garbage collector is off during each timed request (as `timeit` does) and "
        "runs between iterations instead.",
        "- moto's cost is not DynamoDB's: the bare column is the emulator's work (and botocore's), "
        "shown so that the difference is ours. The real per-request time on Lambda is dominated by "
        "the network round trips counted above and by argon2 on a fraction of a vCPU (see the cost model).",
    ]
    return Section(
        TITLES[1],
        [
            own,
            "CPU milliseconds per request (`time.process_time`), except the last column (wall clock, "
            "`perf_counter`). Own = through the app - the same AWS calls made bare - argon2, "
            "per request, then the median (or mean).",
            "\n".join(notes),
        ],
    )
