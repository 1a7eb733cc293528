"""What the app needs and Chalice does not create: table, code key, sender, SES events.

The DynamoDB table (on-demand, string key ``pk``, stream NEW_AND_OLD_IMAGES, TTL on
``expires_at``), the SecureString code key in SSM, the SES sender
identity, and the path of SES's delivery events: the configuration set
every send names, the SNS topic the app's ``delivery_events`` handler
subscribes to, and the set's event destination publishing to that topic;
and their teardown. Everything here is safe to run again and replaces
nothing that exists. It runs with the operator's AWS credentials, never
the Lambda roles'.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws, keys
from ops import OpsError

TTL_ATTRIBUTE = "expires_at"


def table_definition(table: str) -> dict[str, Any]:
    """CreateTable arguments: on-demand, string key ``pk``, stream NEW_AND_OLD_IMAGES."""
    return {
        "TableName": table,
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
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
            f"the stream of table {table} is {stream.get('StreamViewType')}; the mailer needs "
            "NEW_AND_OLD_IMAGES (NEW_IMAGE: mail, and an audit trail without the changes to accounts)"
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


# ---------------------------------------------------------------- SES events

# What SES publishes to the topic (SES API v2 names; v1 has no DELIVERY_DELAY).
EVENT_TYPES = ("SEND", "REJECT", "BOUNCE", "COMPLAINT", "DELIVERY", "DELIVERY_DELAY")
EVENT_DESTINATION = "simple-otp-delivery-events"
# The topic policy statement that lets SES publish the set's events (and nothing else).
TOPIC_POLICY_SID = "AllowSESEventPublishing"

_TOPIC_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sns:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<name>[^:]+)$"
)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def ensure_configuration_set(name: str) -> bool:
    """Create the SES configuration set if missing; True when it was created."""
    ses = aws.client("sesv2")
    try:
        ses.get_configuration_set(ConfigurationSetName=name)
        return False
    except ClientError as error:
        if _error_code(error) != "NotFoundException":
            raise
    try:
        ses.create_configuration_set(ConfigurationSetName=name)
    except ClientError as error:
        if _error_code(error) != "AlreadyExistsException":
            raise
        return False  # created meanwhile by another run
    return True


def topic_policy_statement(topic_arn: str, configuration_set: str) -> dict[str, Any]:
    """The statement that lets SES publish this configuration set's events to the topic."""
    parts = _TOPIC_ARN.match(topic_arn)
    if parts is None:
        raise OpsError(f"{topic_arn} is not an SNS topic ARN")
    partition, region, account = parts["partition"], parts["region"], parts["account"]
    source = f"arn:{partition}:ses:{region}:{account}:configuration-set/{configuration_set}"
    return {
        "Sid": TOPIC_POLICY_SID,
        "Effect": "Allow",
        "Principal": {"Service": "ses.amazonaws.com"},
        "Action": "SNS:Publish",
        "Resource": topic_arn,
        "Condition": {
            "StringEquals": {
                "AWS:SourceAccount": account,
                "AWS:SourceArn": source,
            }
        },
    }


def ensure_events_topic(topic: str, configuration_set: str) -> str:
    """The SNS topic of SES's events, created if missing (by name); returns its ARN.

    ``topic`` is a name (``OTP_SES_EVENTS_TOPIC``) or the ARN of an existing
    topic. Its policy gets one statement letting SES publish the
    configuration set's events; the rest of the policy is kept.
    """
    sns = aws.client("sns")
    if topic.startswith("arn:"):
        arn = topic
        try:
            attributes = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
        except ClientError as error:
            if _error_code(error) != "NotFound":
                raise
            raise OpsError(
                f"SNS topic {arn} does not exist: create it, or give OTP_SES_EVENTS_TOPIC a name"
            ) from None
    else:
        arn = str(sns.create_topic(Name=topic)["TopicArn"])  # returns the existing topic's ARN
        attributes = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    wanted = topic_policy_statement(arn, configuration_set)
    policy = json.loads(attributes.get("Policy") or '{"Version": "2012-10-17", "Statement": []}')
    statements = [s for s in policy.get("Statement", []) if s.get("Sid") != TOPIC_POLICY_SID]
    if statements + [wanted] != policy.get("Statement"):
        policy["Statement"] = [*statements, wanted]
        sns.set_topic_attributes(TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(policy))
    return arn


