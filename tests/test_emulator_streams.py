"""The local emulator's stream after a cancelled transaction (devstack fidelity fix)."""

from __future__ import annotations

import pytest


def _cancelled_transaction(client, table: str) -> None:
    with pytest.raises(client.exceptions.TransactionCanceledException):
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": {"S": "phantom"}, "kind": {"S": "x"}}}},
                {
                    "Put": {
                        "TableName": table,
                        "Item": {"pk": {"S": "exists"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )


@pytest.mark.parametrize("fixed", [True, False])
def test_an_open_iterator_sees_no_cancelled_write(fixed, monkeypatch):
    from moto import mock_aws
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import StreamShard

    from ops.provision import table_definition

    moto_own = getattr(
        DynamoDBBackend.transact_write_items, "__wrapped__", DynamoDBBackend.transact_write_items
    )
    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", moto_own)  # as moto ships it, restored after
    monkeypatch.delattr(StreamShard, "__deepcopy__", raising=False)
    with mock_aws():
        import boto3

        from devstack.emulator import keep_streams_across_rollbacks

        if fixed:
            keep_streams_across_rollbacks()
        client = boto3.client("dynamodb", region_name="us-east-1")
        streams = boto3.client("dynamodbstreams", region_name="us-east-1")
        arn = client.create_table(**table_definition("t"))["TableDescription"]["LatestStreamArn"]
        client.put_item(TableName="t", Item={"pk": {"S": "exists"}})
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")[
            "ShardIterator"
        ]
        _cancelled_transaction(client, "t")
        assert "Item" not in client.get_item(TableName="t", Key={"pk": {"S": "phantom"}})  # rolled back
        client.put_item(TableName="t", Item={"pk": {"S": "real"}})
        seen = [
            r["dynamodb"]["Keys"]["pk"]["S"] for r in streams.get_records(ShardIterator=iterator)["Records"]
        ]
        if fixed:
            assert seen == ["real"]
        else:
            assert seen == ["phantom"]  # moto on its own: the undone write shows, the real one is lost
