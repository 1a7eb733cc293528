"""DynamoDB request units of each call, from the exact size of every item it touches.

On-demand tables bill read and write request units by item size
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html,
https://aws.amazon.com/dynamodb/pricing/on-demand/). moto answers
``ReturnConsumedCapacity`` with a fixed number whatever the item, so the
bench sizes the items itself: before and after each call it reads every
item the call names straight from moto's in-process backend (no API call,
nothing counted) and applies DynamoDB's rules:

* item size: the sum of each attribute's name and value, UTF-8 bytes for
  strings, raw bytes for binary, about one byte per two significant digits
  plus one for numbers, 1 byte for booleans and nulls, 3 bytes for a map or
  list plus 1 byte per element plus its elements;
* a standard write (PutItem, UpdateItem, DeleteItem, each put or delete of
  BatchWriteItem): 1 write unit per started KB of the larger of the item
  before and after (so 1 at least, also when its condition fails: DynamoDB
  charges a failed conditional write);
* a strongly consistent read (GetItem with ``ConsistentRead``): 1 read unit
  per started 4 KB (1 for a missing item); eventually consistent: half;
* a transaction: every item twice, "one to prepare the transaction and one to
  commit" (transaction-apis.html#transaction-capacity-handling); a
  ``ConditionCheck`` is taken as a transactional read (2 read units per 4 KB),
  and a cancelled transaction as if it had run (an upper bound: the
  documentation does not say).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

KB = 1024
WRITE_KB = 1
READ_KB = 4


@dataclass
class Units:
    """Request units of one call (or the sum of several)."""

    read: float = 0.0
    write: float = 0.0
    sized: bool = True  # False: an operation this module cannot size (counted as 0)

    def __add__(self, other: Units) -> Units:
        return Units(self.read + other.read, self.write + other.write, self.sized and other.sized)


# ---------------------------------------------------------------- sizes


def _number_size(text: str) -> int:
    digits = text.lstrip("+-").lower().split("e")[0].replace(".", "")
    significant = digits.strip("0") or "0"
    return math.ceil(len(significant) / 2) + 1 + (1 if text.startswith("-") else 0)


def _binary_size(value: Any) -> int:
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    inner = getattr(value, "value", None)  # boto3.dynamodb.types.Binary
    if isinstance(inner, bytes | bytearray):
        return len(inner)
    return len(str(value).encode("utf-8"))


def value_size(value: dict[str, Any]) -> int:
    """Bytes of one DynamoDB-JSON value (``{"S": "..."}``), without its name."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode("utf-8"))
    if kind == "N":
        return _number_size(str(inner))
    if kind == "B":
        return _binary_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(v).encode("utf-8")) for v in inner)
    if kind == "NS":
        return sum(_number_size(str(v)) for v in inner)
    if kind == "BS":
        return sum(_binary_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + value_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    """Bytes of a DynamoDB-JSON item (0 for none)."""
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def _write_units(before: int, after: int) -> float:
    return float(max(1, math.ceil(max(before, after) / (WRITE_KB * KB))))


def _read_units(size: int, consistent: bool) -> float:
    units = float(max(1, math.ceil(size / (READ_KB * KB))))
    return units if consistent else units / 2


# ---------------------------------------------------------------- the items a call names

Target = tuple[str, str, dict[str, Any]]  # table, role ("read", "write", "tx-write", "tx-check"), key


def _key_of(item: dict[str, Any], key_names: tuple[str, ...]) -> dict[str, Any]:
    return {name: item[name] for name in key_names if name in item}


def targets(operation: str, params: dict[str, Any], key_names: Any) -> list[Target] | None:
    """Every item ``operation`` names, with how it is billed; None for an operation not sized here.

    ``key_names(table)`` gives the table's key attribute names.
    """
    if operation == "GetItem":
        role = "read" if params.get("ConsistentRead") else "read-eventual"
        return [(params["TableName"], role, params["Key"])]
    if operation in ("UpdateItem", "DeleteItem"):
        return [(params["TableName"], "write", params["Key"])]
    if operation == "PutItem":
        table = params["TableName"]
        return [(table, "write", _key_of(params["Item"], key_names(table)))]
    if operation == "TransactWriteItems":
        found: list[Target] = []
        for action in params["TransactItems"]:
            ((kind, body),) = action.items()
            table = body["TableName"]
            key = body.get("Key") or _key_of(body.get("Item", {}), key_names(table))
            found.append((table, "tx-check" if kind == "ConditionCheck" else "tx-write", key))
        return found
    if operation == "BatchWriteItem":
        found = []
        for table, requests in params["RequestItems"].items():
            for request in requests:
                if "PutRequest" in request:
                    found.append((table, "write", _key_of(request["PutRequest"]["Item"], key_names(table))))
                else:
                    found.append((table, "write", request["DeleteRequest"]["Key"]))
        return found
    if operation == "TransactGetItems":
        return [(g["Get"]["TableName"], "tx-read", g["Get"]["Key"]) for g in params["TransactItems"]]
    return None


def units(found: list[Target] | None, before: list[int], after: list[int]) -> Units:
    """Request units of one call from the sizes of its items before and after it."""
    if found is None:
        return Units(sized=False)
    total = Units()
    for (_, role, _), old, new in zip(found, before, after, strict=True):
        if role == "write":
            total.write += _write_units(old, new)
        elif role == "tx-write":
            total.write += 2 * _write_units(old, new)
        elif role in ("tx-check", "tx-read"):
            total.read += 2 * _read_units(old, True)
        elif role == "read":
            total.read += _read_units(old, True)
        else:  # read-eventual
            total.read += _read_units(old, False)
    return total


def changes(found: list[Target] | None, before: list[int], after: list[int]) -> tuple[int, int]:
    """(items written, items created) by a call that succeeded: its stream records, and the items
    whose TTL deletion will write a REMOVE record later. A delete of a missing item writes none."""
    if not found:
        return 0, 0
    written = created = 0
    for (_, role, _), old, new in zip(found, before, after, strict=True):
        if role in ("write", "tx-write") and (old or new):
            written += 1
            created += 1 if not old and new else 0
    return written, created


class MotoSizer:
    """Sizes of the items a call names, read from moto's in-process backend (``mock_aws``)."""

    def __init__(self, region: str = "us-east-1") -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        self._backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][region]

    def key_names(self, table: str) -> tuple[str, ...]:
        found = self._backend.get_table(table)
        return tuple(name for name in (found.hash_key_attr, found.range_key_attr) if name)

    def sizes(self, found: list[Target] | None) -> list[int]:
        if not found:
            return []
        out = []
        for table, _, key in found:
            try:
                item = self._backend.get_item(table, _plain_key(key))
            except Exception:  # noqa: BLE001 - a table or key moto does not know: nothing there
                item = None
            out.append(item_size(item.to_json()["Attributes"]) if item is not None else 0)
        return out


def _plain_key(key: dict[str, Any]) -> dict[str, Any]:
    """A key as moto's backend takes it (numbers and binary as the wire has them)."""
    out = {}
    for name, value in key.items():
        ((kind, inner),) = value.items()
        if isinstance(inner, Decimal):
            inner = str(inner)
        out[name] = {kind: inner}
    return out
