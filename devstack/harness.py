"""Start the real local stack from a test or a benchmark, exactly as a user does.

    from devstack.harness import LocalStack, code_of

    with LocalStack(env={"OTP_SENDS_PER_IP_PER_HOUR": "1000"}) as stack:
        response = stack.post("/otp", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
        mail = stack.wait_for_mail(DEMO_EMAIL)
        code = code_of(mail)

What runs is ``.venv/bin/python -m devstack`` (what ``make run`` runs after its
setup step) in a clean environment: none of the test process's ``OTP_*``,
``AWS_*`` or ``LOCAL_*`` variables leak in, only ``env``. Each of the
servers gets a free port on 127.0.0.1, so stacks can run side by side.

Entering waits until the stack printed its ready line and the API, the
mailbox, the example relying app (when it can start; see ``wait_example``)
and the login page (when ``frontend/`` exists; see ``wait_web``) answer.
Leaving sends SIGINT (Ctrl-C), waits for the stack to stop, and fails with
:class:`LeftoverProcesses` if any process it started, or any process in a
process group it created, is still there.

Every wait (coming up, mail, stopping) polls for its event and gives up only
after a generous bound, ``WAIT_SECONDS`` (3 minutes to come up).

Attributes: ``api_url``, ``mailbox_url``, ``web_url``, ``aws_url``,
``example_url``, ``output`` (console text so far), ``returncode`` (after
leaving).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from devstack.environment import PORTS, ROOT, without
from devstack.mailbox import code_in
from devstack.run import READY_LINE, example_problem

PYTHON = ROOT / ".venv" / "bin" / "python"
COMMAND = [str(PYTHON if PYTHON.exists() else Path(sys.executable)), "-m", "devstack"]
PORT_VARIABLES = tuple(port.variable for port in PORTS)
# Each wait below returns as soon as what it waits for has happened; its bound
# only stops a broken stack from hanging the run, so it leaves room for a
# machine busy with other work (no test asserts how long anything took).
WAIT_SECONDS = 120.0


class StackFailed(RuntimeError):
    """The stack did not come up; the message ends with its console output."""


class LeftoverProcesses(AssertionError):
    """Processes the stack started were still running after it stopped."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that nothing listens on right now (127.0.0.1)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def clean_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the stack's variables, plus ``env``."""
    return {**without(os.environ), **(env or {})}


def code_of(mail: Mapping[str, Any]) -> str:
    """The sign-in code in a message from :meth:`LocalStack.messages`."""
    return code_in(mail["text"])


def _free_port_environment(env: Mapping[str, str] | None) -> dict[str, str]:
    """A clean environment with a free port for each server, plus ``env``."""
    ports = dict(zip(PORT_VARIABLES, map(str, free_ports(len(PORT_VARIABLES))), strict=True))
    return clean_environment({**ports, **(env or {})})


