"""Operator commands: users and provisioning.

    python -m chalicelib.admin add-user EMAIL        # password from stdin or prompt
    python -m chalicelib.admin disable-user EMAIL
    python -m chalicelib.admin enable-user EMAIL
    python -m chalicelib.admin provision             # table+stream+TTL, code key, sender

``--stage NAME`` (default ``local``) reads that stage's environment variables
from ``.chalice/config.json``; variables already set in the environment win.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import os
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from chalicelib import aws, credentials, inputs, settings, store
from chalicelib.errors import InvalidRequest

PROJECT = Path(__file__).resolve().parent.parent
CONFIG = PROJECT / ".chalice" / "config.json"


class AdminError(Exception):
    """A problem the operator can fix; printed as one line."""


def stage_environment(stage: str, config_path: Path | None = None) -> dict[str, str]:
    """The stage's environment variables from config.json (global ones first)."""
    config_path = config_path or CONFIG
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise AdminError(f"{config_path} not found: run from the project folder") from None
    stages = config.get("stages", {})
    if stage not in stages:
        raise AdminError(f"stage {stage!r} is not in {config_path.name}; stages: {', '.join(stages)}")
    env = dict(config.get("environment_variables", {}))
    env.update(stages[stage].get("environment_variables", {}))
    return {k: str(v) for k, v in env.items()}


def apply_stage(stage: str, environ: dict[str, str] | None = None) -> None:
    """Fill ``environ`` (os.environ) with the stage's variables it does not set."""
    target = os.environ if environ is None else environ
    for name, value in stage_environment(stage).items():
        target.setdefault(name, value)
    aws.reset()


def read_password(stdin: TextIO) -> str:
    """From stdin when it is not a terminal (one line), else prompted twice."""
    if not stdin.isatty():
        value = stdin.readline().rstrip("\r\n")
    else:
        value = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != value:
            raise AdminError("the passwords differ")
    try:
        return inputs.password({"password": value})
    except InvalidRequest as error:
        raise AdminError(error.message) from None


def _email(raw: str) -> str:
    try:
        return inputs.email({"email": raw})
    except InvalidRequest as error:
        raise AdminError(error.message) from None


def add_user(cfg: settings.Settings, email: str, password: str) -> str:
    email = _email(email)
    store.put_user(cfg.table_name, email, credentials.hash_password(password), int(time.time()))
    return email


def set_disabled(cfg: settings.Settings, email: str, disabled: bool) -> str:
    email = _email(email)
    if not store.set_user_disabled(cfg.table_name, email, disabled, int(time.time())):
        raise AdminError(f"no user {email}")
    return email


def ensure_code_key(parameter: str) -> bool:
    """Create the SecureString code key if missing; True when it was created."""
    ssm = aws.client("ssm")
    try:
        ssm.get_parameter(Name=parameter, WithDecryption=True)
        return False
    except ssm.exceptions.ParameterNotFound:
        pass
    key = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    ssm.put_parameter(
        Name=parameter,
        Value=key,
        Type="SecureString",
        Description="simple-otp code key (HMAC-SHA256); rotating it voids open codes",
    )
    return True


def ensure_sender(sender: str) -> None:
    """Ask SES to verify the sender address (a no-op when already verified)."""
    address = sender.rpartition("<")[2].rstrip(">").strip()
    aws.client("ses").verify_email_identity(EmailAddress=address)


def provision(table: str, parameter: str, sender: str) -> dict[str, Any]:
    """Create what the app needs and Chalice does not; safe to run again."""
    stream_arn = store.ensure_table(table)
    created_key = ensure_code_key(parameter)
    ensure_sender(sender)
    return {"table": table, "stream_arn": stream_arn, "key_created": created_key, "sender": sender}


def _settings() -> settings.Settings:
    try:
        return settings.load()
    except settings.ConfigError as error:
        raise AdminError(str(error)) from None


def main(argv: Sequence[str] | None = None, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.admin", description=__doc__.split("\n")[0])
    parser.add_argument("--stage", default="local", help="stage in .chalice/config.json (default: local)")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("add-user", "disable-user", "enable-user"):
        commands.add_parser(name).add_argument("email")
    commands.add_parser("provision", help="create table, stream, TTL, code key and sender identity")
    args = parser.parse_args(argv)
    try:
        apply_stage(args.stage)
        if args.command == "provision":
            env: Mapping[str, str] = os.environ
            missing = [n for n in ("OTP_TABLE_NAME", "OTP_KEY_PARAMETER", "OTP_SENDER") if not env.get(n)]
            if missing:
                raise AdminError(f"{missing[0]} is not set for stage {args.stage}")
            result = provision(env["OTP_TABLE_NAME"], env["OTP_KEY_PARAMETER"], env["OTP_SENDER"])
            print(f"table {result['table']} ready (stream NEW_IMAGE, TTL on expires_at)", file=out)
            print(
                f"code key {env['OTP_KEY_PARAMETER']} {'created' if result['key_created'] else 'kept'}",
                file=out,
            )
            print(f"sender {result['sender']} submitted for SES verification", file=out)
            print(f"OTP_STREAM_ARN={result['stream_arn']}", file=out)
            return 0
        cfg = _settings()
        if args.command == "add-user":
            email = add_user(cfg, args.email, read_password(stdin))
            print(f"user {email} added", file=out)
        else:
            disabled = args.command == "disable-user"
            email = set_disabled(cfg, args.email, disabled)
            print(f"user {email} {'disabled' if disabled else 'enabled'}", file=out)
        return 0
    except AdminError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - one line, not a traceback
        code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
        print(
            f"error: {type(error).__name__} {code}".rstrip() + " (is the AWS endpoint reachable?)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
