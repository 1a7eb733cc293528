"""Round trips and own CPU per request: the app in one process against moto.

One run does both. The app is provisioned as in the tests (table with
stream and TTL, code key in SSM, sender, the demo user) inside ``mock_aws``;
requests go through ``chalice.test.Client`` and the stream handler gets
the records moto's stream really produced, as Lambda would hand them over.

Each iteration is one person's whole sign-in: ``POST /otp``, delivery of
its code, ``POST /otp/resend``, delivery, ``POST /otp/verify``. botocore's
hooks (:mod:`bench.calls`) count and record every AWS call of each flow.
The settings are the production defaults; a fake clock moves two hours
between iterations so the send limits never trip (no sleeping, no setting
changed).

Own cost: the recorded calls are then made again, in the same order,
directly on the same kind of client against a freshly provisioned moto,
with no app around them. Per request: own = through the app - the same
calls made bare - argon2 (timed inside the request, reported on its own).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.calls import Recorder, Recording, prepare, replay
from bench.common import Measure, Section, Table, mean, median, ms, verdict

FLOWS = ("sign-in", "delivery", "resend", "verify")
# flow -> (comparison, calls); counts are facts, so the smoke test asserts them
TARGETS: dict[str, tuple[str, int]] = {
    "sign-in": ("<=", 3),
    "delivery": ("<=", 2),
    # one conditional write; a right code adds the device token's write and one KMS Sign
    "verify": ("<=", 3),
    "resend": ("<=", 2),
}
ROUTES = {"sign-in": "/otp", "resend": "/otp/resend", "verify": "/otp/verify"}
TITLES = ("AWS round trips per flow", "Own CPU per request")
HOURS_2 = 7200
STEPS = 5  # requests per whole sign-in: sign-in, delivery, resend, delivery, verify


def meets(flow: str, count: int) -> bool:
    op, limit = TARGETS[flow]
    return count == limit if op == "==" else count <= limit


def target(flow: str) -> str:
    """The target as the report writes it: ``<= 2``."""
    op, limit = TARGETS[flow]
    return f"{op} {limit}"


@dataclass
class Sample:
    flow: str
    status: Any
    wall: float
    cpu: float
    recording: Recording
    hash_wall: float = 0.0
    hash_cpu: float = 0.0
    warmup: bool = False
    bare_wall: float = 0.0
    bare_cpu: float = 0.0


@dataclass
class Extra:
    label: str
    status: Any
    recording: Recording


@dataclass
class Result:
    iterations: int
    warmup: int
    samples: list[Sample] = field(default_factory=list)
    extras: list[Extra] = field(default_factory=list)
    argon2: dict[str, float] = field(default_factory=dict)
    floor: dict[str, float] = field(default_factory=dict)
    replay_failures: int = 0
    original_failures: int = 0


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
def _moto(recorder: Recorder) -> Iterator[dict[str, Any]]:
    """A fresh in-process moto, provisioned, with the app imported against it."""
    from devstack.testenv import forget_containers, provision_demo, use_test_environment

    use_test_environment()
    from moto import mock_aws

    with mock_aws():
        recorder.install()
        forget_containers()
        result = provision_demo()
        try:
            yield result
        finally:
            forget_containers()
            recorder.uninstall()


def _quiet_logs(logger: logging.Logger) -> Callable[[], None]:
    """Send the app's log lines to /dev/null: still formatted and written, as on Lambda, not shown.

    Returns the function that puts them back.
    """
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed by the returned function
    handlers = [h for h in logger.handlers if isinstance(h, logging.StreamHandler)]
    streams = [h.setStream(sink) for h in handlers]

    def restore() -> None:
        for handler, stream in zip(handlers, streams, strict=True):
            handler.setStream(stream)
        sink.close()

    return restore


def _last_code() -> str:
    from devstack.testenv import mail_of, sent_messages

    return mail_of(sent_messages()[-1]).code


def _sent_count() -> int:
    from devstack.testenv import sent_messages

    return len(sent_messages())


class _Driver:
    """Drives the app and records each request."""

    def __init__(self, client: Any, reader: Any, stream_arn: str, recorder: Recorder) -> None:
        self.client = client
        self.reader = reader
        self.stream_arn = stream_arn
        self.recorder = recorder
        self.hash_times: list[tuple[float, float]] = []

    def post(self, flow: str, body: dict[str, Any]) -> tuple[Any, Sample]:
        payload = json.dumps(body)
        headers = {"Content-Type": "application/json"}
        path = ROUTES[flow]
        self.hash_times.clear()
        with self.recorder.record() as recording:
            response, wall, cpu = _timed(lambda: self.client.http.post(path, headers=headers, body=payload))
        data = json.loads(response.body) if response.body else None
        sample = Sample(flow, response.status_code, wall, cpu, recording)
        sample.hash_wall = sum(w for w, _ in self.hash_times)
        sample.hash_cpu = sum(c for _, c in self.hash_times)
        return data, sample

    def get(self, path: str) -> Sample:
        with self.recorder.record() as recording:
            response, wall, cpu = _timed(lambda: self.client.http.get(path))
        return Sample(path, response.status_code, wall, cpu, recording)

    def event(self) -> dict[str, Any]:
        from devstack.streams import lambda_event

        return lambda_event(self.reader.poll(), self.stream_arn)

    def deliver(self, event: dict[str, Any]) -> Sample:
        before = _sent_count()
        with self.recorder.record() as recording:
            _, wall, cpu = _timed(lambda: self.client.lambda_.invoke("send_code", event))
        return Sample("delivery", _sent_count() - before, wall, cpu, recording)


def _check(sample: Sample, expected: Any) -> Sample:
    if sample.status != expected:
        raise RuntimeError(f"{sample.flow}: got {sample.status}, expected {expected}")
    return sample


def _one_sign_in(driver: _Driver, email: str, password: str) -> list[Sample]:
    """The five steps of one person's sign-in; the clock moves as a person would."""
    from chalicelib import clock as clock_module

    clock = clock_module.clock
    data, sign_in = driver.post("sign-in", {"email": email, "password": password})
    _check(sign_in, 200)
    session_id = data["session_id"]
    first = _check(driver.deliver(driver.event()), 1)
    clock.now += 31  # past the 30 s resend cooldown
    _, resend = driver.post("resend", {"session_id": session_id})
    _check(resend, 200)
    second = _check(driver.deliver(driver.event()), 1)
    clock.now += 1
    code = _last_code()
    _, verify = driver.post("verify", {"session_id": session_id, "code": code})
    _check(verify, 200)
    clock.now += HOURS_2  # fresh hourly windows for the next person
    return [sign_in, first, resend, second, verify]


