"""``python -m devstack``: the whole system on this machine, in the foreground.

Order of start-up (nothing waits on a fixed sleep; readiness is polled):

1. ports and settings are checked; a problem is one line naming the
   variable or the port, and nothing starts;
2. the AWS emulator (moto server + mailbox), the API (chalice local), the
   login page (vite, when ``frontend/`` exists) and the example relying app
   (``examples/relying_app``) start side by side;
3. once the emulator answers: the table with its stream and TTL, the code
   key, the sender identity, SES's configuration set with its event
   destination to the events topic, and the demo user are provisioned;
4. the stream pump starts (in this process) and calls the app's stream
   handler; the SNS pump too, which subscribes a local queue to the events
   topic and calls the app's SNS handler with each SES event;
5. when everything answers, the URLs and the demo credentials are printed.

Ctrl-C or SIGTERM stops the pump and every child process group (TERM, then
KILL after a few seconds; a second Ctrl-C does not wait).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from devstack.environment import (
    API,
    AWS,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    EXAMPLE,
    HOST,
    MAILBOX,
    ROOT,
    STAGE,
    WEB,
    Port,
    StackError,
    check_port_free,
    check_settings,
    overridden,
    read_ports,
    stack_environment,
    url,
)
from devstack.processes import Child, Output, OutputHandler, answers, stop_all

FRONTEND = ROOT / "frontend"
EXAMPLE_APP = ROOT / "examples" / "relying_app" / "app.py"
# What the example app imports, by module, and the package that brings it.
EXAMPLE_NEEDS = {"flask": "Flask", "jwt": "PyJWT", "cryptography": "cryptography"}
LOCAL_AUDIENCE = "simple-otp-local"  # the local stage's OTP_TOKEN_AUDIENCE, should it set none
READY_LINE = "simple-otp is running on this machine"  # printed once everything answers
READY_SECONDS = 90.0  # a first vite start on a slow machine pre-bundles dependencies
POLL_SECONDS = 0.05


class Stopped(Exception):
    """Ctrl-C or SIGTERM arrived."""


class ChildFailed(Exception):
    """A child process exited; the message is its one line."""


def frontend_problem(frontend: Path = FRONTEND) -> str | None:
    """Why the login page cannot start, or None when it can."""
    if not (frontend / "package.json").is_file():
        return "frontend/ is not there yet"
    if shutil.which("npm") is None:
        return "npm is not installed (the login page needs Node.js 20 or newer)"
    if not (frontend / "node_modules").is_dir():
        return "frontend/node_modules is missing: run `make run`, whose setup step runs npm ci"
    return None


def example_problem(app: Path = EXAMPLE_APP) -> str | None:
    """Why the example relying app cannot start, or None when it can."""
    if not app.is_file():
        return "examples/relying_app/app.py is not there"
    missing = [package for module, package in EXAMPLE_NEEDS.items() if not importlib.util.find_spec(module)]
    if missing:
        return f"{', '.join(missing)} not installed: `make run` installs requirements-dev.txt"
    return None


def example_environment(ports: Mapping[Port, int], env: Mapping[str, str]) -> dict[str, str]:
    """The example app's settings: it trusts the local API's tokens, for the local stage's audience."""
    return {
        "EXAMPLE_ISSUER": env["OTP_TOKEN_ISSUER"],
        "EXAMPLE_AUDIENCE": env.get("OTP_TOKEN_AUDIENCE") or LOCAL_AUDIENCE,
        "EXAMPLE_JWKS_URL": url(ports[API]) + "/.well-known/jwks.json",
        "EXAMPLE_LOGIN_URL": url(ports[WEB]) + "/",
    }


