"""Read a DynamoDB stream with the Streams API and shape records as Lambda does.

``chalice local`` runs no event sources; the pump uses this to hand the
table's stream records to the very ``@app.on_dynamodb_record`` handler that
Lambda runs. Tests use it too, so the handler is driven by the records the
emulated stream really produced.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


class StreamReader:
    """Follows every shard of one stream from its start, remembering its place.

    A fresh iterator is taken on each poll (AFTER the last sequence number
    seen), which is what a long-lived reader of a real stream does when an
    iterator expires, and keeps it correct on an emulator that rebuilds its
    tables.
    """

    def __init__(self, client: Any, stream_arn: str) -> None:
        self.client = client
        self.stream_arn = stream_arn
        self._last: dict[str, str] = {}

    def _shards(self) -> list[str]:
        description = self.client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        return [shard["ShardId"] for shard in description.get("Shards", [])]

    def poll(self, limit: int = 100) -> list[dict[str, Any]]:
        """The records written since the last poll, oldest first."""
        records: list[dict[str, Any]] = []
        for shard in self._shards():
            last = self._last.get(shard)
            kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard}
            if last is None:
                kwargs["ShardIteratorType"] = "TRIM_HORIZON"
            else:
                kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=last)
            iterator = self.client.get_shard_iterator(**kwargs)["ShardIterator"]
            batch = self.client.get_records(ShardIterator=iterator, Limit=limit)["Records"]
            if batch:
                self._last[shard] = batch[-1]["dynamodb"]["SequenceNumber"]
                records.extend(batch)
        return records


def _epoch(value: Any) -> float:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    return float(value)


def lambda_event(records: list[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    """The event Lambda passes to a DynamoDB stream handler for ``records``."""
    shaped = []
    for record in records:
        item = dict(record)
        dynamodb = dict(item["dynamodb"])
        dynamodb["ApproximateCreationDateTime"] = _epoch(dynamodb.get("ApproximateCreationDateTime", 0))
        dynamodb.setdefault("SizeBytes", 0)
        item["dynamodb"] = dynamodb
        item["eventSourceARN"] = stream_arn
        shaped.append(item)
    return {"Records": shaped}
