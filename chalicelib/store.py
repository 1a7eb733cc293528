"""Every DynamoDB call the service makes, in one place.

One table, one string hash key ``pk``; each item has a ``kind``:

=============================  ===========  ====================================
pk                             kind         holds
=============================  ===========  ====================================
``user#<email>``               user         password hash, disabled flag
``session#<sha256(sid)>``      session      email, current nonce, send number,
                                            attempts, guess tags, expires_at
``challenge#<sha256>#<n>``     challenge    one send: email, nonce, expires_at;
                                            its INSERT is what the mailer acts on
``limit#<scope>#<id>#<hour>``  limit        counter of sends (or failed sign-ins)
                                            in one clock hour
``cooldown#<email>``           cooldown     earliest time of the next send
=============================  ===========  ====================================

``expires_at`` (epoch seconds) is the table's TTL attribute on every item but
users. Each public function here is exactly one DynamoDB round trip, so the
number of calls per request can be read off the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from chalicelib import aws
from chalicelib.errors import ServiceUnavailable


@cache
def _types() -> tuple[Any, Any]:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


def to_ddb(values: Mapping[str, Any]) -> dict[str, Any]:
    serializer, _ = _types()
    return {k: serializer.serialize(v) for k, v in values.items()}


def from_ddb(item: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A DynamoDB-JSON item as plain Python (numbers as int, binary as bytes)."""
    if not item:
        return None
    from boto3.dynamodb.types import Binary

    _, deserializer = _types()
    out: dict[str, Any] = {}
    for key, raw in item.items():
        value = deserializer.deserialize(raw)
        if isinstance(value, Decimal):
            value = int(value)  # every number stored here is whole
        elif isinstance(value, Binary):
            value = value.value
        out[key] = value
    return out


def _ddb() -> Any:
    return aws.client("dynamodb")


# ---------------------------------------------------------------- keys


def user_key(email: str) -> str:
    return f"user#{email}"


def session_key(session_hash: str) -> str:
    return f"session#{session_hash}"


def challenge_key(session_hash: str, send_no: int) -> str:
    return f"challenge#{session_hash}#{send_no}"


def limit_key(scope: str, ident: str, hour: int) -> str:
    return f"limit#{scope}#{ident}#{hour}"


def cooldown_key(email: str) -> str:
    return f"cooldown#{email}"


# ---------------------------------------------------------------- errors


class Cancelled(Exception):
    """A transaction's conditions did not hold.

    ``failed`` maps the role of each write whose condition failed to the item
    as it was (None when it did not exist).
    """

    def __init__(self, failed: dict[str, dict[str, Any] | None]) -> None:
        super().__init__(", ".join(failed))
        self.failed = failed


def is_conditional_failure(error: Exception) -> bool:
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    return code in {"ConditionalCheckFailedException", "TransactionCanceledException"}


# ---------------------------------------------------------------- users


def get_user(table: str, email: str) -> dict[str, Any] | None:
    response = _ddb().get_item(TableName=table, Key=to_ddb({"pk": user_key(email)}))
    return from_ddb(response.get("Item"))


def read_sign_in(
    table: str, email: str, counter_keys: Sequence[str]
) -> tuple[dict[str, Any] | None, list[dict[str, Any] | None]]:
    """The user and the given limit counters, in one BatchGetItem."""
    keys = [user_key(email), *counter_keys]
    response = _ddb().batch_get_item(
        RequestItems={table: {"Keys": [to_ddb({"pk": key}) for key in keys], "ConsistentRead": True}}
    )
    if response.get("UnprocessedKeys"):
        raise ServiceUnavailable()  # DynamoDB shed part of the read: busy, try again
    found = {item["pk"]["S"]: from_ddb(item) for item in response["Responses"].get(table, [])}
    return found.get(keys[0]), [found.get(key) for key in counter_keys]


def put_user(table: str, email: str, password_hash: str, now: int) -> None:
    """Create or replace a user (enabled)."""
    _ddb().put_item(
        TableName=table,
        Item=to_ddb(
            {
                "pk": user_key(email),
                "kind": "user",
                "email": email,
                "password_hash": password_hash,
                "disabled": False,
                "updated_at": now,
            }
        ),
    )


