"""Operator commands: users and provisioning.

    python -m chalicelib.admin add-user EMAIL        # password from stdin or prompt
    python -m chalicelib.admin disable-user EMAIL
    python -m chalicelib.admin enable-user EMAIL
    python -m chalicelib.admin provision             # table+stream+TTL, code key, sender
    python -m chalicelib.admin --stage dev provision --write-config   # ...and config + policies
    python -m chalicelib.admin --stage dev policy [--check]           # IAM policy files
    python -m chalicelib.admin --stage dev deprovision --yes          # delete what provision made

``--stage NAME`` (default ``local``) reads that stage's environment variables
from ``.chalice/config.json``; variables already set in the environment win.
Provisioning runs with the operator's AWS credentials, never the Lambda roles'.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from chalicelib import aws, credentials, inputs, keys, settings, store
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
    """Create the SecureString code key if missing; True when it was created.

    An existing parameter is kept (rotating the key voids every open code),
    but only if it is a SecureString holding a usable key.
    """
    ssm = aws.client("ssm")
    try:
        found = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]
    except ssm.exceptions.ParameterNotFound:
        found = None
    if found is not None:
        if found.get("Type") != "SecureString":
            raise AdminError(
                f"{parameter} exists as a {found.get('Type')}, not a SecureString: "
                "delete it or choose another OTP_KEY_PARAMETER"
            )
        try:
            keys.decode_key(found["Value"])
        except ValueError as error:
            raise AdminError(f"{parameter} holds no usable code key: {error}") from None
        return False
    key = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    try:
        ssm.put_parameter(
            Name=parameter,
            Value=key,
            Type="SecureString",
            Description="simple-otp code key (HMAC-SHA256); rotating it voids open codes",
            Overwrite=False,
        )
    except ssm.exceptions.ParameterAlreadyExists:
        return False  # another run created it in the meantime; keep theirs
    return True


def sender_address(sender: str) -> str:
    """The bare address of ``OTP_SENDER`` ("Name <a@b.c>" or "a@b.c")."""
    return sender.rpartition("<")[2].rstrip(">").strip()


def ensure_sender(sender: str) -> str:
    """Make sure SES can send as the sender; returns its verification status.

    "verified" when the address or its whole domain is verified, "pending"
    while the verification email waits to be clicked, else SES is asked to
    send that email ("verification sent").
    """
    address = sender_address(sender)
    domain = address.rpartition("@")[2]
    ses = aws.client("ses")
    found = ses.get_identity_verification_attributes(Identities=[address, domain])["VerificationAttributes"]
    statuses = {name: found.get(name, {}).get("VerificationStatus") for name in (address, domain)}
    if "Success" in statuses.values():
        return "verified"
    if statuses[address] == "Pending":
        return "pending"
    ses.verify_email_identity(EmailAddress=address)
    return "verification sent"


def provision(table: str, parameter: str, sender: str) -> dict[str, Any]:
    """Create what the app needs and Chalice does not; safe to run again.

    The table (stream NEW_IMAGE, TTL on ``expires_at``), the SecureString
    code key and the SES sender identity. Nothing that exists is replaced.
    """
    try:
        stream_arn = store.ensure_table(table)
    except store.TableMismatch as error:
        raise AdminError(str(error)) from None
    created_key = ensure_code_key(parameter)
    sender_status = ensure_sender(sender)
    return {
        "table": table,
        "stream_arn": stream_arn,
        "key_created": created_key,
        "sender": sender,
        "sender_status": sender_status,
    }


def deprovision(table: str, parameter: str, sender: str, keep_sender: bool = False) -> list[str]:
    """Delete what :func:`provision` created (users included); safe to run again."""
    removed = []
    if store.delete_table(table):
        removed.append(f"table {table}")
    ssm = aws.client("ssm")
    try:
        ssm.delete_parameter(Name=parameter)
        removed.append(f"code key {parameter}")
    except ssm.exceptions.ParameterNotFound:
        pass
    if not keep_sender:
        address = sender_address(sender)
        ses = aws.client("ses")
        found = ses.get_identity_verification_attributes(Identities=[address])["VerificationAttributes"]
        if address in found:
            ses.delete_identity(Identity=address)
            removed.append(f"sender identity {address}")
    return removed


# ---------------------------------------------------------------- IAM policies

# Chalice's names for the two Lambda functions (app.py): the routes and the
# stream handler. Each gets its own role, and so its own policy file.
FUNCTIONS = ("api_handler", "send_code")

_STREAM_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):dynamodb:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"table/(?P<table>[A-Za-z0-9_.-]+)/stream/\S+$"
)


def function_name(app_name: str, stage: str, function: str) -> str:
    """The Lambda function name Chalice gives ``function`` in ``stage``."""
    return f"{app_name}-{stage}" if function == "api_handler" else f"{app_name}-{stage}-{function}"


def role_policies(
    env: Mapping[str, str], app_name: str, stage: str, sandbox_recipients: Sequence[str] = ()
) -> dict[str, dict[str, Any]]:
    """The IAM policy of each function's role, from the stage's settings.

    Region and account come from ``OTP_STREAM_ARN`` (which ``provision
    --write-config`` sets to the real stream), so every resource is named
    exactly: this table, this stream, this parameter, this sender.
    """
    names = ("OTP_TABLE_NAME", "OTP_STREAM_ARN", "OTP_SENDER", "OTP_KEY_PARAMETER")
    missing = [name for name in names if not env.get(name)]
    if missing:
        raise AdminError(f"{missing[0]} is not set for stage {stage}")
    stream_arn, table = env["OTP_STREAM_ARN"], env["OTP_TABLE_NAME"]
    match = _STREAM_ARN.match(stream_arn)
    if not match or match["table"] != table:
        raise AdminError(f"OTP_STREAM_ARN of stage {stage} is not a stream of table {table}")
    partition, region, account = match["partition"], match["region"], match["account"]

    def arn(service: str, resource: str) -> str:
        return f"arn:{partition}:{service}:{region}:{account}:{resource}"

    table_arn = arn("dynamodb", f"table/{table}")
    parameter = env["OTP_KEY_PARAMETER"]
    parameter_arn = arn("ssm", "parameter/" + parameter.lstrip("/"))
    address = sender_address(env["OTP_SENDER"])
    identities = [address, address.rpartition("@")[2], *(sender_address(r) for r in sandbox_recipients)]
    suffix = ".amazonaws.com.cn" if partition == "aws-cn" else ".amazonaws.com"

    def logs(function: str) -> dict[str, Any]:
        group = arn("logs", f"log-group:/aws/lambda/{function_name(app_name, stage, function)}")
        return {
            "Sid": "OwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [group, f"{group}:*"],
        }

    code_key = [
        {
            "Sid": "ReadCodeKey",
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": parameter_arn,
        },
        {
            # Needed only when the SecureString uses a customer managed KMS key
            # (the default aws/ssm key's own policy already allows it). The
            # conditions pin it to decrypting this one parameter through SSM.
            "Sid": "DecryptCodeKeyViaSsm",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": arn("kms", "key/*"),
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": f"ssm.{region}{suffix}",
                    "kms:EncryptionContext:PARAMETER_ARN": parameter_arn,
                }
            },
        },
    ]
    api = [
        logs("api_handler"),
        {
            # BatchGetItem: the user and failed sign-in counters at sign-in.
            # GetItem: sessions. PutItem and UpdateItem: the Put and Update
            # writes of the sign-in/resend TransactWriteItems, and the
            # verification UpdateItem.
            "Sid": "TableItems",
            "Effect": "Allow",
            "Action": [
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ],
            "Resource": table_arn,
        },
        *code_key,
    ]
    mailer = [
        logs("send_code"),
        {
            # What Lambda's event source mapping calls, as this role.
            "Sid": "ReadStream",
            "Effect": "Allow",
            "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
            "Resource": stream_arn,
        },
        {
            "Sid": "ListTableStreams",
            "Effect": "Allow",
            "Action": "dynamodb:ListStreams",
            "Resource": f"{table_arn}/stream/*",
        },
        {
            # Claiming a challenge before mailing it, and releasing the claim.
            "Sid": "ClaimChallenges",
            "Effect": "Allow",
            "Action": "dynamodb:UpdateItem",
            "Resource": table_arn,
        },
        {
            "Sid": "SendAsSender",
            "Effect": "Allow",
            "Action": "ses:SendRawEmail",
            "Resource": [arn("ses", f"identity/{identity}") for identity in dict.fromkeys(identities)],
            "Condition": {"StringEquals": {"ses:FromAddress": address}},
        },
        *code_key,
    ]
    return {
        "api_handler": {"Version": "2012-10-17", "Statement": api},
        "send_code": {"Version": "2012-10-17", "Statement": mailer},
    }


def _config(config_path: Path | None = None) -> dict[str, Any]:
    path = config_path or CONFIG
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise AdminError(f"{path} not found: run from the project folder") from None


def policy_files(
    stage: str, config_path: Path | None = None, sandbox_recipients: Sequence[str] = ()
) -> dict[Path, dict[str, Any]]:
    """Each policy file the stage's config names, with the document it must hold."""
    path = config_path or CONFIG
    config = _config(path)
    stage_config = config.get("stages", {}).get(stage)
    if stage_config is None:
        raise AdminError(f"stage {stage!r} is not in {path.name}")
    if stage_config.get("autogen_policy", config.get("autogen_policy", True)):
        raise AdminError(f"stage {stage} does not set autogen_policy to false")
    default = stage_config.get("iam_policy_file", config.get("iam_policy_file", f"policy-{stage}.json"))
    functions = stage_config.get("lambda_functions", {})
    documents = role_policies(stage_environment(stage, path), config["app_name"], stage, sandbox_recipients)
    files: dict[Path, dict[str, Any]] = {}
    for function in FUNCTIONS:
        target = path.parent / functions.get(function, {}).get("iam_policy_file", default)
        if target in files:
            raise AdminError(f"two functions share {target.name}: give each its own iam_policy_file")
        files[target] = documents[function]
    return files


