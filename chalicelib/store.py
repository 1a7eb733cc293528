"""Every DynamoDB call the service makes, in one place.

One table, one string hash key ``pk``; each item has a ``kind``:

=============================  ===========  ====================================
pk                             kind         holds
=============================  ===========  ====================================
``user#<email>``               user         password hash, disabled flag, version
                                            (bumped by every account change), the
                                            open sessions (hash -> end of life),
                                            the trusted devices (hash of the
                                            token -> created, last used, expiry,
                                            label)
``session#<sha256(sid)>``      session      email, current nonce and key version,
                                            send number, attempts, tag of the right
                                            code, tag of the last guess, expires_at
``challenge#<sha256>#<n>``     challenge    one send: email, nonce, key version,
                                            expires_at; its INSERT is what the
                                            mailer acts on
``limit#<scope>#<id>#<hour>``  limit        counter of sends (or failed sign-ins)
                                            in one clock hour
``cooldown#<email>``           cooldown     earliest time of the next send (for a
``cooldown#device#<id>``                    trusted device: its own)
``notice#<sha256>``            notice       a mail without a code ("your password
                                            was changed"); its INSERT is mailed
``suppressed#<email>``         suppressed   an address SES bounced for good or that
                                            complained: mailed no more until an
                                            operator lifts it (no TTL)
``audit#<email>#<hour>``       audit        the account's audit entries of one
                                            clock hour (attribute ``e:<id>`` ->
                                            time, event, outcome, hashed network,
                                            detail), kept 90 days; written by the
                                            stream handler, ignored by the mailer
=============================  ===========  ====================================

For the audit trail, which the stream handler derives from the records it
sees, writes that happen anyway also say who made them: a session and a
challenge carry ``ip`` (the hash of the client's network the per-IP windows
use), a guess ``last_ip`` and ``guessed_at``, and a limit bucket the last
count's ``last_at``, ``last_ip`` and ``email`` (a password-check slot also
``last_attempt``, an id its session repeats as ``attempt``, and ``account``).

A session also says where the mail of its latest send is: ``delivery``
(queued, sent, delivered, ...), ``delivery_at`` and ``delivery_rank``, which
only grows, so a late or repeated SES event never moves it back.

A session has a ``purpose``: absent for a sign-in, ``signup`` or ``reset``;
each verify route takes only its own. Its ``mail`` says what its sends mail
(absent: the sign-in code).

A session is *used* when its last guess is the right code (``last_tag =
code_tag``): both are stored, so every condition below can refuse a used
session without knowing any key.

``expires_at`` (epoch seconds) is the table's TTL attribute on every item but
users and suppressions. Each public function here is exactly one DynamoDB
round trip (but :func:`close_sessions`, one per 25 sessions, and the
operator's :func:`list_suppressed`), so the number of calls per
request can be read off the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from chalicelib import aws
from chalicelib.errors import ServiceUnavailable, error_code


@cache
def _types() -> tuple[Any, Any]:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


def to_ddb(values: Mapping[str, Any]) -> dict[str, Any]:
    serializer, _ = _types()
    return {k: serializer.serialize(v) for k, v in values.items()}


def _plain(value: Any) -> Any:
    from boto3.dynamodb.types import Binary

    if isinstance(value, Decimal):
        return int(value)  # every number stored here is whole
    if isinstance(value, Binary):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def from_ddb(item: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A DynamoDB-JSON item as plain Python (numbers as int, binary as bytes)."""
    if not item:
        return None
    _, deserializer = _types()
    return {key: _plain(deserializer.deserialize(raw)) for key, raw in item.items()}


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


def cooldown_key(ident: str) -> str:
    return f"cooldown#{ident}"


def notice_key(session_hash: str) -> str:
    return f"notice#{session_hash}"


def suppression_key(email: str) -> str:
    return f"suppressed#{email}"


QUEUED = {"delivery": "queued", "delivery_rank": 0}  # a new send's state, before SES saw it


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class Window:
    """One hourly cap on events of one identity: sends of codes (scopes
    ``email``, ``ip``) or failed sign-ins (``fail-email``, ``fail-ip``).

    ``ident`` is the address, or a hash of the client's network; ``limit``
    is how many events any 60 minutes may hold.
    """

    scope: str
    ident: str
    limit: int


