"""Which action and stream ARN each Kinesis request needs from IAM."""

from __future__ import annotations

from infra.local.kinesis.access import IteratorStreams, required_access

R, A = "us-east-1", "000000000000"
S = f"arn:aws:kinesis:{R}:{A}:stream"


def test_a_stream_by_name_or_by_arn() -> None:
    assert required_access("PutRecord", {"StreamName": "s"}, region=R, account=A) == (
        "kinesis:PutRecord",
        f"{S}/s",
    )
    assert required_access("DeleteStream", {"StreamARN": f"{S}/s"}, region=R, account=A) == (
        "kinesis:DeleteStream",
        f"{S}/s",
    )


def test_get_records_belongs_to_the_stream_its_iterator_came_from() -> None:
    iterators = IteratorStreams(capacity=2)
    iterators.remember("it-1", "s")
    request = {"ShardIterator": "it-1"}
    assert required_access("GetRecords", request, region=R, account=A, iterators=iterators) == (
        "kinesis:GetRecords",
        f"{S}/s",
    )
    iterators.remember("it-2", "s")
    iterators.remember("it-3", "s")  # capacity 2: the oldest is forgotten
    assert iterators.stream_of("it-1") is None
    assert required_access("GetRecords", request, region=R, account=A, iterators=iterators) == (
        "kinesis:GetRecords",
        "*",
    )


def test_listing_has_no_resource_type() -> None:
    assert required_access("ListStreams", {}, region=R, account=A) == ("kinesis:ListStreams", "*")