def _extras(driver: _Driver, email: str, password: str) -> list[Extra]:
    """Round trips of the other outcomes, counted once each in a warm container."""
    from chalicelib import clock as clock_module
    from chalicelib import keys

    clock = clock_module.clock
    out: list[Extra] = []

    def add(label: str, sample: Sample) -> None:
        out.append(Extra(label, sample.status, sample.recording))

    _, s = driver.post("sign-in", {"email": email, "password": password + "x"})
    add("sign-in, wrong password (401)", s)
    _, s = driver.post("sign-in", {"email": "nobody@example.com", "password": password})
    add("sign-in, unknown email (401)", s)

    data, _ = driver.post("sign-in", {"email": email, "password": password})
    session_id = data["session_id"]
    _, s = driver.post("sign-in", {"email": email, "password": password})
    add("sign-in within the resend cooldown (429)", s)
    event = driver.event()
    driver.deliver(event)
    add("delivery of a record already mailed (stream redelivery)", driver.deliver(event))
    _, s = driver.post("resend", {"session_id": session_id})
    add("resend within the cooldown (429)", s)
    code = _last_code()
    wrong = f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"
    _, s = driver.post("verify", {"session_id": session_id, "code": wrong})
    add("verify, wrong code (401)", s)
    _, s = driver.post("verify", {"session_id": session_id, "code": code})
    add("verify, right code (200)", s)
    _, s = driver.post("verify", {"session_id": session_id, "code": code})
    add("verify, code already used (410)", s)
    add("delivery of a batch with no new challenge (MODIFY records)", driver.deliver(driver.event()))

    for path in ("/.well-known/jwks.json", "/.well-known/openid-configuration"):
        driver.get(path)  # the keys are read once per container...
        add(f"GET {path}, warm container", driver.get(path))  # ...then no AWS call

    clock.now += HOURS_2
    data, _ = driver.post("sign-in", {"email": email, "password": password})
    driver.event()  # its records are not part of any count
    keys.forget()  # a new container: the code key is not in memory yet
    _, s = driver.post("verify", {"session_id": data["session_id"], "code": "000000"})
    add("verify in a new container: + the code key's SSM read", s)
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