@dataclass(frozen=True)
class Send:
    """One code to mail: what the session and its challenge item record.

    ``code_tag`` is the keyed tag of the right code (never the code);
    ``windows`` are the send limits it counts in, in clock hour ``hour``.
    """

    email: str
    session_hash: str
    send_no: int
    nonce: bytes
    key_version: int
    code_tag: str
    expires_at: int
    valid_seconds: int
    windows: tuple[Window, ...]
    hour: int
    now: int
    cooldown_until: int
    cooldown: str  # whose cooldown: the address, or "device#<id>" for a trusted device
    mail: str = "signin"  # what is mailed (chalicelib.mail.KINDS); "none": nothing at all
    ip: str = ""  # hash of the client's network (as the per-IP windows name it), for the audit trail

    @property
    def challenge_pk(self) -> str:
        return challenge_key(self.session_hash, self.send_no)


@dataclass(frozen=True)
class Account:
    """What a sign-in needs to know of the user item as it was read."""

    email: str
    version: int | None  # None: an item from before versions existed
    has_sessions: bool  # whether the open-sessions map exists yet
    sub: str  # the account's opaque id
    sub_is_new: bool = False  # an account from before ids: the sign-in gives it this one
    expired_sessions: tuple[str, ...] = ()  # map entries to prune
    has_devices: bool = False  # whether the devices map exists yet
    device: str | None = None  # the trusted device signing in (hash of its token)
    prune_devices: tuple[str, ...] = ()  # device entries to drop (expired, or too many)


class Cancelled(Exception):
    """A transaction's conditions did not hold; the fields say which.

    ``windows``: each full limit with its counter item as it was;
    ``cooldown_until``: set when the cooldown was still running;
    ``conflicts``: the other writes whose condition failed ("session",
    "challenge", "account"): an item changed or collided under us.
    """

    def __init__(
        self,
        windows: list[tuple[Window, dict[str, Any] | None]],
        cooldown_until: int | None,
        conflicts: set[str],
    ) -> None:
        names = [w.scope for w, _ in windows] + (["cooldown"] if cooldown_until is not None else [])
        super().__init__(", ".join(names + sorted(conflicts)))
        self.windows = windows
        self.cooldown_until = cooldown_until
        self.conflicts = conflicts


def is_conditional_failure(error: Exception) -> bool:
    return error_code(error) in {"ConditionalCheckFailedException", "TransactionCanceledException"}


# ---------------------------------------------------------------- users


def get_user(table: str, email: str) -> dict[str, Any] | None:
    response = _ddb().get_item(TableName=table, Key=to_ddb({"pk": user_key(email)}), ConsistentRead=True)
    return from_ddb(response.get("Item"))


def save_user(
    table: str,
    email: str,
    changes: Mapping[str, Any],
    now: int,
    create: bool,
    new_sub: str,
    revoke_devices: bool = True,
    expected_version: int | None = None,
) -> dict[str, Any] | None:
    """Apply ``changes`` to the user item and bump its version, in one UpdateItem.

    With ``create`` a missing user is made (enabled, no open sessions);
    without it a missing user is left alone and None comes back. With
    ``revoke_devices`` every trusted device is forgotten; with
    ``expected_version`` (0: none yet) the change holds only while the
    account still has that version, else None. Returns the item
    after the change: its ``sessions`` are the ones to close, and any
    sign-in still in flight fails on the new version.
    """
    from botocore.exceptions import ClientError

    values = {":kind": "user", ":email": email, ":now": now, ":one": 1, ":empty": {}, ":sub": new_sub}
    sets = [
        "kind = :kind",
        "email = :email",
        "updated_at = :now",
        "sessions = if_not_exists(sessions, :empty)",
        "devices = :empty" if revoke_devices else "devices = if_not_exists(devices, :empty)",
        "#sub = if_not_exists(#sub, :sub)",
    ]
    for index, (name, value) in enumerate(changes.items()):
        sets.append(f"{name} = :c{index}")
        values[f":c{index}"] = value
    request: dict[str, Any] = {
        "TableName": table,
        "Key": to_ddb({"pk": user_key(email)}),
        "UpdateExpression": "SET " + ", ".join(sets) + " ADD version :one",
        "ExpressionAttributeNames": {"#sub": "sub"},
        "ExpressionAttributeValues": to_ddb(values),
        "ReturnValues": "ALL_NEW",
    }
    if not create:
        request["ConditionExpression"] = "attribute_exists(pk)"
    if expected_version is not None:
        request["ConditionExpression"] = "attribute_exists(pk) AND " + (
            "version = :expected" if expected_version else "attribute_not_exists(version)"
        )
        if expected_version:
            request["ExpressionAttributeValues"].update(to_ddb({":expected": expected_version}))
    try:
        response = _ddb().update_item(**request)
    except ClientError as error:
        if "ConditionExpression" in request and is_conditional_failure(error):
            return None
        raise
    return from_ddb(response.get("Attributes"))


