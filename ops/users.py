"""User accounts from the command line: add (or set a password), disable, enable.

The account rules live in chalicelib.accounts; this layer checks the
operator's input the way the API checks a request and turns what went wrong
into one line.
"""

from __future__ import annotations

import getpass
from typing import TextIO

from chalicelib import accounts, inputs, passwords, settings
from chalicelib.errors import InvalidRequest
from ops import OpsError


def read_password(stdin: TextIO) -> str:
    """From stdin when it is not a terminal (one line), else prompted twice."""
    if not stdin.isatty():
        value = stdin.readline().rstrip("\r\n")
    else:
        value = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != value:
            raise OpsError("the passwords differ")
    try:
        return inputs.password({"password": value})
    except InvalidRequest as error:
        raise OpsError(error.message) from None


def address(raw: str) -> str:
    """The email as the API would take it (normalised), or :class:`OpsError`."""
    try:
        return inputs.email({"email": raw})
    except InvalidRequest as error:
        raise OpsError(error.message) from None


def add_user(cfg: settings.Settings, email: str, password: str, allow_weak: bool = False) -> str:
    """Create the user, or replace it: enabled, with this password. Returns the address.

    The password must pass the policy for every new password
    (:func:`chalicelib.passwords.weakness`), else :class:`OpsError` with its
    message: an operator is no exception to it. ``allow_weak`` skips the
    policy, for tests and demos that want a short or common password.
    """
    email = address(email)
    weak = None if allow_weak else passwords.weakness(password, email)
    if weak is not None:
        raise OpsError(weak[1])
    accounts.set_password(cfg, email, password)
    return email


def set_disabled(cfg: settings.Settings, email: str, disabled: bool) -> str:
    """Disable or enable the user; returns the address."""
    email = address(email)
    try:
        accounts.set_disabled(cfg, email, disabled)
    except accounts.NoSuchAccount:
        raise OpsError(f"no user {email}") from None
    return email


def backfill_ids(cfg: settings.Settings) -> int:
    """Give every account without an id (made before ids existed) one; returns how many.

    A sign-in does the same for its own account; this is for doing it at once.
    Each write holds only while the account still has no id.
    """
    from chalicelib import aws, codes
    from chalicelib.store import from_ddb, to_ddb

    client = aws.client("dynamodb")
    given = 0
    for page in client.get_paginator("scan").paginate(
        TableName=cfg.table_name,
        FilterExpression="kind = :user AND attribute_not_exists(#sub)",
        ExpressionAttributeNames={"#sub": "sub"},
        ExpressionAttributeValues=to_ddb({":user": "user"}),
        ConsistentRead=True,
    ):
        for raw in page.get("Items", []):
            item = from_ddb(raw) or {}
            try:
                client.update_item(
                    TableName=cfg.table_name,
                    Key=to_ddb({"pk": item["pk"]}),
                    UpdateExpression="SET #sub = :sub",
                    ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#sub)",
                    ExpressionAttributeNames={"#sub": "sub"},
                    ExpressionAttributeValues=to_ddb({":sub": codes.new_account_id()}),
                )
                given += 1
            except client.exceptions.ConditionalCheckFailedException:
                pass  # a sign-in gave it one meanwhile
    return given
