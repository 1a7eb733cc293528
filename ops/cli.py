"""Operator commands: users, suppressed addresses and provisioning.

    simple-otp add-user EMAIL                         # password from stdin or prompt
    simple-otp add-user EMAIL --allow-weak            # skip the password policy (tests, demos)
    simple-otp disable-user EMAIL
    simple-otp enable-user EMAIL
    simple-otp devices EMAIL                          # the account's trusted devices
    simple-otp revoke-devices EMAIL (--all | ID)      # forget one device, or all
    simple-otp audit EMAIL [--days N]                 # the account's audit trail (90 days at most)
    simple-otp suppressed [EMAIL]                     # addresses not mailed (bounced, complained)
    simple-otp unsuppress EMAIL                       # mail that address again
    simple-otp provision                              # table+stream+TTL, keys, sender, SES events
    simple-otp --stage dev provision --write-config   # ...and config + policies
    simple-otp --stage dev policy [--check]           # IAM policy files
    simple-otp --stage dev deprovision --yes          # delete what provision made
    simple-otp --stage dev rotate-token-key           # a new token signing key
    simple-otp backfill-ids                           # ids for accounts made before them

``--stage NAME`` (default ``local``) reads that stage's environment variables
from ``.chalice/config.json``; variables already set in the environment win.
Provisioning runs with the operator's AWS credentials, never the Lambda roles'.
``python -m ops`` is the same command.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from chalicelib.errors import error_code
from ops import OpsError, audit, devices, policies, provision, stage, suppression, users

PROG = "simple-otp"


def _provision_command(args: argparse.Namespace, out: TextIO) -> int:
    env: Mapping[str, str] = os.environ
    table, parameter, sender, token_key = _names(env, args.stage)
    configuration_set, events_topic = _ses_names(env, args.stage)
    result = provision.provision(table, parameter, sender, token_key, configuration_set, events_topic)
    print(f"table {result['table']} ready (stream NEW_AND_OLD_IMAGES, TTL on expires_at)", file=out)
    print(f"code key {env['OTP_KEY_PARAMETER']} {'created' if result['key_created'] else 'kept'}", file=out)
    print(f"token key {token_key} {'created' if result['token_key_created'] else 'kept'}", file=out)
    print(f"sender {result['sender']}: {result['sender_status']}", file=out)
    if result["sender_status"] != "verified":
        print("  open the link SES mailed to that address, then run provision again", file=out)
    created = "created" if result["configuration_set_created"] else "kept"
    print(f"configuration set {configuration_set} {created}", file=out)
    print(f"events topic {result['events_topic_arn']} ready (SES publishes the set's events)", file=out)
    print(f"event destination {provision.EVENT_DESTINATION} {result['event_destination']}", file=out)
    print(f"OTP_STREAM_ARN={result['stream_arn']}", file=out)
    config_name = stage.config_file().name
    if args.write_config:
        if stage.set_stream_arn(args.stage, result["stream_arn"]):
            print(f"{config_name}: OTP_STREAM_ARN of stage {args.stage} updated", file=out)
        config = stage.read_config()
        if not config["stages"][args.stage].get("autogen_policy", config.get("autogen_policy", True)):
            for path in policies.write_policies(args.stage):
                print(f"{path.name} written", file=out)
    else:
        configured = stage.stage_environment(args.stage)
        emulated = "AWS_ENDPOINT_URL" in configured  # the local stage: its stack passes the ARN itself
        if not emulated and configured.get("OTP_STREAM_ARN") != result["stream_arn"]:
            print(
                f"note: {config_name} has another OTP_STREAM_ARN; use --write-config to update it", file=out
            )
    return 0


def _policy_command(args: argparse.Namespace, out: TextIO) -> int:
    changed = policies.write_policies(args.stage, sandbox_recipients=args.sandbox_recipient, check=args.check)
    names = ", ".join(path.name for path in changed)
    if args.check:
        if changed:
            raise OpsError(f"{names} out of date: run {PROG} policy --stage {args.stage}")
        print(f"policies of stage {args.stage} are up to date", file=out)
    else:
        print(f"written: {names}" if changed else f"policies of stage {args.stage} unchanged", file=out)
    return 0


_NAMES = ("OTP_TABLE_NAME", "OTP_KEY_PARAMETER", "OTP_SENDER", "OTP_TOKEN_KEY_ID")


def _names(env: Mapping[str, str], stage_name: str) -> tuple[str, str, str, str]:
    """What provisioning names: table, code key parameter, sender, token key alias."""
    missing = [name for name in _NAMES if not env.get(name)]
    if missing:
        raise OpsError(f"{missing[0]} is not set for stage {stage_name}")
    table, parameter, sender, token_key = (env[name] for name in _NAMES)
    return table, parameter, sender, token_key


def _ses_names(env: Mapping[str, str], stage_name: str) -> tuple[str, str]:
    """The SES configuration set and the SNS topic of its events."""
    names = ("OTP_SES_CONFIGURATION_SET", "OTP_SES_EVENTS_TOPIC")
    missing = [name for name in names if not env.get(name)]
    if missing:
        raise OpsError(f"{missing[0]} is not set for stage {stage_name}")
    return env[names[0]], env[names[1]]


def _deprovision_command(args: argparse.Namespace, out: TextIO) -> int:
    table, parameter, sender, token_key = _names(os.environ, args.stage)
    configuration_set, events_topic = _ses_names(os.environ, args.stage)
    if not args.yes:
        raise OpsError(
            f"this deletes table {table} with every user, code key {parameter}, token key {token_key}, "
            f"configuration set {configuration_set}, topic {events_topic} "
            f"and sender {provision.sender_address(sender)}; add --yes to go ahead"
        )
    removed = provision.deprovision(
        table,
        parameter,
        sender,
        token_key,
        keep_sender=args.keep_sender,
        configuration_set=configuration_set,
        events_topic=events_topic,
    )
    for what in removed:
        print(f"deleted {what}", file=out)
    if not removed:
        print("nothing to delete", file=out)
    return 0


def _rotate_command(args: argparse.Namespace, out: TextIO) -> int:
    from chalicelib.tokens import PUBLISH_LEAD_SECONDS

    key_id = os.environ.get("OTP_TOKEN_KEY_ID", "")
    if not key_id:
        raise OpsError(f"OTP_TOKEN_KEY_ID is not set for stage {args.stage}")
    new, old = provision.rotate_token_key(key_id)
    print(f"token key {key_id}: new key {new}; {old} is now the previous key", file=out)
    print(
        f"  the new key is published now and signs from {int(PUBLISH_LEAD_SECONDS)} s on; the previous "
        "one stays in the JWKS for OTP_TOKEN_GRACE_SECONDS",
        file=out,
    )
    return 0


def _backfill_command(args: argparse.Namespace, out: TextIO) -> int:
    count = users.backfill_ids(stage.load_settings())
    print(f"{count} account(s) given an id", file=out)
    return 0


def _devices_command(args: argparse.Namespace, out: TextIO) -> int:
    cfg = stage.load_settings()
    if args.command == "devices":
        devices.show(cfg, args.email, out)
        return 0
    if args.all == (args.id is not None):
        raise OpsError("name one device ID, or --all")
    count = devices.revoke(cfg, args.email, None if args.all else args.id)
    print(f"{count} device(s) of {args.email} revoked", file=out)
    return 0


def _suppression_command(args: argparse.Namespace, out: TextIO) -> int:
    cfg = stage.load_settings()
    if args.command == "suppressed":
        return 0 if suppression.show(cfg, args.email, out) else 1
    email, lifted = suppression.lift(cfg, args.email)
    if lifted:
        print(f"{email} unsuppressed: it is mailed again", file=out)
    else:
        print(f"{email} was not suppressed: nothing to lift", file=out)
    return 0


def _user_command(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    cfg = stage.load_settings()
    if args.command == "add-user":
        email = users.add_user(cfg, args.email, users.read_password(stdin), allow_weak=args.allow_weak)
        print(f"user {email} added", file=out)
    else:
        disabled = args.command == "disable-user"
        email = users.set_disabled(cfg, args.email, disabled)
        print(f"user {email} {'disabled' if disabled else 'enabled'}", file=out)
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line: ``--stage`` is accepted before or after the command name."""
    main_parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    main_parser.add_argument(
        "--stage", default="local", help="stage in .chalice/config.json (default: local)"
    )
    stage_option = argparse.ArgumentParser(add_help=False)
    stage_option.add_argument("--stage", default=argparse.SUPPRESS, help="stage (default: local)")
    commands = main_parser.add_subparsers(dest="command", required=True)
    for name, what in (
        ("add-user", "add a user, or replace one (password from stdin, or prompted twice)"),
        ("disable-user", "refuse the user's sign-ins from now on"),
        ("enable-user", "allow the user's sign-ins again"),
    ):
        user_parser = commands.add_parser(name, parents=[stage_option], help=what)
        user_parser.add_argument("email")
        if name == "add-user":
            user_parser.add_argument(
                "--allow-weak",
                action="store_true",
                help="accept a password the policy refuses (short, common, the address): for tests and demos",
            )
    devices_parser = commands.add_parser(
        "devices", parents=[stage_option], help="list the account's trusted devices"
    )
    devices_parser.add_argument("email")
    revoke_parser = commands.add_parser(
        "revoke-devices", parents=[stage_option], help="revoke one trusted device (by ID) or --all"
    )
    revoke_parser.add_argument("email")
    revoke_parser.add_argument("id", nargs="?", help="a device ID from 'devices EMAIL'")
    revoke_parser.add_argument("--all", action="store_true", help="every device of the account")
    audit_parser = commands.add_parser(
        "audit", parents=[stage_option], help="list the account's audit trail, oldest first"
    )
    audit_parser.add_argument("email")
    audit_parser.add_argument("--days", type=int, default=90, help="how far back (1 to 90, default 90)")
    suppressed_parser = commands.add_parser(
        "suppressed",
        parents=[stage_option],
        help="list the addresses not mailed after a permanent bounce or a complaint (exit 1: EMAIL is not)",
    )
    suppressed_parser.add_argument("email", nargs="?", help="only this address")
    unsuppress_parser = commands.add_parser(
        "unsuppress", parents=[stage_option], help="mail a suppressed address again"
    )
    unsuppress_parser.add_argument("email")
    provision_parser = commands.add_parser(
        "provision",
        parents=[stage_option],
        help="create table, stream, TTL, keys, sender identity, SES configuration set and topic (idempotent)",
    )
    provision_parser.add_argument(
        "--write-config",
        action="store_true",
        help="store the stream ARN in the stage's config and rewrite its IAM policy files",
    )
    policy_parser = commands.add_parser(
        "policy", parents=[stage_option], help="write the stage's least-privilege IAM policy files"
    )
    policy_parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    policy_parser.add_argument(
        "--sandbox-recipient",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="while SES is in the sandbox: a verified recipient to allow (repeatable)",
    )
    deprovision_parser = commands.add_parser(
        "deprovision",
        parents=[stage_option],
        help="delete the table (users too), keys, sender identity, SES configuration set and events topic",
    )
    deprovision_parser.add_argument("--yes", action="store_true", help="really delete")
    deprovision_parser.add_argument("--keep-sender", action="store_true", help="keep the SES identity")
    commands.add_parser(
        "rotate-token-key",
        parents=[stage_option],
        help="a new token signing key; the previous one stays published for a grace period",
    )
    commands.add_parser(
        "backfill-ids",
        parents=[stage_option],
        help="give every account made before account ids its id now (sign-in also does it)",
    )
    return main_parser