def close_sessions(table: str, session_hashes: Sequence[str]) -> None:
    """Delete these sessions (an account change ended them); one BatchWriteItem per 25."""
    write_batch(table, [session_key(h) for h in session_hashes], [])


def write_batch(table: str, delete_keys: Sequence[str], puts: Sequence[Mapping[str, Any]]) -> None:
    """Delete the items of these keys and put these items: one BatchWriteItem per 25."""
    pending: list[dict[str, Any]] = [{"DeleteRequest": {"Key": to_ddb({"pk": pk})}} for pk in delete_keys]
    pending += [{"PutRequest": {"Item": to_ddb(item)}} for item in puts]
    for start in range(0, len(pending), 25):
        requests = pending[start : start + 25]
        for _ in range(5):
            response = _ddb().batch_write_item(RequestItems={table: requests})
            requests = response.get("UnprocessedItems", {}).get(table, [])
            if not requests:
                break
        if requests:
            raise ServiceUnavailable()


# ---------------------------------------------------------------- transactions

_Role = Window | str  # a Window, or "cooldown" / "session" / "challenge" / "account"


def _window_writes(
    table: str, window: Window, hour: int, change: int = 1, note: Mapping[str, Any] | None = None
) -> list[tuple[_Role, dict[str, Any]]]:
    """Count one event (``change`` 1) in its clock hour and carry it into the next one.

    The bucket of hour h holds the events of h-1 and h, and the condition
    caps that sum: so any 60 minutes (which lie inside two consecutive clock
    hours) see at most ``limit`` events, with no burst at the hour boundary.
    ``change`` -1 gives one back (a refund), without a condition. ``note``:
    attributes set on this hour's bucket with the count (who counted it, for
    the audit trail, which reads them from the stream).
    """
    sets = "".join(f", #note{i} = :note{i}" for i in range(len(note or {})))
    update: dict[str, Any] = {
        "TableName": table,
        "Key": to_ddb({"pk": limit_key(window.scope, window.ident, hour)}),
        "UpdateExpression": "ADD n :one, own :one SET kind = :kind, expires_at = :exp" + sets,
        "ExpressionAttributeValues": to_ddb(
            {":one": change, ":kind": "limit", ":exp": (hour + 2) * 3600}
            | {f":note{i}": value for i, value in enumerate((note or {}).values())}
        ),
    }
    if note:
        update["ExpressionAttributeNames"] = {f"#note{i}": name for i, name in enumerate(note)}
    if change > 0:
        update["ConditionExpression"] = "attribute_not_exists(n) OR n < :limit"
        update["ExpressionAttributeValues"].update(to_ddb({":limit": window.limit}))
        update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    carry = {
        "TableName": table,
        "Key": to_ddb({"pk": limit_key(window.scope, window.ident, hour + 1)}),
        "UpdateExpression": "ADD n :one SET kind = :kind, expires_at = :exp",
        "ExpressionAttributeValues": to_ddb({":one": change, ":kind": "limit", ":exp": (hour + 3) * 3600}),
    }
    return [(window, {"Update": update}), ("carry", {"Update": carry})]


