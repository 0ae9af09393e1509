"""Which actions and table ARNs each DynamoDB request needs from IAM."""

from __future__ import annotations

from infra.local.dynamodb.access import required_access

R, A = "us-east-1", "000000000000"
T = f"arn:aws:dynamodb:{R}:{A}:table"


def access(operation: str, request: dict) -> list[tuple[str, str]]:
    return required_access(operation, request, region=R, account=A)


def test_single_table_operations_name_the_table() -> None:
    assert access("GetItem", {"TableName": "m"}) == [("dynamodb:GetItem", f"{T}/m")]
    assert access("DeleteTable", {"TableName": "m"}) == [("dynamodb:DeleteTable", f"{T}/m")]
    assert access("Scan", {"TableName": f"{T}/m"}) == [("dynamodb:Scan", f"{T}/m")]


def test_a_query_of_an_index_names_the_index() -> None:
    assert access("Query", {"TableName": "m", "IndexName": "byTime"}) == [
        ("dynamodb:Query", f"{T}/m/index/byTime")
    ]


def test_listing_has_no_resource_type() -> None:
    assert access("ListTables", {}) == [("dynamodb:ListTables", "*")]


def test_batches_need_their_action_on_every_table() -> None:
    request = {"RequestItems": {"a": [], "b": []}}
    assert access("BatchWriteItem", request) == [
        ("dynamodb:BatchWriteItem", f"{T}/a"),
        ("dynamodb:BatchWriteItem", f"{T}/b"),
    ]


def test_a_transaction_needs_each_items_own_action() -> None:
    request = {
        "TransactItems": [
            {"Put": {"TableName": "a"}},
            {"ConditionCheck": {"TableName": "b"}},
            {"Put": {"TableName": "a"}},
        ]
    }
    assert access("TransactWriteItems", request) == [
        ("dynamodb:PutItem", f"{T}/a"),
        ("dynamodb:ConditionCheckItem", f"{T}/b"),
    ]


def test_a_request_naming_nothing_is_asked_about_everything() -> None:
    assert access("PutItem", {}) == [("dynamodb:PutItem", "*")]
    assert access("BatchGetItem", {"RequestItems": "nonsense"}) == [("dynamodb:BatchGetItem", "*")]