def event_destination(topic_arn: str) -> dict[str, Any]:
    """The event destination (SES API v2): every delivery event, to the topic."""
    return {
        "Enabled": True,
        "MatchingEventTypes": list(EVENT_TYPES),
        "SnsDestination": {"TopicArn": topic_arn},
    }


def ensure_event_destination(configuration_set: str, topic_arn: str) -> str:
    """The set's event destination to the topic: "created", "updated" (it differed) or "kept"."""
    ses = aws.client("sesv2")
    wanted = event_destination(topic_arn)
    found = ses.get_configuration_set_event_destinations(ConfigurationSetName=configuration_set)
    for existing in found.get("EventDestinations", []):
        if existing.get("Name") != EVENT_DESTINATION:
            continue
        same = (
            bool(existing.get("Enabled"))
            and sorted(existing.get("MatchingEventTypes", [])) == sorted(EVENT_TYPES)
            and (existing.get("SnsDestination") or {}).get("TopicArn") == topic_arn
        )
        if same:
            return "kept"
        ses.update_configuration_set_event_destination(
            ConfigurationSetName=configuration_set,
            EventDestinationName=EVENT_DESTINATION,
            EventDestination=wanted,
        )
        return "updated"
    ses.create_configuration_set_event_destination(
        ConfigurationSetName=configuration_set,
        EventDestinationName=EVENT_DESTINATION,
        EventDestination=wanted,
    )
    return "created"


def ensure_ses_events(configuration_set: str, topic: str) -> dict[str, Any]:
    """Configuration set, topic (with SES's publish statement) and the destination between them."""
    created = ensure_configuration_set(configuration_set)
    topic_arn = ensure_events_topic(topic, configuration_set)
    destination = ensure_event_destination(configuration_set, topic_arn)
    return {
        "configuration_set": configuration_set,
        "configuration_set_created": created,
        "events_topic_arn": topic_arn,
        "event_destination": destination,
    }


def delete_ses_events(configuration_set: str, topic: str) -> list[str]:
    """Delete the configuration set (its destinations go with it) and the topic."""
    removed = []
    ses = aws.client("sesv2")
    try:
        ses.get_configuration_set(ConfigurationSetName=configuration_set)
        ses.delete_configuration_set(ConfigurationSetName=configuration_set)
        removed.append(f"configuration set {configuration_set}")
    except ClientError as error:
        if _error_code(error) != "NotFoundException":
            raise
    sns = aws.client("sns")
    if topic.startswith("arn:"):
        arn = topic
    else:
        arns = [t["TopicArn"] for page in sns.get_paginator("list_topics").paginate() for t in page["Topics"]]
        arn = next((a for a in arns if a.rsplit(":", 1)[-1] == topic), "")
    if arn:
        try:
            sns.get_topic_attributes(TopicArn=arn)
        except ClientError as error:
            if _error_code(error) != "NotFound":
                raise
        else:
            sns.delete_topic(TopicArn=arn)
            removed.append(f"SNS topic {arn}")
    return removed


# ---------------------------------------------------------------- token signing key

