"""Load on the local stack, and the time from ``POST /otp`` to the mailbox.

The real local stack (``devstack.harness.LocalStack``: moto server, chalice
local, the stream pump, the mailbox, all on 127.0.0.1 and free ports) is
started with one setting raised: ``OTP_SENDS_PER_IP_PER_HOUR`` (every
request comes from 127.0.0.1, so the per-IP limit of 50 an hour would stop
the run). Each sign-in is a different user (created with
``ops.users.add_user`` against the stack), so the per-address
limits and the cooldown stay as configured and never trip.

1. The local server's floor: ``POST /otp`` with ``{}``, one at a time (a
   400 before any AWS call or hashing).
2. Mailbox latency: sign-ins one at a time; for each, the mailbox is polled
   (every 10 ms) from the moment ``POST /otp`` returned until the message
   to that address is there.
3. Load, in rounds of ``ROUND_SIZE`` users, each round on a freshly started
   stack (see ``ROUND_SIZE``): a fixed list of requests shared by a few
   concurrent clients, each with its own connection and a timeout on every
   request. Sign-ins (one per user, plus some with a wrong password:
   expected 401), then, once every code is in the mailbox, verifies (the
   right code for each session, plus some wrong codes first: expected
   401). Anything else, a timeout included, is an error.

Bounded: fixed request counts, per-request timeouts, and a deadline per
phase after which no new request is started.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bench.common import PYTHON, ROOT, Measure, Section, Table, ms, percentile, verdict

PASSWORD = "bench-password-1"
STACK_ENV = {"OTP_SENDS_PER_IP_PER_HOUR": "100000"}
TIMEOUT = (2.0, 10.0)  # connect, read (seconds)
PHASE_DEADLINE = 180.0
MAIL_WAIT = 10.0
LATENCY_TARGET_P95 = 1.0
ERRORS_TARGET = "0 besides expected 401s"
TITLES = ("Load on the local stack",)
# Load runs in rounds, each on a freshly started stack: moto server's TransactWriteItems
# deep-copies the whole table on every call (the emulator keeps the stream out of that
# copy), so its cost grows with every item written; a long run on one stack would measure
# that copying, not the app.
ROUND_SIZE = 50
SIGN_IN = "sign-in (POST /otp)"
VERIFY = "verify (POST /otp/verify)"

_ADD_USERS = """
import sys
from chalicelib import settings
from ops.stage import apply_stage
from ops.users import add_user
apply_stage("local")
cfg = settings.load()
password = sys.stdin.readline().rstrip("\\n")
for email in sys.argv[1:]:
    add_user(cfg, email, password)
"""


def _add_users(stack: Any, emails: list[str]) -> None:
    subprocess.run(
        [PYTHON, "-c", _ADD_USERS, *emails],
        cwd=ROOT,
        env=stack.operator_environment(),
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )


@dataclass
class Outcome:
    kind: str
    key: str  # the user's address
    expected: int
    status: int | None  # None: no answer (timeout, connection error)
    seconds: float
    body: Any = None
    error: str = ""


# One job: requests one client makes in order (a wrong code must come before the right one).
Request = tuple[str, str, str, dict[str, Any], int]  # kind, key, path, body, expected status


@dataclass
class Phase:
    name: str
    clients: int
    outcomes: list[Outcome] = field(default_factory=list)
    wall: float = 0.0
    not_started: int = 0

    def summary(self) -> dict[str, Any]:
        times = [o.seconds for o in self.outcomes]
        errors = [o for o in self.outcomes if o.status != o.expected]
        return {
            "phase": self.name,
            "clients": self.clients,
            "requests": len(self.outcomes),
            "not_started": self.not_started,
            "statuses": dict(sorted(Counter(str(o.status) for o in self.outcomes).items())),
            "errors": len(errors) + self.not_started,
            "error_examples": [f"{o.kind}: {o.status} {o.error}".strip() for o in errors[:3]],
            "seconds": self.wall,
            "rps": len(self.outcomes) / self.wall if self.wall else float("nan"),
            "p50": percentile(times, 50),
            "p95": percentile(times, 95),
            "p99": percentile(times, 99),
            "max": max(times, default=float("nan")),
        }


def _session(pool: dict[int, Any]) -> Any:
    import requests

    key = threading.get_ident()
    if key not in pool:
        http = requests.Session()
        http.trust_env = False  # 127.0.0.1 only, never through a proxy
        pool[key] = http
    return pool[key]


def _run_phase(name: str, url: str, jobs: list[list[Request]], clients: int) -> Phase:
    """Make every job's requests, in order, with ``clients`` concurrent workers."""
    phase = Phase(name, clients)
    pool: dict[int, Any] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + PHASE_DEADLINE

    def one(job: list[Request]) -> None:
        for kind, key, path, body, expected in job:
            if time.monotonic() > deadline:
                with lock:
                    phase.not_started += 1
                continue
            http = _session(pool)
            start = time.perf_counter()
            try:
                response = http.post(url + path, json=body, timeout=TIMEOUT)
                outcome = Outcome(kind, key, expected, response.status_code, time.perf_counter() - start)
                if response.headers.get("content-type", "").startswith("application/json"):
                    outcome.body = response.json()
            except Exception as error:  # noqa: BLE001 - every failure is counted, none stops the run
                outcome = Outcome(
                    kind, key, expected, None, time.perf_counter() - start, error=type(error).__name__
                )
            with lock:
                phase.outcomes.append(outcome)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as executor:
        list(executor.map(one, jobs))
    phase.wall = time.perf_counter() - started
    for http in pool.values():
        http.close()
    return phase