def _cooldown_write(table: str, ident: str, now: int, until: int) -> tuple[_Role, dict[str, Any]]:
    return (
        "cooldown",
        {
            "Update": {
                "TableName": table,
                "Key": to_ddb({"pk": cooldown_key(ident)}),
                "UpdateExpression": "SET kind = :kind, #until = :until, expires_at = :until",
                "ConditionExpression": "attribute_not_exists(#until) OR #until <= :now",
                "ExpressionAttributeNames": {"#until": "until"},
                "ExpressionAttributeValues": to_ddb({":kind": "cooldown", ":until": until, ":now": now}),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
    )


def _challenge_put(table: str, send: Send) -> tuple[_Role, dict[str, Any]]:
    item = {
        "pk": send.challenge_pk,
        "kind": "challenge",
        "session": send.session_hash,
        "email": send.email,
        "nonce": send.nonce,
        "key_version": send.key_version,
        "send_no": send.send_no,
        "expires_at": send.expires_at,
        "valid_seconds": send.valid_seconds,
        "queued_at": send.now,
    }
    if send.ip:
        item["ip"] = send.ip
    if send.mail != "signin":
        item["mail"] = send.mail  # "none": the mailer sends nothing for it
    return (
        "challenge",
        {
            "Put": {
                "TableName": table,
                "Item": to_ddb(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
    )


def _transact(writes: Sequence[tuple[_Role, dict[str, Any]]]) -> None:
    """One TransactWriteItems; on cancellation by conditions raise :class:`Cancelled`."""
    from botocore.exceptions import ClientError

    try:
        _ddb().transact_write_items(TransactItems=[write for _, write in writes])
    except ClientError as error:
        if error_code(error) != "TransactionCanceledException":
            raise
        reasons = error.response.get("CancellationReasons") or []
        windows: list[tuple[Window, dict[str, Any] | None]] = []
        cooldown_until: int | None = None
        conflicts: set[str] = set()
        for (role, _), reason in zip(writes, reasons, strict=False):
            if reason.get("Code") in (None, "None"):
                continue
            if reason.get("Code") != "ConditionalCheckFailed":
                raise  # a conflict or throttle, not a rule: let retries/503 handle it
            item = from_ddb(reason.get("Item"))
            if isinstance(role, Window):
                windows.append((role, item))
            elif role == "cooldown":
                cooldown_until = int((item or {}).get("until", 0))
            else:
                conflicts.add(role)
        if not (windows or conflicts) and cooldown_until is None:
            raise
        raise Cancelled(windows, cooldown_until, conflicts) from None


def _send_writes(table: str, session_write: dict[str, Any], send: Send) -> list[tuple[_Role, dict[str, Any]]]:
    """The session's write, its challenge, the cooldown and the limits.

    A send that mails nothing still writes its challenge (marked so): the
    same writes whether or not there is someone to mail.
    """
    writes: list[tuple[_Role, dict[str, Any]]] = [
        ("session", session_write),
        _challenge_put(table, send),
        _cooldown_write(table, send.cooldown, send.now, send.cooldown_until),
    ]
    note = {"last_ip": send.ip, "last_at": send.now, "email": send.email}  # whose send filled a cap
    return writes + _all_windows(table, send.windows, send.hour, note=note)


def _all_windows(
    table: str, windows: Sequence[Window], hour: int, change: int = 1, note: Mapping[str, Any] | None = None
) -> list[tuple[_Role, dict[str, Any]]]:
    """:func:`_window_writes` for each window."""
    return [write for window in windows for write in _window_writes(table, window, hour, change, note)]


_NOT_USED = "(attribute_not_exists(last_tag) OR last_tag <> code_tag)"


def take_slots(
    table: str, windows: Sequence[Window], hour: int, note: Mapping[str, Any] | None = None
) -> None:
    """Count one event (a password check) in each window, only if each has room.

    Raises :class:`Cancelled` naming the full windows: the caller refuses
    the request without doing the work the windows cap. ``note``: see
    :func:`_window_writes`.
    """
    _transact(_all_windows(table, windows, hour, note=note))


def give_back(
    table: str, windows: Sequence[Window], hour: int, note: Mapping[str, Any] | None = None
) -> None:
    """Return one event to each window (a slot taken in ``hour`` for a password that was right)."""
    _transact(_all_windows(table, windows, hour, change=-1, note=note))


def create_session(
    table: str,
    send: Send,
    account: Account | None,
    session_ends_at: int,
    created_at: int,
    refund: Sequence[Window] = (),
    refund_hour: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write a new session and its first challenge, counting the send, in one transaction.

    The account's item records the session (so an account change can end
    it) on the condition that the account did not change since it was read;
    the password-check slots taken in ``refund_hour`` are given back.
    ``extra`` are more attributes of the session (its trusted device, its
    purpose). Without an ``account`` (a sign-up, a reset for no account)
    the session belongs to none.
    """
    session = {
        "pk": session_key(send.session_hash),
        "kind": "session",
        "email": send.email,
        "nonce": send.nonce,
        "key_version": send.key_version,
        "code_tag": send.code_tag,
        "send_no": send.send_no,
        "attempts": 0,
        "expires_at": send.expires_at,
        "created_at": created_at,
        "ends_at": session_ends_at,
        **QUEUED,
        "delivery_at": send.now,
        **({"sub": account.sub, "account_version": account.version or 0} if account else {}),
        **({} if send.mail == "signin" else {"mail": send.mail}),
        **({"ip": send.ip} if send.ip else {}),
        **(extra or {}),
    }
    put = {
        "Put": {
            "TableName": table,
            "Item": to_ddb(session),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    writes = _send_writes(table, put, send)
    if account is not None:
        register = _register_session(table, account, send.session_hash, session_ends_at, created_at)
        writes.append(("account", register))
    _transact(writes + _all_windows(table, refund, refund_hour, change=-1))


def _register_session(
    table: str, account: Account, session_hash: str, ends_at: int, created_at: int
) -> dict[str, Any]:
    """The account's side of a new session: listed among its open sessions, the
    account unchanged since it was read, and given its id if it had none."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    removes = []
    if account.has_sessions:
        sets = ["sessions.#new = :ends"]
        names["#new"], values[":ends"] = session_hash, ends_at
        for index, old in enumerate(account.expired_sessions[:20]):
            names[f"#old{index}"] = old
            removes.append(f"sessions.#old{index}")
        condition = "attribute_exists(sessions)"
    else:
        sets, condition = ["sessions = :map"], "attribute_not_exists(sessions)"
        values[":map"] = {session_hash: ends_at}
    if account.sub_is_new:
        sets.append("#sub = :sub")
        names["#sub"], values[":sub"] = "sub", account.sub
        condition += " AND attribute_not_exists(#sub)"
    if account.device is not None:  # its map exists: it was read from it
        sets.append("devices.#dev.last_used_at = :now")
        names["#dev"], values[":now"] = account.device, created_at
        condition += " AND attribute_exists(devices.#dev)"  # not revoked meanwhile
    if account.has_devices:
        for index, old in enumerate(account.prune_devices[:40]):
            names[f"#gone{index}"] = old
            removes.append(f"devices.#gone{index}")
    else:
        sets.append("devices = if_not_exists(devices, :nodevices)")
        values[":nodevices"] = {}
    update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    if account.version is None:
        condition += " AND attribute_not_exists(version) AND attribute_exists(pk)"
    else:
        condition += " AND version = :version"
        values[":version"] = account.version
    request: dict[str, Any] = {
        "TableName": table,
        "Key": to_ddb({"pk": user_key(account.email)}),
        "UpdateExpression": update,
        "ConditionExpression": condition,
        "ExpressionAttributeValues": to_ddb(values),
    }
    if names:
        request["ExpressionAttributeNames"] = names
    return {"Update": request}


def _put_new(table: str, item: Mapping[str, Any]) -> bool:
    """One PutItem of an item whose key must be new; False (nothing written) when it exists."""
    from botocore.exceptions import ClientError

    try:
        _ddb().put_item(TableName=table, Item=to_ddb(item), ConditionExpression="attribute_not_exists(pk)")
    except ClientError as error:
        if is_conditional_failure(error):
            return False
        raise
    return True


def create_account(
    table: str, email: str, password_hash: str, sub: str, now: int, devices: Mapping[str, Any]
) -> bool:
    """Make a new, enabled account with these trusted ``devices``, in one PutItem.

    False when the address already has one (another sign-up won the race,
    or an operator made it): nothing is overwritten.
    """

    item = {
        "pk": user_key(email),
        "kind": "user",
        "email": email,
        "password_hash": password_hash,
        "disabled": False,
        "version": 1,
        "sub": sub,
        "sessions": {},
        "devices": dict(devices),
        "created_at": now,
        "updated_at": now,
    }
    return _put_new(table, item)


def add_device(
    table: str, email: str, digest: str, entry: Mapping[str, Any], replaces: str | None, account_version: int
) -> bool:
    """Trust a device on the account (in place of ``replaces``, its previous token), in one UpdateItem.

    Holds only while the account has the version its sign-in read: a device
    is never added after the account was disabled or got a new password.
    """
    names = {"#new": digest}
    update = "SET devices.#new = :entry"
    if replaces is not None and replaces != digest:
        names["#old"] = replaces
        update += " REMOVE devices.#old"
    condition = "attribute_exists(devices) AND " + (
        "version = :version" if account_version else "attribute_not_exists(version)"
    )
    values: dict[str, Any] = {":entry": dict(entry)}
    if account_version:
        values[":version"] = account_version
    return _conditional_update(table, user_key(email), update, condition, values, names)


def remove_devices(table: str, email: str, digests: Sequence[str] | None) -> bool:
    """Forget these trusted devices of the account (None: all of them), in one UpdateItem.

    False when there is no such account.
    """
    pk, condition = user_key(email), "attribute_exists(pk)"
    if digests is None:
        return _conditional_update(table, pk, "SET devices = :empty", condition, {":empty": {}})
    if not digests:
        return True
    names = {f"#d{index}": digest for index, digest in enumerate(digests)}
    update = "REMOVE " + ", ".join(f"devices.{name}" for name in names)
    return _conditional_update(table, pk, update, condition, {}, names)


def renew_session(table: str, session: Mapping[str, Any], send: Send) -> None:
    """Replace a session's nonce with ``send``'s, counting the send, in one transaction.

    ``session`` is the item as read; the write only holds if nobody changed
    it since (same nonce, same attempt count) and it was not used. The tag
    of the last guess is dropped: it was made against the old code.
    """
    update = {
        "Update": {
            "TableName": table,
            "Key": to_ddb({"pk": session["pk"]}),
            "UpdateExpression": (
                "SET nonce = :nonce, send_no = :send_no, expires_at = :exp, key_version = :kv, "
                "code_tag = :code_tag, delivery = :queued, delivery_rank = :zero, delivery_at = :now "
                "REMOVE last_tag"
            ),
            "ConditionExpression": f"nonce = :old_nonce AND attempts = :old_attempts AND {_NOT_USED}",
            "ExpressionAttributeValues": to_ddb(
                {
                    ":nonce": send.nonce,
                    ":send_no": send.send_no,
                    ":exp": send.expires_at,
                    ":kv": send.key_version,
                    ":code_tag": send.code_tag,
                    ":queued": QUEUED["delivery"],
                    ":zero": QUEUED["delivery_rank"],
                    ":now": send.now,
                    ":old_nonce": session["nonce"],
                    ":old_attempts": session["attempts"],
                }
            ),
        }
    }
    _transact(_send_writes(table, update, send))


def get_session(table: str, session_hash: str) -> dict[str, Any] | None:
    response = _ddb().get_item(
        TableName=table, Key=to_ddb({"pk": session_key(session_hash)}), ConsistentRead=True
    )
    return from_ddb(response.get("Item"))


def record_guess(
    table: str,
    session_hash: str,
    tag: str,
    key_version: int,
    now: int,
    max_attempts: int,
    purpose: str | None = None,
    ip: str = "",
) -> tuple[bool, dict[str, Any] | None]:
    """Count one verification attempt and remember its tag, atomically.

    The write holds only while the session exists, has this ``purpose``
    (None: a sign-in), was made with ``key_version``, has not expired, has
    attempts left and was not used. It also notes when and from which
    network (``ip``, hashed) the guess came, for the audit trail.
    Returns (counted, item before the write); the item tells the caller
    whether the code was right (its ``code_tag`` is ``tag``) or why the
    session refused it.
    """
    from botocore.exceptions import ClientError

    try:
        response = _ddb().update_item(
            TableName=table,
            Key=to_ddb({"pk": session_key(session_hash)}),
            UpdateExpression="SET last_tag = :tag, guessed_at = :now, last_ip = :ip ADD attempts :one",
            ConditionExpression=(
                "attribute_exists(pk) AND key_version = :kv AND expires_at > :now "
                f"AND attempts < :max AND {_NOT_USED} AND "
                + ("attribute_not_exists(purpose)" if purpose is None else "purpose = :purpose")
            ),
            ExpressionAttributeValues=to_ddb(
                {":one": 1, ":tag": tag, ":kv": key_version, ":now": now, ":max": max_attempts, ":ip": ip}
                | ({} if purpose is None else {":purpose": purpose})
            ),
            ReturnValues="ALL_OLD",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise
        return False, from_ddb(error.response.get("Item"))
    return True, from_ddb(response.get("Attributes"))


# ---------------------------------------------------------------- mail marks


def _conditional_update(
    table: str,
    pk: str,
    update: str,
    condition: str,
    values: dict[str, Any],
    names: dict[str, str] | None = None,
) -> bool:
    """One UpdateItem; False (not an error) when its condition does not hold."""
    from botocore.exceptions import ClientError

    request: dict[str, Any] = {
        "TableName": table,
        "Key": to_ddb({"pk": pk}),
        "UpdateExpression": update,
        "ConditionExpression": condition,
    }
    if values:
        request["ExpressionAttributeValues"] = to_ddb(values)
    if names:
        request["ExpressionAttributeNames"] = names
    try:
        _ddb().update_item(**request)
    except ClientError as error:
        if is_conditional_failure(error):
            return False
        raise
    return True


@dataclass(frozen=True)
class Claim:
    """The outcome of :func:`claim_challenge` and :func:`claim_notice`."""

    claimed: bool
    reason: str = ""  # why not: "already mailed", "cannot work" or "suppressed"


def _not_suppressed(table: str, email: str) -> tuple[_Role, dict[str, Any]]:
    """The address is not suppressed (checked in the claim's own transaction: no extra trip)."""
    check = {
        "TableName": table,
        "Key": to_ddb({"pk": suppression_key(email)}),
        "ConditionExpression": "attribute_not_exists(pk)",
    }
    return "suppressed", {"ConditionCheck": check}


def _mark_mailed(table: str, pk: str, now: int) -> tuple[_Role, dict[str, Any]]:
    mark = {
        "TableName": table,
        "Key": to_ddb({"pk": pk}),
        "UpdateExpression": "SET mailed_at = :now",
        "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(mailed_at)",
        "ExpressionAttributeValues": to_ddb({":now": now}),
    }
    return "challenge", {"Update": mark}


def _claim(writes: list[tuple[_Role, dict[str, Any]]]) -> Claim:
    try:
        _transact(writes)
    except Cancelled as cancelled:
        if "challenge" in cancelled.conflicts:
            return Claim(False, "already mailed")
        if "suppressed" in cancelled.conflicts:
            return Claim(False, "suppressed")
        return Claim(False, "cannot work")
    return Claim(True)


def claim_challenge(table: str, challenge: Mapping[str, Any], now: int, max_attempts: int) -> Claim:
    """Mark a challenge as being mailed, if its code can still work, in one transaction.

    The mark holds only once per challenge; the session must still exist,
    be on this send, have attempts left, not be used and not be expired;
    and the address must not be suppressed.
    """
    session_check = {
        "TableName": table,
        "Key": to_ddb({"pk": session_key(challenge["session"])}),
        "ConditionExpression": (
            f"send_no = :send_no AND attempts < :max AND expires_at > :now AND {_NOT_USED}"
        ),
        "ExpressionAttributeValues": to_ddb(
            {":send_no": challenge["send_no"], ":max": max_attempts, ":now": now}
        ),
    }
    return _claim(
        [
            _mark_mailed(table, challenge["pk"], now),
            ("session", {"ConditionCheck": session_check}),
            _not_suppressed(table, challenge["email"]),
        ]
    )


def claim_notice(table: str, notice: Mapping[str, Any], now: int) -> Claim:
    """Mark a notice as being mailed, once, unless its address is suppressed; one transaction."""
    return _claim([_mark_mailed(table, notice["pk"], now), _not_suppressed(table, notice["email"])])


def record_message_id(table: str, pk: str, message_id: str) -> bool:
    """Note SES's id of the message that mailed this challenge or notice; one UpdateItem."""
    return _conditional_update(table, pk, "SET message_id = :id", "attribute_exists(pk)", {":id": message_id})


def record_delivery(table: str, session_hash: str, send_no: int, state: str, rank: int, at: int) -> bool:
    """Move the session's delivery state forward to ``state``, for its send ``send_no``; one UpdateItem.

    False (nothing written) when the session is gone, is on another send, or
    already has a state as far along: events may come late, twice or out of
    order, and the state never moves back.
    """
    return _conditional_update(
        table,
        session_key(session_hash),
        "SET delivery = :state, delivery_rank = :rank, delivery_at = :at",
        "attribute_exists(pk) AND send_no = :send_no "
        "AND (attribute_not_exists(delivery_rank) OR delivery_rank < :rank)",
        {":state": state, ":rank": rank, ":at": at, ":send_no": send_no},
    )


def suppress(table: str, email: str, reason: str, detail: str, at: int, message_id: str) -> bool:
    """Stop mailing ``email`` (a permanent bounce, a complaint); one PutItem.

    False when it already was: the first reason is kept.
    """

    item = {
        "pk": suppression_key(email),
        "kind": "suppressed",
        "email": email,
        "reason": reason,
        "detail": detail,
        "at": at,
        "message_id": message_id,
    }
    return _put_new(table, item)


def get_suppression(table: str, email: str) -> dict[str, Any] | None:
    """The suppression of ``email``, or None; one GetItem."""
    response = _ddb().get_item(
        TableName=table, Key=to_ddb({"pk": suppression_key(email)}), ConsistentRead=True
    )
    return from_ddb(response.get("Item"))


def list_suppressed(table: str) -> list[dict[str, Any]]:
    """Every suppressed address, oldest first (operator only: a Scan, one call per MB)."""
    found: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "kind = :kind",
        "ExpressionAttributeValues": to_ddb({":kind": "suppressed"}),
    }
    while True:
        response = _ddb().scan(**request)
        found += [item for raw in response.get("Items", []) if (item := from_ddb(raw))]
        if "LastEvaluatedKey" not in response:
            return sorted(found, key=lambda item: (item.get("at", 0), item["email"]))
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def unsuppress(table: str, email: str) -> bool:
    """Mail ``email`` again; False when it was not suppressed. One DeleteItem."""
    from botocore.exceptions import ClientError

    try:
        _ddb().delete_item(
            TableName=table,
            Key=to_ddb({"pk": suppression_key(email)}),
            ConditionExpression="attribute_exists(pk)",
        )
    except ClientError as error:
        if is_conditional_failure(error):
            return False
        raise
    return True


def release_challenge(table: str, pk: str, now: int) -> None:
    """Undo :func:`claim_challenge` after a send that surely failed, so a retry sends it."""
    _conditional_update(table, pk, "REMOVE mailed_at", "mailed_at = :now", {":now": now})


# ---------------------------------------------------------------- audit


def audit_key(email: str, hour: int) -> str:
    return f"audit#{email}#{hour}"


def add_audit(
    table: str,
    email: str,
    hour: int,
    entries: Mapping[str, Mapping[str, Any]],
    replace: Sequence[str],
    expires_at: int,
    max_entries: int,
) -> int | None:
    """Add ``entries`` (attribute name -> entry) to the audit item of ``email`` for clock hour
    ``hour``, in one UpdateItem.

    An entry already there is kept, so a record delivered twice writes
    nothing twice; the names in ``replace`` are set all the same (an outcome
    that a later record settles). ``n`` counts the entries offered, so the
    item stays far below DynamoDB's 400 KB: a write that would take it past
    ``max_entries`` is refused (None). Returns how many entries were added
    or changed.
    """
    from botocore.exceptions import ClientError

    if not entries:
        return 0
    names: dict[str, str] = {}
    values: dict[str, Any] = {
        ":kind": "audit",
        ":email": email,
        ":exp": expires_at,
        ":count": len(entries),
        ":room": max_entries - len(entries),
    }
    sets = ["kind = :kind", "email = :email", "expires_at = :exp"]
    for index, (name, entry) in enumerate(entries.items()):
        names[f"#e{index}"], values[f":e{index}"] = name, dict(entry)
        keep = f"if_not_exists(#e{index}, :e{index})" if name not in replace else f":e{index}"
        sets.append(f"#e{index} = {keep}")
    try:
        response = _ddb().update_item(
            TableName=table,
            Key=to_ddb({"pk": audit_key(email, hour)}),
            UpdateExpression="SET " + ", ".join(sets) + " ADD n :count",
            ConditionExpression="attribute_not_exists(n) OR n <= :room",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_ddb(values),
            ReturnValues="ALL_OLD",  # what was there: tells the new entries (no read units)
        )
    except ClientError as error:
        if is_conditional_failure(error):
            return None
        raise
    before = from_ddb(response.get("Attributes")) or {}
    return sum(
        1
        for name, entry in entries.items()
        if (before.get(name) != dict(entry) if name in replace else name not in before)
    )


def get_audit(table: str, pks: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The audit items of these keys (at most 100) that exist, in one BatchGetItem;
    and the keys DynamoDB left for another call (operator only)."""
    response = _ddb().batch_get_item(RequestItems={table: {"Keys": [to_ddb({"pk": pk}) for pk in pks]}})
    found = [item for raw in response.get("Responses", {}).get(table, []) if (item := from_ddb(raw))]
    left = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
    return found, [str((from_ddb(key) or {}).get("pk")) for key in left]