TOKEN_KEY_SPEC = {"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}


def _alias_target(alias: str) -> str | None:
    """The key id an alias points at, or None when there is no such alias."""
    kms = aws.client("kms")
    try:
        return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"])
    except kms.exceptions.NotFoundException:
        return None


def _new_token_key(alias: str) -> str:
    meta = aws.client("kms").create_key(
        Description=f"simple-otp token signing key ({alias})",
        Tags=[{"TagKey": "simple-otp", "TagValue": alias}],
        **TOKEN_KEY_SPEC,
    )["KeyMetadata"]
    return str(meta["KeyId"])


def _token_alias(key_id: str) -> str:
    from chalicelib.tokens import alias_name

    name = alias_name(key_id)
    if name is None:
        raise OpsError(f"OTP_TOKEN_KEY_ID={key_id} is not an alias: provisioning and rotation need one")
    return name


def ensure_token_key(key_id: str) -> bool:
    """Create the token signing key (ECC_NIST_P256, SIGN_VERIFY) and its alias if missing.

    An existing key is kept, but only if it is an asymmetric P-256 signing key.
    """
    alias = _token_alias(key_id)
    target = _alias_target(alias)
    if target is not None:
        meta = aws.client("kms").describe_key(KeyId=target)["KeyMetadata"]
        if meta.get("KeySpec") != "ECC_NIST_P256" or meta.get("KeyUsage") != "SIGN_VERIFY":
            raise OpsError(f"{alias} points at a key that is not ECC_NIST_P256 SIGN_VERIFY")
        return False
    aws.client("kms").create_alias(AliasName=alias, TargetKeyId=_new_token_key(alias))
    return True


def rotate_token_key(key_id: str) -> tuple[str, str]:
    """A new signing key under the alias; the key before it moves to ``<alias>-previous``.

    Returns (new key id, previous key id). The API keeps signing with the
    previous key until the new one has been published for a while, and the
    JWKS lists the previous key for OTP_TOKEN_GRACE_SECONDS (chalicelib.tokens).
    """
    from chalicelib.tokens import previous_alias

    alias = _token_alias(key_id)
    old = _alias_target(alias)
    if old is None:
        raise OpsError(f"no key under {alias}: run provision first")
    kms = aws.client("kms")
    new = _new_token_key(alias)
    previous = str(previous_alias(alias))
    retired = _alias_target(previous)
    if retired is None:
        kms.create_alias(AliasName=previous, TargetKeyId=old)
    else:
        kms.update_alias(AliasName=previous, TargetKeyId=old)
    kms.update_alias(AliasName=alias, TargetKeyId=new)
    if retired is not None and retired != old:
        kms.schedule_key_deletion(KeyId=retired, PendingWindowInDays=7)
    return new, old


def delete_token_keys(key_id: str) -> list[str]:
    """Delete the aliases and schedule their keys' deletion (KMS waits 7 days at least)."""
    from chalicelib.tokens import previous_alias

    alias = _token_alias(key_id)
    kms = aws.client("kms")
    removed = []
    for name in (alias, str(previous_alias(alias))):
        target = _alias_target(name)
        if target is None:
            continue
        kms.delete_alias(AliasName=name)
        kms.schedule_key_deletion(KeyId=target, PendingWindowInDays=7)
        removed.append(f"token key {name} (deletion scheduled in 7 days)")
    return removed


def provision(
    table: str,
    parameter: str,
    sender: str,
    token_key: str,
    configuration_set: str | None = None,
    events_topic: str | None = None,
) -> dict[str, Any]:
    """Create what the app needs and Chalice does not; safe to run again.

    The table (stream NEW_AND_OLD_IMAGES, TTL on ``expires_at``), the SecureString
    code key, the token signing key in KMS (with its alias) and the SES
    sender identity; with ``configuration_set`` and ``events_topic``
    (``OTP_SES_CONFIGURATION_SET``, ``OTP_SES_EVENTS_TOPIC``) also the SES
    configuration set, the SNS topic and the set's event destination to it
    (:func:`ensure_ses_events`; its keys join the result). Nothing that
    exists is replaced.
    """
    if (configuration_set is None) != (events_topic is None):
        raise OpsError("the SES configuration set and its events topic are provisioned together: give both")
    stream_arn = ensure_table(table)
    created_key = ensure_code_key(parameter)
    created_token_key = ensure_token_key(token_key)
    sender_status = ensure_sender(sender)
    result: dict[str, Any] = {
        "table": table,
        "stream_arn": stream_arn,
        "key_created": created_key,
        "token_key": token_key,
        "token_key_created": created_token_key,
        "sender": sender,
        "sender_status": sender_status,
    }
    if configuration_set is not None and events_topic is not None:
        result.update(ensure_ses_events(configuration_set, events_topic))
    return result


def deprovision(
    table: str,
    parameter: str,
    sender: str,
    token_key: str,
    keep_sender: bool = False,
    configuration_set: str | None = None,
    events_topic: str | None = None,
) -> list[str]:
    """Delete what :func:`provision` created (users included); safe to run again."""
    removed = []
    if delete_table(table):
        removed.append(f"table {table}")
    if configuration_set is not None and events_topic is not None:
        removed += delete_ses_events(configuration_set, events_topic)
    removed += delete_token_keys(token_key)
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
