"""The Lambda roles' IAM policies, written from a stage's settings.

Chalice's ``autogen_policy`` would guess a policy from the calls it sees in
the code; stages that set it to false name a policy file per function
instead, and ``simple-otp policy`` writes them with every resource named
exactly: this table, this stream, this parameter, this sender.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ops import OpsError
from ops.provision import sender_address
from ops.stage import config_file, read_config, stage_environment

# Chalice's names for the Lambda functions (app.py): the routes, the stream
# handler that mails, and the handler of SES's delivery events (from SNS).
# Each gets its own role, and so its own policy file.
FUNCTIONS = ("api_handler", "send_code", "delivery_events")

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
    names = (
        "OTP_TABLE_NAME",
        "OTP_STREAM_ARN",
        "OTP_SENDER",
        "OTP_KEY_PARAMETER",
        "OTP_TOKEN_KEY_ID",
        "OTP_SES_CONFIGURATION_SET",
    )
    missing = [name for name in names if not env.get(name)]
    if missing:
        raise OpsError(f"{missing[0]} is not set for stage {stage}")
    stream_arn, table = env["OTP_STREAM_ARN"], env["OTP_TABLE_NAME"]
    match = _STREAM_ARN.match(stream_arn)
    if not match or match["table"] != table:
        raise OpsError(f"OTP_STREAM_ARN of stage {stage} is not a stream of table {table}")
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

    # The token signing key: found by its alias (DescribeKey), its public key
    # read for the JWKS, tokens signed with it. Only the stage's key, and the
    # previous one during a rotation's grace period, by their aliases (the key
    # behind an alias changes at every rotation; the policy need not).
    from chalicelib.tokens import alias_name, previous_alias

    token_alias = alias_name(env["OTP_TOKEN_KEY_ID"])
    if token_alias is None:
        raise OpsError(
            f"OTP_TOKEN_KEY_ID of stage {stage} is not an alias (alias/NAME): the policy names aliases"
        )
    aliases = [token_alias, str(previous_alias(token_alias))]
    token_key = {
        "Sid": "SignTokens",
        "Effect": "Allow",
        "Action": ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign"],
        "Resource": arn("kms", "key/*"),
        "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": aliases}},
    }
    code_key = [
        {
            # Each session's code is derived with the key version it was made
            # with, read as NAME:VERSION; the second ARN covers that form.
            "Sid": "ReadCodeKey",
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": [parameter_arn, f"{parameter_arn}:*"],
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
            # GetItem: the user at sign-in, sessions at resend. PutItem and
            # UpdateItem: the Put and Update writes of the sign-in/resend
            # TransactWriteItems (and the password-check slots), the
            # verification UpdateItem, the account a sign-up creates.
            # BatchWriteItem: a password reset closing the account's
            # sessions, clearing its failure buckets and queueing the notice.
            "Sid": "TableItems",
            "Effect": "Allow",
            "Action": [
                "dynamodb:BatchWriteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ],
            "Resource": table_arn,
        },
        token_key,
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
            # The claim is one TransactWriteItems: an Update of the challenge,
            # a ConditionCheck of its session (the code can still work) and one
            # that the address is not suppressed. UpdateItem also notes SES's
            # message id on the challenge, and a suppressed send's state.
            "Sid": "ClaimChallenges",
            "Effect": "Allow",
            "Action": ["dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"],
            "Resource": table_arn,
        },
        {
            "Sid": "SendAsSender",
            "Effect": "Allow",
            "Action": "ses:SendRawEmail",
            "Resource": [arn("ses", f"identity/{identity}") for identity in dict.fromkeys(identities)],
            "Condition": {"StringEquals": {"ses:FromAddress": address}},
        },
        {
            # A send that names a configuration set (each does: its events
            # say where the mail went) is also authorized on that set.
            "Sid": "SendThroughConfigurationSet",
            "Effect": "Allow",
            "Action": "ses:SendRawEmail",
            "Resource": arn("ses", f"configuration-set/{env['OTP_SES_CONFIGURATION_SET']}"),
            "Condition": {"StringEquals": {"ses:FromAddress": address}},
        },
        *code_key,
    ]
    events = [
        logs("delivery_events"),
        {
            # SNS invokes the function (its subscription and Lambda's resource
            # policy, not this role). UpdateItem: a session's delivery state
            # moved forward. PutItem: an address suppressed after a permanent
            # bounce or a complaint.
            "Sid": "RecordDeliveries",
            "Effect": "Allow",
            "Action": ["dynamodb:PutItem", "dynamodb:UpdateItem"],
            "Resource": table_arn,
        },
    ]
    return {
        "api_handler": {"Version": "2012-10-17", "Statement": api},
        "send_code": {"Version": "2012-10-17", "Statement": mailer},
        "delivery_events": {"Version": "2012-10-17", "Statement": events},
    }


def policy_files(
    stage: str, config_path: Path | None = None, sandbox_recipients: Sequence[str] = ()
) -> dict[Path, dict[str, Any]]:
    """Each policy file the stage's config names, with the document it must hold."""
    path = config_file(config_path)
    config = read_config(path)
    stage_config = config.get("stages", {}).get(stage)
    if stage_config is None:
        raise OpsError(f"stage {stage!r} is not in {path.name}")
    if stage_config.get("autogen_policy", config.get("autogen_policy", True)):
        raise OpsError(f"stage {stage} does not set autogen_policy to false")
    default = stage_config.get("iam_policy_file", config.get("iam_policy_file", f"policy-{stage}.json"))
    functions = stage_config.get("lambda_functions", {})
    documents = role_policies(stage_environment(stage, path), config["app_name"], stage, sandbox_recipients)
    files: dict[Path, dict[str, Any]] = {}
    for function in FUNCTIONS:
        target = path.parent / functions.get(function, {}).get("iam_policy_file", default)
        if target in files:
            raise OpsError(f"two functions share {target.name}: give each its own iam_policy_file")
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
