"""Reads of the chat's messages table as a client's history read makes them: a Query on the
conversation key (``room#<room>``, ``dm#<a>|<b>``), never a Scan, page by page.

Scenarios and benchmarks use these to check what was stored (how many items, which message
ids and how often) through the edge API, with whatever DynamoDB client they hold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any


def room_conv(room: str) -> str:
    """The conversation key of a public room."""
    return f"room#{room}"


def dm_conv(a: str, b: str) -> str:
    """The conversation key of the direct messages between two client ids."""
    low, high = sorted((a, b))
    return f"dm#{low}|{high}"


def query_pages(dynamodb: Any, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every page of a DynamoDB Query, following ``LastEvaluatedKey``."""
    request = dict(request)
    while True:
        page: dict[str, Any] = dynamodb.query(**request)
        yield page
        if not page.get("LastEvaluatedKey"):
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _conversation(table: str, conv: str, consistent: bool) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "conv = :c",
        "ExpressionAttributeValues": {":c": {"S": conv}},
    }
    if consistent:
        request["ConsistentRead"] = True
    return request


def count_items(dynamodb: Any, table: str, conv: str, *, consistent: bool = True) -> int:
    """How many items a conversation holds (a paginated COUNT)."""
    request = {**_conversation(table, conv, consistent), "Select": "COUNT"}
    return sum(int(page["Count"]) for page in query_pages(dynamodb, request))


def item_ids(dynamodb: Any, table: str, conv: str, *, consistent: bool = True) -> Counter[str]:
    """The message ids a conversation holds, each with its item count (a second item for one
    id would be a message stored twice)."""
    request = {**_conversation(table, conv, consistent), "ProjectionExpression": "id"}
    ids: Counter[str] = Counter()
    for page in query_pages(dynamodb, request):
        ids.update(item["id"]["S"] for item in page["Items"])
    return ids


__all__ = ["count_items", "dm_conv", "item_ids", "query_pages", "room_conv"]
