"""What the app needs and Chalice does not create: table, code key, sender.

The DynamoDB table (on-demand, string key ``pk``, stream NEW_IMAGE, TTL on
``expires_at``), the SecureString code key in SSM and the SES sender
identity; and their teardown. Everything here is safe to run again and
replaces nothing that exists. It runs with the operator's AWS credentials,
never the Lambda roles'.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from chalicelib import aws, keys
from ops import OpsError

TTL_ATTRIBUTE = "expires_at"


def table_definition(table: str) -> dict[str, Any]:
    """CreateTable arguments: on-demand, string key ``pk``, stream NEW_IMAGE."""
    return {
        "TableName": table,
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        "SSESpecification": {"Enabled": True},
    }


class TableMismatch(OpsError):
    """An existing table cannot serve the app as it is; the message says why."""


def _wait_active(client: Any, table: str) -> dict[str, Any]:
    client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    return dict(client.describe_table(TableName=table)["Table"])


def ensure_table(table: str) -> str:
    """Create the table with its stream and TTL if missing; return the stream ARN.

    Safe to run again: an existing table is checked (key schema, stream view,
    TTL attribute) and completed, never replaced. What cannot be fixed in
    place raises :class:`TableMismatch`.
    """
    client = aws.client("dynamodb")
    try:
        description = client.describe_table(TableName=table)["Table"]
    except client.exceptions.ResourceNotFoundException:
        try:
            client.create_table(**table_definition(table))
        except client.exceptions.ResourceInUseException:
            pass  # created meanwhile by another run
        description = _wait_active(client, table)
    wanted = table_definition(table)
    if description.get("KeySchema") != wanted["KeySchema"]:
        raise TableMismatch(f"table {table} exists with another key schema (the app needs a string key pk)")
    stream = description.get("StreamSpecification") or {}
    if not stream.get("StreamEnabled"):
        if description.get("TableStatus") != "ACTIVE":
            description = _wait_active(client, table)
        client.update_table(TableName=table, StreamSpecification=wanted["StreamSpecification"])
        description = _wait_active(client, table)
    elif stream.get("StreamViewType") not in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        raise TableMismatch(
            f"the stream of table {table} is {stream.get('StreamViewType')}; the mailer needs NEW_IMAGE"
        )
    ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    status, attribute = ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")
    if status in ("ENABLED", "ENABLING"):
        if attribute != TTL_ATTRIBUTE:
            raise TableMismatch(f"table {table} has TTL on {attribute}; the app needs it on {TTL_ATTRIBUTE}")
    elif status == "DISABLING":
        raise TableMismatch(f"TTL of table {table} is being disabled; AWS allows enabling it again later")
    else:
        client.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
    return str(description["LatestStreamArn"])


def delete_table(table: str) -> bool:
    """Delete the table (operator teardown); False when there was none."""
    client = aws.client("dynamodb")
    try:
        client.delete_table(TableName=table)
    except client.exceptions.ResourceNotFoundException:
        return False
    client.get_waiter("table_not_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    return True


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
            raise OpsError(
                f"{parameter} exists as a {found.get('Type')}, not a SecureString: "
                "delete it or choose another OTP_KEY_PARAMETER"
            )
        try:
            keys.decode_key(found["Value"])
        except ValueError as error:
            raise OpsError(f"{parameter} holds no usable code key: {error}") from None
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
    stream_arn = ensure_table(table)
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
    if delete_table(table):
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