def run(iterations: int, warmup: int = 2, argon2_repeats: int = 20) -> Result:
    """``warmup`` + ``iterations`` whole sign-ins, then the replay of their calls."""
    from chalicelib import clock as clock_module
    from chalicelib import credentials
    from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD

    recorder = Recorder()
    result = Result(iterations=iterations, warmup=warmup)
    real_clock, real_matches = clock_module.clock, credentials._matches
    clock = FakeClock(float(int(time.time()) // 3600 * 3600 + 60))
    clock_module.clock = clock
    try:
        with _moto(recorder) as provisioned:
            from chalice.test import Client

            import app as app_module
            from chalicelib import aws
            from devstack.streams import StreamReader

            stream_arn, table = provisioned["stream_arn"], provisioned["table"]
            quiet = _quiet_logs(app_module.app.log)
            reader = StreamReader(aws.client("dynamodbstreams"), stream_arn)
            with Client(app_module.app) as client:
                driver = _Driver(client, reader, stream_arn, recorder)

                def timed_matches(encoded: str, password: str) -> bool:
                    matched, wall, cpu = _clocked(lambda: real_matches(encoded, password))
                    driver.hash_times.append((wall, cpu))
                    return matched

                credentials._matches = timed_matches
                driver.event()  # provisioning's own records are not the app's
                _collect()
                for i in range(warmup + iterations):
                    samples = _one_sign_in(driver, DEMO_EMAIL, DEMO_PASSWORD)
                    for sample in samples:
                        sample.warmup = i < warmup
                    result.samples.extend(samples)
                    _tidy(table)
                    driver.event()  # the deletions' REMOVE records are not part of the next batch
                    _trim_stream(table)
                    _collect()
                credentials._matches = real_matches
                result.extras = _extras(driver, DEMO_EMAIL, DEMO_PASSWORD)
            result.argon2 = _argon2(argon2_repeats)
            result.floor = chalice_floor(max(iterations, 20))
            quiet()
        result.original_failures = sum(sum(s.recording.errors.values()) for s in result.samples)
        with _moto(recorder):
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
                if (n + 1) % STEPS == 0:
                    _tidy(table)
                    _trim_stream(table)
                    _collect()
    finally:
        clock_module.clock, credentials._matches = real_clock, real_matches
        gc.unfreeze()
    return result


# ---------------------------------------------------------------- summaries


def round_trips(result: Result) -> list[dict[str, Any]]:
    """Per flow: calls per request (every measured request), the calls, target, met."""
    rows = []
    for flow in FLOWS:
        samples = [s for s in result.samples if s.flow == flow and not s.warmup]
        counts = sorted({s.recording.count for s in samples})
        names = sorted({" + ".join(s.recording.names) for s in samples})
        worst = max(counts) if counts else -1
        rows.append(
            {
                "flow": flow,
                "requests": len(samples),
                "calls": worst,
                "counts_seen": counts,
                "operations": names,
                "attempts": max((s.recording.attempts for s in samples), default=0),
                "target": target(flow),
                "met": bool(samples) and meets(flow, worst),
            }
        )
    return rows


def extra_round_trips(result: Result) -> list[dict[str, Any]]:
    return [
        {
            "flow": extra.label,
            "status": extra.status,
            "calls": extra.recording.count,
            "operations": " + ".join(extra.recording.names) or "(none)",
        }
        for extra in result.extras
    ]


def own_cost(result: Result) -> list[dict[str, Any]]:
    """Per flow: medians of app, bare calls, argon2 and the paired difference (ms are seconds here)."""
    rows = []
    for flow in FLOWS:
        samples = [s for s in result.samples if s.flow == flow and not s.warmup]
        own_cpu = [s.cpu - s.bare_cpu - s.hash_cpu for s in samples]
        own_wall = [s.wall - s.bare_wall - s.hash_wall for s in samples]
        rows.append(
            {
                "flow": flow,
                "requests": len(samples),
                "aws_calls": samples[0].recording.count if samples else 0,
                "app_cpu": median([s.cpu for s in samples]),
                "app_wall": median([s.wall for s in samples]),
                "bare_cpu": median([s.bare_cpu for s in samples]),
                "bare_wall": median([s.bare_wall for s in samples]),
                "hash_cpu": median([s.hash_cpu for s in samples]),
                "own_cpu": median(own_cpu),
                "own_cpu_mean": mean(own_cpu),
                "own_wall": median(own_wall),
            }
        )
    return rows


def measure(size: dict[str, int]) -> dict[str, Any]:
    """One run (:func:`run`), as the figures the report and the JSON file hold."""
    result = run(size["iterations"], size["warmup"], size["argon2_repeats"])
    return {
        "iterations": result.iterations,
        "warmup": result.warmup,
        "round_trips": round_trips(result),
        "extras": extra_round_trips(result),
        "own": own_cost(result),
        "argon2": result.argon2,
        "chalice_floor": result.floor,
        "replay_failures": result.replay_failures,
        "original_failures": result.original_failures,
        "original_errors": sorted({code for sample in result.samples for code in sample.recording.errors}),
    }


# ---------------------------------------------------------------- the report


def summary(figures: dict[str, Any] | None) -> list[Measure]:
    found = {row["flow"]: row for row in figures["round_trips"]} if figures else {}
    rows = []
    for flow in FLOWS:
        row = Measure(f"AWS calls per {flow}", target(flow))
        if flow in found:
            row.measured(str(found[flow]["calls"]), found[flow]["met"])
        rows.append(row)
    return rows


def sections(figures: dict[str, Any]) -> list[Section]:
    return [_round_trips_section(figures), _own_section(figures)]


def _round_trips_section(figures: dict[str, Any]) -> Section:
    flows = Table(
        ["flow", "requests", "AWS calls", "calls", "HTTP attempts", "target", ""],
        [
            [r["flow"], r["requests"], r["calls"], ", ".join(r["operations"]), r["attempts"], r["target"]]
            + [verdict(r["met"])]
            for r in figures["round_trips"]
        ],
    )
    extras = Table(
        ["flow", "status", "AWS calls", "calls"],
        [[e["flow"], e["status"], e["calls"], e["operations"]] for e in figures["extras"]],
    )
    return Section(
        TITLES[0],
        [
            flows,
            "Other outcomes, each counted once in a warm container:",
            extras,
            "Counted with botocore's `before-call` event (one per API call, whatever its retries; "
            "`response-received` counts HTTP attempts), registered through "
            "`botocore.handlers.BUILTIN_HANDLERS` so that every client the app creates carries it. "
            '"Delivery" is one invocation of the stream handler with the batch moto\'s stream '
            "produced for one send (the status column of deliveries is the number of emails sent). "
            "Warm container: the code key's SSM read happens once per container and is shown on "
            "its own in the last row. What the race-proof failed sign-in cap costs: sign-in is "
            "GetItem (the user), one TransactWriteItems that takes a password-check slot in the "
            "address's and the network's windows before the hash, and the session's "
            "TransactWriteItems, which also gives the slot back; a wrong password stops after the "
            "second call, and only a right password refused by a send limit makes a fourth (the "
            "slot given back on its own). Verify with the right code adds the device token's UpdateItem "
            "on the account and one KMS Sign (the token).",
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
            + [ms(r["hash_cpu"]) if r["flow"] == "sign-in" else "-", f"**{ms(r['own_cpu'])}**"]
            + [ms(r["own_cpu_mean"]), ms(r["own_wall"])]
            for r in figures["own"]
        ],
    )
    argon2, floor = figures["argon2"], figures["chalice_floor"]
    notes = [
        f"- Password hashing on its own: argon2id m={argon2['memory_kib']} KiB, t={argon2['time_cost']}, "
        f"p={argon2['parallelism']} (OWASP minimum, `chalicelib/credentials.py`): "
        f"**{ms(argon2['cpu_median'])} ms CPU** per verification (median of {argon2['repeats']}). "
        "Every sign-in pays exactly one, also for unknown users. Its cost is chosen.",
        f'- Of "own", Chalice\'s routing and the test client: {ms(floor["cpu_median"])} ms '
        f"(a one-line JSON route with the same options, median of {floor['requests']}).",
        f"- {figures['iterations']} whole sign-ins measured (after {figures['warmup']} untimed): "
        "`POST /otp`, delivery, `POST /otp/resend`, delivery, `POST /otp/verify`, through "
        "`chalice.test.Client`, with moto's `mock_aws` answering in the same process. Settings "
        "are the production defaults; a fake clock moves 2 hours between sign-ins so no send "
        "limit trips.",
        "- Bare: every call recorded (its arguments as the app passed them, through "
        "`provide-client-params`) is made again, in the same order, on the same kind of client, "
        "against a freshly provisioned moto, with nothing around it. Calls that failed in the "
        f"app run: {figures['original_failures']}; in the bare run: {figures['replay_failures']}.",
        "- Between two sign-ins, untimed, both runs delete every item but the users and drop "
        "the stream records already read: moto deep-copies the whole table (stream included) "
        "on each TransactWriteItems, so without this each transaction would cost more than the "
        "last. The garbage collector is off during each timed request (as `timeit` does) and "
        "runs between sign-ins instead.",
        "- moto's cost is not DynamoDB's: the bare column is the emulator's work, shown so that "
        "the difference is ours. The real per-request time on Lambda is dominated by the network "
        "round trips counted above.",
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