def set_user_disabled(table: str, email: str, disabled: bool, now: int) -> bool:
    """Flip the disabled flag; False when there is no such user."""
    return _conditional_update(
        table,
        user_key(email),
        "SET disabled = :d, updated_at = :now",
        "attribute_exists(pk)",
        {":d": disabled, ":now": now},
    )


# ---------------------------------------------------------------- sends


@dataclass(frozen=True)
class Window:
    """One hourly send limit: ``scope`` is "email" or "ip"."""

    scope: str
    ident: str
    limit: int


def _window_writes(
    table: str, window: Window, hour: int, conditional: bool = True
) -> list[tuple[str, dict[str, Any]]]:
    """Count an event in its clock hour and carry it into the next one.

    The bucket of hour h holds the events of h-1 and h, and the condition
    caps that sum: so any 60 minutes (which lie inside two consecutive clock
    hours) see at most ``limit`` events, with no burst at the hour boundary.
    """
    update: dict[str, Any] = {
        "TableName": table,
        "Key": to_ddb({"pk": limit_key(window.scope, window.ident, hour)}),
        "UpdateExpression": "ADD n :one, own :one SET kind = :kind, expires_at = :exp",
        "ExpressionAttributeValues": to_ddb({":one": 1, ":kind": "limit", ":exp": (hour + 2) * 3600}),
    }
    if conditional:
        update["ConditionExpression"] = "attribute_not_exists(n) OR n < :limit"
        update["ExpressionAttributeValues"].update(to_ddb({":limit": window.limit}))
        update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return [
        (f"{window.scope}_window", {"Update": update}),
        (
            f"{window.scope}_carry",
            {
                "Update": {
                    "TableName": table,
                    "Key": to_ddb({"pk": limit_key(window.scope, window.ident, hour + 1)}),
                    "UpdateExpression": "ADD n :one SET kind = :kind, expires_at = :exp",
                    "ExpressionAttributeValues": to_ddb(
                        {":one": 1, ":kind": "limit", ":exp": (hour + 3) * 3600}
                    ),
                }
            },
        ),
    ]