def main(argv: Sequence[str] | None = None, stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    """Run one command; the exit code: 0 done, 2 a problem the operator can fix, 1 an AWS failure
    (and for ``suppressed EMAIL``: the address is not suppressed).

    ``argv`` defaults to ``sys.argv[1:]``, ``stdin`` and ``out`` to the
    process's own, so ``sys.exit(main())`` is the console script.
    """
    args = parser().parse_args(argv)
    stdin = sys.stdin if stdin is None else stdin
    out = sys.stdout if out is None else out
    try:
        stage.apply_stage(args.stage)
        if args.command == "provision":
            return _provision_command(args, out)
        if args.command == "policy":
            return _policy_command(args, out)
        if args.command == "deprovision":
            return _deprovision_command(args, out)
        if args.command == "rotate-token-key":
            return _rotate_command(args, out)
        if args.command == "backfill-ids":
            return _backfill_command(args, out)
        if args.command in ("devices", "revoke-devices"):
            return _devices_command(args, out)
        if args.command == "audit":
            audit.show(stage.load_settings(), args.email, args.days, out)
            return 0
        if args.command in ("suppressed", "unsuppress"):
            return _suppression_command(args, out)
        return _user_command(args, stdin, out)
    except OpsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - one line, not a traceback
        what = f"{type(error).__name__} {error_code(error)}".rstrip()
        print(f"error: {what} (is the AWS endpoint reachable?)", file=sys.stderr)
        return 1