def _wait(condition: Callable[[], bool], timeout: float, interval: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def mailbox_latency(stack: Any, emails: list[str]) -> dict[str, Any]:
    import requests

    http = requests.Session()
    http.trust_env = False
    latencies, failures = [], []
    for email in emails:
        response = http.post(
            stack.api_url + "/otp", json={"email": email, "password": PASSWORD}, timeout=TIMEOUT
        )
        returned = time.perf_counter()
        if response.status_code != 200:
            failures.append(f"{email}: POST /otp {response.status_code}")
            continue

        def arrived(email: str = email) -> bool:
            found = http.get(stack.mailbox_url + "/api/messages", timeout=TIMEOUT).json()
            return any(email in message["to"] for message in found)

        if _wait(arrived, MAIL_WAIT, 0.01):
            latencies.append(time.perf_counter() - returned)
        else:
            failures.append(f"{email}: no message within {MAIL_WAIT} s")
    http.close()
    p95 = percentile(latencies, 95)
    return {
        "sign_ins": len(emails),
        "arrived": len(latencies),
        "failures": failures,
        "p50": percentile(latencies, 50),
        "p95": p95,
        "max": max(latencies, default=float("nan")),
        "min": min(latencies, default=float("nan")),
        "target_p95": LATENCY_TARGET_P95,
        "met": not failures and p95 < LATENCY_TARGET_P95,
    }


def _codes(stack: Any, emails: set[str]) -> dict[str, str]:
    from devstack.harness import code_of

    codes = {}
    for message in reversed(stack.messages()):  # oldest first, so the newest code wins
        for to in message["to"]:
            if to in emails:
                codes[to] = code_of(message)
    return codes


def _round(stack: Any, emails: list[str], clients: int, wrong_every: int) -> tuple[Phase, Phase, int]:
    """Sign-ins then verifies; every ``wrong_every``-th user also sends a wrong password / code."""
    jobs: list[list[Request]] = []
    for n, email in enumerate(emails):
        job: list[Request] = []
        if n % wrong_every == 0:
            body = {"email": email, "password": "wrong-password"}
            job.append(("sign-in, wrong password", email, "/otp", body, 401))
        job.append(("sign-in", email, "/otp", {"email": email, "password": PASSWORD}, 200))
        jobs.append(job)
    sign_in = _run_phase(SIGN_IN, stack.api_url, jobs, clients)

    sessions = {o.key: o.body["session_id"] for o in sign_in.outcomes if o.status == 200 and o.body}
    wanted = set(sessions)
    _wait(lambda: len(_codes(stack, wanted)) >= len(wanted), 60.0, 0.2)
    codes = _codes(stack, wanted)

    jobs = []
    for n, email in enumerate(emails):
        session_id, code = sessions.get(email), codes.get(email)
        if session_id is None or code is None:
            continue
        job = []
        if n % wrong_every == 0:
            wrong = f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"
            body = {"session_id": session_id, "code": wrong}
            job.append(("verify, wrong code", email, "/otp/verify", body, 401))
        job.append(("verify", email, "/otp/verify", {"session_id": session_id, "code": code}, 200))
        jobs.append(job)
    verify = _run_phase(VERIFY, stack.api_url, jobs, clients)
    return sign_in, verify, len(codes)


def _merge(name: str, phases: list[Phase]) -> Phase:
    merged = Phase(name, phases[0].clients)
    for phase in phases:
        merged.outcomes += phase.outcomes
        merged.wall += phase.wall
        merged.not_started += phase.not_started
    return merged


def http_floor(stack: Any, requests_count: int) -> dict[str, Any]:
    """The local server's own time: ``POST /otp`` with ``{}`` is a 400 before any AWS call or hashing."""
    jobs: list[list[Request]] = [[("bad request", "-", "/otp", {}, 400)] for _ in range(requests_count)]
    return _run_phase("POST /otp {} (400: no AWS call, no hashing)", stack.api_url, jobs, 1).summary()


def chalice_local_stall(requests_count: int = 20) -> dict[str, float]:
    """Chalice's local server with a one-line app, here in this process: as shipped, and with
    its request handler's ``disable_nagle_algorithm`` set. The difference is the delayed-ACK
    stall every answer of ``chalice local`` waits for (the headers and the body leave in
    separate small writes)."""
    import requests
    from chalice import Chalice, local
    from chalice.config import Config

    tiny = Chalice(app_name="bench-tiny")

    @tiny.route("/", methods=["POST"])
    def answer() -> dict[str, bool]:
        return {"ok": True}

    from devstack.harness import free_ports

    out: dict[str, float] = {}
    handler = local.ChaliceRequestHandler
    shipped, log_message = handler.disable_nagle_algorithm, handler.log_message
    handler.log_message = lambda *args, **kwargs: None  # type: ignore[method-assign]
    try:
        for label, nodelay in (("as_shipped", shipped), ("nodelay", True)):
            handler.disable_nagle_algorithm = nodelay
            (port,) = free_ports(1)
            server = local.LocalDevServer(tiny, Config.create(), "127.0.0.1", port)
            thread = threading.Thread(target=server.server.serve_forever, daemon=True)
            thread.start()
            http = requests.Session()
            http.trust_env = False
            times = []
            for _ in range(requests_count):
                start = time.perf_counter()
                http.post(f"http://127.0.0.1:{port}/", json={}, timeout=TIMEOUT)
                times.append(time.perf_counter() - start)
            http.close()
            server.server.shutdown()
            server.server.server_close()
            thread.join(5)
            out[label] = percentile(times, 50)
    finally:
        handler.disable_nagle_algorithm, handler.log_message = shipped, log_message  # type: ignore[method-assign]
    return out


def run(
    sign_ins: int,
    latency_sign_ins: int,
    clients: int,
    wrong_every: int = 10,
    round_size: int = ROUND_SIZE,
) -> dict[str, Any]:
    """Start the local stack (once for latency, once per round of load), measure; always stopped."""
    from devstack.harness import LocalStack

    latency_users = [f"latency-{n:04d}@bench.example.com" for n in range(latency_sign_ins)]
    load_users = [f"load-{n:04d}@bench.example.com" for n in range(sign_ins)]
    started = time.perf_counter()
    with LocalStack(env=STACK_ENV, wait_web=False) as stack:
        up = time.perf_counter() - started
        _add_users(stack, latency_users)
        floor = http_floor(stack, max(latency_sign_ins, 5))
        latency = mailbox_latency(stack, latency_users)
    sign_ins_phases, verify_phases, codes = [], [], 0
    for first in range(0, len(load_users), round_size):
        users = load_users[first : first + round_size]
        with LocalStack(env=STACK_ENV, wait_web=False) as stack:
            _add_users(stack, users)
            sign_in, verify, found = _round(stack, users, clients, wrong_every)
        sign_ins_phases.append(sign_in)
        verify_phases.append(verify)
        codes += found
    return {
        "stack_env": STACK_ENV,
        "stack_start_seconds": up,
        "timeout": TIMEOUT,
        "phase_deadline": PHASE_DEADLINE,
        "floor": floor,
        "stall": chalice_local_stall(),
        "latency": latency,
        "load": {
            "users": len(load_users),
            "rounds": len(sign_ins_phases),
            "round_size": round_size,
            "codes_found": codes,
            "wrong_every": wrong_every,
            "phases": [
                _merge(SIGN_IN, sign_ins_phases).summary(),
                _merge(VERIFY, verify_phases).summary(),
            ],
        },
    }


def measure(size: dict[str, int]) -> dict[str, Any]:
    return run(size["sign_ins"], size["latency_sign_ins"], size["clients"])


# ---------------------------------------------------------------- the report

LATENCY_TARGET = f"< {LATENCY_TARGET_P95:g} s"


def summary(local: dict[str, Any] | None) -> list[Measure]:
    errors = Measure("Load on the local stack: errors", ERRORS_TARGET)
    latency = Measure("`POST /otp` returned -> message in the mailbox, p95", LATENCY_TARGET)
    if local is None:
        return [errors, latency]
    phases = local["load"]["phases"]
    count = sum(p["errors"] for p in phases)
    expected_401 = sum(int(p["statuses"].get("401", 0)) for p in phases)
    errors.measured(f"{count} ({expected_401} expected 401s)", count == 0)
    rates = [
        Measure(f"Load: {p['phase']}", "-").measured(f"{p['rps']:.1f} req/s, p95 {ms(p['p95'])} ms")
        for p in phases
    ]
    lat = local["latency"]
    latency.measured(f"{ms(lat['p95'])} ms (p50 {ms(lat['p50'])} ms)", lat["met"])
    return [errors, *rates, latency]


def _statuses(phase: dict[str, Any]) -> str:
    return ", ".join(f"{status}: {count}" for status, count in phase["statuses"].items())


def sections(local: dict[str, Any]) -> list[Section]:
    lat, loaded, floor = local["latency"], local["load"], local["floor"]
    phases = Table(
        ["phase", "clients", "requests", "statuses", "errors", "seconds", "req/s"]
        + ["p50 ms", "p95 ms", "p99 ms", "max ms"],
        [
            [p["phase"], p["clients"], p["requests"], _statuses(p)]
            + [p["errors"], f"{p['seconds']:.1f}", f"{p['rps']:.1f}"]
            + [ms(p[name]) for name in ("p50", "p95", "p99", "max")]
            for p in loaded["phases"]
        ],
    )
    blocks: list[Table | str] = [phases]
    examples = [e for p in loaded["phases"] for e in p["error_examples"]]
    if examples:
        blocks.append("Errors, first few: " + "; ".join(examples))
    blocks += [
        f"Baseline in the same run, the local server's own time: `POST /otp` with `{{}}` (a 400 "
        f"before any AWS call or hashing), one at a time: p50 {ms(floor['p50'])} ms, p95 "
        f"{ms(floor['p95'])} ms over {floor['requests']} requests. Chalice's local server as "
        "shipped writes each answer in several small packets with Nagle's algorithm on, so each "
        "answer waits for a delayed ACK: a one-line Chalice app on that server class, in the "
        f"bench's own process, answers in {ms(local['stall']['as_shipped'])} ms as shipped and in "
        f"{ms(local['stall']['nodelay'])} ms with its request handler's `disable_nagle_algorithm` "
        "set (p50 of 20). The local stack's API sets it (`devstack/api.py`).",
        f"{loaded['users']} users, one sign-in each; every {loaded['wrong_every']}th user also "
        "sends a wrong password first (401 expected) and, later, a wrong code before the right "
        f"one (401 expected). In {loaded['rounds']} round(s) of up to {loaded['round_size']} users, "
        "each on a freshly started stack: moto server's TransactWriteItems deep-copies the whole "
        "table on every call (the local emulator keeps the stream out of that copy), so its cost "
        "grows with every item written, and one long run would measure that copying. Figures are "
        "over all rounds; seconds and req/s count the phases' own time. In each round, verifies "
        "start once all codes are in the "
        f"mailbox ({loaded['codes_found']} found in all). Every request has a timeout "
        f"({local['timeout'][0]:g} s connect, {local['timeout'][1]:g} s read); each phase stops "
        f"starting requests after {local['phase_deadline']:g} s. Everything on 127.0.0.1; the "
        "load clients share the machine's cores with the stack.",
        "### `POST /otp` returned -> message in the local mailbox",
        Table(
            ["sign-ins", "arrived", "p50 ms", "p95 ms", "max ms", "target p95", ""],
            [
                [lat["sign_ins"], lat["arrived"], ms(lat["p50"]), ms(lat["p95"]), ms(lat["max"])]
                + [LATENCY_TARGET, verdict(lat["met"])]
            ],
        ),
    ]
    if lat["failures"]:
        blocks.append("Failures: " + "; ".join(lat["failures"][:5]))
    blocks += [
        "One sign-in at a time, each a different user; from the moment `POST /otp` returned, "
        "`GET /api/messages` every 10 ms until the message to that address is listed. The "
        "stream pump polls the emulated stream every 0.2 s, which sets most of this time "
        "(on AWS, Lambda polls the stream itself).",
        f"The stack: `devstack/harness.py` (`.venv/bin/python -m devstack` on free ports), "
        f"started in {local['stack_start_seconds']:.1f} s, with "
        + ", ".join(f"`{k}={v}`" for k, v in local["stack_env"].items())
        + " (every request comes from 127.0.0.1, so the per-IP limit of 50 an hour would stop "
        "the run); all other settings as configured. Users made with `ops.users.add_user`.",
    ]
    return [Section(TITLES[0], blocks)]