class Stack:
    """The running parts; :meth:`shutdown` stops whatever was started."""

    def __init__(
        self, output: Output, ports: Mapping[Port, int], env: dict[str, str], web: bool, example: bool = True
    ) -> None:
        self.out = output
        self.ports = ports
        self.env = env
        self.web = web
        self.example = example
        self.children: dict[str, Child] = {}
        self.pumps: Any = None
        self.sns_pumps: Any = None
        self.stop = threading.Event()
        self.hurry = threading.Event()

    # ------------------------------------------------------------ signals

    def on_signal(self, signum: int, frame: Any) -> None:
        if self.stop.is_set():
            self.hurry.set()
            return
        self.stop.set()

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.on_signal)

    # ------------------------------------------------------------ start-up

    def _start(self, name: str, what: str, argv: Sequence[str], cwd: Path = ROOT, **extra: str) -> None:
        self.children[name] = Child(name, what, argv, {**self.env, **extra}, cwd, self.out)

    def _wait_for(self, targets: Mapping[str, str]) -> None:
        """Poll until every child in ``targets`` (name -> URL) answers."""
        pending = dict(targets)
        deadline = time.monotonic() + READY_SECONDS
        while pending:
            if self.stop.is_set():
                raise Stopped()
            for name in list(pending):
                child = self.children[name]
                if not child.running():
                    raise ChildFailed(child.failure())
                if answers(pending[name], timeout=0.5):
                    del pending[name]
            if not pending:
                return
            if time.monotonic() > deadline:
                name, target = next(iter(pending.items()))
                raise ChildFailed(
                    f"the {self.children[name].what} did not answer at {target} within {READY_SECONDS:.0f} s"
                )
            time.sleep(POLL_SECONDS)

    def _provision(self) -> dict[str, Any]:
        """Table + stream + TTL, code key, sender, SES events, demo user; what provisioning returns."""
        from chalicelib import aws, keys, settings
        from ops.provision import provision
        from ops.users import add_user

        aws.reset()
        keys.forget()
        env = self.env
        result = provision(
            env["OTP_TABLE_NAME"],
            env["OTP_KEY_PARAMETER"],
            env["OTP_SENDER"],
            env["OTP_TOKEN_KEY_ID"],
            configuration_set=env["OTP_SES_CONFIGURATION_SET"],
            events_topic=env["OTP_SES_EVENTS_TOPIC"],
        )
        add_user(settings.load(env), DEMO_EMAIL, DEMO_PASSWORD)
        return result

    def _start_pump(self, stream_arn: str, topic_arn: str) -> None:
        """Import the app as Lambda would; pump the stream, and SES's events, into its handlers."""
        from chalicelib import aws
        from devstack.pump import Pumps
        from devstack.sns_pump import SnsPumps

        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        app_module = importlib.import_module("app")
        app_logger = logging.getLogger(app_module.app.app_name)
        for handler in list(app_logger.handlers):
            app_logger.removeHandler(handler)
        app_logger.addHandler(OutputHandler(self.out, "pump"))
        app_logger.propagate = False
        self.pumps = Pumps(
            app_module, aws.client("dynamodbstreams"), stream_arn, lambda text: self.out.line("pump", text)
        )
        if not self.pumps.targets:
            raise ChildFailed("app.py has no @app.on_dynamodb_record handler for the pump to call")
        names = ", ".join(target.name for target in self.pumps.targets)
        self.out.say(f"stream pump: {stream_arn} -> {names} (every 0.2 s)")
        self.sns_pumps = SnsPumps(
            app_module,
            aws.client("sqs"),
            aws.client("sns"),
            topic_arn,
            lambda text: self.out.line("pump", text),
        )
        for target in self.sns_pumps.targets:
            queue = self.sns_pumps.queues[target.name].rsplit("/", 1)[-1]
            self.out.say(f"SNS pump: {topic_arn} -> queue {queue} -> {target.name} (every 0.2 s)")
        if not self.sns_pumps.targets:
            self.out.say(f"SNS pump: no @app.on_sns_message handler of {topic_arn}: SES's events go unread")
        for other in self.sns_pumps.others:
            self.out.say(f"SNS pump: {other.name} subscribes to {other.topic}, which no local sender feeds")

    def start(self) -> None:
        python = sys.executable
        ports = self.ports
        self.out.say(f"starting moto server on {url(ports[AWS])} and the mailbox on {url(ports[MAILBOX])}")
        self._start(
            "aws",
            "AWS emulator",
            [
                python,
                "-m",
                "devstack.emulator",
                "--aws-port",
                str(ports[AWS]),
                "--mailbox-port",
                str(ports[MAILBOX]),
            ],
        )
        self.out.say(f"starting the API (chalice local, stage {STAGE}) on {url(ports[API])}")
        self._start("api", "API", [python, "-m", "devstack.api", "--port", str(ports[API])])
        if self.example:
            self.out.say(f"starting the example relying app on {url(ports[EXAMPLE])}")
            self._start(
                "app",
                "example relying app",
                [python, str(ROOT / "devstack" / "guard.py"), python, str(EXAMPLE_APP)]
                + ["--host", HOST, "--port", str(ports[EXAMPLE])],
                **example_environment(ports, self.env),
            )
        if self.web:
            # After a sign-in that came from the example app (?state=...), the page posts the token there.
            returns = {"VITE_RETURN_URL": url(ports[EXAMPLE]) + "/callback"} if self.example else {}
            self.out.say(f"starting the login page (vite) on {url(ports[WEB])}")
            self._start(
                "web",
                "login page",
                [python, str(ROOT / "devstack" / "guard.py"), "npm", "run", "dev", "--"]
                + ["--host", HOST, "--port", str(ports[WEB]), "--strictPort"],
                cwd=FRONTEND,
                VITE_API_BASE_URL=url(ports[API]),
                VITE_OTP_CODE_LENGTH=self.env.get("OTP_CODE_LENGTH", "6"),
                **returns,
            )
        self._wait_for({"aws": url(ports[AWS]) + "/moto-api/"})
        self.out.say(
            f"provisioning: table {self.env['OTP_TABLE_NAME']} (stream, TTL), code key, "
            f"sender {self.env['OTP_SENDER']}, SES configuration set {self.env['OTP_SES_CONFIGURATION_SET']} "
            f"-> topic {self.env['OTP_SES_EVENTS_TOPIC']}, user {DEMO_EMAIL}"
        )
        os.environ.clear()
        os.environ.update(self.env)  # this process provisions and runs the pump with the stack's settings
        provisioned = self._provision()
        if self.stop.is_set():
            raise Stopped()
        self._start_pump(str(provisioned["stream_arn"]), str(provisioned["events_topic_arn"]))
        targets = {"api": url(ports[API]) + "/", "aws": url(ports[MAILBOX]) + "/api/messages"}
        if self.web:
            targets["web"] = url(ports[WEB]) + "/"
        if self.example:
            targets["app"] = url(ports[EXAMPLE]) + "/"
        self._wait_for(targets)

    def watch(self) -> int:
        """Until Ctrl-C (0) or until a child stops on its own (1)."""
        while not self.stop.wait(0.25):
            for child in self.children.values():
                if not child.running():
                    self.out.error(child.failure() + "; stopping everything")
                    return 1
        return 0

    def shutdown(self) -> None:
        self.out.say("stopping")
        if self.pumps is not None:
            self.pumps.stop()
        if self.sns_pumps is not None:
            self.sns_pumps.stop()
        stop_all(reversed(list(self.children.values())), hurry=self.hurry)
        self.out.say("stopped")


def banner(
    out: Output,
    ports: Mapping[Port, int],
    env: Mapping[str, str],
    users: Sequence[str],
    web_problem: str | None,
    example_problem: str | None = None,
) -> None:
    """The URLs, the demo user, how to add a user and how to stop."""
    login = url(ports[WEB]) if web_problem is None else f"(not started: {web_problem})"
    example = url(ports[EXAMPLE]) if example_problem is None else f"(not started: {example_problem})"
    hint = []
    if ports[AWS] != AWS.default:
        hint.append(f"AWS_ENDPOINT_URL={url(ports[AWS])}")
    hint += [f"{name}={env[name]}" for name in ("OTP_TABLE_NAME", "OTP_KEY_PARAMETER") if name in users]
    add_user = " ".join([*hint, ".venv/bin/simple-otp add-user you@example.com"])
    out.plain()
    out.plain(f"  {READY_LINE}:")
    out.plain(f"    login page   {login}")
    out.plain(f"    example app  {example}   a relying app: Sign in there, land back signed in")
    out.plain(f"    API          {url(ports[API])}   POST /otp, /otp/verify, /otp/resend")
    out.plain(f"    mailbox      {url(ports[MAILBOX])}   the codes arrive here (JSON: /api/messages)")
    out.plain(
        f"    AWS          {url(ports[AWS])}   moto server: DynamoDB + stream, SES + events, SNS, SQS, SSM"
    )
    out.plain(f"  demo user:     {DEMO_EMAIL} / {DEMO_PASSWORD}")
    out.plain(f"  add a user:    {add_user}")
    out.plain("  stop:          Ctrl-C")
    out.plain()


def _arguments(argv: Sequence[str] | None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="make run (python -m devstack)",
        description="Run simple-otp on this machine: moto server, API, stream pump, mailbox, login page.",
        epilog=(
            "Ports: LOCAL_AWS_PORT (4566), LOCAL_API_PORT (8000), LOCAL_MAILBOX_PORT (8025), "
            "LOCAL_WEB_PORT (5173), LOCAL_EXAMPLE_PORT (8081). Any OTP_* variable overrides the "
            "local stage's value, e.g. OTP_TTL_SECONDS=30 make run. Ctrl-C stops everything. "
            "See docs/local.md."
        ),
    )
    parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    _arguments(argv)
    out = Output()
    try:
        ports = read_ports(os.environ)
        env = stack_environment(os.environ, ports)
        check_settings(env)
        web_problem = frontend_problem()
        no_example = example_problem()
        for port in (AWS, API, MAILBOX, WEB, EXAMPLE):
            if (port is not WEB or web_problem is None) and (port is not EXAMPLE or no_example is None):
                check_port_free(port, ports[port])
    except StackError as error:
        out.error(str(error))
        return 2

    out.say(f"simple-otp local stack (stage {STAGE}; AWS is moto server on this machine)")
    users = overridden(os.environ)
    if users:
        out.say("settings from your environment: " + ", ".join(f"{name}={env[name]}" for name in users))
    if web_problem is not None:
        out.say(f"login page skipped: {web_problem}")
    if no_example is not None:
        out.say(f"example relying app skipped: {no_example}")

    stack = Stack(out, ports, env, web=web_problem is None, example=no_example is None)
    stack.install_signal_handlers()
    code = 0
    try:
        stack.start()
        banner(out, ports, env, users, web_problem, no_example)
        code = stack.watch()
    except Stopped:
        code = 0
    except ChildFailed as error:
        out.error(str(error))
        code = 1
    except Exception as error:  # noqa: BLE001 - one line, then a clean stop
        out.error(f"start-up failed: {type(error).__name__}: {error}")
        code = 1
    finally:
        stack.shutdown()
    return code