def render_policy(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def write_policies(
    stage: str, config_path: Path | None = None, sandbox_recipients: Sequence[str] = (), check: bool = False
) -> list[Path]:
    """Write the stage's policy files; returns those that changed (or would, with ``check``)."""
    changed = []
    for path, document in policy_files(stage, config_path, sandbox_recipients).items():
        text = render_policy(document)
        if not path.exists() or path.read_text() != text:
            changed.append(path)
            if not check:
                path.write_text(text)
    return changed


def set_stream_arn(stage: str, stream_arn: str, config_path: Path | None = None) -> bool:
    """Put ``stream_arn`` in the stage's config; True when it changed."""
    path = config_path or CONFIG
    config = _config(path)
    stage_config = config.get("stages", {}).get(stage)
    if stage_config is None:
        raise AdminError(f"stage {stage!r} is not in {path.name}")
    variables = stage_config.setdefault("environment_variables", {})
    if variables.get("OTP_STREAM_ARN") == stream_arn:
        return False
    variables["OTP_STREAM_ARN"] = stream_arn
    path.write_text(json.dumps(config, indent=2) + "\n")
    return True


def _settings() -> settings.Settings:
    try:
        return settings.load()
    except settings.ConfigError as error:
        raise AdminError(str(error)) from None


def _provision_command(args: argparse.Namespace, out: TextIO) -> int:
    env: Mapping[str, str] = os.environ
    missing = [n for n in ("OTP_TABLE_NAME", "OTP_KEY_PARAMETER", "OTP_SENDER") if not env.get(n)]
    if missing:
        raise AdminError(f"{missing[0]} is not set for stage {args.stage}")
    result = provision(env["OTP_TABLE_NAME"], env["OTP_KEY_PARAMETER"], env["OTP_SENDER"])
    print(f"table {result['table']} ready (stream NEW_IMAGE, TTL on expires_at)", file=out)
    print(f"code key {env['OTP_KEY_PARAMETER']} {'created' if result['key_created'] else 'kept'}", file=out)
    print(f"sender {result['sender']}: {result['sender_status']}", file=out)
    if result["sender_status"] != "verified":
        print("  open the link SES mailed to that address, then run provision again", file=out)
    print(f"OTP_STREAM_ARN={result['stream_arn']}", file=out)
    if args.write_config:
        if set_stream_arn(args.stage, result["stream_arn"]):
            print(f"{CONFIG.name}: OTP_STREAM_ARN of stage {args.stage} updated", file=out)
        config = _config()
        if not config["stages"][args.stage].get("autogen_policy", config.get("autogen_policy", True)):
            for path in write_policies(args.stage):
                print(f"{path.name} written", file=out)
    else:
        configured = stage_environment(args.stage)
        emulated = "AWS_ENDPOINT_URL" in configured  # the local stage: its stack passes the ARN itself
        if not emulated and configured.get("OTP_STREAM_ARN") != result["stream_arn"]:
            print(
                f"note: {CONFIG.name} has another OTP_STREAM_ARN; use --write-config to update it", file=out
            )
    return 0


def _policy_command(args: argparse.Namespace, out: TextIO) -> int:
    changed = write_policies(args.stage, sandbox_recipients=args.sandbox_recipient, check=args.check)
    names = ", ".join(path.name for path in changed)
    if args.check:
        if changed:
            raise AdminError(
                f"{names} out of date: run python -m chalicelib.admin policy --stage {args.stage}"
            )
        print(f"policies of stage {args.stage} are up to date", file=out)
    else:
        print(f"written: {names}" if changed else f"policies of stage {args.stage} unchanged", file=out)
    return 0


def _deprovision_command(args: argparse.Namespace, out: TextIO) -> int:
    env: Mapping[str, str] = os.environ
    table, parameter, sender = env["OTP_TABLE_NAME"], env["OTP_KEY_PARAMETER"], env["OTP_SENDER"]
    if not args.yes:
        raise AdminError(
            f"this deletes table {table} with every user, code key {parameter} and sender "
            f"{sender_address(sender)}; add --yes to go ahead"
        )
    removed = deprovision(table, parameter, sender, keep_sender=args.keep_sender)
    for what in removed:
        print(f"deleted {what}", file=out)
    if not removed:
        print("nothing to delete", file=out)
    return 0


def main(argv: Sequence[str] | None = None, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.admin", description=__doc__.split("\n")[0])
    parser.add_argument("--stage", default="local", help="stage in .chalice/config.json (default: local)")
    # --stage is accepted before or after the command name.
    stage_option = argparse.ArgumentParser(add_help=False)
    stage_option.add_argument("--stage", default=argparse.SUPPRESS, help="stage (default: local)")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("add-user", "disable-user", "enable-user"):
        commands.add_parser(name, parents=[stage_option]).add_argument("email")
    provision_parser = commands.add_parser(
        "provision",
        parents=[stage_option],
        help="create table, stream, TTL, code key and sender identity (idempotent)",
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
        help="delete the table (users too), code key and sender identity",
    )
    deprovision_parser.add_argument("--yes", action="store_true", help="really delete")
    deprovision_parser.add_argument("--keep-sender", action="store_true", help="keep the SES identity")
    args = parser.parse_args(argv)
    try:
        apply_stage(args.stage)
        if args.command == "provision":
            return _provision_command(args, out)
        if args.command == "policy":
            return _policy_command(args, out)
        if args.command == "deprovision":
            return _deprovision_command(args, out)
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
