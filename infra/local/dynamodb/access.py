"""What a DynamoDB request asks IAM for: the actions and table ARNs it must be allowed.

From the Service Authorization Reference, "Actions, resources, and condition keys for Amazon
DynamoDB" (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html):
the action is ``dynamodb:<Operation>``; operations on one table take the table ARN, a Query or
Scan of an index takes the index ARN (``table/<name>/index/<index>``); batch operations need
their action on every table they name; a transaction needs each item's own action
(``PutItem``, ``UpdateItem``, ``DeleteItem``, ``ConditionCheckItem``, ``GetItem``) on its table;
operations with no resource type (``ListTables``, ``DescribeLimits``, ``DescribeEndpoints``)
take ``*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Access = tuple[str, str]  # (action, resource ARN)

_UNSCOPED = frozenset({"ListTables", "DescribeLimits", "DescribeEndpoints", "ListBackups"})
_INDEXED = frozenset({"Query", "Scan"})
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def table_arn(region: str, account: str, table: str) -> str:
    # A table given as its ARN (DynamoDB accepts both) is already the resource.
    if table.startswith("arn:"):
        return table
    return f"arn:aws:dynamodb:{region}:{account}:table/{table}"


def required_access(
    operation: str, request: Mapping[str, Any], *, region: str, account: str
) -> list[Access]:
    """Every (action, resource) the request needs; all must be allowed. Never empty."""
    action = f"dynamodb:{operation}"
    if operation in _UNSCOPED:
        return [(action, "*")]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        tables = request.get("RequestItems")
        names = [str(t) for t in tables] if isinstance(tables, Mapping) else []
        return [(action, table_arn(region, account, name)) for name in names] or [(action, "*")]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        return _transaction(request, region=region, account=account) or [(action, "*")]
    table = request.get("TableName", request.get("ResourceArn"))
    if not isinstance(table, str) or not table:
        return [(action, "*")]
    resource = table_arn(region, account, table)
    index = request.get("IndexName")
    if operation in _INDEXED and isinstance(index, str) and index:
        resource = f"{resource}/index/{index}"
    return [(action, resource)]


def _transaction(request: Mapping[str, Any], *, region: str, account: str) -> list[Access]:
    items = request.get("TransactItems")
    needed: list[Access] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        for kind, detail in item.items():
            if kind in _TRANSACT_ACTIONS and isinstance(detail, Mapping):
                table = detail.get("TableName")
                if isinstance(table, str) and table:
                    access = (
                        f"dynamodb:{_TRANSACT_ACTIONS[kind]}",
                        table_arn(region, account, table),
                    )
                    if access not in needed:
                        needed.append(access)
    return needed