# ------------------------------------------------------------ processes


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, start time) of every process (Linux /proc, else ps)."""
    table: dict[int, tuple[int, int, str]] = {}
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] == "Z":  # a zombie has exited; its parent has yet to reap it
                continue
            table[int(entry.name)] = (int(fields[1]), int(fields[2]), fields[19])
        return table
    listing = subprocess.run(
        ["ps", "-A", "-o", "pid=", "-o", "ppid=", "-o", "pgid=", "-o", "stat="],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in listing.splitlines():
        pid, ppid, pgid, state = line.split()[:4]
        if not state.startswith("Z"):
            table[int(pid)] = (int(ppid), int(pgid), "")
    return table


def descendants(root: int) -> dict[int, tuple[int, int, str]]:
    """``root`` and every process below it, with their groups and start times."""
    table = _processes()
    found = {root: table[root]} if root in table else {}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, pgid, start) in table.items():
            if ppid in found and pid not in found:
                found[pid] = (ppid, pgid, start)
                changed = True
    return found


def leftovers(started: Mapping[int, tuple[int, int, str]]) -> list[int]:
    """Processes still alive that were ``started`` (same start time) or share a group with them."""
    groups = {pgid for _, pgid, _ in started.values()}
    alive = []
    for pid, (_, pgid, start) in _processes().items():
        same = pid in started and started[pid][2] == start
        if same or pgid in groups:
            alive.append(pid)
    return sorted(alive)


# ------------------------------------------------------------ the stack


class LocalStack:
    """The real local stack in a context manager (see the module docstring).

    ``env``: extra environment for the stack (``OTP_*`` overrides, ports).
    ``wait_web``: wait for the login page too; None (default) waits when
    ``frontend/package.json`` exists. ``wait_example``: wait for the example
    relying app; None (default) waits when it can start (its file is there
    and Flask and PyJWT are installed). ``timeout``: seconds to come up.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        wait_web: bool | None = None,
        wait_example: bool | None = None,
        timeout: float = 180.0,
    ) -> None:
        self.env = _free_port_environment(env)
        port = {name: self.env[name] for name in PORT_VARIABLES}
        self.aws_url = f"http://127.0.0.1:{port['LOCAL_AWS_PORT']}"
        self.api_url = f"http://127.0.0.1:{port['LOCAL_API_PORT']}"
        self.mailbox_url = f"http://127.0.0.1:{port['LOCAL_MAILBOX_PORT']}"
        self.web_url = f"http://127.0.0.1:{port['LOCAL_WEB_PORT']}"
        self.example_url = f"http://127.0.0.1:{port['LOCAL_EXAMPLE_PORT']}"
        self.wait_web = (ROOT / "frontend" / "package.json").is_file() if wait_web is None else wait_web
        self.wait_example = example_problem() is None if wait_example is None else wait_example
        self.timeout = timeout
        self.returncode: int | None = None
        self.http = requests.Session()
        self.http.trust_env = False  # never through a proxy
        self._lines: list[str] = []
        self._process: subprocess.Popen[str] | None = None
        self._started: dict[int, tuple[int, int, str]] = {}

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def operator_environment(self) -> dict[str, str]:
        """The environment of an operator command run against this stack (its AWS endpoint)."""
        return clean_environment({"AWS_ENDPOINT_URL": self.aws_url})

    # ---------------------------------------------------------------- HTTP

    def post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        """POST ``body`` as JSON to the API (``path`` like ``/otp``)."""
        return self.http.post(self.api_url + path, json=body, timeout=WAIT_SECONDS, **kwargs)

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """The mailbox's messages (``GET /api/messages``), newest first; only those to ``to`` if given."""
        response = self.http.get(self.mailbox_url + "/api/messages", timeout=WAIT_SECONDS)
        response.raise_for_status()
        found = response.json()
        return [m for m in found if to is None or to in m["to"]]

    def wait_for_mail(self, to: str, count: int = 1, timeout: float = WAIT_SECONDS) -> dict[str, Any]:
        """The newest message to ``to`` once there are at least ``count`` of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(to)
            if len(found) >= count:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} messages to {to}; output:\n{self.output}")
            time.sleep(0.05)

    def sign_in(self, email: str, password: str) -> dict[str, Any]:
        """A whole sign-in over HTTP: the password, the code from the mailbox, verify; its 200 body."""
        before = len(self.messages(email))
        started = self.post("/otp", {"email": email, "password": password})
        assert started.status_code == 200, started.text
        code = code_of(self.wait_for_mail(email, count=before + 1))
        verified = self.post("/otp/verify", {"session_id": started.json()["session_id"], "code": code})
        assert verified.status_code == 200, verified.text
        return dict(verified.json())

    # ---------------------------------------------------------------- life cycle

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.append(line)

    def _answers(self, url: str) -> bool:
        try:
            self.http.get(url, timeout=1)
            return True
        except requests.RequestException:
            return False

    def start(self) -> LocalStack:
        self._process = subprocess.Popen(
            COMMAND,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own group, as a terminal's foreground job would be
        )
        threading.Thread(target=self._read, daemon=True).start()
        urls = [self.api_url + "/", self.mailbox_url + "/api/messages"]
        if self.wait_web:
            urls.append(self.web_url + "/")
        if self.wait_example:
            urls.append(self.example_url + "/")
        deadline = time.monotonic() + self.timeout
        while not (READY_LINE in self.output and all(self._answers(u) for u in urls)):
            if self._process.poll() is not None:
                time.sleep(0.2)  # let the reader catch the last lines
                raise StackFailed(f"the stack exited with {self._process.returncode}:\n{self.output}")
            if time.monotonic() > deadline:
                self.stop(check=False)
                raise StackFailed(f"the stack was not ready within {self.timeout} s:\n{self.output}")
            time.sleep(0.05)
        self._started = descendants(self._process.pid)
        return self

    def stop(self, check: bool = True, timeout: float = WAIT_SECONDS) -> None:
        """Ctrl-C, wait, then check that nothing it started is left (kills and fails if so)."""
        process = self._process
        if process is None or self.returncode is not None:
            return
        if process.poll() is None:
            self._started.update(descendants(process.pid))
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.returncode = process.returncode
        left = leftovers(self._started)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if check and left:
            raise LeftoverProcesses(f"still running after the stack stopped: {left}\n{self.output}")

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(check=kind is None)
        self.http.close()


def run_command(env: Mapping[str, str], timeout: float = WAIT_SECONDS) -> subprocess.CompletedProcess[str]:
    """Run the stack command to completion (for start-up errors): free ports plus ``env``."""
    return subprocess.run(
        COMMAND,
        cwd=ROOT,
        env=_free_port_environment(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )
