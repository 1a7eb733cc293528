"""The local stack's ports and environment, worked out before anything starts.

One environment is built here and given to every part of the stack (API,
stream pump, provisioning), so they all see the same settings:

* the ``local`` stage of ``.chalice/config.json`` gives the defaults;
* ``OTP_*`` variables set by the user win over them;
* every ``AWS_*`` variable of the user's shell is dropped and the AWS
  settings are pinned to the emulator (endpoint on the AWS port, dummy
  credentials, no AWS config files), so the local stack can never reach a
  real account, whatever the shell holds;
* ``OTP_ALLOWED_ORIGIN`` follows the web port, and ``OTP_TOKEN_ISSUER`` the
  API port (the tokens' ``iss`` is the local API's URL), unless the user set
  them.

Problems come out as :class:`StackError`, whose message is one line naming
the variable or the port.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chalicelib import settings
from ops import OpsError
from ops.stage import stage_environment

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
STAGE = "local"

# The user every local stack (and every in-process test run) is provisioned with.
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"

# Names of the variables that choose the settings, the AWS account and endpoint, and
# the ports. Whatever starts a part of the system on this machine (the stack, the
# tests, the bench) starts from an environment without the caller's (:func:`without`).
STACK_VARIABLES = ("OTP_", "AWS_", "LOCAL_")
AWS_VARIABLES = ("AWS_",)

# With these botocore reads no AWS file of the user and asks no instance metadata service.
ISOLATED_AWS = {
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


class StackError(Exception):
    """Something the user can fix before the stack starts; printed as one line."""


@dataclass(frozen=True)
class Port:
    variable: str
    default: int
    what: str


AWS = Port("LOCAL_AWS_PORT", 4566, "AWS emulator (moto server)")
API = Port("LOCAL_API_PORT", 8000, "API (chalice local)")
MAILBOX = Port("LOCAL_MAILBOX_PORT", 8025, "mailbox")
WEB = Port("LOCAL_WEB_PORT", 5173, "login page (vite)")
EXAMPLE = Port("LOCAL_EXAMPLE_PORT", 8081, "example relying app")
PORTS = (AWS, API, MAILBOX, WEB, EXAMPLE)

# The stack's AWS settings in place of the user's (the local stage's values, when it sets them).
_PINNED_AWS = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
}


def without(environ: Mapping[str, str], prefixes: tuple[str, ...] = STACK_VARIABLES) -> dict[str, str]:
    """``environ`` without the variables whose names start with one of ``prefixes``."""
    return {name: value for name, value in environ.items() if not name.startswith(prefixes)}


def read_ports(environ: Mapping[str, str]) -> dict[Port, int]:
    """The ports, from ``LOCAL_*_PORT`` or their defaults; distinct and valid."""
    ports: dict[Port, int] = {}
    for port in PORTS:
        raw = environ.get(port.variable, "").strip()
        if not raw:
            ports[port] = port.default
            continue
        try:
            number = int(raw, 10)
        except ValueError:
            raise StackError(f"{port.variable}={raw!r} is not a port number (1-65535)") from None
        if not 1 <= number <= 65535:
            raise StackError(f"{port.variable}={number} is not a port number (1-65535)")
        ports[port] = number
    seen: dict[int, Port] = {}
    for port, number in ports.items():
        if number in seen:
            raise StackError(
                f"{seen[number].variable} and {port.variable} are both {number}: give each its own port"
            )
        seen[number] = port
    return ports


def url(number: int) -> str:
    return f"http://{HOST}:{number}"


def stack_environment(environ: Mapping[str, str], ports: Mapping[Port, int]) -> dict[str, str]:
    """The environment every part of the stack runs with (see the module docstring)."""
    try:
        stage = stage_environment(STAGE)
    except OpsError as error:
        raise StackError(str(error)) from None
    env = without(environ, AWS_VARIABLES)  # the user's OTP_* and LOCAL_* stay
    for name, value in without(stage, AWS_VARIABLES).items():
        env.setdefault(name, value)  # the user's value wins
    for name, fallback in _PINNED_AWS.items():
        env[name] = stage.get(name, fallback)
    env.update(ISOLATED_AWS)
    env["AWS_ENDPOINT_URL"] = url(ports[AWS])
    if not environ.get("OTP_ALLOWED_ORIGIN", "").strip():
        env["OTP_ALLOWED_ORIGIN"] = url(ports[WEB])
    if not environ.get("OTP_TOKEN_ISSUER", "").strip():
        env["OTP_TOKEN_ISSUER"] = url(ports[API])
    env["PYTHONUNBUFFERED"] = "1"
    for port, number in ports.items():
        env[port.variable] = str(number)
    return env


def check_settings(env: Mapping[str, str]) -> settings.Settings:
    """The app's own validation, run before anything starts."""
    try:
        return settings.load(env)
    except settings.ConfigError as error:
        raise StackError(str(error)) from None


def overridden(environ: Mapping[str, str]) -> list[str]:
    """The ``OTP_*`` names the user set (shown at start, values included: none is secret)."""
    return sorted(name for name in environ if name.startswith("OTP_"))


def check_port_free(port: Port, number: int) -> None:
    """Raise StackError when ``number`` cannot be bound on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # The servers set SO_REUSEADDR too, so a port in TIME_WAIT is usable.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, number))
        except OSError as error:
            raise StackError(port_message(port, number, error)) from None


def port_message(port: Port, number: int, error: OSError) -> str:
    """The one line for a port that cannot be used."""
    if error.errno in (errno.EACCES, errno.EPERM):
        problem = "needs privileges to be used"
    elif error.errno == errno.EADDRINUSE:
        problem = "is already in use"
    else:
        problem = f"cannot be used ({error.strerror or error})"
    return (
        f"port {number} for the {port.what} on {HOST} {problem}: "
        f"stop what uses it, or set {port.variable} to another port"
    )