def _cooldown_write(table: str, email: str, now: int, until: int) -> tuple[str, dict[str, Any]]:
    return (
        "cooldown",
        {
            "Update": {
                "TableName": table,
                "Key": to_ddb({"pk": cooldown_key(email)}),
                "UpdateExpression": "SET kind = :kind, #until = :until, expires_at = :until",
                "ConditionExpression": "attribute_not_exists(#until) OR #until <= :now",
                "ExpressionAttributeNames": {"#until": "until"},
                "ExpressionAttributeValues": to_ddb({":kind": "cooldown", ":until": until, ":now": now}),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
    )


def _challenge_put(table: str, challenge: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    return (
        "challenge",
        {
            "Put": {
                "TableName": table,
                "Item": to_ddb({**challenge, "kind": "challenge"}),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
    )


def _transact(writes: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """One TransactWriteItems; on cancellation raise :class:`Cancelled`."""
    from botocore.exceptions import ClientError

    try:
        _ddb().transact_write_items(TransactItems=[write for _, write in writes])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
            raise
        reasons = error.response.get("CancellationReasons") or []
        failed: dict[str, dict[str, Any] | None] = {}
        for (role, _), reason in zip(writes, reasons, strict=False):
            if reason.get("Code") not in (None, "None"):
                if reason.get("Code") != "ConditionalCheckFailed":
                    raise  # a conflict or throttle, not a rule: let retries/503 handle it
                failed[role] = from_ddb(reason.get("Item"))
        if not failed:
            raise
        raise Cancelled(failed) from None


def _send(
    table: str,
    session_write: dict[str, Any],
    email: str,
    challenge: Mapping[str, Any],
    windows: Sequence[Window],
    hour: int,
    now: int,
    cooldown_until: int,
) -> None:
    """One send, in one transaction: the session write, the challenge, the
    cooldown and every send counter."""
    writes = [
        ("session", session_write),
        _challenge_put(table, challenge),
        _cooldown_write(table, email, now, cooldown_until),
    ]
    for window in windows:
        writes += _window_writes(table, window, hour)
    _transact(writes)


def create_session(
    table: str,
    session: Mapping[str, Any],
    challenge: Mapping[str, Any],
    windows: Sequence[Window],
    hour: int,
    now: int,
    cooldown_until: int,
) -> None:
    """Write a new session and its first challenge, counting the send."""
    put = {
        "Put": {
            "TableName": table,
            "Item": to_ddb({**session, "kind": "session"}),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    _send(table, put, session["email"], challenge, windows, hour, now, cooldown_until)


def renew_session(
    table: str,
    session: Mapping[str, Any],
    challenge: Mapping[str, Any],
    windows: Sequence[Window],
    hour: int,
    now: int,
    cooldown_until: int,
) -> None:
    """Replace a session's nonce with ``challenge``'s, counting the send.

    ``session`` is the item as read; the write only holds if nobody changed
    it since (same nonce, same attempt count). The tags of codes tried against
    the old nonce are dropped: they can never match the new code's.
    """
    update = {
        "Update": {
            "TableName": table,
            "Key": to_ddb({"pk": session["pk"]}),
            "UpdateExpression": "SET nonce = :nonce, send_no = :send_no, expires_at = :exp REMOVE tags",
            "ConditionExpression": "nonce = :old_nonce AND attempts = :old_attempts",
            "ExpressionAttributeValues": to_ddb(
                {
                    ":nonce": challenge["nonce"],
                    ":send_no": challenge["send_no"],
                    ":exp": challenge["expires_at"],
                    ":old_nonce": session["nonce"],
                    ":old_attempts": session["attempts"],
                }
            ),
        }
    }
    _send(table, update, session["email"], challenge, windows, hour, now, cooldown_until)


def count_events(table: str, windows: Sequence[Window], hour: int) -> None:
    """Count one event (a failed sign-in) in each window, in one transaction."""
    writes: list[tuple[str, dict[str, Any]]] = []
    for window in windows:
        writes += _window_writes(table, window, hour, conditional=False)
    _transact(writes)


def get_session(table: str, session_hash: str) -> dict[str, Any] | None:
    response = _ddb().get_item(
        TableName=table, Key=to_ddb({"pk": session_key(session_hash)}), ConsistentRead=True
    )
    return from_ddb(response.get("Item"))


def record_guess(
    table: str, session_hash: str, tag: str, now: int, max_attempts: int
) -> tuple[bool, dict[str, Any] | None]:
    """Count one verification attempt and remember its tag, atomically.

    The write holds only while the session exists, has not expired and has
    attempts left. Returns (counted, item before the write); the item tells
    the caller whether the code was right and whether it had been used.
    """
    from botocore.exceptions import ClientError

    try:
        response = _ddb().update_item(
            TableName=table,
            Key=to_ddb({"pk": session_key(session_hash)}),
            UpdateExpression="ADD attempts :one, tags :tag",
            ConditionExpression="attribute_exists(pk) AND expires_at > :now AND attempts < :max",
            ExpressionAttributeValues=to_ddb({":one": 1, ":tag": {tag}, ":now": now, ":max": max_attempts}),
            ReturnValues="ALL_OLD",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        return False, from_ddb(error.response.get("Item"))
    return True, from_ddb(response.get("Attributes"))


# ---------------------------------------------------------------- mail marks


def _conditional_update(table: str, pk: str, update: str, condition: str, values: dict[str, Any]) -> bool:
    """One UpdateItem; False (not an error) when its condition does not hold."""
    from botocore.exceptions import ClientError

    try:
        _ddb().update_item(
            TableName=table,
            Key=to_ddb({"pk": pk}),
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues=to_ddb(values),
        )
    except ClientError as error:
        if is_conditional_failure(error):
            return False
        raise
    return True


def claim_challenge(table: str, pk: str, now: int) -> bool:
    """Mark a challenge as being mailed; False if it already was (or is gone)."""
    return _conditional_update(
        table,
        pk,
        "SET mailed_at = :now",
        "attribute_exists(pk) AND attribute_not_exists(mailed_at)",
        {":now": now},
    )


def release_challenge(table: str, pk: str, now: int) -> None:
    """Undo :func:`claim_challenge` after a failed send, so a retry sends it."""
    _conditional_update(table, pk, "REMOVE mailed_at", "mailed_at = :now", {":now": now})


# ---------------------------------------------------------------- provisioning

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


class TableMismatch(Exception):
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
    client = _ddb()
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
    client = _ddb()
    try:
        client.delete_table(TableName=table)
    except client.exceptions.ResourceNotFoundException:
        return False
    client.get_waiter("table_not_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    return True
